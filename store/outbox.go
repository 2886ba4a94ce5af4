package store

import (
	"context"
	"fmt"
	"time"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"

	"github.com/gatehouse/gatehouse/app"
)

var _ app.Outbox = (*Store)(nil)

// deliveryRow is one Slack effect owed (the outbox). A message owed for a request has a
// draw_key, so that a request has one such row at a time: asking again while it is claimed
// sets redraw instead.
type deliveryRow struct {
	ID         int64      `gorm:"primaryKey;autoIncrement"`
	Kind       string     `gorm:"not null"`
	RequestID  string     `gorm:"not null;default:''"`
	GrantID    string     `gorm:"not null;default:''"`
	Approvers  []string   `gorm:"serializer:json"`
	Target     string     `gorm:"not null;default:''"`
	Problem    string     `gorm:"not null;default:''"`
	DrawKey    *string    `gorm:"uniqueIndex"`
	Redraw     bool       `gorm:"not null;default:false"`
	NotBefore  time.Time  `gorm:"index:delivery_due"`
	ClaimedBy  string     `gorm:"not null;default:''"`
	LeaseUntil *time.Time `gorm:"index:delivery_due"`
	Attempts   int        `gorm:"not null;default:0"`
	LastError  string     `gorm:"not null;default:''"`
	CreatedAt  time.Time
}

func (deliveryRow) TableName() string { return "outbox" }

// atOnce is the not-before of a delivery owed now, whatever the clock says.
var atOnce = time.Unix(0, 0).UTC()

func (row deliveryRow) toApp() app.Delivery {
	return app.Delivery{ID: row.ID, Kind: app.DeliveryKind(row.Kind), RequestID: row.RequestID, GrantID: row.GrantID,
		Approvers: row.Approvers, Target: row.Target, Problem: row.Problem, LastError: row.LastError, Attempts: row.Attempts, CreatedAt: row.CreatedAt}
}

// enqueue adds the deliveries owed by a write, inside its transaction.
func enqueue(tx *gorm.DB, owed []app.Delivery) error {
	for _, d := range owed {
		row := deliveryRow{Kind: string(d.Kind), RequestID: d.RequestID, GrantID: d.GrantID, Approvers: d.Approvers, Target: d.Target,
			Problem: d.Problem, NotBefore: atOnce, CreatedAt: time.Now().UTC()}
		q := tx
		if d.Kind == app.DeliverMessage {
			key := "message:" + d.RequestID
			row.DrawKey = &key
			// One row per request: one not yet claimed draws the latest state anyway; one
			// being drawn is asked to draw again once done.
			q = tx.Clauses(clause.OnConflict{Columns: []clause.Column{{Name: "draw_key"}}, DoUpdates: clause.Assignments(map[string]any{
				"redraw": gorm.Expr("CASE WHEN outbox.claimed_by <> '' THEN ? ELSE outbox.redraw END", true)})})
		}
		if err := q.Create(&row).Error; err != nil {
			return fmt.Errorf("owe %s for %s: %w", d.Kind, d.RequestID, err)
		}
	}
	return nil
}

// ClaimDeliveries implements app.Outbox: one transaction picks the oldest delivery due for
// each target and leases them to owner; a lease that ran out (its holder died) counts as none.
func (s *Store) ClaimDeliveries(ctx context.Context, owner string, now, leaseUntil time.Time, limit int, skip []string) ([]app.Delivery, error) {
	now, leaseUntil = now.UTC(), leaseUntil.UTC()
	var rows []deliveryRow
	err := s.transaction(ctx, func(tx *gorm.DB) error {
		ids, err := s.dueDeliveries(tx, now, limit, skip)
		if err != nil || len(ids) == 0 {
			return err
		}
		// Read before the claim, which forgets how the last attempt ended: if this attempt
		// never reports back (its process dies), the next one must not take it for refused
		// like the one before, since it may have reached Slack.
		if err := tx.Where("id IN ?", ids).Order("id").Find(&rows).Error; err != nil {
			return err
		}
		return tx.Model(&deliveryRow{}).Where("id IN ?", ids).Updates(map[string]any{
			"claimed_by": owner, "lease_until": leaseUntil, "attempts": gorm.Expr("attempts + 1"), "last_error": ""}).Error
	})
	if err != nil {
		return nil, fmt.Errorf("store: claim deliveries: %w", err)
	}
	out := make([]app.Delivery, len(rows))
	for i, row := range rows {
		out[i] = row.toApp()
		out[i].Attempts++
	}
	return out, nil
}

