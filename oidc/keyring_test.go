package oidc_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/zitadel/oidc/v3/pkg/op"

	"github.com/gatehouse/gatehouse/app"
	"github.com/gatehouse/gatehouse/oidc"
	"github.com/gatehouse/gatehouse/store"
)

const maxTokenLifetime = time.Hour

// clock is a settable clock, safe for concurrent use.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Date(2026, 11, 30, 9, 0, 0, 0, time.UTC)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func openStore(t testing.TB, path string) *store.Store {
	t.Helper()
	s, err := store.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func dbPath(t testing.TB) string { return filepath.Join(t.TempDir(), "gatehouse.db") }

func activeKey(t *testing.T, kr *oidc.Keyring) op.SigningKey {
	t.Helper()
	key, err := kr.SigningKey(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return key
}

// sign returns a compact JWT signed the way the provider signs tokens.
func sign(t *testing.T, key op.SigningKey, subject string) string {
	t.Helper()
	signer, err := op.SignerFromKey(key)
	if err != nil {
		t.Fatal(err)
	}
	payload, _ := json.Marshal(map[string]any{"sub": subject})
	jws, err := signer.Sign(payload)
	if err != nil {
		t.Fatal(err)
	}
	token, err := jws.CompactSerialize()
	if err != nil {
		t.Fatal(err)
	}
	return token
}

// jwks is the key set as a relying party fetches it: KeySet, serialised as JWKS JSON.
func jwks(t *testing.T, kr *oidc.Keyring) jose.JSONWebKeySet {
	t.Helper()
	keys, err := kr.KeySet(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	set := jose.JSONWebKeySet{}
	for _, k := range keys {
		set.Keys = append(set.Keys, jose.JSONWebKey{KeyID: k.ID(), Algorithm: string(k.Algorithm()), Use: k.Use(), Key: k.Key()})
	}
	data, err := json.Marshal(set)
	if err != nil {
		t.Fatal(err)
	}
	var published jose.JSONWebKeySet
	if err := json.Unmarshal(data, &published); err != nil {
		t.Fatal(err)
	}
	for _, k := range published.Keys {
		if !k.IsPublic() {
			t.Fatalf("JWKS publishes private key %s", k.KeyID)
		}
	}
	return published
}

// verify checks token against the published keys as a relying party would: by the kid and
// alg in its header. It returns the kid that verified it, or an error.
func verify(t *testing.T, kr *oidc.Keyring, token string) (string, error) {
	t.Helper()
	jws, err := jose.ParseSigned(token, []jose.SignatureAlgorithm{jose.RS256, jose.ES256})
	if err != nil {
		t.Fatal(err)
	}
	header := jws.Signatures[0].Header
	published := jwks(t, kr)
	keys := published.Key(header.KeyID)
	if len(keys) != 1 {
		return "", &keyNotPublished{header.KeyID}
	}
	if keys[0].Algorithm != header.Algorithm || keys[0].Use != "sig" {
		t.Errorf("published key %s is %s/%s; the token says %s", header.KeyID, keys[0].Algorithm, keys[0].Use, header.Algorithm)
	}
	if _, err := jws.Verify(keys[0].Key); err != nil {
		return "", err
	}
	return header.KeyID, nil
}

type keyNotPublished struct{ kid string }

func (e *keyNotPublished) Error() string { return "key " + e.kid + " is not published" }

func TestEnsureKeySurvivesRestart(t *testing.T) {
	ctx := context.Background()
	path := dbPath(t)
	clk := newClock()

	s := openStore(t, path)
	kr := oidc.NewKeyring(s, testKEK, clk.Now, maxTokenLifetime)
	if err := kr.EnsureKey(ctx, app.AlgRS256); err != nil {
		t.Fatal(err)
	}
	first := activeKey(t, kr)
	token := sign(t, first, "U0ALICE")
	if err := kr.EnsureKey(ctx, app.AlgRS256); err != nil {
		t.Fatal(err)
	}
	if got := activeKey(t, kr).ID(); got != first.ID() {
		t.Errorf("second EnsureKey: kid = %s, want %s", got, first.ID())
	}
	s.Close()

	// A restart, even configured for another algorithm, keeps the stored key.
	clk.Advance(24 * time.Hour)
	s = openStore(t, path)
	kr = oidc.NewKeyring(s, testKEK, clk.Now, maxTokenLifetime)
	if err := kr.EnsureKey(ctx, app.AlgES256); err != nil {
		t.Fatal(err)
	}
	again := activeKey(t, kr)
	if again.ID() != first.ID() || again.SignatureAlgorithm() != jose.RS256 {
		t.Errorf("after restart, key = %s %s; want %s RS256", again.ID(), again.SignatureAlgorithm(), first.ID())
	}
	if kid, err := verify(t, kr, token); err != nil || kid != first.ID() {
		t.Errorf("token signed before the restart: kid %q, %v; want it verified by %s", kid, err, first.ID())
	}
	keys, _ := s.SigningKeys(ctx)
	if len(keys) != 1 {
		t.Errorf("stored keys = %d, want 1", len(keys))
	}
}

func TestRotationKeepsIssuedTokensValid(t *testing.T) {
	tests := []struct{ from, to string }{
		{app.AlgRS256, app.AlgRS256},
		{app.AlgES256, app.AlgES256},
		{app.AlgRS256, app.AlgES256},
		{app.AlgES256, app.AlgRS256},
	}
	for _, tt := range tests {
		t.Run(tt.from+" to "+tt.to, func(t *testing.T) {
			ctx := context.Background()
			clk := newClock()
			kr := oidc.NewKeyring(openStore(t, dbPath(t)), testKEK, clk.Now, maxTokenLifetime)
			if err := kr.EnsureKey(ctx, tt.from); err != nil {
				t.Fatal(err)
			}
			old := activeKey(t, kr)
			if string(old.SignatureAlgorithm()) != tt.from {
				t.Errorf("first key is %s, want %s", old.SignatureAlgorithm(), tt.from)
			}
			oldToken := sign(t, old, "U0ALICE")
			if kid, err := verify(t, kr, oldToken); err != nil || kid != old.ID() {
				t.Fatalf("fresh token: kid %q, %v; want verified by %s", kid, err, old.ID())
			}

			clk.Advance(10 * time.Minute)
			rotated, err := kr.Rotate(ctx, tt.to)
			if err != nil {
				t.Fatal(err)
			}
			current := activeKey(t, kr)
			if current.ID() != rotated.ID || current.ID() == old.ID() || string(current.SignatureAlgorithm()) != tt.to {
				t.Fatalf("after rotation, signing key = %s %s; want the new %s key %s", current.ID(), current.SignatureAlgorithm(), tt.to, rotated.ID)
			}
			// Discovery announces both while the old key is published: clients that trust
			// it must still accept tokens signed before the rotation.
			algs, err := kr.SignatureAlgorithms(ctx)
			want := []string{tt.to, tt.from}
			if tt.from == tt.to {
				want = want[:1]
			}
			if err != nil || fmt.Sprint(algs) != fmt.Sprint(want) {
				t.Errorf("signature algorithms = %v, %v; want %v", algs, err, want)
			}
			newToken := sign(t, current, "U0BOB")
			if kid, err := verify(t, kr, newToken); err != nil || kid != rotated.ID {
				t.Errorf("new token: kid %q, %v; want verified by %s", kid, err, rotated.ID)
			}
			if kid, err := verify(t, kr, oldToken); err != nil || kid != old.ID() {
				t.Errorf("token issued before rotation: kid %q, %v; want still verified by %s", kid, err, old.ID())
			}

			// Just before every token the old key signed has expired, it is still published...
			clk.Advance(maxTokenLifetime + kr.RefreshInterval - time.Second)
			if _, err := verify(t, kr, oldToken); err != nil {
				t.Errorf("old key withdrawn early: %v", err)
			}
			// ...and then it is not.
			clk.Advance(time.Second)
			if kid, err := verify(t, kr, oldToken); err == nil {
				t.Errorf("old key %s still published after the longest token lifetime", kid)
			}
			if _, err := verify(t, kr, newToken); err != nil {
				t.Errorf("the active key is no longer published: %v", err)
			}
			if n := len(jwks(t, kr).Keys); n != 1 {
				t.Errorf("JWKS has %d keys, want only the active one", n)
			}
		})
	}
}

func TestUnknownAlgorithmRefused(t *testing.T) {
	ctx := context.Background()
	s := openStore(t, dbPath(t))
	kr := oidc.NewKeyring(s, testKEK, newClock().Now, maxTokenLifetime)
	for _, alg := range []string{"HS256", "none", "", "rs256"} {
		if err := kr.EnsureKey(ctx, alg); err == nil || !strings.Contains(err.Error(), "RS256 or ES256") {
			t.Errorf("EnsureKey(%q) = %v; want an error naming RS256 and ES256", alg, err)
		}
	}
	if keys, _ := s.SigningKeys(ctx); len(keys) != 0 {
		t.Errorf("a refused algorithm stored keys: %+v", keys)
	}
	if _, err := kr.SigningKey(ctx); err == nil {
		t.Error("SigningKey with no key stored: want an error")
	}

	if err := kr.EnsureKey(ctx, app.AlgES256); err != nil {
		t.Fatal(err)
	}
	before := activeKey(t, kr).ID()
	if _, err := kr.Rotate(ctx, "PS512"); err == nil || !strings.Contains(err.Error(), "RS256 or ES256") {
		t.Errorf("Rotate(PS512) = %v; want an error naming RS256 and ES256", err)
	}
	if got := activeKey(t, kr).ID(); got != before {
		t.Errorf("a refused rotation changed the key from %s to %s", before, got)
	}
}

// `gatehouse keys rotate` runs as another process against the same database: a running
// server must sign with the new key within its refresh interval.
func TestRotationByAnotherProcessIsPickedUp(t *testing.T) {
	ctx := context.Background()
	path := dbPath(t)
	clk := newClock()
	server := oidc.NewKeyring(openStore(t, path), testKEK, clk.Now, maxTokenLifetime)
	if err := server.EnsureKey(ctx, app.AlgRS256); err != nil {
		t.Fatal(err)
	}
	old := activeKey(t, server)

	cli := oidc.NewKeyring(openStore(t, path), testKEK, clk.Now, maxTokenLifetime)
	rotated, err := cli.Rotate(ctx, app.AlgES256)
	if err != nil {
		t.Fatal(err)
	}

	clk.Advance(server.RefreshInterval - time.Second)
	if got := activeKey(t, server).ID(); got != old.ID() {
		t.Errorf("within the refresh interval, server signs with %s; want the key in memory, %s", got, old.ID())
	}
	clk.Advance(time.Second)
	current := activeKey(t, server)
	if current.ID() != rotated.ID {
		t.Fatalf("after the refresh interval, server signs with %s; want %s", current.ID(), rotated.ID)
	}
	// The server publishes both: tokens signed by the old key, even in the interval
	// after its retirement, stay valid.
	published := jwks(t, server)
	for _, kid := range []string{old.ID(), rotated.ID} {
		if len(published.Key(kid)) != 1 {
			t.Errorf("server does not publish key %s", kid)
		}
	}
	if _, err := verify(t, server, sign(t, current, "U0ALICE")); err != nil {
		t.Errorf("token signed with the picked-up key: %v", err)
	}
}

// Run with -race: readers, a rotating writer and a moving clock at once.
func TestKeyringConcurrentUse(t *testing.T) {
	ctx := context.Background()
	clk := newClock()
	path := dbPath(t)
	kr := oidc.NewKeyring(openStore(t, path), testKEK, clk.Now, maxTokenLifetime)
	if err := kr.EnsureKey(ctx, app.AlgES256); err != nil {
		t.Fatal(err)
	}
	other := oidc.NewKeyring(openStore(t, path), testKEK, clk.Now, maxTokenLifetime)
	var (
		wg   sync.WaitGroup
		done atomic.Bool
	)
	for range 8 {
		wg.Go(func() {
			for !done.Load() {
				key, err := kr.SigningKey(ctx)
				if err != nil {
					t.Error(err)
					return
				}
				if _, err := kr.KeySet(ctx); err != nil {
					t.Error(err)
					return
				}
				if key.ID() == "" {
					t.Error("signing key without a kid")
					return
				}
			}
		})
	}
	for i := range 6 {
		target := kr
		if i%2 == 1 {
			target = other
		}
		if _, err := target.Rotate(ctx, app.AlgES256); err != nil {
			t.Error(err)
		}
		clk.Advance(kr.RefreshInterval)
	}
	done.Store(true)
	wg.Wait()
	keys, err := openStore(t, path).SigningKeys(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if got := activeKey(t, kr).ID(); got != keys[0].ID {
		t.Errorf("after the last rotation and a refresh interval, kid = %s, want %s", got, keys[0].ID)
	}
}

// unreliableStore is the real store, whose reads can be made to fail.
type unreliableStore struct {
	*store.Store
	down atomic.Bool
}

func (s *unreliableStore) SigningKeys(ctx context.Context) ([]app.SigningKey, error) {
	if s.down.Load() {
		return nil, errors.New("database is away")
	}
	return s.Store.SigningKeys(ctx)
}

// Tokens keep being signed while the database is away, with the keys already in memory.
func TestKeysInMemoryOutliveTheDatabase(t *testing.T) {
	ctx := context.Background()
	clk := newClock()
	s := &unreliableStore{Store: openStore(t, dbPath(t))}
	kr := oidc.NewKeyring(s, testKEK, clk.Now, maxTokenLifetime)
	kr.Logger = slog.New(slog.DiscardHandler)
	if err := kr.EnsureKey(ctx, app.AlgRS256); err != nil {
		t.Fatal(err)
	}
	want := activeKey(t, kr).ID()

	s.down.Store(true)
	clk.Advance(kr.RefreshInterval)
	if got := activeKey(t, kr).ID(); got != want {
		t.Errorf("with the database away, kid = %s, want %s", got, want)
	}
	if _, err := kr.KeySet(ctx); err != nil {
		t.Errorf("with the database away, KeySet: %v", err)
	}
	if _, err := kr.Rotate(ctx, app.AlgRS256); err == nil {
		t.Error("Rotate could not read back its key, yet reported success")
	}

	s.down.Store(false)
	clk.Advance(kr.RefreshInterval)
	if got := activeKey(t, kr).ID(); got == want {
		t.Error("once the database is back, the key rotated meanwhile is not picked up")
	}
}

// hangingStore is the real store, whose reads can be made to hang as a database behind a
// network that drops packets does, until the caller gives up.
type hangingStore struct {
	*store.Store
	hang  atomic.Bool
	reads atomic.Int64
}

func (s *hangingStore) SigningKeys(ctx context.Context) ([]app.SigningKey, error) {
	s.reads.Add(1)
	if s.hang.Load() {
		<-ctx.Done()
		return nil, ctx.Err()
	}
	return s.Store.SigningKeys(ctx)
}

// A re-read that hangs is given up on by the keyring itself, which then goes on with the
// keys in memory until the next refresh interval, however short its callers' deadlines. It
// used to take a caller's deadline for the caller giving up, store no back-off, and make
// the next request wait its whole deadline again, and the next.
func TestHangingReloadBacksOff(t *testing.T) {
	clk := newClock()
	s := &hangingStore{Store: openStore(t, dbPath(t))}
	kr := oidc.NewKeyring(s, testKEK, clk.Now, maxTokenLifetime)
	kr.Logger = slog.New(slog.DiscardHandler)
	if err := kr.EnsureKey(context.Background(), app.AlgES256); err != nil {
		t.Fatal(err)
	}
	want := activeKey(t, kr).ID()

	s.hang.Store(true)
	clk.Advance(kr.RefreshInterval)
	before := s.reads.Load()
	for range 3 { // three requests, each with a deadline shorter than the reload's own
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
		key, err := kr.SigningKey(ctx)
		cancel()
		if err != nil || key.ID() != want {
			t.Fatalf("with the database hanging: %v, %v; want the key in memory", key, err)
		}
	}
	if n := s.reads.Load() - before; n != 1 {
		t.Errorf("%d reads of a hanging database within one refresh interval, want 1", n)
	}
}

// countingStore counts reads, to show the benchmark is not measuring SQLite.
type countingStore struct {
	*store.Store
	reads atomic.Int64
}

func (s *countingStore) SigningKeys(ctx context.Context) ([]app.SigningKey, error) {
	s.reads.Add(1)
	return s.Store.SigningKeys(ctx)
}

// BenchmarkSigningKey measures what the token endpoint pays per token for its key: it is
// served from memory, so reads/op is ~0 (one read per RefreshInterval).
func BenchmarkSigningKey(b *testing.B) {
	ctx := context.Background()
	s := &countingStore{Store: openStore(b, dbPath(b))}
	kr := oidc.NewKeyring(s, testKEK, time.Now, maxTokenLifetime)
	if err := kr.EnsureKey(ctx, app.AlgES256); err != nil {
		b.Fatal(err)
	}
	s.reads.Store(0)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := kr.SigningKey(ctx); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(s.reads.Load())/float64(b.N), "reads/op")
}
