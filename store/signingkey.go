package store

import (
	"context"
	"fmt"
	"time"

	"gorm.io/gorm"

	"github.com/gatehouse/gatehouse/app"
)

// signingKeyRow is one of the OpenID Provider's signing keys. RetiredAt is NULL for the
// active key.
type signingKeyRow struct {
	ID         string `gorm:"primaryKey"`
	Algorithm  string `gorm:"not null"`
	PrivateKey []byte `gorm:"not null"`
	CreatedAt  time.Time
	RetiredAt  *time.Time `gorm:"index"`
}

func (signingKeyRow) TableName() string { return "signing_keys" }

func signingKeyFromApp(k app.SigningKey) signingKeyRow {
	row := signingKeyRow{ID: k.ID, Algorithm: k.Algorithm, PrivateKey: k.PrivateKey, CreatedAt: k.CreatedAt.UTC()}
	if !k.RetiredAt.IsZero() {
		t := k.RetiredAt.UTC()
		row.RetiredAt = &t
	}
	return row
}

func (row signingKeyRow) toApp() app.SigningKey {
	k := app.SigningKey{ID: row.ID, Algorithm: row.Algorithm, PrivateKey: row.PrivateKey, CreatedAt: row.CreatedAt}
	if row.RetiredAt != nil {
		k.RetiredAt = *row.RetiredAt
	}
	return k
}

// SigningKeys returns every stored signing key, newest first. It returns an empty slice,
// not an error, when there is none.
func (s *Store) SigningKeys(ctx context.Context) ([]app.SigningKey, error) {
	var rows []signingKeyRow
	if err := s.db.WithContext(ctx).Order("created_at DESC").Order("id").Find(&rows).Error; err != nil {
		return nil, fmt.Errorf("store: signing keys: %w", err)
	}
	keys := make([]app.SigningKey, len(rows))
	for i, row := range rows {
		keys[i] = row.toApp()
	}
	return keys, nil
}

// AddSigningKey makes k the active signing key: in one transaction it retires the key(s)
// active until now, with RetiredAt = k.CreatedAt, and stores k as active. k.RetiredAt is
// ignored. A key with k's ID already stored gives app.ErrConflict, and nothing changes.
func (s *Store) AddSigningKey(ctx context.Context, k app.SigningKey) error {
	if k.ID == "" || k.CreatedAt.IsZero() || len(k.PrivateKey) == 0 {
		return fmt.Errorf("store: add signing key %q: ID, CreatedAt and PrivateKey are required", k.ID)
	}
	k.RetiredAt = time.Time{}
	row := signingKeyFromApp(k)
	err := s.transaction(ctx, func(tx *gorm.DB) error {
		err := tx.Model(&signingKeyRow{}).Where("retired_at IS NULL").Update("retired_at", row.CreatedAt).Error
		if err != nil {
			return translate(err)
		}
		return translate(tx.Create(&row).Error)
	})
	if err != nil {
		return fmt.Errorf("store: add signing key %s: %w", k.ID, err)
	}
	return nil
}

// PruneSigningKeys deletes the keys retired before retiredBefore and says how many it
// deleted. The active key is never deleted.
func (s *Store) PruneSigningKeys(ctx context.Context, retiredBefore time.Time) (int, error) {
	res := s.db.WithContext(ctx).Where("retired_at IS NOT NULL AND retired_at < ?", retiredBefore.UTC()).Delete(&signingKeyRow{})
	if res.Error != nil {
		return 0, fmt.Errorf("store: prune signing keys: %w", res.Error)
	}
	return int(res.RowsAffected), nil
}

// ReplacePrivateKey changes key id's stored private key from old to new in one conditional
// write (encrypting a key stored in clear, or re-encrypting it under a new key-encryption
// key). A key whose private key is no longer old is app.ErrConflict, and nothing changes.
func (s *Store) ReplacePrivateKey(ctx context.Context, id string, old, new []byte) error {
	res := s.db.WithContext(ctx).Model(&signingKeyRow{}).Where("id = ? AND private_key = ?", id, old).Update("private_key", new)
	if res.Error != nil {
		return fmt.Errorf("store: replace private key %s: %w", id, res.Error)
	}
	if res.RowsAffected != 1 {
		return fmt.Errorf("store: replace private key %s: %w", id, app.ErrConflict)
	}
	return nil
}
