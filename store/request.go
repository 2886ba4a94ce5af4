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

type requestRow struct {
	ID                string `gorm:"primaryKey"`
	RequesterKind     string
	RequesterID       string `gorm:"index"`
	Role              string
	Duration          time.Duration
	Reason            string
	Status            string `gorm:"index:request_expiry;index:request_remind;index:request_escalate"`
	ApprovalsRequired int
	CreatedAt         time.Time
	ExpiresAt         time.Time `gorm:"index:request_expiry"`
	DecidedAt         *time.Time
	MessageChannel    string
	MessageTS         string
	GrantID           string
	RemindAt          *time.Time    `gorm:"index:request_remind"`   // NULL when no reminder is due (any more)
	EscalateAt        *time.Time    `gorm:"index:request_escalate"` // NULL when no escalation is due (any more)
	Escalated         bool          `gorm:"not null;default:false"`
	ExtendsGrantID    string        `gorm:"not null;default:''"`
	NotifyWhenPosted  bool          `gorm:"not null;default:false"`
	Version           int           // bumped by every write; the condition of every update
	Decisions         []decisionRow `gorm:"foreignKey:RequestID"`
}

func (requestRow) TableName() string { return "requests" }

type decisionRow struct {
	ID        uint   `gorm:"primaryKey"`
	RequestID string `gorm:"uniqueIndex:decision_once;not null"`
	Approver  string `gorm:"uniqueIndex:decision_once;not null"`
	Approve   bool
	Comment   string
	At        time.Time
}

func (decisionRow) TableName() string { return "decisions" }

func requestFromApp(r app.Request) requestRow {
	row := requestRow{
		ID: r.ID, RequesterKind: string(r.Requester.Kind), RequesterID: r.Requester.ID, Role: r.Role,
		Duration: r.Duration, Reason: r.Reason, Status: string(r.Status), ApprovalsRequired: r.ApprovalsRequired,
		CreatedAt: r.CreatedAt.UTC(), ExpiresAt: r.ExpiresAt.UTC(), MessageChannel: r.Message.Channel,
		MessageTS: r.Message.TS, GrantID: r.GrantID, ExtendsGrantID: r.ExtendsGrantID, NotifyWhenPosted: r.NotifyWhenPosted,
	}
	if !r.DecidedAt.IsZero() {
		t := r.DecidedAt.UTC()
		row.DecidedAt = &t
	}
	row.RemindAt, row.EscalateAt, row.Escalated = nullTime(r.RemindAt), nullTime(r.EscalateAt), r.Escalated
	return row
}

// nullTime stores a zero time as NULL, so that range queries on the column skip it.
func nullTime(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	t = t.UTC()
	return &t
}

func (row requestRow) toApp() app.Request {
	r := app.Request{
		ID: row.ID, Requester: app.Principal{Kind: app.PrincipalKind(row.RequesterKind), ID: row.RequesterID},
		Role: row.Role, Duration: row.Duration, Reason: row.Reason, Status: app.RequestStatus(row.Status),
		ApprovalsRequired: row.ApprovalsRequired, CreatedAt: row.CreatedAt, ExpiresAt: row.ExpiresAt,
		Message: app.MessageRef{Channel: row.MessageChannel, TS: row.MessageTS}, GrantID: row.GrantID, ExtendsGrantID: row.ExtendsGrantID,
	}
	if row.DecidedAt != nil {
		r.DecidedAt = *row.DecidedAt
	}
	if row.RemindAt != nil {
		r.RemindAt = *row.RemindAt
	}
	if row.EscalateAt != nil {
		r.EscalateAt = *row.EscalateAt
	}
	r.Escalated, r.NotifyWhenPosted = row.Escalated, row.NotifyWhenPosted
	for _, d := range row.Decisions {
		r.Decisions = append(r.Decisions, app.Decision{Approver: d.Approver, Approve: d.Approve, Comment: d.Comment, At: d.At})
	}
	return r
}

// CreateRequest stores a new request, its creation event and the deliveries it owes in one
// transaction. A request ID already taken is app.ErrConflict.
func (s *Store) CreateRequest(ctx context.Context, r app.Request, e app.AuditEvent, owed ...app.Delivery) error {
	row := requestFromApp(r)
	err := s.transaction(ctx, func(tx *gorm.DB) error {
		if err := tx.Omit("Decisions").Create(&row).Error; err != nil {
			return err
		}
		if err := enqueue(tx, owed); err != nil {
			return err
		}
		return appendEvents(tx, []app.AuditEvent{e}) // last: see appendEvents
	})
	if err != nil {
		return fmt.Errorf("store: create request %s: %w", r.ID, translate(err))
	}
	return nil
}

// Request returns the request with its decisions in the order they were made.
func (s *Store) Request(ctx context.Context, id string) (app.Request, error) {
	row, err := loadRequest(s.read.WithContext(ctx), id)
	if err != nil {
		return app.Request{}, fmt.Errorf("store: request %s: %w", id, translate(err))
	}
	return row.toApp(), nil
}

func loadRequest(db *gorm.DB, id string) (requestRow, error) {
	var row requestRow
	err := db.Preload("Decisions", func(db *gorm.DB) *gorm.DB { return db.Order("id") }).
		Take(&row, "id = ?", id).Error
	return row, err
}

// maxUpdateAttempts bounds how often UpdateRequest re-runs an update that lost a race.
const maxUpdateAttempts = 5

