package store

import (
	"context"
	"fmt"
	"time"

	"github.com/gatehouse/gatehouse/app"
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
}

func (authRequestRow) TableName() string { return "auth_requests" }

// CreateAuthRequest stores a new browser sign-in.
func (s *Store) CreateAuthRequest(ctx context.Context, a app.AuthRequest) error {
	row := authRequestRow(a)
	if err := s.db.WithContext(ctx).Create(&row).Error; err != nil {
		return fmt.Errorf("store: create auth request: %w", translate(err))
	}
	return nil
}

// AuthRequest returns a browser sign-in by ID.
func (s *Store) AuthRequest(ctx context.Context, id string) (app.AuthRequest, error) {
	var row authRequestRow
	if err := s.db.WithContext(ctx).Take(&row, "id = ?", id).Error; err != nil {
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
	res := s.db.WithContext(ctx).Model(&authRequestRow{}).Where("id = ?", id).Where(cond).Updates(updates)
	if res.Error != nil {
		return fmt.Errorf("store: %s: %w", what, res.Error)
	}
	if res.RowsAffected != 1 {
		return fmt.Errorf("store: %s: %w", what, app.ErrConflict)
	}
	return nil
}

// RedeemAuthCode returns the sign-in an unexpired code was issued for and deletes it in
// the same write, so a code yields tokens once: a replay is app.ErrNotFound.
func (s *Store) RedeemAuthCode(ctx context.Context, codeHash string, now time.Time) (app.AuthRequest, error) {
	var row authRequestRow
	err := s.db.WithContext(ctx).Take(&row, "code_hash = ? AND code_expires_at > ?", codeHash, now.UTC()).Error
	if err != nil {
		return app.AuthRequest{}, fmt.Errorf("store: redeem auth code: %w", translate(err))
	}
	res := s.db.WithContext(ctx).Where("id = ? AND code_hash = ?", row.ID, codeHash).Delete(&authRequestRow{})
	if res.Error != nil {
		return app.AuthRequest{}, fmt.Errorf("store: redeem auth code: %w", res.Error)
	}
	if res.RowsAffected != 1 {
		return app.AuthRequest{}, fmt.Errorf("store: redeem auth code: %w", app.ErrNotFound)
	}
	return app.AuthRequest(row), nil
}

// DeleteAuthRequest forgets a sign-in.
func (s *Store) DeleteAuthRequest(ctx context.Context, id string) error {
	if err := s.db.WithContext(ctx).Where("id = ?", id).Delete(&authRequestRow{}).Error; err != nil {
		return fmt.Errorf("store: delete auth request: %w", err)
	}
	return nil
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
	if err := s.db.WithContext(ctx).Create(&row).Error; err != nil {
		return fmt.Errorf("store: create browser session: %w", translate(err))
	}
	return nil
}

// BrowserSession returns the unexpired session with that cookie hash.
func (s *Store) BrowserSession(ctx context.Context, hash string, now time.Time) (app.BrowserSession, error) {
	var row browserSessionRow
	if err := s.db.WithContext(ctx).Take(&row, "hash = ? AND expires_at > ?", hash, now.UTC()).Error; err != nil {
		return app.BrowserSession{}, fmt.Errorf("store: browser session: %w", translate(err))
	}
	return app.BrowserSession{Hash: row.Hash, Subject: row.Subject, ExpiresAt: row.ExpiresAt}, nil
}

// EndBrowserSessions signs every browser of the subject out.
func (s *Store) EndBrowserSessions(ctx context.Context, subject string) error {
	if err := s.db.WithContext(ctx).Where("subject = ?", subject).Delete(&browserSessionRow{}).Error; err != nil {
		return fmt.Errorf("store: end browser sessions: %w", err)
	}
	return nil
}
