package oidc

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/zitadel/oidc/v3/pkg/op"

	"github.com/gatehouse/gatehouse/app"
)

// DefaultKeyRefreshInterval is how often a Keyring re-reads the keys from its store unless
// told otherwise.
const DefaultKeyRefreshInterval = 30 * time.Second

// KeyStore is where signing keys live.
type KeyStore interface {
	// SigningKeys returns every stored key, newest first.
	SigningKeys(ctx context.Context) ([]app.SigningKey, error)
	// AddSigningKey retires the active key and makes k the active one, atomically.
	AddSigningKey(ctx context.Context, k app.SigningKey) error
	// ReplacePrivateKey changes a key's stored private key from old to new, only while it
	// is still old (app.ErrConflict otherwise).
	ReplacePrivateKey(ctx context.Context, id string, old, new []byte) error
}

// Keyring hands the provider its signing key and the keys to publish.
//
// It keeps the parsed keys in memory, so signing a token never waits on the database, and
// re-reads them from its KeyStore at most every RefreshInterval: that is how a server picks
// up a rotation done by another process (`gatehouse keys rotate`) against the same database.
// A Keyring is safe for concurrent use.
type Keyring struct {
	// RefreshInterval bounds how long the keys in memory are used before they are re-read
	// from the store; DefaultKeyRefreshInterval unless set. Set it before first use.
	RefreshInterval time.Duration
	// Logger is told when re-reading the keys fails and the keys in memory stay in use.
	// Nil means slog.Default(). Set it before first use.
	Logger *slog.Logger

	store            KeyStore
	kek              *KeyEncryptionKey
	now              func() time.Time
	maxTokenLifetime time.Duration

	keys atomic.Pointer[keySnapshot] // nil until first loaded
	// reloading is held by the one goroutine re-reading the store. Callers that already
	// have keys never wait for it: they go on with the keys in memory meanwhile.
	reloading sync.Mutex
}

// keySnapshot is the keys as read from the store at loadedAt. It is never modified.
type keySnapshot struct {
	loadedAt time.Time
	active   *signingKey
	// public holds the active key and the retired keys that were still to be published
	// at loadedAt, newest first; KeySet filters them again by the time it is asked.
	public []*publicKey
}

// NewKeyring returns a Keyring over store, whose private keys kek seals at rest. now is
// the clock; maxTokenLifetime is the longest any token signed by it stays valid, which is
// how long a retired key stays published.
func NewKeyring(store KeyStore, kek *KeyEncryptionKey, now func() time.Time, maxTokenLifetime time.Duration) *Keyring {
	return &Keyring{
		RefreshInterval:  DefaultKeyRefreshInterval,
		store:            store,
		kek:              kek,
		now:              now,
		maxTokenLifetime: maxTokenLifetime,
	}
}

// EnsureKey creates the first key (alg "RS256" or "ES256") if the store has none; start-up calls it.
// If the store has an active key, that key is kept whatever its algorithm: keys are never
// regenerated at start. It also loads the keys into memory, so a key the store holds but
// cannot be used (corrupt, unknown algorithm, in clear, sealed with another key-encryption
// key) is reported here, at start.
func (k *Keyring) EnsureKey(ctx context.Context, alg string) error {
	if err := checkAlgorithm(alg); err != nil {
		return fmt.Errorf("oidc: ensure signing key: %w", err)
	}
	keys, err := k.store.SigningKeys(ctx)
	if err != nil {
		return fmt.Errorf("oidc: ensure signing key: %w", err)
	}
	if newestUnretired(keys) == nil {
		key, err := k.generateKey(alg)
		if err != nil {
			return fmt.Errorf("oidc: ensure signing key: %w", err)
		}
		if err := k.store.AddSigningKey(ctx, key); err != nil {
			return fmt.Errorf("oidc: ensure signing key: %w", err)
		}
	}
	if err := k.reload(ctx); err != nil {
		return fmt.Errorf("oidc: ensure signing key: %w", err)
	}
	return nil
}

// SealClearKeys encrypts, with the key-encryption key, the keys an older Gatehouse stored
// in clear, each in one conditional write, and returns how many it sealed. Start-up calls
// it before EnsureKey.
func (k *Keyring) SealClearKeys(ctx context.Context) (int, error) {
	keys, err := k.store.SigningKeys(ctx)
	if err != nil {
		return 0, fmt.Errorf("oidc: seal signing keys: %w", err)
	}
	n := 0
	for _, key := range keys {
		if sealed(key.PrivateKey) {
			continue
		}
		err := k.store.ReplacePrivateKey(ctx, key.ID, key.PrivateKey, k.kek.seal(key.ID, key.PrivateKey))
		switch {
		case err == nil:
			n++
		case !errors.Is(err, app.ErrConflict): // a conflict: another process sealed it first
			return n, fmt.Errorf("oidc: seal signing key %s: %w", key.ID, err)
		}
	}
	return n, nil
}

