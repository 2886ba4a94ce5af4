package gatehouse

import (
	"context"
	"log/slog"
	"time"

	"github.com/gatehouse/gatehouse/app"
	"github.com/gatehouse/gatehouse/store"
)

// sweepInterval is how often expired requests and grants are ended; retention is how long
// ended sign-ins and token records are kept afterwards (requests, grants and the audit
// trail are kept for good).
const (
	sweepInterval = 15 * time.Second
	retention     = 24 * time.Hour
)

// sweep ends expired requests and grants at start (catching up after downtime) and then
// every sweepInterval until ctx ends; it purges what ended more than retention ago and
// signing keys retired more than keyRetention ago.
func (m *Main) sweep(ctx context.Context, svc *app.Service, db *store.Store, keyRetention time.Duration, log *slog.Logger) {
	ticker := time.NewTicker(sweepInterval)
	defer ticker.Stop()
	for {
		// Each pass ends by the next: a database that stops answering must not hold the
		// sweeper for good.
		pass, cancel := context.WithTimeout(ctx, sweepInterval)
		if err := svc.Sweep(pass); err != nil && ctx.Err() == nil {
			log.Error("sweeping expired requests and grants failed", "err", err)
		}
		if _, err := db.Purge(pass, m.Now().Add(-retention)); err != nil && ctx.Err() == nil {
			log.Error("purging ended sign-ins and tokens failed", "err", err)
		}
		if _, err := db.PruneSigningKeys(pass, m.Now().Add(-keyRetention)); err != nil && ctx.Err() == nil {
			log.Error("pruning retired signing keys failed", "err", err)
		}
		cancel()
		select {
		case <-ctx.Done():
			return
		case <-ticker.C:
		}
	}
}
