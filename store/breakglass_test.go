package store

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/app"
)

var bgT0 = time.Date(2026, 11, 30, 9, 0, 0, 0, time.UTC)

func breakGlassRecords(id string) (app.Request, app.Grant, []app.AuditEvent) {
	oncall := app.User("U0ONCALL")
	r := app.Request{ID: "req_" + id, Requester: oncall, Role: "breakglass-db", Duration: 30 * time.Minute, Reason: "db down",
		Status: app.StatusApproved, CreatedAt: bgT0, ExpiresAt: bgT0, DecidedAt: bgT0, GrantID: "grt_" + id}
	g := app.Grant{ID: "grt_" + id, RequestID: r.ID, Principal: oncall, Role: r.Role, ApprovedBy: []string{}, CreatedAt: bgT0,
		ExpiresAt: bgT0.Add(r.Duration), Status: app.GrantActive, BreakGlass: true, NeedsReview: true}
	events := []app.AuditEvent{
		{At: bgT0, Actor: oncall.ID, Action: app.ActionRequestCreated, Principal: oncall, RequestID: r.ID, Reason: r.Reason},
		{At: bgT0, Actor: oncall.ID, Action: app.ActionGrantCreated, Principal: oncall, RequestID: r.ID, GrantID: g.ID},
	}
	return r, g, events
}

// activeGrant records a break-glass request and its active grant, named after id.
func activeGrant(t *testing.T, s *Store, id string) (app.Request, app.Grant) {
	t.Helper()
	r, g, events := breakGlassRecords(id)
	if err := s.CreateBreakGlass(context.Background(), r, g, events); err != nil {
		t.Fatal(err)
	}
	return r, g
}

// revokeGrant revokes g, of request r, at at, as U0BOB.
func revokeGrant(s *Store, r app.Request, g app.Grant, at time.Time) error {
	e := app.AuditEvent{At: at, Actor: "U0BOB", Action: app.ActionGrantRevoked, Principal: g.Principal, RequestID: r.ID, GrantID: g.ID}
	return s.EndGrant(context.Background(), g.ID, app.GrantRevoked, e)
}

func TestBreakGlassCreatedAndReviewedOnce(t *testing.T) {
	ForEachBackend(t, func(t *testing.T, b Backend) {
		s, _ := b.Open(t)
		ctx := context.Background()
		r, g, events := breakGlassRecords("a")
		if err := s.CreateBreakGlass(ctx, r, g, events); err != nil {
			t.Fatal(err)
		}
		t.Run("all or nothing", func(t *testing.T) {
			r2, g2, events2 := breakGlassRecords("b")
			g2.RequestID = r.ID // a second grant for the same request violates its unique index
			if err := s.CreateBreakGlass(ctx, r2, g2, events2); !errors.Is(err, app.ErrConflict) {
				t.Fatalf("err = %v, want ErrConflict", err)
			}
			if _, err := s.Request(ctx, r2.ID); !errors.Is(err, app.ErrNotFound) {
				t.Errorf("the request of a failed break-glass was kept: %v", err)
			}
		})
		got, err := s.Grant(ctx, g.ID)
		if err != nil || !got.BreakGlass || !got.NeedsReview || got.ReviewedBy != "" || !got.ReviewedAt.IsZero() || got.ApprovedBy == nil {
			t.Fatalf("grant = %+v, %v", got, err)
		}
		review := func(user string, at time.Time) error {
			return s.ReviewGrant(ctx, g.ID, app.AuditEvent{At: at, Actor: user, Action: app.ActionGrantReviewed, Principal: g.Principal,
				RequestID: r.ID, GrantID: g.ID})
		}
		if err := review("U0BOB", bgT0.Add(time.Minute)); err != nil {
			t.Fatal(err)
		}
		if err := review("U0CAROL", bgT0.Add(2*time.Minute)); !errors.Is(err, app.ErrAlreadyReviewed) {
			t.Errorf("second review: err = %v, want ErrAlreadyReviewed", err)
		}
		got, _ = s.Grant(ctx, g.ID)
		if got.NeedsReview || got.ReviewedBy != "U0BOB" || !got.ReviewedAt.Equal(bgT0.Add(time.Minute)) {
			t.Errorf("reviewed grant = %+v", got)
		}
		trail, _ := s.AuditEvents(ctx, r.ID)
		if len(trail) != 3 || trail[2].Action != app.ActionGrantReviewed || trail[2].Actor != "U0BOB" {
			t.Errorf("audit trail = %+v", trail)
		}
	})
}

// A database from before break-glass (and so from before versioned migrations) gets the
// review columns, its grants needing no review.
func TestMigrateAddsReviewColumns(t *testing.T) {
	ForEachBackend(t, func(t *testing.T, b Backend) {
		s, path := b.Open(t)
		mustExec(t, s.db.Exec("DROP TABLE schema_migrations"))
		for _, col := range []string{"break_glass", "needs_review", "reviewed_by", "reviewed_at"} {
			mustExec(t, s.db.Exec("ALTER TABLE grants DROP COLUMN "+col))
		}
		mustExec(t, s.db.Omit("Decisions").Create(&requestRow{ID: "req_old", RequesterKind: "user", RequesterID: "U0ALICE", Role: "prod-db-admin",
			Status: "approved", CreatedAt: bgT0, ExpiresAt: bgT0, GrantID: "grt_old"}))
		mustExec(t, s.db.Exec("INSERT INTO grants (id, request_id, principal_kind, principal_id, role, approved_by, created_at, expires_at, status) "+
			"VALUES ('grt_old', 'req_old', 'user', 'U0ALICE', 'prod-db-admin', '[\"U0BOB\"]', ?, ?, 'active')", bgT0, bgT0.Add(time.Hour)))
		s.Close()

		s, err := Open(path)
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		g, err := s.Grant(context.Background(), "grt_old")
		if err != nil || g.BreakGlass || g.NeedsReview || g.ReviewedBy != "" || !g.ReviewedAt.IsZero() {
			t.Errorf("old grant = %+v, %v", g, err)
		}
		if err := s.ReviewGrant(context.Background(), "grt_old", app.AuditEvent{At: bgT0, Actor: "U0BOB"}); !errors.Is(err, app.ErrAlreadyReviewed) {
			t.Errorf("reviewing an old grant: err = %v, want ErrAlreadyReviewed", err)
		}
	})
}