// Rewrap re-encrypts every stored key sealed with old under this Keyring's key-encryption
// key, each in one conditional write, and returns how many it changed; keys already sealed
// with the current one are left alone. It is how the key-encryption key is rotated
// (gatehouse keys rewrap).
func (k *Keyring) Rewrap(ctx context.Context, old *KeyEncryptionKey) (int, error) {
	keys, err := k.store.SigningKeys(ctx)
	if err != nil {
		return 0, fmt.Errorf("oidc: rewrap signing keys: %w", err)
	}
	n := 0
	for _, key := range keys {
		if _, err := k.kek.open(key.ID, key.PrivateKey); err == nil {
			continue
		}
		der, err := old.open(key.ID, key.PrivateKey)
		if err != nil {
			return n, fmt.Errorf("oidc: rewrap signing key %s: %w", key.ID, err)
		}
		if err := k.store.ReplacePrivateKey(ctx, key.ID, key.PrivateKey, k.kek.seal(key.ID, der)); err != nil {
			return n, fmt.Errorf("oidc: rewrap signing key %s: %w", key.ID, err)
		}
		n++
	}
	return n, nil
}

// Rotate makes a new key of alg the active one; the previous stays published.
// It stays published for the maximum token lifetime (plus RefreshInterval, see KeySet),
// so tokens it signed keep verifying. This Keyring signs with the new key at once; other
// processes sharing the store do within their RefreshInterval. If the new key was stored
// but could not be loaded back, Rotate returns it together with the error.
func (k *Keyring) Rotate(ctx context.Context, alg string) (app.SigningKey, error) {
	key, err := k.generateKey(alg)
	if err != nil {
		return app.SigningKey{}, fmt.Errorf("oidc: rotate signing key: %w", err)
	}
	if err := k.store.AddSigningKey(ctx, key); err != nil {
		return app.SigningKey{}, fmt.Errorf("oidc: rotate signing key: %w", err)
	}
	if err := k.reload(ctx); err != nil {
		return key, fmt.Errorf("oidc: rotate signing key: %s stored: %w", key.ID, err)
	}
	return key, nil
}

// SigningKey returns the active key as an op.SigningKey (for op.Storage.SigningKey).
// It is served from memory; see Keyring.
func (k *Keyring) SigningKey(ctx context.Context) (op.SigningKey, error) {
	key, err := k.activeKey(ctx)
	if err != nil {
		return nil, err // not a typed nil in the interface
	}
	return key, nil
}

// activeKey returns the key to sign with now.
func (k *Keyring) activeKey(ctx context.Context) (*signingKey, error) {
	snap, err := k.current(ctx)
	if err != nil {
		return nil, fmt.Errorf("oidc: signing key: %w", err)
	}
	return snap.active, nil
}

// publicKey returns the published key with that kid, if any.
func (k *Keyring) publicKey(ctx context.Context, kid string) (*publicKey, error) {
	snap, err := k.current(ctx)
	if err != nil {
		return nil, fmt.Errorf("oidc: key set: %w", err)
	}
	now := k.now()
	for _, pub := range snap.public {
		if pub.id == kid && k.published(pub.retiredAt, now) {
			return pub, nil
		}
	}
	return nil, fmt.Errorf("oidc: no published key %q", clip(kid))
}

// SignatureAlgorithms returns the algorithms of the published keys, active first (for
// op.Storage.SignatureAlgorithms; discovery announces them).
func (k *Keyring) SignatureAlgorithms(ctx context.Context) ([]jose.SignatureAlgorithm, error) {
	keys, err := k.KeySet(ctx)
	if err != nil {
		return nil, fmt.Errorf("oidc: signature algorithms: %w", err)
	}
	// Every published key's algorithm: after a rotation from RS256 to ES256, clients
	// that trust discovery must still accept the RS256 tokens issued before it.
	var algs []jose.SignatureAlgorithm
	for _, key := range keys {
		if !slices.Contains(algs, key.Algorithm()) {
			algs = append(algs, key.Algorithm())
		}
	}
	return algs, nil
}

// KeySet returns the public keys to publish in JWKS (for op.Storage.KeySet): the active key
// and every retired key whose retirement is younger than maxTokenLifetime (a token it signed may still be valid).
//
// The window is maxTokenLifetime plus RefreshInterval, because a server that has not yet
// noticed a rotation done by another process goes on signing with the retired key for up to
// RefreshInterval after its retirement.
func (k *Keyring) KeySet(ctx context.Context) ([]op.Key, error) {
	snap, err := k.current(ctx)
	if err != nil {
		return nil, fmt.Errorf("oidc: key set: %w", err)
	}
	now := k.now()
	keys := make([]op.Key, 0, len(snap.public))
	for _, pub := range snap.public {
		if k.published(pub.retiredAt, now) {
			keys = append(keys, pub)
		}
	}
	return keys, nil
}

