package store

import (
	"context"
	"fmt"

	"gorm.io/gorm"

	"github.com/gatehouse/gatehouse/app"
)

var _ app.BreakGlassStore = (*Store)(nil)

// CreateBreakGlass implements app.BreakGlassStore: the request, approved from the start,
// its grant and their audit events, in one transaction.
func (s *Store) CreateBreakGlass(ctx context.Context, r app.Request, g app.Grant, events []app.AuditEvent, owed ...app.Delivery) error {
	row := requestFromApp(r)
	err := s.transaction(ctx, func(tx *gorm.DB) error {
		if err := tx.Omit("Decisions").Create(&row).Error; err != nil {
			return err
		}
		if err := tx.Create(grantFromApp(g)).Error; err != nil {
			return err
		}
		if err := enqueue(tx, owed); err != nil {
			return err
		}
		return appendEvents(tx, events) // last: see appendEvents
	})
	if err != nil {
		return fmt.Errorf("store: create break-glass request %s: %w", r.ID, translate(err))
	}
	return nil
}

// ReviewGrant implements app.BreakGlassStore: needs review → reviewed by e.Actor at e.At,
// with the event, or app.ErrAlreadyReviewed when the grant does not need review.
func (s *Store) ReviewGrant(ctx context.Context, id string, e app.AuditEvent, owed ...app.Delivery) error {
	return s.changeGrant(ctx, "review grant", id, func(q *gorm.DB) *gorm.DB { return q.Where("needs_review = ?", true) },
		map[string]any{"needs_review": false, "reviewed_by": e.Actor, "reviewed_at": e.At.UTC()}, e, app.ErrAlreadyReviewed, func(tx *gorm.DB) error { return enqueue(tx, owed) })
}
