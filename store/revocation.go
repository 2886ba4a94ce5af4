package store

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"

	"github.com/gatehouse/gatehouse/app"
)

// RevocationStaleness bounds how long a revocation committed by another process (a
// replica, or a command run against the same database) takes to be seen here. This
// process's own revocations are seen at once.
const RevocationStaleness = 500 * time.Millisecond

// revocationRow records what was revoked: a grant, a client session or one access token
// (by its jti). Tokens are not stored; a token is checked against these at introspection
// and userinfo. Rows are numbered by the revocation head, so a reader can fetch only those
// newer than what it has; a row is purged once no token it affects can still be valid.
type revocationRow struct {
	Seq       uint64 `gorm:"primaryKey;autoIncrement:false"`
	Kind      string // app.RevokedGrant, app.RevokedSession or app.RevokedToken
	Ref       string
	At        time.Time
	ExpiresAt time.Time `gorm:"index"`
}

func (revocationRow) TableName() string { return "revocations" }

// revocationHeadRow is the one row holding the number of the newest revocation. Every
// revocation moves it on inside its own transaction, so revocations are numbered in commit
// order (on PostgreSQL the row lock queues them), and reading it is how a process notices,
// cheaply, that there is something new.
type revocationHeadRow struct {
	ID      uint `gorm:"primaryKey"` // always revocationHeadID
	Version uint64
}

func (revocationHeadRow) TableName() string { return "revocation_heads" }

const revocationHeadID = 1

func migrateRevocationHead(db *gorm.DB) error {
	return db.Clauses(clause.OnConflict{DoNothing: true}).Create(&revocationHeadRow{ID: revocationHeadID}).Error
}

// appendRevocation records r inside tx, the transaction of the change that revokes.
func appendRevocation(tx *gorm.DB, r app.Revocation) error {
	res := tx.Model(&revocationHeadRow{}).Where("id = ?", revocationHeadID).Update("version", gorm.Expr("version + 1"))
	if res.Error != nil {
		return res.Error
	}
	var head revocationHeadRow
	if err := tx.Take(&head, revocationHeadID).Error; err != nil {
		return translate(err)
	}
	return tx.Create(&revocationRow{Seq: head.Version, Kind: string(r.Kind), Ref: r.Ref, At: r.At.UTC(), ExpiresAt: r.Until.UTC()}).Error
}

// Revoked reports whether a token with ref is revoked: its jti, its client session or one
// of its grants. It answers from memory, re-reading only revocations newer than those it
// holds, and only when this store committed one or RevocationStaleness has passed.
func (s *Store) Revoked(ctx context.Context, ref app.TokenRef, now time.Time) (bool, error) {
	snap, err := s.revoked.current(ctx, s.read, now)
	if err != nil {
		return false, fmt.Errorf("store: revocations: %w", err)
	}
	return snap.has(ref, now), nil
}

// revocationCache holds the revocations still relevant, as an immutable snapshot swapped
// atomically: checking a token takes no lock.
type revocationCache struct {
	snap    atomic.Pointer[revocationSnapshot]
	local   atomic.Uint64 // revocations this store committed; moved on after each commit
	loading sync.Mutex
}

type revocationSnapshot struct {
	version uint64    // the revocation head read
	local   uint64    // the local count seen before reading it
	checked time.Time // when the head was read (monotonic)
	set     map[string]time.Time
}

func revocationKey(kind app.RevocationKind, ref string) string { return string(kind) + ":" + ref }

// has reports whether ref is revoked at now by a revocation in the snapshot.
func (s *revocationSnapshot) has(ref app.TokenRef, now time.Time) bool {
	in := func(kind app.RevocationKind, id string) bool {
		until, ok := s.set[revocationKey(kind, id)]
		return ok && id != "" && now.Before(until)
	}
	if in(app.RevokedToken, ref.JTI) || in(app.RevokedSession, ref.SessionID) {
		return true
	}
	for _, g := range ref.GrantIDs {
		if in(app.RevokedGrant, g) {
			return true
		}
	}
	return false
}

// committed tells the cache that this store just committed a revocation.
func (c *revocationCache) committed() { c.local.Add(1) }

// current returns a snapshot that holds every revocation this store committed, and every
// other one committed more than RevocationStaleness ago.
func (c *revocationCache) current(ctx context.Context, db *gorm.DB, now time.Time) (*revocationSnapshot, error) {
	local := c.local.Load()
	if snap := c.snap.Load(); snap != nil && snap.local >= local {
		if time.Since(snap.checked) < RevocationStaleness || !c.loading.TryLock() {
			return snap, nil // fresh, or another caller is re-reading: nothing of ours is missing
		}
	} else {
		c.loading.Lock() // a revocation of ours is missing: wait for it
	}
	defer c.loading.Unlock()
	if cur := c.snap.Load(); cur != nil && cur.local >= local && time.Since(cur.checked) < RevocationStaleness {
		return cur, nil
	}
	local = c.local.Load() // read before the head: what the head shows includes these
	next, err := loadRevocations(ctx, db, c.snap.Load(), now)
	if err != nil {
		return nil, err
	}
	next.local = local
	c.snap.Store(next)
	return next, nil
}

// loadRevocations reads the revocation head and, if it moved since prev, the revocations
// after prev's, dropping those no valid token can carry any more.
func loadRevocations(ctx context.Context, db *gorm.DB, prev *revocationSnapshot, now time.Time) (*revocationSnapshot, error) {
	checked := time.Now()
	var head revocationHeadRow
	if err := db.WithContext(ctx).Take(&head, revocationHeadID).Error; err != nil {
		return nil, translate(err)
	}
	next := &revocationSnapshot{version: head.Version, checked: checked, set: map[string]time.Time{}}
	var after uint64
	if prev != nil {
		if prev.version == head.Version {
			next.set = prev.set
			return next, nil
		}
		after = prev.version
		for k, until := range prev.set {
			if now.Before(until) {
				next.set[k] = until
			}
		}
	}
	var rows []revocationRow
	err := db.WithContext(ctx).Where("seq > ? AND seq <= ? AND expires_at > ?", after, head.Version, now.UTC()).Find(&rows).Error
	if err != nil {
		return nil, err
	}
	for _, r := range rows {
		next.set[revocationKey(app.RevocationKind(r.Kind), r.Ref)] = r.ExpiresAt
	}
	return next, nil
}
