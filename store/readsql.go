package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"

	"gorm.io/gorm"

	"github.com/gatehouse/gatehouse/app"
)

// The token endpoint's reads, in hand-written SQL prepared once on the read pool (as the
// group commit's writes are on the writer, see issuancesql.go): through gorm, each refresh
// built its query, prepared it and reflected over the row, which cost more than the lookup.
// The dialect rewrites them (see dialect.go).
const (
	sqlRefreshToken = `SELECT r.hash, r.session_id, r.client_id, r.subject, r.scopes, r.auth_time, r.expires_at, r.used ` +
		`FROM refresh_tokens r JOIN sessions s ON s.id = r.session_id AND s.revoked_at IS NULL WHERE r.hash = ?`
)

// readStatements are the token path's reads, prepared on the read pool (database/sql
// prepares each again on every pooled connection that runs it, once).
type readStatements struct {
	refreshToken *sql.Stmt
}

func prepareReadStatements(db *gorm.DB, rewrite func(string) string) (*readStatements, error) {
	sqlDB, err := db.DB()
	if err != nil {
		return nil, err
	}
	st, err := sqlDB.Prepare(rewrite(sqlRefreshToken))
	if err != nil {
		return nil, fmt.Errorf("prepare %q: %w", sqlRefreshToken, err)
	}
	return &readStatements{refreshToken: st}, nil
}

func (r *readStatements) close() {
	if r != nil && r.refreshToken != nil {
		r.refreshToken.Close()
	}
}

// RefreshToken returns the refresh token with that hash, unless its session was revoked.
func (s *Store) RefreshToken(ctx context.Context, hash string) (app.RefreshToken, error) {
	var t app.RefreshToken
	var scopes []byte
	err := s.reads.refreshToken.QueryRowContext(ctx, hash).
		Scan(&t.Hash, &t.SessionID, &t.ClientID, &t.Subject, &scopes, &t.AuthTime, &t.ExpiresAt, &t.Used)
	if errors.Is(err, sql.ErrNoRows) {
		err = gorm.ErrRecordNotFound
	}
	if err == nil && len(scopes) > 0 {
		err = json.Unmarshal(scopes, &t.Scopes)
	}
	if err != nil {
		return app.RefreshToken{}, fmt.Errorf("store: refresh token: %w", translate(err))
	}
	return t, nil
}
