package store

import (
	"context"
	"fmt"
	"time"

	"gorm.io/gorm"
)

// codeGuessRow is one attempt by a Slack user at a sign-in code that has not (yet) proved
// right. Kept in the database so every replica counts the same attempts.
type codeGuessRow struct {
	ID        uint64    `gorm:"primaryKey"`
	SlackUser string    `gorm:"index:idx_code_guess_user_at"`
	At        time.Time `gorm:"index:idx_code_guess_user_at"`
}

func (codeGuessRow) TableName() string { return "code_guesses" }

// TryCodeGuess records an attempt by user at now, unless user already made max attempts
// in the window before now; it returns the attempt's ID and whether it may go ahead. The
// count and the insert are one transaction (SQLite serialises them). On PostgreSQL two
// replicas counting at the same instant can each let one more through: the limit holds to
// within one attempt per replica.
func (s *Store) TryCodeGuess(ctx context.Context, user string, now time.Time, window time.Duration, max int) (uint64, bool, error) {
	row := codeGuessRow{SlackUser: user, At: now.UTC()}
	ok := false
	err := s.transaction(ctx, func(tx *gorm.DB) error {
		var n int64
		if err := tx.Model(&codeGuessRow{}).Where("slack_user = ? AND at > ?", user, now.Add(-window).UTC()).Count(&n).Error; err != nil {
			return err
		}
		if n >= int64(max) {
			return nil
		}
		ok = true
		return tx.Create(&row).Error
	})
	if err != nil {
		return 0, false, fmt.Errorf("store: try code guess: %w", err)
	}
	return row.ID, ok, nil
}

// ForgetCodeGuess gives back an attempt: the code was right.
func (s *Store) ForgetCodeGuess(ctx context.Context, id uint64) error {
	if err := s.transaction(ctx, func(tx *gorm.DB) error { return tx.Delete(&codeGuessRow{}, id).Error }); err != nil {
		return fmt.Errorf("store: forget code guess: %w", err)
	}
	return nil
}
