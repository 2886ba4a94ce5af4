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
		if err := svc.Sweep(ctx); err != nil && ctx.Err() == nil {
			log.Error("sweeping expired requests and grants failed", "err", err)
		}
		if _, err := db.Purge(ctx, m.Now().Add(-retention)); err != nil && ctx.Err() == nil {
			log.Error("purging ended sign-ins and tokens failed", "err", err)
		}
		if _, err := db.PruneSigningKeys(ctx, m.Now().Add(-keyRetention)); err != nil && ctx.Err() == nil {
			log.Error("pruning retired signing keys failed", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-ticker.C:
		}
	}
}
