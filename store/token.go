package store

import (
	"context"
	"fmt"
	"time"

	"gorm.io/gorm"

	"github.com/gatehouse/gatehouse/app"
)

type refreshTokenRow struct {
	Hash       string `gorm:"primaryKey"`
	Chain      string `gorm:"index;not null;default:''"` // empty for a token from before chains
	Generation int    `gorm:"not null;default:0"`
	SessionID  string `gorm:"index"`
	ClientID   string
	Subject    string
	Scopes     []string `gorm:"serializer:json"`
	AuthTime   time.Time
	ExpiresAt  time.Time `gorm:"index"`
	Used       bool
}

func (refreshTokenRow) TableName() string { return "refresh_tokens" }

// sessionRow is a client session: the chain of refresh tokens and the access tokens
// issued with them. Revoking it ends them all.
type sessionRow struct {
	ID        string `gorm:"primaryKey"`
	RevokedAt *time.Time
}

func (sessionRow) TableName() string { return "sessions" }

// RecordIssuance records tokens about to be handed out, by group commit: it returns once
// the transaction holding the record committed, shared with other issuances made at the
// same moment. In that transaction it checks that every grant the tokens carry is still
// active (else app.ErrGrantEnded: a revocation that committed first wins), spends the
// login or authorization code they redeem, rotates the refresh token (a spent code, a
// replay, a race with another refresh or a revoked session is app.ErrConflict), records
// the client session the tokens open, if any (so that revoking it, on a replayed code say,
// ends them even without a refresh token), and appends the audit events. On error nothing
// of it is written.
func (s *Store) RecordIssuance(ctx context.Context, iss app.Issuance) error {
	opens := iss.SessionID != "" && iss.Replaces == ""
	writes := opens || iss.Refresh != nil || iss.Login != nil || iss.Code != nil
	err := s.batch.do(ctx, writes, func(tx *batchTx) ([]app.AuditEvent, error) {
		if err := tx.checkGrantsActive(iss.GrantIDs, iss.At); err != nil {
			return nil, err
		}
		if iss.Login != nil {
			if err := tx.spendLogin(*iss.Login); err != nil {
				return nil, err
			}
		}
		if iss.Code != nil {
			if err := tx.spendCode(*iss.Code, iss.SessionID, iss.At); err != nil {
				return nil, err
			}
		}
		if opens {
			if err := tx.openSession(iss.SessionID); err != nil {
				return nil, err
			}
		}
		if iss.Refresh != nil {
			if err := tx.addRefreshToken(*iss.Refresh, iss.Replaces); err != nil {
				return nil, err
			}
		}
		return iss.Events, nil
	})
	if err != nil {
		return fmt.Errorf("store: record issuance: %w", err)
	}
	return nil
}

// SpendLogin redeems a login on its own (a browser sign-in: see app.LoginSpend), with its
// audit events, by the same group commit as issuances.
func (s *Store) SpendLogin(ctx context.Context, sp app.LoginSpend, events []app.AuditEvent) error {
	err := s.batch.do(ctx, true, func(tx *batchTx) ([]app.AuditEvent, error) {
		if err := tx.spendLogin(sp); err != nil {
			return nil, err
		}
		return events, nil
	})
	if err != nil {
		return fmt.Errorf("store: spend login %s: %w", sp.LoginID, err)
	}
	return nil
}

// RevokeClientTokens records what an RFC 7009 revocation asks for, in one transaction with
// its audit event e: r names a client session (app.RevokedSession: its refresh tokens and
// every access token issued in it end) or one access token (app.RevokedToken, by jti), and
// when the last token it affects expires. A session already revoked is left as it was, and
// no event is written for it.
func (s *Store) RevokeClientTokens(ctx context.Context, r app.Revocation, e app.AuditEvent) error {
	if err := s.revoke(ctx, r, []app.AuditEvent{e}); err != nil {
		return fmt.Errorf("store: revoke client tokens: %w", err)
	}
	return nil
}

// revoke records r and events in one transaction; a session revocation only if the session
// was still live.
func (s *Store) revoke(ctx context.Context, r app.Revocation, events []app.AuditEvent) error {
	r.At = r.At.UTC()
	err := s.transaction(ctx, func(tx *gorm.DB) error {
		if r.Kind == app.RevokedSession {
			res := tx.Model(&sessionRow{}).Where("id = ? AND revoked_at IS NULL", r.Ref).Update("revoked_at", &r.At)
			if res.Error != nil || res.RowsAffected == 0 {
				return res.Error
			}
		}
		if err := appendRevocation(tx, r); err != nil {
			return err
		}
		return appendEvents(tx, events)
	})
	if err != nil {
		return err
	}
	s.revoked.committed() // harmless when nothing was revoked: the cache re-reads the head
	return nil
}
