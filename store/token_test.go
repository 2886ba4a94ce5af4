package store_test

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/app"
	"github.com/gatehouse/gatehouse/store"
)

func TestTokensRotateOnceAndRevoke(t *testing.T) {
	store.ForEachBackend(t, func(t *testing.T, b store.Backend) {
		s, _ := b.Open(t)
		ctx := context.Background()
		access := app.IssuedToken{ID: "at_1", SessionID: "ses_a", ClientID: "kubectl", Subject: "U0ALICE", Scopes: []string{"openid", "role:prod-db-admin"},
			GrantIDs: []string{"grt_a"}, ExpiresAt: t0.Add(10 * time.Minute)}
		first := app.RefreshToken{Hash: "rt_1", SessionID: "ses_a", ClientID: "kubectl", Subject: "U0ALICE", Scopes: access.Scopes,
			AuthTime: t0, ExpiresAt: t0.Add(8 * time.Hour)}
		if err := s.SaveTokens(ctx, access, &first, ""); err != nil {
			t.Fatal(err)
		}
		got, err := s.AccessToken(ctx, "at_1")
		if err != nil || got.Subject != "U0ALICE" || !slices.Equal(got.GrantIDs, access.GrantIDs) || !got.ExpiresAt.Equal(access.ExpiresAt) || got.Revoked {
			t.Fatalf("access token = %+v, %v; want %+v", got, err, access)
		}
		rt, err := s.RefreshToken(ctx, "rt_1")
		if err != nil || rt.Used || !rt.AuthTime.Equal(t0) || !slices.Equal(rt.Scopes, first.Scopes) {
			t.Fatalf("refresh token = %+v, %v; want %+v", rt, err, first)
		}

		next := first
		next.Hash = "rt_2"
		if err := s.SaveTokens(ctx, app.IssuedToken{ID: "at_2", SessionID: "ses_a", ExpiresAt: t0.Add(time.Hour)}, &next, "rt_1"); err != nil {
			t.Fatal(err)
		}
		if rt, _ := s.RefreshToken(ctx, "rt_1"); !rt.Used {
			t.Error("the rotated refresh token is not marked used")
		}
		replay := first
		replay.Hash = "rt_3"
		err = s.SaveTokens(ctx, app.IssuedToken{ID: "at_3", SessionID: "ses_a", ExpiresAt: t0.Add(time.Hour)}, &replay, "rt_1")
		if !errors.Is(err, app.ErrConflict) {
			t.Errorf("second use of rt_1: err = %v, want ErrConflict", err)
		}
		if _, err := s.AccessToken(ctx, "at_3"); !errors.Is(err, app.ErrNotFound) {
			t.Errorf("the access token of a refused rotation was stored: %v", err)
		}

		revoked := app.AuditEvent{At: t0.Add(time.Minute), Actor: "kubectl", Action: app.ActionTokenRevoked, Principal: app.User("U0ALICE")}
		if err := s.RevokeClientTokens(ctx, "", "at_2", revoked); err != nil {
			t.Fatal(err)
		}
		if got, _ := s.AccessToken(ctx, "at_2"); !got.Revoked {
			t.Error("a revoked access token is not revoked")
		}
		if err := s.RevokeClientTokens(ctx, "ses_a", "", revoked); err != nil {
			t.Fatal(err)
		}
		if got, _ := s.AccessToken(ctx, "at_1"); !got.Revoked {
			t.Error("an access token of a revoked session is not revoked")
		}
		if _, err := s.RefreshToken(ctx, "rt_2"); !errors.Is(err, app.ErrNotFound) {
			t.Errorf("refresh token of a revoked session: err = %v, want ErrNotFound", err)
		}
	})
}
