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

func TestAuthRequestStepsTakenOnce(t *testing.T) {
	store.ForEachBackend(t, func(t *testing.T, b store.Backend) {
		s, _ := b.Open(t)
		ctx := context.Background()
		a := app.AuthRequest{ID: "ar_1", ClientID: "grafana", RedirectURI: "https://grafana.example/cb", Scopes: []string{"openid"},
			State: "xyz", Nonce: "n", CodeChallenge: "c", CodeChallengeMethod: "S256", Prompt: []string{"login"}, CreatedAt: t0, ExpiresAt: t0.Add(10 * time.Minute)}
		if err := s.CreateAuthRequest(ctx, a); err != nil {
			t.Fatal(err)
		}
		if err := s.CreateAuthRequest(ctx, a); !errors.Is(err, app.ErrConflict) {
			t.Errorf("duplicate auth request: err = %v, want ErrConflict", err)
		}
		steps := []struct {
			name string
			do   func() error
		}{
			{"attach login", func() error { return s.AttachLogin(ctx, "ar_1", "lgn_1") }},
			{"complete", func() error { return s.CompleteAuthRequest(ctx, "ar_1", "U0ALICE", t0.Add(time.Minute)) }},
			{"save code", func() error { return s.SaveAuthCode(ctx, "ar_1", "code_hash", t0.Add(2*time.Minute)) }},
		}
		for _, step := range steps {
			if err := step.do(); err != nil {
				t.Fatalf("%s: %v", step.name, err)
			}
			if err := step.do(); !errors.Is(err, app.ErrConflict) {
				t.Errorf("%s twice: err = %v, want ErrConflict", step.name, err)
			}
		}
		got, err := s.AuthRequest(ctx, "ar_1")
		if err != nil || !got.Done || got.Subject != "U0ALICE" || got.LoginID != "lgn_1" || !slices.Equal(got.Prompt, a.Prompt) {
			t.Fatalf("auth request = %+v, %v", got, err)
		}
		if got, err := s.AuthRequestByCode(ctx, "code_hash"); err != nil || got.ID != "ar_1" || got.SessionID != "" {
			t.Fatalf("by code = %+v, %v", got, err)
		}
		if _, err := s.AuthRequestByCode(ctx, "other"); !errors.Is(err, app.ErrNotFound) {
			t.Errorf("unknown code: err = %v, want ErrNotFound", err)
		}
	})
}

func TestBrowserSessions(t *testing.T) {
	store.ForEachBackend(t, func(t *testing.T, b store.Backend) {
		s, _ := b.Open(t)
		ctx := context.Background()
		for _, h := range []string{"h1", "h2"} {
			if err := s.CreateBrowserSession(ctx, app.BrowserSession{Hash: h, Subject: "U0ALICE", ExpiresAt: t0.Add(time.Hour)}); err != nil {
				t.Fatal(err)
			}
		}
		if got, err := s.BrowserSession(ctx, "h1", t0); err != nil || got.Subject != "U0ALICE" {
			t.Errorf("session = %+v, %v", got, err)
		}
		if _, err := s.BrowserSession(ctx, "h1", t0.Add(time.Hour)); !errors.Is(err, app.ErrNotFound) {
			t.Errorf("expired session: err = %v, want ErrNotFound", err)
		}
		if err := s.EndBrowserSession(ctx, "h2"); err != nil {
			t.Fatal(err)
		}
		if _, err := s.BrowserSession(ctx, "h2", t0); !errors.Is(err, app.ErrNotFound) {
			t.Errorf("ended session: err = %v, want ErrNotFound", err)
		}
		if _, err := s.BrowserSession(ctx, "h1", t0); err != nil {
			t.Errorf("the other browser's session ended too: %v", err)
		}
	})
}
