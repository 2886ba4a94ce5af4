package gatehouse

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"

	"github.com/gatehouse/gatehouse/internal/config"
	"github.com/gatehouse/gatehouse/oidc"
	"github.com/gatehouse/gatehouse/store"
)

// rotateKeys runs `gatehouse keys rotate`: a new signing key becomes active; the previous
// stays published until the last token it signed has expired. A running server picks the
// new key up within a minute.
func (m *Main) rotateKeys(ctx context.Context, args []string) error {
	var alg string
	cfg, err := m.loadConfig(args, func(fs *flag.FlagSet) {
		fs.StringVar(&alg, "algorithm", "", "RS256 or ES256 (default: tokens.signing_algorithm)")
	})
	if err != nil {
		return err
	}
	if alg == "" {
		alg = cfg.Tokens.SigningAlgorithm
	}
	keys, closeDB, err := m.openKeyring(cfg)
	if err != nil {
		return err
	}
	defer closeDB()
	key, err := keys.Rotate(ctx, alg)
	if err != nil {
		return fmt.Errorf("rotate: %w", err)
	}
	fmt.Fprintf(m.Stdout, "new signing key %s (%s) is active\n", key.ID, key.Algorithm)
	return nil
}

// rewrapKeys runs `gatehouse keys rewrap`: every signing key sealed with the old
// key-encryption key (--old-key-file) is re-encrypted under the one configured now
// (GATEHOUSE_KEY_ENCRYPTION_KEY or tokens.key_encryption_key_file). Servers still running
// with the old key keep the keys they hold in memory; restart them with the new one.
func (m *Main) rewrapKeys(ctx context.Context, args []string) error {
	var oldFile string
	cfg, err := m.loadConfig(args, func(fs *flag.FlagSet) {
		fs.StringVar(&oldFile, "old-key-file", "", "file holding the key-encryption key the keys are sealed with now")
	})
	if err != nil {
		return err
	}
	if oldFile == "" {
		return errors.New("rewrap: --old-key-file is required")
	}
	old, err := readKEKFile(oldFile)
	if err != nil {
		return err
	}
	keys, closeDB, err := m.openKeyring(cfg)
	if err != nil {
		return err
	}
	defer closeDB()
	n, err := keys.Rewrap(ctx, old)
	if err != nil {
		return fmt.Errorf("rewrap: %w", err)
	}
	fmt.Fprintf(m.Stdout, "%d signing keys re-encrypted from key-encryption key %s\n", n, old.ID())
	return nil
}

// openKeyring opens cfg's database and its signing keys for a keys command; closeDB closes
// the database.
func (m *Main) openKeyring(cfg *config.Config) (keys *oidc.Keyring, closeDB func(), err error) {
	db, err := store.Open(cfg.Database)
	if err != nil {
		return nil, nil, err
	}
	keys, err = m.keyring(db, cfg, slog.New(slog.NewTextHandler(m.Stderr, nil)))
	if err != nil {
		db.Close()
		return nil, nil, err
	}
	return keys, func() { db.Close() }, nil
}
