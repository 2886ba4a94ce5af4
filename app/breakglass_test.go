package app_test

import (
	"context"
	"errors"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/app"
)

// breakGlassRole may be taken at once by U0ONCALL and the members of S0DBA (U0DAVE);
// U0BOB and U0CAROL review its uses.
func breakGlassRole() app.Role {
	return app.Role{Name: "breakglass-db", Description: "Emergency admin, reviewed afterwards", Approvers: []string{"U0BOB", "U0CAROL"},
		BreakGlass: true, BreakGlassUsers: []string{"U0ONCALL", "S0DBA"}, DefaultDuration: 30 * time.Minute, MaxDuration: time.Hour}
}

func (f *fixture) breakGlass(t *testing.T, user string) (app.Request, app.Grant) {
	t.Helper()
	r, err := f.svc.RequestAccess(context.Background(), app.User(user), input("breakglass-db", "45m", "db down, paging"), app.SourceSlack)
	if err != nil {
		t.Fatal(err)
	}
	if r.Status != app.StatusApproved || r.GrantID == "" {
		t.Fatalf("break-glass request = %+v, want approved with a grant", r)
	}
	g, err := f.store.Grant(context.Background(), r.GrantID)
	if err != nil {
		t.Fatal(err)
	}
	return r, g
}

func TestBreakGlassGrantsAtOnce(t *testing.T) {
	for _, user := range []string{"U0ONCALL", "U0DAVE"} { // listed directly, and through a user group
		t.Run(user, func(t *testing.T) {
			f := newFixture(t, breakGlassRole())
			now := f.clock.Now()
			r, g := f.breakGlass(t, user)
			if len(r.Decisions) != 0 || !r.DecidedAt.Equal(now) || r.Duration != 45*time.Minute {
				t.Errorf("request = %+v", r)
			}
			if !g.BreakGlass || !g.NeedsReview || g.Status != app.GrantActive || g.Principal != app.User(user) || len(g.ApprovedBy) != 0 ||
				!g.CreatedAt.Equal(now) || !g.ExpiresAt.Equal(now.Add(45*time.Minute)) || g.ReviewedBy != "" || !g.ReviewedAt.IsZero() {
				t.Errorf("grant = %+v", g)
			}
			held, err := f.svc.GrantsForToken(context.Background(), app.User(user), []string{"breakglass-db"})
			if err != nil || len(held) != 1 || held[0].ID != g.ID {
				t.Errorf("grants for a token = %+v, %v; want the break-glass grant", held, err)
			}
			f.svc.Wait()
			if len(f.notes.alarms) != 1 || f.notes.alarms[0].ID != g.ID || len(f.notes.posted) != 0 {
				t.Errorf("approvers saw %d notices and %d requests; want the one notice", len(f.notes.alarms), len(f.notes.posted))
			}
			if len(f.notes.told) != 1 || f.notes.told[0].ID != r.ID {
				t.Errorf("requester was told %+v", f.notes.told)
			}
			stored, _ := f.store.Request(context.Background(), r.ID)
			if stored.Message.TS == "" || stored.Status != app.StatusApproved {
				t.Errorf("stored request = %+v, want approved with its notice", stored)
			}
			events, _ := f.store.AuditEvents(context.Background(), r.ID)
			var actions []string
			for _, e := range events {
				actions = append(actions, e.Action)
				if e.Actor != user {
					t.Errorf("event %s by %s, want %s", e.Action, e.Actor, user)
				}
			}
			want := []string{app.ActionRequestCreated, app.ActionRequestApproved, app.ActionGrantCreated}
			if !slices.Equal(actions, want) || events[0].Reason != "db down, paging" || events[2].Reason != "break-glass by "+user+"; needs review" {
				t.Errorf("audit trail = %+v, want %v", events, want)
			}
		})
	}
}

func TestBreakGlassOthersFileANormalRequest(t *testing.T) {
	f := newFixture(t, breakGlassRole())
	r, err := f.svc.RequestAccess(context.Background(), alice(), input("breakglass-db", "30m", "curious"), app.SourceSlack)
	if err != nil || r.Status != app.StatusPending || r.GrantID != "" {
		t.Fatalf("unlisted user: %+v, %v; want a pending request", r, err)
	}
	service := app.Principal{Kind: app.PrincipalService, ID: "U0ONCALL"} // a client ID that looks like a listed user
	if r, err := f.svc.RequestAccess(context.Background(), service, input("breakglass-db", "30m", "job"), app.SourceOIDC); err != nil || r.Status != app.StatusPending {
		t.Errorf("service: %+v, %v; want a pending request", r, err)
	}
	f.svc.Wait()
	if grants, _ := f.store.GrantsOf(context.Background(), alice()); len(grants) != 0 || len(f.notes.alarms) != 0 || len(f.notes.posted) != 2 {
		t.Errorf("grants %+v, %d notices, %d requests posted; want no grant and two normal requests", grants, len(f.notes.alarms), len(f.notes.posted))
	}
}