// dueDeliveries returns the IDs of the oldest delivery due at now for each target not in
// skip and with no delivery under lease (deliveries to one target go one at a time,
// whichever process holds one), up to limit, oldest first, locked for the claim where the
// dialect has row locks: a row another replica is claiming at this moment is passed over
// (its target waits for the next claim), never claimed twice nor waited for.
func (s *Store) dueDeliveries(tx *gorm.DB, now time.Time, limit int, skip []string) ([]int64, error) {
	const due = "not_before <= ? AND (lease_until IS NULL OR lease_until <= ?)"
	held := tx.Model(&deliveryRow{}).Where("lease_until > ?", now).Select("target")
	oldest := tx.Model(&deliveryRow{}).Where(due, now, now).Where("target NOT IN (?)", held)
	if len(skip) > 0 {
		oldest = oldest.Where("target NOT IN ?", skip)
	}
	oldest = oldest.Group("target").Order("MIN(id)").Limit(limit).Select("MIN(id)")
	// The locking query says "due" again: a row another claim changed since this query's
	// snapshot is locked in its newest version and re-checked against the locking query's
	// own conditions only (PostgreSQL, READ COMMITTED), not the subquery's; without them a
	// delivery another claim leased and committed meanwhile was claimed a second time.
	var ids []int64
	err := s.claimable(tx.Model(&deliveryRow{}).Where("id IN (?)", oldest).Where(due, now, now)).Order("id").Pluck("id", &ids).Error
	return ids, err
}

// FinishDelivery implements app.Outbox.
func (s *Store) FinishDelivery(ctx context.Context, owner string, id int64, now time.Time) (bool, error) {
	finished := false
	err := s.transaction(ctx, func(tx *gorm.DB) error {
		res := tx.Where("id = ? AND redraw = ?", id, false).Delete(&deliveryRow{})
		if res.Error != nil || res.RowsAffected == 1 {
			finished = res.Error == nil
			return res.Error
		}
		return tx.Model(&deliveryRow{}).Where("id = ? AND claimed_by = ?", id, owner).Updates(map[string]any{
			"redraw": false, "claimed_by": "", "lease_until": nil, "not_before": now.UTC()}).Error
	})
	if err != nil {
		return false, fmt.Errorf("store: finish delivery %d: %w", id, err)
	}
	return finished, nil
}

// RetryDelivery implements app.Outbox.
func (s *Store) RetryDelivery(ctx context.Context, owner string, id int64, notBefore time.Time, problem string, owed ...app.Delivery) error {
	err := s.transaction(ctx, func(tx *gorm.DB) error {
		res := tx.Model(&deliveryRow{}).Where("id = ? AND claimed_by = ?", id, owner).Updates(map[string]any{
			"redraw": false, "claimed_by": "", "lease_until": nil, "not_before": notBefore.UTC(), "last_error": problem})
		if res.Error != nil || res.RowsAffected == 0 {
			return res.Error
		}
		return enqueue(tx, owed)
	})
	if err != nil {
		return fmt.Errorf("store: retry delivery %d: %w", id, err)
	}
	return nil
}

// OutboxState implements app.Outbox.
func (s *Store) OutboxState(ctx context.Context) (int, time.Time, error) {
	var depth int64
	if err := s.read.WithContext(ctx).Model(&deliveryRow{}).Count(&depth).Error; err != nil {
		return 0, time.Time{}, fmt.Errorf("store: outbox state: %w", err)
	}
	var oldest []deliveryRow
	if err := s.read.WithContext(ctx).Order("created_at").Limit(1).Find(&oldest).Error; err != nil {
		return 0, time.Time{}, fmt.Errorf("store: outbox state: %w", err)
	}
	if len(oldest) == 0 {
		return int(depth), time.Time{}, nil
	}
	return int(depth), oldest[0].CreatedAt, nil
}
