package gatehouse

import (
	"context"
	"flag"
	"fmt"
	"log/slog"

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
	db, err := store.Open(cfg.Database)
	if err != nil {
		return err
	}
	defer db.Close()
	key, err := m.keyring(db, cfg, slog.New(slog.NewTextHandler(m.Stderr, nil))).Rotate(ctx, alg)
	if err != nil {
		return fmt.Errorf("rotate: %w", err)
	}
	fmt.Fprintf(m.Stdout, "new signing key %s (%s) is active\n", key.ID, key.Algorithm)
	return nil
}
