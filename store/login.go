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

type loginRow struct {
	ID           string `gorm:"primaryKey"`
	ClientID     string
	Scopes       []string `gorm:"serializer:json"`
	Roles        []string `gorm:"serializer:json"`
	UserCode     string   `gorm:"uniqueIndex;not null"`
	SecretHash   string   `gorm:"index"`
	SubjectKind  string
	Subject      string
	Status       string
	RequestIDs   []string `gorm:"serializer:json"`
	DenyReason   string
	CreatedAt    time.Time
	ExpiresAt    time.Time `gorm:"index"`
	LastPolledAt time.Time
	Version      int
}

func (loginRow) TableName() string { return "logins" }

func loginFromApp(l app.Login) loginRow {
	return loginRow{
		ID: l.ID, ClientID: l.ClientID, Scopes: l.Scopes, Roles: l.Roles, UserCode: l.UserCode, SecretHash: l.SecretHash,
		SubjectKind: string(l.Subject.Kind), Subject: l.Subject.ID, Status: string(l.Status), RequestIDs: l.RequestIDs, DenyReason: l.DenyReason,
		CreatedAt: l.CreatedAt.UTC(), ExpiresAt: l.ExpiresAt.UTC(), LastPolledAt: l.LastPolledAt.UTC(),
	}
}

func (row loginRow) toApp() app.Login {
	return app.Login{
		ID: row.ID, ClientID: row.ClientID, Scopes: row.Scopes, Roles: row.Roles, UserCode: row.UserCode, SecretHash: row.SecretHash,
		Subject: app.Principal{Kind: app.PrincipalKind(row.SubjectKind), ID: row.Subject}, Status: app.LoginStatus(row.Status), RequestIDs: row.RequestIDs, DenyReason: row.DenyReason,
		CreatedAt: row.CreatedAt, ExpiresAt: row.ExpiresAt, LastPolledAt: row.LastPolledAt,
	}
}

// CreateLogin stores a new login; a user code already taken is app.ErrConflict.
func (s *Store) CreateLogin(ctx context.Context, l app.Login) error {
	row := loginFromApp(l)
	if err := s.transaction(ctx, func(tx *gorm.DB) error { return tx.Create(&row).Error }); err != nil {
		return fmt.Errorf("store: create login: %w", translate(err))
	}
	return nil
}

// Login returns the login with the given ID.
func (s *Store) Login(ctx context.Context, id string) (app.Login, error) {
	return s.findLogin(ctx, "id = ?", id)
}

// LoginByUserCode returns the login with that user code.
func (s *Store) LoginByUserCode(ctx context.Context, code string) (app.Login, error) {
	return s.findLogin(ctx, "user_code = ?", code)
}

// LoginBySecret returns the login whose secret (device code or browser cookie) hashes to hash.
func (s *Store) LoginBySecret(ctx context.Context, hash string) (app.Login, error) {
	if hash == "" {
		return app.Login{}, fmt.Errorf("store: login: %w", app.ErrNotFound)
	}
	return s.findLogin(ctx, "secret_hash = ?", hash)
}

func (s *Store) findLogin(ctx context.Context, query string, arg string) (app.Login, error) {
	var row loginRow
	if err := s.read.WithContext(ctx).Take(&row, query, arg).Error; err != nil {
		return app.Login{}, fmt.Errorf("store: login: %w", translate(err))
	}
	return row.toApp(), nil
}

// UpdateLogin applies update with one version-checked write, with the audit events it
// returns, re-running it if the login changed in between. An error from update is returned
// as is and nothing is written. The read locks the row, as in UpdateRequest.
func (s *Store) UpdateLogin(ctx context.Context, id string, update func(app.Login) (app.Login, []app.AuditEvent, error)) error {
	var err error
	for range maxUpdateAttempts {
		err = s.transaction(ctx, func(tx *gorm.DB) error {
			var row loginRow
			if err := tx.Clauses(clause.Locking{Strength: "UPDATE"}).Take(&row, "id = ?", id).Error; err != nil {
				return translate(err)
			}
			changed, events, err := update(row.toApp())
			if err != nil {
				return err
			}
			next := loginFromApp(changed)
			next.Version = row.Version + 1
			res := tx.Model(&loginRow{}).Where("id = ? AND version = ?", id, row.Version).
				Select("subject_kind", "subject", "status", "request_ids", "deny_reason", "last_polled_at", "version").Updates(&next)
			if res.Error != nil {
				return translate(res.Error)
			}
			if res.RowsAffected != 1 {
				return app.ErrConflict
			}
			return appendEvents(tx, events)
		})
		if !errors.Is(err, app.ErrConflict) {
			break
		}
	}
	if err != nil {
		return fmt.Errorf("store: update login %s: %w", id, err)
	}
	return nil
}
