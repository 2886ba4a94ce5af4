package store

import (
	"context"
	"fmt"
	"time"

	"gorm.io/gorm"

	"github.com/gatehouse/gatehouse/app"
)

type grantRow struct {
	ID            string `gorm:"primaryKey"`
	RequestID     string `gorm:"uniqueIndex;not null"`
	PrincipalKind string
	PrincipalID   string   `gorm:"index:grant_holder"`
	Role          string   `gorm:"index:grant_holder"`
	ApprovedBy    []string `gorm:"serializer:json"`
	CreatedAt     time.Time
	ExpiresAt     time.Time `gorm:"index:grant_expiry"`
	Status        string    `gorm:"index:grant_expiry"`
	EndedBy       string
	EndReason     string
	Extensions    int    `gorm:"not null;default:0"`
	BreakGlass    bool   `gorm:"not null;default:false"`
	NeedsReview   bool   `gorm:"not null;default:false"` // cleared by the one conditional write of a review
	ReviewedBy    string `gorm:"not null;default:''"`
	ReviewedAt    *time.Time
	Request       *requestRow `gorm:"constraint:OnDelete:RESTRICT"`
}

func (grantRow) TableName() string { return "grants" }

func grantFromApp(g app.Grant) *grantRow {
	row := &grantRow{
		ID: g.ID, RequestID: g.RequestID, PrincipalKind: string(g.Principal.Kind), PrincipalID: g.Principal.ID,
		Role: g.Role, ApprovedBy: g.ApprovedBy, CreatedAt: g.CreatedAt.UTC(), ExpiresAt: g.ExpiresAt.UTC(), Status: string(g.Status),
		EndedBy: g.EndedBy, EndReason: g.EndReason, Extensions: g.Extensions, BreakGlass: g.BreakGlass, NeedsReview: g.NeedsReview, ReviewedBy: g.ReviewedBy,
	}
	if !g.ReviewedAt.IsZero() {
		t := g.ReviewedAt.UTC()
		row.ReviewedAt = &t
	}
	return row
}

func (row grantRow) toApp() app.Grant {
	g := app.Grant{
		ID: row.ID, RequestID: row.RequestID, Principal: app.Principal{Kind: app.PrincipalKind(row.PrincipalKind), ID: row.PrincipalID},
		Role: row.Role, ApprovedBy: row.ApprovedBy, CreatedAt: row.CreatedAt, ExpiresAt: row.ExpiresAt, Status: app.GrantStatus(row.Status),
		EndedBy: row.EndedBy, EndReason: row.EndReason, Extensions: row.Extensions, BreakGlass: row.BreakGlass, NeedsReview: row.NeedsReview, ReviewedBy: row.ReviewedBy,
	}
	if row.ReviewedAt != nil {
		g.ReviewedAt = *row.ReviewedAt
	}
	return g
}

// Grant returns the grant with the given ID.
func (s *Store) Grant(ctx context.Context, id string) (app.Grant, error) {
	var row grantRow
	if err := s.read.WithContext(ctx).Take(&row, "id = ?", id).Error; err != nil {
		return app.Grant{}, fmt.Errorf("store: grant %s: %w", id, translate(err))
	}
	return row.toApp(), nil
}

// GrantsOf returns every grant the principal holds or held, newest first.
func (s *Store) GrantsOf(ctx context.Context, p app.Principal) ([]app.Grant, error) {
	var rows []grantRow
	err := s.read.WithContext(ctx).Where("principal_kind = ? AND principal_id = ?", string(p.Kind), p.ID).
		Order("created_at DESC").Find(&rows).Error
	if err != nil {
		return nil, fmt.Errorf("store: grants of %s: %w", p.ID, err)
	}
	return grantsToApp(rows), nil
}

func grantsToApp(rows []grantRow) []app.Grant {
	grants := make([]app.Grant, len(rows))
	for i, row := range rows {
		grants[i] = row.toApp()
	}
	return grants
}

// EndGrant implements app.GrantStore: active → revoked or expired, with who, why and the
// audit event, or app.ErrNotPending when the grant is no longer active. A revocation is also
// recorded as one (see Revoked), in the same transaction.
func (s *Store) EndGrant(ctx context.Context, id string, status app.GrantStatus, e app.AuditEvent, owed ...app.Delivery) error {
	revoking := status == app.GrantRevoked
	also := func(tx *gorm.DB) error {
		if revoking {
			var until time.Time // no token carrying the grant outlives it
			if err := tx.Model(&grantRow{}).Select("expires_at").Where("id = ?", id).Scan(&until).Error; err != nil {
				return err
			}
			if err := appendRevocation(tx, app.Revocation{Kind: app.RevokedGrant, Ref: id, At: e.At, Until: until}); err != nil {
				return err
			}
		}
		return enqueue(tx, owed)
	}
	err := s.changeGrant(ctx, "end grant", id, func(q *gorm.DB) *gorm.DB {
		q = q.Where("status = ?", string(app.GrantActive))
		if status == app.GrantExpired { // not one extended since the sweeper saw it
			q = q.Where("expires_at <= ?", e.At.UTC())
		}
		return q
	}, map[string]any{"status": string(status), "ended_by": e.Actor, "end_reason": e.Reason}, e, app.ErrNotPending, also)
	if err == nil && revoking {
		s.revoked.committed()
	}
	return err
}

// changeGrant applies updates to the grant where cond holds, with the audit event and then
// also (if not nil), in one transaction: one conditional write. A grant that does not match
// is the error miss.
func (s *Store) changeGrant(ctx context.Context, what, id string, cond func(*gorm.DB) *gorm.DB, updates map[string]any,
	e app.AuditEvent, miss error, also func(tx *gorm.DB) error) error {
	err := s.transaction(ctx, func(tx *gorm.DB) error {
		res := cond(tx.Model(&grantRow{}).Where("id = ?", id)).Updates(updates)
		if res.Error != nil {
			return res.Error
		}
		if res.RowsAffected != 1 {
			return miss
		}
		if also != nil {
			if err := also(tx); err != nil {
				return err
			}
		}
		return appendEvents(tx, []app.AuditEvent{e})
	})
	if err != nil {
		return fmt.Errorf("store: %s %s: %w", what, id, err)
	}
	return nil
}

// ExpiredGrants returns up to limit active grants whose time is up, oldest first. The
// (status, expires_at) index keeps this proportional to the grants that expired.
func (s *Store) ExpiredGrants(ctx context.Context, now time.Time, limit int) ([]app.Grant, error) {
	var rows []grantRow
	err := s.db.WithContext(ctx).Where("status = ? AND expires_at <= ?", string(app.GrantActive), now.UTC()).
		Order("expires_at").Limit(limit).Find(&rows).Error
	if err != nil {
		return nil, fmt.Errorf("store: expired grants: %w", err)
	}
	return grantsToApp(rows), nil
}