func TestBreakGlassInputIsChecked(t *testing.T) {
	tests := []struct {
		name  string
		in    app.RequestInput
		field string
	}{
		{"no reason", input("breakglass-db", "30m", " "), app.FieldReason},
		{"past max_duration", input("breakglass-db", "2h", "db down"), app.FieldDuration},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, breakGlassRole())
			_, err := f.svc.RequestAccess(context.Background(), app.User("U0ONCALL"), tt.in, app.SourceSlack)
			var in *app.InputError
			if !errors.As(err, &in) || in.Problems[0].Field != tt.field {
				t.Fatalf("err = %v, want a problem with %s", err, tt.field)
			}
			if grants, _ := f.store.GrantsOf(context.Background(), app.User("U0ONCALL")); len(grants) != 0 {
				t.Errorf("bad input granted %+v", grants)
			}
		})
	}
}

func TestReviewBreakGlass(t *testing.T) {
	f := newFixture(t, breakGlassRole(), validRole())
	_, g := f.breakGlass(t, "U0ONCALL")
	review := func(user string) (app.Grant, error) {
		return f.svc.ReviewGrant(context.Background(), g.ID, user, app.SourceSlack)
	}
	for _, tt := range []struct {
		name string
		user string
		want error
	}{
		{"the holder", "U0ONCALL", app.ErrSelfReview},
		{"not an approver", "U0MALLORY", app.ErrNotReviewer},
		{"a break-glass user of the role", "U0DAVE", app.ErrNotReviewer},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := review(tt.user); !errors.Is(err, tt.want) {
				t.Errorf("err = %v, want %v", err, tt.want)
			}
			if got, _ := f.store.Grant(context.Background(), g.ID); !got.NeedsReview || got.ReviewedBy != "" {
				t.Errorf("grant changed: %+v", got)
			}
		})
	}
	t.Run("an approver", func(t *testing.T) {
		f.clock.Advance(10 * time.Minute)
		reviewedAt := f.clock.Now()
		got, err := review("U0BOB")
		if err != nil || got.NeedsReview || got.ReviewedBy != "U0BOB" || !got.ReviewedAt.Equal(reviewedAt) {
			t.Fatalf("review: %+v, %v", got, err)
		}
		stored, _ := f.store.Grant(context.Background(), g.ID)
		if stored.NeedsReview || stored.ReviewedBy != "U0BOB" || !stored.ReviewedAt.Equal(reviewedAt) || stored.Status != app.GrantActive {
			t.Errorf("stored grant = %+v", stored)
		}
	})
	t.Run("twice records once", func(t *testing.T) {
		f.clock.Advance(time.Minute)
		got, err := review("U0CAROL")
		if !errors.Is(err, app.ErrAlreadyReviewed) || got.ReviewedBy != "U0BOB" {
			t.Errorf("second review: %+v, %v; want already reviewed by U0BOB", got, err)
		}
		events, _ := f.store.AuditEvents(context.Background(), g.RequestID)
		if n := countActions(events, app.ActionGrantReviewed); n != 1 {
			t.Errorf("%d review events, want 1", n)
		}
	})
	t.Run("a grant that was approved", func(t *testing.T) {
		r := f.request(t)
		after, err := f.decide("U0BOB", r, true, "")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := f.svc.ReviewGrant(context.Background(), after.GrantID, "U0BOB", app.SourceSlack); !errors.Is(err, app.ErrNotFound) {
			t.Errorf("reviewing an approved grant: err = %v, want ErrNotFound", err)
		}
	})
}

func TestBreakGlassGrantEndsLikeAnyOther(t *testing.T) {
	f := newFixture(t, breakGlassRole())
	_, g := f.breakGlass(t, "U0ONCALL")
	f.clock.Advance(45 * time.Minute)
	if err := f.svc.Sweep(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got, _ := f.store.Grant(context.Background(), g.ID); got.Status != app.GrantExpired || !got.NeedsReview {
		t.Errorf("after its time: %+v, want expired and still needing review", got)
	}
	// Reviewing after the end still records who looked at the use.
	if got, err := f.svc.ReviewGrant(context.Background(), g.ID, "U0BOB", app.SourceSlack); err != nil || got.ReviewedBy != "U0BOB" {
		t.Errorf("review after expiry: %+v, %v", got, err)
	}
}

// Approvers clicking Reviewed at the same instant record one review.
func TestConcurrentReviewsRecordOnce(t *testing.T) {
	role := breakGlassRole()
	role.Approvers = []string{"U01", "U02", "U03", "U04", "U05", "U06"}
	f := newFixture(t, role)
	_, g := f.breakGlass(t, "U0ONCALL")
	var wg sync.WaitGroup
	var ok atomic.Int32
	for _, a := range role.Approvers {
		wg.Go(func() {
			_, err := f.svc.ReviewGrant(context.Background(), g.ID, a, app.SourceSlack)
			switch {
			case err == nil:
				ok.Add(1)
			case !errors.Is(err, app.ErrAlreadyReviewed):
				t.Errorf("%s: %v", a, err)
			}
		})
	}
	wg.Wait()
	events, _ := f.store.AuditEvents(context.Background(), g.RequestID)
	stored, _ := f.store.Grant(context.Background(), g.ID)
	if ok.Load() != 1 || countActions(events, app.ActionGrantReviewed) != 1 || !slices.Contains(role.Approvers, stored.ReviewedBy) {
		t.Errorf("%d reviews succeeded, %d recorded, reviewed by %q; want one", ok.Load(), countActions(events, app.ActionGrantReviewed), stored.ReviewedBy)
	}
}

func countActions(events []app.AuditEvent, action string) int {
	n := 0
	for _, e := range events {
		if e.Action == action {
			n++
		}
	}
	return n
}