// published reports whether a key retired at retiredAt (zero: active) is still published at now.
func (k *Keyring) published(retiredAt, now time.Time) bool {
	return retiredAt.IsZero() || now.Before(retiredAt.Add(k.maxTokenLifetime+k.refreshInterval()))
}

func (k *Keyring) refreshInterval() time.Duration {
	if k.RefreshInterval <= 0 {
		return DefaultKeyRefreshInterval
	}
	return k.RefreshInterval
}

func (k *Keyring) logger() *slog.Logger {
	if k.Logger == nil {
		return slog.Default()
	}
	return k.Logger
}

func (k *Keyring) fresh(snap *keySnapshot) bool {
	return k.now().Before(snap.loadedAt.Add(k.refreshInterval()))
}

// current returns the keys in memory, re-reading them first if they are older than
// RefreshInterval. While one caller re-reads, the others go on with the keys they have;
// only callers before the very first load wait.
//
// When re-reading fails it goes on with the keys in memory (signing with a key a little
// stale beats failing every token while the database is away) and tries again after
// RefreshInterval. A re-read has reloadTimeout of its own, whatever the caller's deadline:
// one that runs out says the database is slow, not that the caller gave up.
func (k *Keyring) current(ctx context.Context) (*keySnapshot, error) {
	if snap := k.keys.Load(); snap != nil {
		if k.fresh(snap) || !k.reloading.TryLock() {
			return snap, nil
		}
	} else {
		k.reloading.Lock()
	}
	defer k.reloading.Unlock()
	old := k.keys.Load()
	if old != nil && k.fresh(old) { // another caller reloaded while this one waited
		return old, nil
	}
	if old == nil {
		return k.load(ctx)
	}
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), reloadTimeout)
	defer cancel()
	snap, err := k.load(rctx)
	if err == nil {
		return snap, nil
	}
	k.logger().WarnContext(ctx, "signing keys not reloaded; keeping the ones in memory", "kid", old.active.id, "err", err)
	retry := *old
	retry.loadedAt = k.now()
	k.keys.Store(&retry)
	return old, nil
}

// reloadTimeout bounds a re-read of the keys (see current).
const reloadTimeout = time.Second

// reload re-reads the keys now, whatever their age.
func (k *Keyring) reload(ctx context.Context) error {
	k.reloading.Lock()
	defer k.reloading.Unlock()
	_, err := k.load(ctx)
	return err
}

// load reads and parses the keys and makes them current. The caller holds k.reloading.
func (k *Keyring) load(ctx context.Context) (*keySnapshot, error) {
	snap, err := k.read(ctx, k.now())
	if err != nil {
		return nil, err
	}
	k.keys.Store(snap)
	return snap, nil
}

// read reads the keys from the store and parses the ones that matter at now.
func (k *Keyring) read(ctx context.Context, now time.Time) (*keySnapshot, error) {
	keys, err := k.store.SigningKeys(ctx)
	if err != nil {
		return nil, err
	}
	active := newestUnretired(keys)
	if active == nil {
		return nil, fmt.Errorf("no active signing key (start-up runs EnsureKey)")
	}
	snap := &keySnapshot{loadedAt: now}
	for _, key := range keys {
		var retiredAt time.Time // zero for the active key
		if key.ID != active.ID {
			retiredAt = key.RetiredAt
			if retiredAt.IsZero() { // an older key left active: the newest one replaced it
				retiredAt = active.CreatedAt
			}
			if !k.published(retiredAt, now) {
				continue // too old to matter; not even parsed
			}
		}
		der, err := k.kek.open(key.ID, key.PrivateKey)
		if err != nil {
			return nil, fmt.Errorf("signing key %s: %w", key.ID, err)
		}
		key.PrivateKey = der
		signer, err := parseKey(key)
		if err != nil {
			return nil, err
		}
		if key.ID == active.ID {
			snap.active = signer
		}
		snap.public = append(snap.public, &publicKey{id: signer.id, alg: signer.alg, key: signer.key.Public(), retiredAt: retiredAt})
	}
	return snap, nil
}

// newestUnretired returns the newest key not retired, or nil. keys are newest first.
func newestUnretired(keys []app.SigningKey) *app.SigningKey {
	for i := range keys {
		if keys[i].RetiredAt.IsZero() {
			return &keys[i]
		}
	}
	return nil
}

// generateKey makes a new key of alg with a random kid, sealed with the key-encryption key.
func (k *Keyring) generateKey(alg string) (app.SigningKey, error) {
	key, err := generateKey(alg, k.now())
	if err != nil {
		return key, err
	}
	key.PrivateKey = k.kek.seal(key.ID, key.PrivateKey)
	return key, nil
}
