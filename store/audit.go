package store

import (
	"context"
	"fmt"
	"time"

	"gorm.io/gorm"

	"github.com/gatehouse/gatehouse/app"
)

// auditEventRow is append-only: nothing in this package updates or deletes one.
type auditEventRow struct {
	ID            uint `gorm:"primaryKey"`
	At            time.Time
	Actor         string
	Action        string
	PrincipalKind string
	PrincipalID   string
	RequestID     string `gorm:"index"`
	GrantID       string `gorm:"index"`
	Reason        string
	Source        string
}

func (auditEventRow) TableName() string { return "audit_events" }

func appendEvents(tx *gorm.DB, events []app.AuditEvent) error {
	for _, e := range events {
		row := auditEventRow{
			At: e.At.UTC(), Actor: e.Actor, Action: e.Action, PrincipalKind: string(e.Principal.Kind),
			PrincipalID: e.Principal.ID, RequestID: e.RequestID, GrantID: e.GrantID, Reason: e.Reason, Source: e.Source,
		}
		if err := tx.Create(&row).Error; err != nil {
			return translate(err)
		}
	}
	return nil
}

// AuditEvents returns the events about a request, oldest first.
func (s *Store) AuditEvents(ctx context.Context, requestID string) ([]app.AuditEvent, error) {
	var rows []auditEventRow
	if err := s.db.WithContext(ctx).Where("request_id = ?", requestID).Order("id").Find(&rows).Error; err != nil {
		return nil, fmt.Errorf("store: audit events of %s: %w", requestID, err)
	}
	events := make([]app.AuditEvent, len(rows))
	for i, r := range rows {
		events[i] = app.AuditEvent{
			At: r.At, Actor: r.Actor, Action: r.Action, Principal: app.Principal{Kind: app.PrincipalKind(r.PrincipalKind), ID: r.PrincipalID},
			RequestID: r.RequestID, GrantID: r.GrantID, Reason: r.Reason, Source: r.Source,
		}
	}
	return events, nil
}
