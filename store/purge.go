package store

import (
	"context"
	"fmt"
	"time"
)

// Purge deletes what ended before the cutoff and nobody needs any more: sign-ins (logins
// and browser auth requests), refresh tokens, browser sessions, and revocations no valid
// token can be affected by any more.
// Requests, grants and the audit trail are kept. It returns how many rows went.
func (s *Store) Purge(ctx context.Context, before time.Time) (int64, error) {
	before = before.UTC()
	var n int64
	for _, row := range []any{&loginRow{}, &authRequestRow{}, &refreshTokenRow{}, &browserSessionRow{}, &revocationRow{}} {
		res := s.db.WithContext(ctx).Where("expires_at < ?", before).Delete(row)
		if res.Error != nil {
			return n, fmt.Errorf("store: purge: %w", res.Error)
		}
		n += res.RowsAffected
	}
	res := s.db.WithContext(ctx).Where("at < ?", before).Delete(&codeGuessRow{})
	if res.Error != nil {
		return n, fmt.Errorf("store: purge code guesses: %w", res.Error)
	}
	n += res.RowsAffected
	// A client session whose refresh tokens are all gone, and whose code is forgotten (so a
	// replay of it is no longer recognised), can no longer be used or revoked.
	res = s.db.WithContext(ctx).Where("id NOT IN (?) AND id NOT IN (?)", s.db.Model(&refreshTokenRow{}).Select("session_id"),
		s.db.Model(&authRequestRow{}).Select("session_id")).Delete(&sessionRow{})
	if res.Error != nil {
		return n, fmt.Errorf("store: purge sessions: %w", res.Error)
	}
	return n + res.RowsAffected, nil
}
