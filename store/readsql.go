package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"gorm.io/gorm"

	"github.com/gatehouse/gatehouse/app"
)

// The token endpoint's reads, in hand-written SQL prepared once on the read pool (as the
// group commit's writes are on the writer, see issuancesql.go): through gorm, each refresh
// built its query, prepared it and reflected over the row, which cost more than the lookup.
// The dialect rewrites them (see dialect.go).
const (
	sqlRefreshToken = `SELECT r.hash, r.chain, r.generation, r.session_id, r.client_id, r.subject, r.scopes, r.auth_time, r.expires_at, r.used ` +
		`FROM refresh_tokens r JOIN sessions s ON s.id = r.session_id AND s.revoked_at IS NULL WHERE r.hash = ?`
	sqlRefreshChain = `SELECT r.hash, r.chain, r.generation, r.session_id, r.client_id, r.subject, r.scopes, r.auth_time, r.expires_at, r.used ` +
		`FROM refresh_tokens r JOIN sessions s ON s.id = r.session_id AND s.revoked_at IS NULL WHERE r.chain = ?`
	sqlActiveGrants = `SELECT id, request_id, principal_kind, principal_id, role, approved_by, created_at, expires_at, status, ` +
		`COALESCE(ended_by, ''), COALESCE(end_reason, ''), extensions, break_glass, needs_review, reviewed_by, reviewed_at FROM grants ` +
		`WHERE principal_kind = ? AND principal_id = ? AND status = ? AND expires_at > ?`
)

// readStatements are the token path's reads, prepared on the read pool (database/sql
// prepares each again on every pooled connection that runs it, once).
type readStatements struct {
	refreshToken, refreshChain, activeGrants *sql.Stmt
}

func prepareReadStatements(db *gorm.DB, rewrite func(string) string) (*readStatements, error) {
	sqlDB, err := db.DB()
	if err != nil {
		return nil, err
	}
	r := &readStatements{}
	for _, st := range []struct {
		to    **sql.Stmt
		query string
	}{{&r.refreshToken, sqlRefreshToken}, {&r.refreshChain, sqlRefreshChain}, {&r.activeGrants, sqlActiveGrants}} {
		if *st.to, err = sqlDB.Prepare(rewrite(st.query)); err != nil {
			r.close()
			return nil, fmt.Errorf("prepare %q: %w", st.query, err)
		}
	}
	return r, nil
}

func (r *readStatements) close() {
	if r == nil {
		return
	}
	for _, st := range []*sql.Stmt{r.refreshToken, r.refreshChain, r.activeGrants} {
		if st != nil {
			st.Close()
		}
	}
}

// RefreshToken returns the refresh token with that hash, unless its session was revoked.
func (s *Store) RefreshToken(ctx context.Context, hash string) (app.RefreshToken, error) {
	t, err := s.scanRefreshToken(s.reads.refreshToken.QueryRowContext(ctx, hash))
	if err != nil {
		return app.RefreshToken{}, fmt.Errorf("store: refresh token: %w", err)
	}
	return t, nil
}

// RefreshChain returns the newest refresh token of a chain (see app.RefreshToken), unless
// its session was revoked.
func (s *Store) RefreshChain(ctx context.Context, chain string) (app.RefreshToken, error) {
	t, err := s.scanRefreshToken(s.reads.refreshChain.QueryRowContext(ctx, chain))
	if err != nil {
		return app.RefreshToken{}, fmt.Errorf("store: refresh chain: %w", err)
	}
	return t, nil
}

func (s *Store) scanRefreshToken(row *sql.Row) (app.RefreshToken, error) {
	var t app.RefreshToken
	var scopes []byte
	err := row.Scan(&t.Hash, &t.Chain, &t.Generation, &t.SessionID, &t.ClientID, &t.Subject, &scopes, &t.AuthTime, &t.ExpiresAt, &t.Used)
	if errors.Is(err, sql.ErrNoRows) {
		err = gorm.ErrRecordNotFound
	}
	if err == nil && len(scopes) > 0 {
		err = json.Unmarshal(scopes, &t.Scopes)
	}
	if err != nil {
		return app.RefreshToken{}, translateSQL(s.read, err)
	}
	return t, nil
}

// ActiveGrants returns the principal's grants that are active and unexpired at now.
func (s *Store) ActiveGrants(ctx context.Context, p app.Principal, now time.Time) ([]app.Grant, error) {
	rows, err := s.reads.activeGrants.QueryContext(ctx, string(p.Kind), p.ID, string(app.GrantActive), now.UTC())
	if err != nil {
		return nil, fmt.Errorf("store: active grants of %s: %w", p.ID, translateSQL(s.read, err))
	}
	defer rows.Close()
	var grants []app.Grant
	for rows.Next() {
		var row grantRow
		var approvedBy []byte
		err := rows.Scan(&row.ID, &row.RequestID, &row.PrincipalKind, &row.PrincipalID, &row.Role, &approvedBy, &row.CreatedAt,
			&row.ExpiresAt, &row.Status, &row.EndedBy, &row.EndReason, &row.Extensions, &row.BreakGlass, &row.NeedsReview,
			&row.ReviewedBy, &row.ReviewedAt)
		if err == nil && len(approvedBy) > 0 {
			err = json.Unmarshal(approvedBy, &row.ApprovedBy)
		}
		if err != nil {
			return nil, fmt.Errorf("store: active grants of %s: %w", p.ID, translateSQL(s.read, err))
		}
		grants = append(grants, row.toApp())
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: active grants of %s: %w", p.ID, translateSQL(s.read, err))
	}
	return grants, nil
}
