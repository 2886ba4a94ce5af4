package store

import (
	"context"
	"fmt"
	"time"

	"github.com/gatehouse/gatehouse/app"
	"gorm.io/gorm"
)

type authRequestRow struct {
	ID                  string `gorm:"primaryKey"`
	ClientID            string
	RedirectURI         string
	Scopes              []string `gorm:"serializer:json"`
	State               string
	Nonce               string
	CodeChallenge       string
	CodeChallengeMethod string
	ResponseMode        string
	Prompt              []string `gorm:"serializer:json"`
	LoginID             string
	Subject             string
	AuthTime            time.Time
	Done                bool
	CodeHash            string `gorm:"index"`
	CodeExpiresAt       time.Time
	CreatedAt           time.Time
	ExpiresAt           time.Time `gorm:"index"`
	SessionID           string
}

func (authRequestRow) TableName() string { return "auth_requests" }

// CreateAuthRequest stores a new browser sign-in.
func (s *Store) CreateAuthRequest(ctx context.Context, a app.AuthRequest) error {
	row := authRequestRow(a)
	if err := s.transaction(ctx, func(tx *gorm.DB) error { return tx.Create(&row).Error }); err != nil {
		return fmt.Errorf("store: create auth request: %w", translate(err))
	}
	return nil
}

// AuthRequest returns a browser sign-in by ID.
func (s *Store) AuthRequest(ctx context.Context, id string) (app.AuthRequest, error) {
	var row authRequestRow
	if err := s.read.WithContext(ctx).Take(&row, "id = ?", id).Error; err != nil {
		return app.AuthRequest{}, fmt.Errorf("store: auth request: %w", translate(err))
	}
	return app.AuthRequest(row), nil
}

// AttachLogin links the login showing a code to the sign-in, once: a sign-in that already
// has a login is app.ErrConflict.
func (s *Store) AttachLogin(ctx context.Context, id, loginID string) error {
	return s.updateAuthRequest(ctx, "attach login", id, map[string]any{"login_id": ""}, map[string]any{"login_id": loginID})
}

// CompleteAuthRequest records who signed in, once.
func (s *Store) CompleteAuthRequest(ctx context.Context, id, subject string, at time.Time) error {
	return s.updateAuthRequest(ctx, "complete auth request", id, map[string]any{"done": false},
		map[string]any{"subject": subject, "auth_time": at.UTC(), "done": true})
}

// SaveAuthCode stores the hash of the authorization code issued for a done sign-in, once.
func (s *Store) SaveAuthCode(ctx context.Context, id, codeHash string, expiresAt time.Time) error {
	return s.updateAuthRequest(ctx, "save auth code", id, map[string]any{"done": true, "code_hash": ""},
		map[string]any{"code_hash": codeHash, "code_expires_at": expiresAt.UTC()})
}

// updateAuthRequest applies updates to the sign-in only while it matches cond (one
// conditional write); when it does not, the error is app.ErrConflict.
func (s *Store) updateAuthRequest(ctx context.Context, what, id string, cond, updates map[string]any) error {
	err := s.transaction(ctx, func(tx *gorm.DB) error {
		res := tx.Model(&authRequestRow{}).Where("id = ?", id).Where(cond).Updates(updates)
		if res.Error == nil && res.RowsAffected != 1 {
			return app.ErrConflict
		}
		return res.Error
	})
	if err != nil {
		return fmt.Errorf("store: %s: %w", what, err)
	}
	return nil
}

// AuthRequestByCode returns the sign-in a code was issued for, whether or not the code
// is still good: the caller checks expiry and SessionID (set once redeemed), so that a
// replayed code is recognised as one.
func (s *Store) AuthRequestByCode(ctx context.Context, codeHash string) (app.AuthRequest, error) {
	var row authRequestRow
	if err := s.read.WithContext(ctx).Take(&row, "code_hash = ?", codeHash).Error; err != nil {
		return app.AuthRequest{}, fmt.Errorf("store: auth request by code: %w", translate(err))
	}
	return app.AuthRequest(row), nil
}

type browserSessionRow struct {
	Hash      string    `gorm:"primaryKey"`
	Subject   string    `gorm:"index"`
	ExpiresAt time.Time `gorm:"index"`
}

func (browserSessionRow) TableName() string { return "browser_sessions" }

// CreateBrowserSession remembers a signed-in browser.
func (s *Store) CreateBrowserSession(ctx context.Context, b app.BrowserSession) error {
	row := browserSessionRow{Hash: b.Hash, Subject: b.Subject, ExpiresAt: b.ExpiresAt.UTC()}
	if err := s.transaction(ctx, func(tx *gorm.DB) error { return tx.Create(&row).Error }); err != nil {
		return fmt.Errorf("store: create browser session: %w", translate(err))
	}
	return nil
}

// BrowserSession returns the unexpired session with that cookie hash.
func (s *Store) BrowserSession(ctx context.Context, hash string, now time.Time) (app.BrowserSession, error) {
	var row browserSessionRow
	if err := s.read.WithContext(ctx).Take(&row, "hash = ? AND expires_at > ?", hash, now.UTC()).Error; err != nil {
		return app.BrowserSession{}, fmt.Errorf("store: browser session: %w", translate(err))
	}
	return app.BrowserSession{Hash: row.Hash, Subject: row.Subject, ExpiresAt: row.ExpiresAt}, nil
}

// EndBrowserSession signs one browser out: the session with that cookie hash.
func (s *Store) EndBrowserSession(ctx context.Context, hash string) error {
	if err := s.transaction(ctx, func(tx *gorm.DB) error { return tx.Where("hash = ?", hash).Delete(&browserSessionRow{}).Error }); err != nil {
		return fmt.Errorf("store: end browser session: %w", err)
	}
	return nil
}
