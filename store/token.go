package store

import (
	"context"
	"fmt"
	"time"

	"gorm.io/gorm"

	"github.com/gatehouse/gatehouse/app"
)

type accessTokenRow struct {
	ID        string `gorm:"primaryKey"`
	SessionID string `gorm:"index"`
	ClientID  string
	Subject   string
	Scopes    []string  `gorm:"serializer:json"`
	GrantIDs  []string  `gorm:"serializer:json"`
	ExpiresAt time.Time `gorm:"index"`
	Revoked   bool
}

func (accessTokenRow) TableName() string { return "access_tokens" }

type refreshTokenRow struct {
	Hash      string `gorm:"primaryKey"`
	SessionID string `gorm:"index"`
	ClientID  string
	Subject   string
	Scopes    []string `gorm:"serializer:json"`
	AuthTime  time.Time
	ExpiresAt time.Time `gorm:"index"`
	Used      bool
}

func (refreshTokenRow) TableName() string { return "refresh_tokens" }

// sessionRow is a client session: the chain of refresh tokens and the access tokens
// issued with them. Revoking it ends them all.
type sessionRow struct {
	ID        string `gorm:"primaryKey"`
	RevokedAt *time.Time
}

func (sessionRow) TableName() string { return "sessions" }

// AccessToken returns an access token's record; Revoked is also set when its session was revoked.
func (s *Store) AccessToken(ctx context.Context, id string) (app.IssuedToken, error) {
	var row accessTokenRow
	if err := s.db.WithContext(ctx).Take(&row, "id = ?", id).Error; err != nil {
		return app.IssuedToken{}, fmt.Errorf("store: access token: %w", translate(err))
	}
	revoked := row.Revoked
	if row.SessionID != "" && !revoked {
		var n int64
		if err := s.db.WithContext(ctx).Model(&sessionRow{}).Where("id = ? AND revoked_at IS NOT NULL", row.SessionID).Count(&n).Error; err != nil {
			return app.IssuedToken{}, fmt.Errorf("store: access token session: %w", err)
		}
		revoked = n > 0
	}
	return app.IssuedToken{ID: row.ID, SessionID: row.SessionID, ClientID: row.ClientID, Subject: row.Subject, Scopes: row.Scopes,
		GrantIDs: row.GrantIDs, ExpiresAt: row.ExpiresAt, Revoked: revoked}, nil
}

// RevokeClientTokens ends, in one transaction with its audit event, a client session and
// every token issued in it (sessionID set) or a single access token (accessID set): what an
// RFC 7009 revocation asks for.
func (s *Store) RevokeClientTokens(ctx context.Context, sessionID, accessID string, e app.AuditEvent) error {
	at := e.At.UTC()
	err := s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		var err error
		if sessionID != "" {
			err = tx.Model(&sessionRow{}).Where("id = ? AND revoked_at IS NULL", sessionID).Update("revoked_at", &at).Error
		} else {
			err = tx.Model(&accessTokenRow{}).Where("id = ?", accessID).Update("revoked", true).Error
		}
		if err != nil {
			return err
		}
		return appendEvents(tx, []app.AuditEvent{e})
	})
	if err != nil {
		return fmt.Errorf("store: revoke client tokens: %w", err)
	}
	return nil
}

// SaveTokens records an access token and, when refresh is set, the next refresh token of
// its session, in one transaction. When the refresh token replaces one (rotation), the old
// one is marked used in the same conditional write: if it was already used — a replay, or
// two refreshes racing — nothing is stored and the error is app.ErrConflict.
func (s *Store) SaveTokens(ctx context.Context, access app.IssuedToken, refresh *app.RefreshToken, replaces string) error {
	err := s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		if access.SessionID != "" && replaces == "" { // the first tokens of a client session
			if err := tx.Create(&sessionRow{ID: access.SessionID}).Error; err != nil {
				return translate(err)
			}
		}
		if refresh != nil {
			if err := addRefreshToken(tx, *refresh, replaces); err != nil {
				return err
			}
		}
		row := accessTokenRow{ID: access.ID, SessionID: access.SessionID, ClientID: access.ClientID, Subject: access.Subject,
			Scopes: access.Scopes, GrantIDs: access.GrantIDs, ExpiresAt: access.ExpiresAt.UTC()}
		return translate(tx.Create(&row).Error)
	})
	if err != nil {
		return fmt.Errorf("store: save tokens: %w", err)
	}
	return nil
}

func addRefreshToken(tx *gorm.DB, t app.RefreshToken, replaces string) error {
	if replaces != "" {
		res := tx.Model(&refreshTokenRow{}).Where("hash = ? AND used = ?", replaces, false).Update("used", true)
		if res.Error != nil {
			return res.Error
		}
		if res.RowsAffected != 1 {
			return app.ErrConflict
		}
	}
	row := refreshTokenRow{Hash: t.Hash, SessionID: t.SessionID, ClientID: t.ClientID, Subject: t.Subject, Scopes: t.Scopes,
		AuthTime: t.AuthTime.UTC(), ExpiresAt: t.ExpiresAt.UTC()}
	return translate(tx.Create(&row).Error)
}

// RefreshToken returns the refresh token with that hash, unless its session was revoked.
func (s *Store) RefreshToken(ctx context.Context, hash string) (app.RefreshToken, error) {
	var row refreshTokenRow
	err := s.db.WithContext(ctx).Joins("JOIN sessions ON sessions.id = refresh_tokens.session_id AND sessions.revoked_at IS NULL").
		Take(&row, "refresh_tokens.hash = ?", hash).Error
	if err != nil {
		return app.RefreshToken{}, fmt.Errorf("store: refresh token: %w", translate(err))
	}
	return app.RefreshToken{Hash: row.Hash, SessionID: row.SessionID, ClientID: row.ClientID, Subject: row.Subject, Scopes: row.Scopes,
		AuthTime: row.AuthTime, ExpiresAt: row.ExpiresAt, Used: row.Used}, nil
}

// RevokeSession ends a client session: its refresh tokens and the access tokens issued
// with them stop working.
func (s *Store) RevokeSession(ctx context.Context, id string, at time.Time) error {
	at = at.UTC()
	err := s.db.WithContext(ctx).Model(&sessionRow{}).Where("id = ? AND revoked_at IS NULL", id).Update("revoked_at", &at).Error
	if err != nil {
		return fmt.Errorf("store: revoke session: %w", err)
	}
	return nil
}
