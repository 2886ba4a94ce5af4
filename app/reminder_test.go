package app_test

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/app"
)

// remindingRole needs two approvals, reminds after 10 minutes and escalates to U0LEAD (and
// to the requester, who still may not approve) after 20.
func remindingRole() app.Role {
	r := validRole()
	r.Approvers = []string{"U0BOB", "U0CAROL", "U0ALICE", "S0DBA"}
	r.ApprovalsRequired = 2
	r.RemindAfter = 10 * time.Minute
	r.EscalateAfter = 20 * time.Minute
	r.EscalateTo = []string{"U0LEAD", "U0ALICE"}
	return r
}

func (f *fixture) sweep(t *testing.T) []string {
	t.Helper()
	if err := f.svc.Sweep(context.Background()); err != nil {
		t.Fatal(err)
	}
	f.svc.Wait()
	f.notes.mu.Lock()
	defer f.notes.mu.Unlock()
	return slices.Clone(f.notes.thread)
}

func (f *fixture) actions(t *testing.T, r app.Request) []string {
	t.Helper()
	events, err := f.store.AuditEvents(context.Background(), r.ID)
	if err != nil {
		t.Fatal(err)
	}
	var actions []string
	for _, e := range events {
		actions = append(actions, e.Action)
	}
	return actions
}

func TestReminderThenEscalation(t *testing.T) {
	f := newFixture(t, remindingRole())
	r := f.request(t)
	f.svc.Wait() // posted
	if _, err := f.decide("U0BOB", r, true, ""); err != nil {
		t.Fatal(err)
	}

	f.clock.Advance(10*time.Minute - time.Second)
	if got := f.sweep(t); len(got) != 0 {
		t.Fatalf("before remind_after: %q", got)
	}
	f.clock.Advance(time.Second)
	want := []string{"remind U0CAROL,S0DBA"} // not Bob (decided), not Alice (the requester), not yet U0LEAD
	if got := f.sweep(t); !slices.Equal(got, want) {
		t.Fatalf("at remind_after: %q, want %q", got, want)
	}
	if got := f.sweep(t); !slices.Equal(got, want) {
		t.Fatalf("second sweep: %q, want no new reminder", got)
	}
	if _, err := f.decide("U0LEAD", r, true, ""); !errors.Is(err, app.ErrNotApprover) {
		t.Fatalf("U0LEAD before escalation: err = %v, want ErrNotApprover", err)
	}

	f.clock.Advance(10 * time.Minute)
	want = append(want, "escalate U0LEAD")
	if got := f.sweep(t); !slices.Equal(got, want) {
		t.Fatalf("at escalate_after: %q, want %q", got, want)
	}
	if got, _ := f.store.Request(context.Background(), r.ID); !got.Escalated {
		t.Error("request not marked escalated")
	}
	if _, err := f.svc.CheckApprover(context.Background(), r.ID, "U0ALICE"); !errors.Is(err, app.ErrSelfApproval) {
		t.Errorf("requester listed in escalate_to: err = %v, want ErrSelfApproval", err)
	}
	after, err := f.decide("U0LEAD", r, true, "covering")
	if err != nil || after.Status != app.StatusApproved {
		t.Fatalf("U0LEAD after escalation: %+v, %v; want approved", after, err)
	}
	wantActions := []string{app.ActionRequestCreated, app.ActionDecisionApprove, app.ActionRequestReminded, app.ActionRequestEscalated,
		app.ActionDecisionApprove, app.ActionRequestApproved, app.ActionGrantCreated}
	if got := f.actions(t, r); !slices.Equal(got, wantActions) {
		t.Errorf("audit trail = %v, want %v", got, wantActions)
	}
}

func TestFollowUps(t *testing.T) {
	tests := []struct {
		name   string
		role   func(*app.Role)
		before func(*fixture, app.Request) // after filing
		wait   time.Duration
		want   []string
	}{
		{"both due at once: reminder first, without the escalated", nil, nil, 30 * time.Minute,
			[]string{"remind U0BOB,U0CAROL,S0DBA", "escalate U0LEAD"}},
		{"escalated approvers are reminded once escalated", func(r *app.Role) { r.RemindAfter, r.EscalateAfter = 20*time.Minute, 10*time.Minute },
			func(f *fixture, r app.Request) {
				f.clock.Advance(15 * time.Minute)
				f.svc.Sweep(context.Background())
				f.svc.Wait()
			},
			5 * time.Minute, []string{"escalate U0LEAD", "remind U0BOB,U0CAROL,S0DBA,U0LEAD"}},
		{"denied request", nil, func(f *fixture, r app.Request) { f.decide("U0BOB", r, false, "no") }, 30 * time.Minute, nil},
		{"approved request", func(r *app.Role) { r.ApprovalsRequired = 1 },
			func(f *fixture, r app.Request) { f.decide("U0BOB", r, true, "") }, 30 * time.Minute, nil},
		{"expired request", nil, nil, 2 * time.Hour, nil},
		{"due after request_ttl", func(r *app.Role) { r.RemindAfter, r.EscalateAfter = time.Hour, 2*time.Hour }, nil, 59 * time.Minute, nil},
		{"role without follow-ups", func(r *app.Role) { r.RemindAfter, r.EscalateAfter, r.EscalateTo = 0, 0, nil }, nil, 59 * time.Minute, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			role := remindingRole()
			if tt.role != nil {
				tt.role(&role)
			}
			f := newFixture(t, role)
			r := f.request(t)
			f.svc.Wait()
			if tt.before != nil {
				tt.before(f, r)
			}
			f.clock.Advance(tt.wait)
			if got := f.sweep(t); !slices.Equal(got, tt.want) {
				t.Errorf("thread = %q, want %q", got, tt.want)
			}
		})
	}
}

// Sweepers running at once (several replicas, or a restart overlapping) remind only once.
func TestConcurrentSweepsRemindOnce(t *testing.T) {
	f := newFixture(t, remindingRole())
	r := f.request(t)
	f.svc.Wait()
	f.clock.Advance(30 * time.Minute)
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			if err := f.svc.Sweep(context.Background()); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	want := []string{"remind U0BOB,U0CAROL,S0DBA", "escalate U0LEAD"}
	if got := f.sweep(t); !slices.Equal(got, want) {
		t.Errorf("thread = %q, want %q", got, want)
	}
	if got := f.actions(t, r); len(got) != 3 {
		t.Errorf("audit trail = %v, want created, reminded, escalated", got)
	}
}
