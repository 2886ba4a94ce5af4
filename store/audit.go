package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"

	"github.com/gatehouse/gatehouse/app"
)

// auditEventRow is append-only: nothing in this package updates or deletes one, except
// migrateAuditChain sealing the events of a database from before the hash chain.
//
// The rows form a hash chain in ID order: each carries the hash of the one before and its
// own hash over that and its content (app.AuditEvent.ChainHash), so editing, deleting or
// reordering an event breaks the chain at that point.
type auditEventRow struct {
	ID            uint `gorm:"primaryKey"` // assigned by appendEvents: the chain head's LastID + 1
	At            time.Time
	Actor         string
	Action        string
	PrincipalKind string
	PrincipalID   string
	RequestID     string `gorm:"index"`
	GrantID       string `gorm:"index"`
	Reason        string
	Source        string
	PrevHash      string
	Hash          string
}

func (auditEventRow) TableName() string { return "audit_events" }

func auditEventFromApp(e app.AuditEvent) auditEventRow {
	return auditEventRow{
		ID: uint(e.ID), At: e.At.UTC(), Actor: e.Actor, Action: e.Action, PrincipalKind: string(e.Principal.Kind),
		PrincipalID: e.Principal.ID, RequestID: e.RequestID, GrantID: e.GrantID, Reason: e.Reason, Source: e.Source,
		PrevHash: e.PrevHash, Hash: e.Hash,
	}
}

func (row auditEventRow) toApp() app.AuditEvent {
	return app.AuditEvent{
		ID: uint64(row.ID), At: row.At, Actor: row.Actor, Action: row.Action,
		Principal: app.Principal{Kind: app.PrincipalKind(row.PrincipalKind), ID: row.PrincipalID},
		RequestID: row.RequestID, GrantID: row.GrantID, Reason: row.Reason, Source: row.Source,
		PrevHash: row.PrevHash, Hash: row.Hash,
	}
}

// auditChainHeadRow is the one row naming the newest audit event and its hash. Every append
// moves it on, conditionally, so concurrent writers cannot fork the chain; and it is how
// verification notices that the newest events were deleted.
type auditChainHeadRow struct {
	ID       uint `gorm:"primaryKey"` // always chainHeadID
	LastID   uint64
	LastHash string
}

func (auditChainHeadRow) TableName() string { return "audit_chain_heads" }

const chainHeadID = 1

// appendEvents seals events into the audit trail inside tx, the transaction of the state
// change they record. Each event gets the next ID after the chain head and is hashed onto
// the hash before it; then the head moves on only if it still holds the hash read here.
// If another writer got there first the error is app.ErrConflict and tx must roll back.
//
// The head is read FOR UPDATE so that on PostgreSQL concurrent writers queue on it rather
// than conflict. Every write that records an event queues there, until its commit: callers
// append the events as the last statement of their transaction, so that the lock is held
// for these three statements and the commit, not for the rest of the change too. SQLite ignores the lock and needs none: BEGIN IMMEDIATE (see Open) lets
// one writer at a time in, so there a conflict cannot happen.
func appendEvents(tx *gorm.DB, events []app.AuditEvent) error {
	if len(events) == 0 {
		return nil
	}
	var head auditChainHeadRow
	if err := tx.Clauses(clause.Locking{Strength: "UPDATE"}).Take(&head, chainHeadID).Error; err != nil {
		return fmt.Errorf("audit chain head: %w", translate(err))
	}
	sealed := seal(events, head.LastID, head.LastHash)
	rows := make([]auditEventRow, len(sealed))
	for i, e := range sealed {
		rows[i] = auditEventFromApp(e)
	}
	if err := tx.Create(&rows).Error; err != nil {
		return translate(err)
	}
	last := sealed[len(sealed)-1]
	res := tx.Model(&auditChainHeadRow{}).Where("id = ? AND last_hash = ?", chainHeadID, head.LastHash).
		Updates(map[string]any{"last_id": last.ID, "last_hash": last.Hash})
	if res.Error != nil {
		return translate(res.Error)
	}
	if res.RowsAffected != 1 {
		return fmt.Errorf("another writer extended the audit trail first: %w", app.ErrConflict)
	}
	return nil
}

// seal numbers events after the chain's last event (lastID, lastHash) and chains each to
// the one before, returning them sealed.
func seal(events []app.AuditEvent, lastID uint64, lastHash string) []app.AuditEvent {
	sealed := make([]app.AuditEvent, len(events))
	for i, e := range events {
		e.ID, e.PrevHash = lastID+1, lastHash
		// PostgreSQL keeps microseconds: hash the time every database stores alike.
		e.At = e.At.UTC().Truncate(time.Microsecond)
		e.Hash = e.ChainHash()
		sealed[i] = e
		lastID, lastHash = e.ID, e.Hash
	}
	return sealed
}

