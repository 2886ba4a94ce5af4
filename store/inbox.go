package store

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"gorm.io/gorm"

	"github.com/gatehouse/gatehouse/app"
)

// inboxRow is an acknowledged action not yet carried out.
type inboxRow struct {
	Key        string `gorm:"primaryKey"`
	Kind       string `gorm:"not null"`
	Payload    []byte
	ReceivedAt time.Time
	ClaimedBy  string    `gorm:"not null;default:''"`
	LeaseUntil time.Time `gorm:"index"`
}

func (inboxRow) TableName() string { return "inbox" }

// RecordActions keeps actions before they are acknowledged, in one transaction, each leased
// to owner until leaseUntil, and reports for each whether it is new (false: it was recorded
// already, Slack delivered it again). One write for a burst keeps its acks quick.
func (s *Store) RecordActions(ctx context.Context, actions []app.Action, owner string, leaseUntil time.Time) ([]bool, error) {
	fresh := make([]bool, len(actions))
	err := s.transactionFirst(ctx, true, func(tx *gorm.DB) error {
		first := map[string]int{} // Slack may deliver one action twice within a burst
		var rows []inboxRow
		for i, a := range actions {
			fresh[i] = false
			if _, dup := first[a.Key]; dup {
				continue
			}
			first[a.Key] = i
			rows = append(rows, inboxRow{Key: a.Key, Kind: a.Kind, Payload: a.Payload, ReceivedAt: a.ReceivedAt.UTC(), ClaimedBy: owner, LeaseUntil: leaseUntil.UTC()})
		}
		// In key order, so two replicas recording overlapping bursts wait on each other's
		// keys in one order, never in a deadlock.
		slices.SortFunc(rows, func(a, b inboxRow) int { return strings.Compare(a.Key, b.Key) })
		for start := 0; start < len(rows); start += 100 { // 100 rows a statement: SQLite's bound-variable limit
			inserted, err := insertNewActions(tx, rows[start:min(start+100, len(rows))])
			if err != nil {
				return err
			}
			for _, k := range inserted {
				fresh[first[k]] = true
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("store: record %d actions: %w", len(actions), translate(err))
	}
	return fresh, nil
}

// FinishActions forgets actions that were carried out.
func (s *Store) FinishActions(ctx context.Context, keys []string) error {
	err := s.transactionFirst(ctx, true, func(tx *gorm.DB) error { return tx.Where("key IN ?", keys).Delete(&inboxRow{}).Error })
	if err != nil {
		return fmt.Errorf("store: finish %d actions: %w", len(keys), err)
	}
	return nil
}

// RenewActions extends to leaseUntil the leases of the actions owner holds: a live process
// keeps the commands it is carrying out, however long they take; a dead one's run out.
func (s *Store) RenewActions(ctx context.Context, owner string, leaseUntil time.Time) error {
	err := s.transactionFirst(ctx, true, func(tx *gorm.DB) error {
		return tx.Model(&inboxRow{}).Where("claimed_by = ?", owner).Update("lease_until", leaseUntil.UTC()).Error
	})
	if err != nil {
		return fmt.Errorf("store: renew actions of %s: %w", owner, err)
	}
	return nil
}

// ClaimActions claims up to limit actions whose lease ran out at now (the process that
// acknowledged them died), for owner until leaseUntil, oldest first.
func (s *Store) ClaimActions(ctx context.Context, owner string, now, leaseUntil time.Time, limit int) ([]app.Action, error) {
	now, leaseUntil = now.UTC(), leaseUntil.UTC()
	var rows []inboxRow
	err := s.transactionFirst(ctx, true, func(tx *gorm.DB) error {
		var keys []string
		// Rows another replica is claiming at this moment are passed over (see claimable).
		q := s.claimable(tx.Model(&inboxRow{}).Where("lease_until <= ?", now).Order("received_at").Limit(limit))
		if err := q.Pluck("key", &keys).Error; err != nil || len(keys) == 0 {
			return err
		}
		err := tx.Model(&inboxRow{}).Where("key IN ? AND lease_until <= ?", keys, now).
			Updates(map[string]any{"claimed_by": owner, "lease_until": leaseUntil}).Error
		if err != nil {
			return err
		}
		return tx.Where("key IN ? AND claimed_by = ? AND lease_until = ?", keys, owner, leaseUntil).Order("received_at").Find(&rows).Error
	})
	if err != nil {
		return nil, fmt.Errorf("store: claim actions: %w", err)
	}
	out := make([]app.Action, len(rows))
	for i, row := range rows {
		out[i] = app.Action{Key: row.Key, Kind: row.Kind, Payload: row.Payload, ReceivedAt: row.ReceivedAt}
	}
	return out, nil
}

// insertNewActions inserts those of rows whose key is not recorded yet, in one statement,
// and returns their keys. An action recorded before, or by another replica at the same
// moment, is left out rather than failing the statement (and with it the whole burst).
func insertNewActions(tx *gorm.DB, rows []inboxRow) ([]string, error) {
	var sql strings.Builder
	sql.WriteString(`INSERT INTO inbox ("key", kind, payload, received_at, claimed_by, lease_until) VALUES `)
	args := make([]any, 0, 6*len(rows))
	for i, r := range rows {
		if i > 0 {
			sql.WriteString(", ")
		}
		sql.WriteString("(?, ?, ?, ?, ?, ?)")
		args = append(args, r.Key, r.Kind, r.Payload, r.ReceivedAt, r.ClaimedBy, r.LeaseUntil)
	}
	sql.WriteString(` ON CONFLICT ("key") DO NOTHING RETURNING "key"`)
	var inserted []string
	err := tx.Raw(sql.String(), args...).Scan(&inserted).Error
	return inserted, err
}
