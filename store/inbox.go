package store

import (
	"context"
	"fmt"
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
		keys := make([]string, len(actions))
		for i, a := range actions {
			keys[i] = a.Key
		}
		var known []string
		if err := tx.Model(&inboxRow{}).Where("key IN ?", keys).Pluck("key", &known).Error; err != nil {
			return err
		}
		seen := map[string]bool{}
		for _, k := range known {
			seen[k] = true
		}
		var rows []inboxRow
		for i, a := range actions {
			if seen[a.Key] {
				fresh[i] = false
				continue
			}
			seen[a.Key], fresh[i] = true, true
			rows = append(rows, inboxRow{Key: a.Key, Kind: a.Kind, Payload: a.Payload, ReceivedAt: a.ReceivedAt.UTC(), ClaimedBy: owner, LeaseUntil: leaseUntil.UTC()})
		}
		if len(rows) == 0 {
			return nil
		}
		return tx.CreateInBatches(rows, 100).Error // one statement per 100: SQLite's bound-variable limit
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
