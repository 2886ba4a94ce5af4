package store_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/app"
	"github.com/gatehouse/gatehouse/store"
)

func TestPurgeKeepsWhatIsStillNeeded(t *testing.T) {
	store.ForEachBackend(t, func(t *testing.T, b store.Backend) {
		s, _ := b.Open(t)
		ctx := context.Background()
		old := app.Login{ID: "lgn_old", ClientID: "c", UserCode: "BCDF-GHJK", SecretHash: "h1", Status: app.LoginIssued, CreatedAt: t0, ExpiresAt: t0.Add(10 * time.Minute)}
		live := app.Login{ID: "lgn_live", ClientID: "c", UserCode: "BCDF-GHJL", SecretHash: "h2", Status: app.LoginPending, CreatedAt: t0, ExpiresAt: t0.Add(48 * time.Hour)}
		for _, l := range []app.Login{old, live} {
			if err := s.CreateLogin(ctx, l); err != nil {
				t.Fatal(err)
			}
		}
		r := pendingRequest("req_kept")
		if err := s.CreateRequest(ctx, r, created(r)); err != nil {
			t.Fatal(err)
		}
		expired := app.RefreshToken{Hash: "rt_old", SessionID: "ses_old", ClientID: "c", Subject: "U0ALICE", ExpiresAt: t0.Add(time.Hour)}
		if err := s.RecordIssuance(ctx, app.Issuance{At: t0, SessionID: "ses_old", Refresh: &expired}); err != nil {
			t.Fatal(err)
		}
		revoked := app.Revocation{Kind: app.RevokedSession, Ref: "ses_old", At: t0, Until: t0.Add(time.Hour)}
		if err := s.RevokeClientTokens(ctx, revoked, app.AuditEvent{At: t0, Actor: "c", Action: app.ActionTokenRevoked}); err != nil {
			t.Fatal(err)
		}

		n, err := s.Purge(ctx, t0.Add(24*time.Hour))
		if err != nil || n != 4 { // the old login, the refresh token, its session and its revocation
			t.Fatalf("purged %d rows, %v; want 4", n, err)
		}
		if _, err := s.Login(ctx, "lgn_old"); !errors.Is(err, app.ErrNotFound) {
			t.Error("the old login is still there")
		}
		if _, err := s.Login(ctx, "lgn_live"); err != nil {
			t.Errorf("the live login is gone: %v", err)
		}
		if _, err := s.Request(ctx, "req_kept"); err != nil {
			t.Errorf("a request was purged: %v", err)
		}
		if _, err := s.RefreshToken(ctx, "rt_old"); !errors.Is(err, app.ErrNotFound) {
			t.Error("the expired refresh token is still there")
		}
		// The old user code can be used again.
		reuse := old
		reuse.ID, reuse.SecretHash = "lgn_new", "h3"
		if err := s.CreateLogin(ctx, reuse); err != nil {
			t.Errorf("the purged login's user code is still taken: %v", err)
		}
	})
}
