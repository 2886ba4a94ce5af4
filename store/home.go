package store

import (
	"context"
	"fmt"
	"time"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"
)

// homeViewerRow is a user who opened Gatehouse's App Home: a change that concerns them
// redraws their tab, whichever replica makes the change.
type homeViewerRow struct {
	UserID   string `gorm:"primaryKey"`
	OpenedAt time.Time
}

func (homeViewerRow) TableName() string { return "home_viewers" }

// AddHomeViewer records that user opened their App Home (once; again is a no-op).
func (s *Store) AddHomeViewer(ctx context.Context, user string, at time.Time) error {
	err := s.transaction(ctx, func(tx *gorm.DB) error {
		return tx.Clauses(clause.OnConflict{DoNothing: true}).Create(&homeViewerRow{UserID: user, OpenedAt: at.UTC()}).Error
	})
	if err != nil {
		return fmt.Errorf("store: add App Home viewer: %w", translate(err))
	}
	return nil
}

// HomeViewers returns those of users who opened their App Home.
func (s *Store) HomeViewers(ctx context.Context, users []string) ([]string, error) {
	if len(users) == 0 {
		return nil, nil
	}
	var out []string
	if err := s.read.WithContext(ctx).Model(&homeViewerRow{}).Where("user_id IN ?", users).Order("user_id").Pluck("user_id", &out).Error; err != nil {
		return nil, fmt.Errorf("store: App Home viewers: %w", translate(err))
	}
	return out, nil
}
