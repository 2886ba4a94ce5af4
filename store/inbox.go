package store

import (
	"context"
	"errors"
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

// RecordAction keeps an action before it is acknowledged, leased to owner until leaseUntil.
// It reports false when the action was recorded already (Slack delivered it again).
func (s *Store) RecordAction(ctx context.Context, a app.Action, owner string, leaseUntil time.Time) (bool, error) {
	row := inboxRow{Key: a.Key, Kind: a.Kind, Payload: a.Payload, ReceivedAt: a.ReceivedAt.UTC(), ClaimedBy: owner, LeaseUntil: leaseUntil.UTC()}
	err := s.transaction(ctx, func(tx *gorm.DB) error { return tx.Create(&row).Error })
	if errors.Is(translate(err), app.ErrConflict) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("store: record action %s: %w", a.Kind, translate(err))
	}
	return true, nil
}

// FinishAction forgets an action that was carried out.
func (s *Store) FinishAction(ctx context.Context, key string) error {
	err := s.transaction(ctx, func(tx *gorm.DB) error { return tx.Where("key = ?", key).Delete(&inboxRow{}).Error })
	if err != nil {
		return fmt.Errorf("store: finish action: %w", err)
	}
	return nil
}

// ClaimActions claims up to limit actions whose lease ran out at now (the process that
// acknowledged them died), for owner until leaseUntil, oldest first.
func (s *Store) ClaimActions(ctx context.Context, owner string, now, leaseUntil time.Time, limit int) ([]app.Action, error) {
	now, leaseUntil = now.UTC(), leaseUntil.UTC()
	var rows []inboxRow
	err := s.transaction(ctx, func(tx *gorm.DB) error {
		var keys []string
		// Dialect-specific as dueDeliveries: PostgreSQL adds FOR UPDATE SKIP LOCKED.
		if err := tx.Model(&inboxRow{}).Where("lease_until <= ?", now).Order("received_at").Limit(limit).Pluck("key", &keys).Error; err != nil || len(keys) == 0 {
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
