package store

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/app"
)

// TestLoginSpentOnlyWithItsTokens: a device-flow login is redeemed in the write that
// records its tokens. When that write fails (here a grant ended first) the login is not
// spent and nothing of it is recorded, so the client's next poll is answered from where it
// really stands instead of "already used"; a second redemption, or one after a poll in
// between, changes nothing.
func TestLoginSpentOnlyWithItsTokens(t *testing.T) {
	ForEachBackend(t, func(t *testing.T, b Backend) {
		s, _ := b.Open(t)
		ctx := context.Background()
		r, g := activeGrant(t, s, "spend")
		at := bgT0.Add(time.Minute)
		l := app.Login{ID: "lgn_1", ClientID: "kubectl", UserCode: "BCDF-GHJK", SecretHash: "sh", Subject: g.Principal,
			Status: app.LoginBound, RequestIDs: []string{r.ID}, CreatedAt: bgT0, ExpiresAt: bgT0.Add(10 * time.Minute)}
		if err := s.CreateLogin(ctx, l); err != nil {
			t.Fatal(err)
		}
		redeem := func(polledBefore time.Time) error {
			iss := issuance(1, g)
			iss.Login = &app.LoginSpend{LoginID: l.ID, At: at, PolledBefore: polledBefore}
			iss.Events = append([]app.AuditEvent{{At: at, Actor: l.ClientID, Action: app.ActionLoginIssued, Principal: l.Subject,
				RequestID: r.ID, GrantID: g.ID}}, iss.Events...)
			return s.RecordIssuance(ctx, iss)
		}
		status := func() app.LoginStatus {
			got, err := s.Login(ctx, l.ID)
			if err != nil {
				t.Fatal(err)
			}
			return got.Status
		}
		issuedEvents := func() int {
			trail, err := s.AuditEvents(ctx, r.ID)
			if err != nil {
				t.Fatal(err)
			}
			n := 0
			for _, e := range trail {
				if e.Action == app.ActionLoginIssued || e.Action == app.ActionTokenIssued {
					n++
				}
			}
			return n
		}

		if err := redeem(at.Add(-5 * time.Second)); err != nil {
			t.Fatalf("redeem: %v", err)
		}
		if status() != app.LoginIssued || issuedEvents() != 2 {
			t.Fatalf("after redeeming: login %s, %d issuance events; want issued, 2", status(), issuedEvents())
		}
		if err := redeem(at.Add(-5 * time.Second)); !errors.Is(err, app.ErrConflict) {
			t.Errorf("second redemption: %v, want ErrConflict", err)
		}

		l.ID, l.UserCode, l.SecretHash, l.LastPolledAt = "lgn_2", "CDFG-HJKL", "sh2", at.Add(-time.Second)
		if err := s.CreateLogin(ctx, l); err != nil {
			t.Fatal(err)
		}
		if err := redeem(at.Add(-5 * time.Second)); !errors.Is(err, app.ErrConflict) {
			t.Errorf("redemption of a login polled since: %v, want ErrConflict", err)
		}
		if err := revokeGrant(s, r, g, at); err != nil {
			t.Fatal(err)
		}
		if err := redeem(at); !errors.Is(err, app.ErrGrantEnded) {
			t.Errorf("redemption after the grant ended: %v, want ErrGrantEnded", err)
		}
		if status() != app.LoginBound || issuedEvents() != 2 {
			t.Errorf("after failed redemptions: login %s, %d issuance events; want bound, 2", status(), issuedEvents())
		}
	})
}

// TestCodeSpentOnceWithItsSession: an authorization code is spent in the write that opens
// its client session and records its tokens; an expired or spent code changes nothing.
func TestCodeSpentOnceWithItsSession(t *testing.T) {
	ForEachBackend(t, func(t *testing.T, b Backend) {
		s, _ := b.Open(t)
		ctx := context.Background()
		a := app.AuthRequest{ID: "ar_1", ClientID: "grafana", RedirectURI: "https://grafana.example/cb", Scopes: []string{"openid"},
			CreatedAt: bgT0, ExpiresAt: bgT0.Add(10 * time.Minute)}
		if err := s.CreateAuthRequest(ctx, a); err != nil {
			t.Fatal(err)
		}
		if err := s.CompleteAuthRequest(ctx, a.ID, "U0ALICE", bgT0); err != nil {
			t.Fatal(err)
		}
		if err := s.SaveAuthCode(ctx, a.ID, "code_hash", bgT0.Add(2*time.Minute)); err != nil {
			t.Fatal(err)
		}
		exchange := func(session string, at time.Time) error {
			iss := issuance(1)
			iss.At, iss.SessionID, iss.Code = at, session, &app.CodeSpend{AuthRequestID: a.ID, CodeHash: "code_hash"}
			return s.RecordIssuance(ctx, iss)
		}
		if err := exchange("ses_1", bgT0.Add(3*time.Minute)); !errors.Is(err, app.ErrConflict) {
			t.Errorf("expired code: %v, want ErrConflict", err)
		}
		if err := exchange("ses_2", bgT0.Add(time.Minute)); err != nil {
			t.Fatalf("exchange: %v", err)
		}
		if err := exchange("ses_3", bgT0.Add(time.Minute)); !errors.Is(err, app.ErrConflict) {
			t.Errorf("replayed code: %v, want ErrConflict", err)
		}
		if got, _ := s.AuthRequestByCode(ctx, "code_hash"); got.SessionID != "ses_2" {
			t.Errorf("spent code's session = %q, want ses_2", got.SessionID)
		}
		var sessions int64
		if err := s.db.Table("sessions").Count(&sessions).Error; err != nil || sessions != 1 {
			t.Errorf("%d sessions opened (%v), want 1: a refused exchange opens none", sessions, err)
		}
	})
}

// A redemption whose caller gave up before its batch ran is not applied: the client was
// answered with an error and got no tokens, so its code must still be good.
func TestRedemptionOfAGoneCallerIsNotApplied(t *testing.T) {
	ForEachBackend(t, func(t *testing.T, b Backend) {
		s, _ := b.Open(t)
		gone, cancel := context.WithCancel(context.Background())
		cancel()
		for i := range 20 { // a cancelled caller may still get its op queued: try both ways
			id := fmt.Sprintf("lgn_%d", i)
			l := app.Login{ID: id, ClientID: "kubectl", UserCode: fmt.Sprintf("BCDF-%04d", i), SecretHash: id, Subject: app.User("U0ALICE"),
				Status: app.LoginBound, CreatedAt: bgT0, ExpiresAt: bgT0.Add(10 * time.Minute)}
			if err := s.CreateLogin(context.Background(), l); err != nil {
				t.Fatal(err)
			}
			iss := issuance(i)
			iss.Login = &app.LoginSpend{LoginID: id, At: bgT0.Add(time.Minute), PolledBefore: bgT0.Add(time.Minute)}
			if err := s.RecordIssuance(gone, iss); !errors.Is(err, context.Canceled) {
				t.Fatalf("redemption for a gone caller: %v, want context.Canceled", err)
			}
			s.batch.do(context.Background(), false, func(*batchTx) ([]app.AuditEvent, error) { return nil, nil }) // after its batch
			if got, err := s.Login(context.Background(), id); err != nil || got.Status != app.LoginBound {
				t.Fatalf("login %s after its caller gave up: %s, %v; want still bound", id, got.Status, err)
			}
		}
	})
}