// migrateAuditChain creates the chain head if the database has none: empty in a new
// database; in one from before the hash chain, over its events, which it seals into the
// chain in ID order first. It runs inside the migration transaction.
func migrateAuditChain(tx *gorm.DB) error {
	if err := tx.AutoMigrate(&auditChainHeadRow{}); err != nil {
		return err
	}
	var heads int64
	if err := tx.Model(&auditChainHeadRow{}).Count(&heads).Error; err != nil {
		return err
	}
	if heads > 0 {
		return nil
	}
	head := auditChainHeadRow{ID: chainHeadID}
	err := eachAuditRow(tx.Model(&auditEventRow{}), func(row auditEventRow) error {
		e := row.toApp()
		e.PrevHash = head.LastHash
		e.Hash = e.ChainHash()
		head.LastID, head.LastHash = e.ID, e.Hash
		return tx.Model(&row).Updates(map[string]any{"prev_hash": e.PrevHash, "hash": e.Hash}).Error
	})
	if err != nil {
		return err
	}
	return tx.Create(&head).Error
}

// auditPageSize is how many events a walk through the trail holds in memory at once.
const auditPageSize = 500

// errStopWalk ends eachAuditRow early without failing it.
var errStopWalk = errors.New("stop walking the audit trail")

// eachAuditRow calls each for the audit events query selects, in ID order, a page at a
// time. No page is left open while each runs, so each may be slow (or write to the
// database) without holding up anyone else.
func eachAuditRow(query *gorm.DB, each func(auditEventRow) error) error {
	query = query.Session(&gorm.Session{}) // reused for every page
	var after uint
	for {
		var rows []auditEventRow
		if err := query.Where("id > ?", after).Order("id").Limit(auditPageSize).Find(&rows).Error; err != nil {
			return err
		}
		for _, row := range rows {
			if err := each(row); err != nil {
				return err
			}
		}
		if len(rows) < auditPageSize {
			return nil
		}
		after = rows[len(rows)-1].ID
	}
}

// AuditEvents returns the events about a request, oldest first.
func (s *Store) AuditEvents(ctx context.Context, requestID string) ([]app.AuditEvent, error) {
	var rows []auditEventRow
	if err := s.db.WithContext(ctx).Where("request_id = ?", requestID).Order("id").Find(&rows).Error; err != nil {
		return nil, fmt.Errorf("store: audit events of %s: %w", requestID, err)
	}
	events := make([]app.AuditEvent, len(rows))
	for i, r := range rows {
		events[i] = r.toApp()
	}
	return events, nil
}

// AuditExport calls each for every audit event recorded at or after since, in trail order
// (oldest first), with its ID and hashes so that the export can be checked on its own.
// It reads the trail a page at a time, so its size does not matter, and holds no database
// connection while each runs. It stops at the first error from each and returns it.
func (s *Store) AuditExport(ctx context.Context, since time.Time, each func(app.AuditEvent) error) error {
	query := s.db.WithContext(ctx).Where("at >= ?", since.UTC())
	if err := eachAuditRow(query, func(row auditEventRow) error { return each(row.toApp()) }); err != nil {
		return fmt.Errorf("store: audit export: %w", err)
	}
	return nil
}

// VerifyAudit walks the audit trail in ID order, a page at a time, and checks that each
// event follows the one before and still matches its hash, and that the trail ends where
// the chain head says. It reports how many events are intact, or the first broken link in
// words (see app.AuditVerification); the error is only for failing to read the database.
//
// It checks the trail up to the head it reads first: events appended while it runs are
// left for the next check.
func (s *Store) VerifyAudit(ctx context.Context) (app.AuditVerification, error) {
	db := s.db.WithContext(ctx)
	var head auditChainHeadRow
	if err := db.Take(&head, chainHeadID).Error; err != nil {
		return app.AuditVerification{}, fmt.Errorf("store: verify audit: %w", translate(err))
	}
	var v app.AuditVerification
	err := eachAuditRow(db.Where("id <= ?", head.LastID), func(row auditEventRow) error {
		if !v.Check(row.toApp()) {
			return errStopWalk
		}
		return nil
	})
	if err != nil && !errors.Is(err, errStopWalk) {
		return app.AuditVerification{}, fmt.Errorf("store: verify audit: %w", err)
	}
	v.CheckHead(head.LastID, head.LastHash)
	return v, nil
}