// UpdateRequest implements app.RequestStore: one transaction reads the request, applies
// update, and writes the result only if the row's version is still the one read.
//
// The read locks the row (FOR UPDATE), so that on PostgreSQL concurrent updates of one
// request queue rather than conflict and retry; SQLite ignores the lock and needs none, its
// BEGIN IMMEDIATE letting one writer in at a time.
func (s *Store) UpdateRequest(ctx context.Context, id string, update func(app.Request) (app.RequestChange, error)) error {
	var err error
	for range maxUpdateAttempts {
		err = s.transaction(ctx, func(tx *gorm.DB) error {
			row, err := loadRequest(tx.Clauses(clause.Locking{Strength: "UPDATE"}), id)
			if err != nil {
				return translate(err)
			}
			change, err := update(row.toApp())
			if err != nil {
				return err
			}
			return writeChange(tx, row.Version, change)
		})
		if !errors.Is(err, app.ErrConflict) {
			break
		}
	}
	if err != nil {
		return fmt.Errorf("store: update request %s: %w", id, err)
	}
	return nil
}

// writeChange applies change if the request is still at version; else it returns ErrConflict.
func writeChange(tx *gorm.DB, version int, change app.RequestChange) error {
	row := requestFromApp(change.Request)
	res := tx.Model(&requestRow{}).Where("id = ? AND version = ?", row.ID, version).Updates(map[string]any{
		"status":             row.Status,
		"decided_at":         row.DecidedAt,
		"message_channel":    row.MessageChannel,
		"message_ts":         row.MessageTS,
		"grant_id":           row.GrantID,
		"remind_at":          row.RemindAt,
		"escalate_at":        row.EscalateAt,
		"escalated":          row.Escalated,
		"expires_at":         row.ExpiresAt,
		"notify_when_posted": row.NotifyWhenPosted,
		"version":            version + 1,
	})
	if res.Error != nil {
		return translate(res.Error)
	}
	if res.RowsAffected != 1 {
		return app.ErrConflict
	}
	if d := change.Decision; d != nil {
		err := tx.Create(&decisionRow{RequestID: row.ID, Approver: d.Approver, Approve: d.Approve, Comment: d.Comment, At: d.At.UTC()}).Error
		if err != nil {
			return translate(err)
		}
	}
	if e := change.Extension; e != nil {
		res := tx.Model(&grantRow{}).Where("id = ? AND status = ? AND extensions = ? AND expires_at > ?",
			e.GrantID, string(app.GrantActive), e.Extensions, change.Request.DecidedAt.UTC()).
			Updates(map[string]any{"expires_at": e.ExpiresAt.UTC(), "extensions": e.Extensions + 1})
		if res.Error != nil {
			return translate(res.Error)
		}
		if res.RowsAffected != 1 {
			return app.ErrNotPending // the grant ended, or another extension landed first
		}
	} else if g := change.Grant; g != nil {
		if err := tx.Create(grantFromApp(*g)).Error; err != nil {
			return translate(err)
		}
	}
	if err := enqueue(tx, change.Deliveries); err != nil {
		return err
	}
	return appendEvents(tx, change.Events) // last: see appendEvents
}

// ExpiredRequests returns the IDs of up to limit posted pending requests whose time is up,
// oldest first, through the (status, expires_at) index. A request not yet posted has no time
// running.
func (s *Store) ExpiredRequests(ctx context.Context, now time.Time, limit int) ([]string, error) {
	var ids []string
	err := s.db.WithContext(ctx).Model(&requestRow{}).Where("status = ? AND expires_at <= ? AND message_ts <> ''", string(app.StatusPending), now.UTC()).
		Order("expires_at").Limit(limit).Pluck("id", &ids).Error
	if err != nil {
		return nil, fmt.Errorf("store: expired requests: %w", err)
	}
	return ids, nil
}

// PendingRequests returns up to limit pending requests with their decisions, newest first.
func (s *Store) PendingRequests(ctx context.Context, limit int) ([]app.Request, error) {
	var rows []requestRow
	err := s.db.WithContext(ctx).Preload("Decisions", func(db *gorm.DB) *gorm.DB { return db.Order("id") }).
		Where("status = ?", string(app.StatusPending)).Order("created_at DESC").Limit(limit).Find(&rows).Error
	if err != nil {
		return nil, fmt.Errorf("store: pending requests: %w", err)
	}
	requests := make([]app.Request, len(rows))
	for i, row := range rows {
		requests[i] = row.toApp()
	}
	return requests, nil
}

// DueRequests returns the IDs of up to limit pending requests, posted (their reminders and
// escalations are replies in the message's thread), whose reminder or escalation is
// due at now, oldest first, through the (status, remind_at) and (status, escalate_at) indexes.
func (s *Store) DueRequests(ctx context.Context, now time.Time, limit int) ([]string, error) {
	var ids []string
	now = now.UTC()
	err := s.db.WithContext(ctx).Model(&requestRow{}).
		Where("status = ? AND message_ts <> '' AND remind_at <= ?", string(app.StatusPending), now).
		Or("status = ? AND message_ts <> '' AND escalate_at <= ?", string(app.StatusPending), now).
		Order("created_at").Limit(limit).Pluck("id", &ids).Error
	if err != nil {
		return nil, fmt.Errorf("store: due requests: %w", err)
	}
	return ids, nil
}
