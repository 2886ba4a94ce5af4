package store_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/app"
	"github.com/gatehouse/gatehouse/store"
)

var t0 = time.Date(2026, 11, 30, 9, 0, 0, 0, time.UTC)

func pendingRequest(id string) app.Request {
	return app.Request{
		ID: id, Requester: app.User("U0ALICE"), Role: "prod-db-admin", Duration: 2 * time.Hour,
		Reason: "incident 4123", Status: app.StatusPending, ApprovalsRequired: 2,
		CreatedAt: t0, ExpiresAt: t0.Add(time.Hour),
	}
}

func created(r app.Request) app.AuditEvent {
	return app.AuditEvent{At: r.CreatedAt, Actor: r.Requester.ID, Action: app.ActionRequestCreated, Principal: r.Requester, RequestID: r.ID, Source: app.SourceSlack}
}

func TestRequestRoundTripSurvivesReopen(t *testing.T) {
	store.ForEachBackend(t, func(t *testing.T, b store.Backend) {
		s, path := b.Open(t)
		ctx := context.Background()
		want := pendingRequest("req_a")
		if err := s.CreateRequest(ctx, want, created(want)); err != nil {
			t.Fatal(err)
		}
		s.Close()
		s, err := store.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		got, err := s.Request(ctx, "req_a")
		if err != nil {
			t.Fatal(err)
		}
		if got.ID != want.ID || got.Requester != want.Requester || got.Duration != want.Duration || got.Reason != want.Reason ||
			got.Status != want.Status || !got.CreatedAt.Equal(want.CreatedAt) || !got.ExpiresAt.Equal(want.ExpiresAt) || !got.DecidedAt.IsZero() {
			t.Errorf("after reopen got %+v, want %+v", got, want)
		}
		events, err := s.AuditEvents(ctx, "req_a")
		if err != nil || len(events) != 1 || events[0].Action != app.ActionRequestCreated {
			t.Errorf("audit events = %+v, %v; want one request.created", events, err)
		}
	})
}

func TestRequestErrors(t *testing.T) {
	store.ForEachBackend(t, func(t *testing.T, b store.Backend) {
		s, _ := b.Open(t)
		ctx := context.Background()
		r := pendingRequest("req_a")
		if err := s.CreateRequest(ctx, r, created(r)); err != nil {
			t.Fatal(err)
		}
		t.Run("unknown ID", func(t *testing.T) {
			if _, err := s.Request(ctx, "req_nope"); !errors.Is(err, app.ErrNotFound) {
				t.Errorf("err = %v, want ErrNotFound", err)
			}
			err := s.UpdateRequest(ctx, "req_nope", func(r app.Request) (app.RequestChange, error) { return app.RequestChange{Request: r}, nil })
			if !errors.Is(err, app.ErrNotFound) {
				t.Errorf("update err = %v, want ErrNotFound", err)
			}
		})
		t.Run("duplicate ID", func(t *testing.T) {
			if err := s.CreateRequest(ctx, r, created(r)); !errors.Is(err, app.ErrConflict) {
				t.Errorf("err = %v, want ErrConflict", err)
			}
		})
		t.Run("update error writes nothing", func(t *testing.T) {
			boom := errors.New("boom")
			err := s.UpdateRequest(ctx, "req_a", func(r app.Request) (app.RequestChange, error) {
				return app.RequestChange{}, boom
			})
			if !errors.Is(err, boom) {
				t.Errorf("err = %v, want boom", err)
			}
			got, _ := s.Request(ctx, "req_a")
			if got.Status != app.StatusPending {
				t.Errorf("status = %s, want pending", got.Status)
			}
		})
		t.Run("one decision per approver", func(t *testing.T) {
			d := app.Decision{Approver: "U0BOB", Approve: true, At: t0}
			add := func(r app.Request) (app.RequestChange, error) {
				return app.RequestChange{Request: r, Decision: &d}, nil
			}
			if err := s.UpdateRequest(ctx, "req_a", add); err != nil {
				t.Fatal(err)
			}
			if err := s.UpdateRequest(ctx, "req_a", add); !errors.Is(err, app.ErrConflict) {
				t.Errorf("second decision by the same approver: err = %v, want ErrConflict", err)
			}
			got, _ := s.Request(ctx, "req_a")
			if len(got.Decisions) != 1 {
				t.Errorf("decisions = %+v, want one", got.Decisions)
			}
		})
	})
}

// Concurrent read-modify-write updates must all land: none may overwrite another.
func TestUpdateRequestLosesNoUpdate(t *testing.T) {
	store.ForEachBackend(t, func(t *testing.T, b store.Backend) {
		s, _ := b.Open(t)
		ctx := context.Background()
		r := pendingRequest("req_a")
		if err := s.CreateRequest(ctx, r, created(r)); err != nil {
			t.Fatal(err)
		}
		approvers := []string{"U01", "U02", "U03", "U04", "U05", "U06", "U07", "U08"}
		var wg sync.WaitGroup
		for _, a := range approvers {
			wg.Go(func() {
				err := s.UpdateRequest(ctx, "req_a", func(r app.Request) (app.RequestChange, error) {
					d := app.Decision{Approver: a, Approve: true, At: t0}
					return app.RequestChange{Request: r, Decision: &d, Events: []app.AuditEvent{{At: t0, Actor: a, Action: app.ActionDecisionApprove, RequestID: r.ID}}}, nil
				})
				if err != nil {
					t.Error(err)
				}
			})
		}
		wg.Wait()
		got, _ := s.Request(ctx, "req_a")
		if len(got.Decisions) != len(approvers) {
			t.Errorf("decisions = %d, want %d", len(got.Decisions), len(approvers))
		}
		events, _ := s.AuditEvents(ctx, "req_a")
		if len(events) != 1+len(approvers) {
			t.Errorf("audit events = %d, want %d", len(events), 1+len(approvers))
		}
	})
}

func TestGrantCreatedWithApproval(t *testing.T) {
	store.ForEachBackend(t, func(t *testing.T, b store.Backend) {
		s, _ := b.Open(t)
		ctx := context.Background()
		r := pendingRequest("req_a")
		if err := s.CreateRequest(ctx, r, created(r)); err != nil {
			t.Fatal(err)
		}
		g := app.Grant{ID: "grt_a", RequestID: "req_a", Principal: r.Requester, Role: r.Role, ApprovedBy: []string{"U0BOB", "U0CAROL"},
			CreatedAt: t0.Add(time.Minute), ExpiresAt: t0.Add(time.Minute + r.Duration), Status: app.GrantActive}
		err := s.UpdateRequest(ctx, "req_a", func(r app.Request) (app.RequestChange, error) {
			r.Status, r.DecidedAt, r.GrantID = app.StatusApproved, g.CreatedAt, g.ID
			return app.RequestChange{Request: r, Grant: &g}, nil
		})
		if err != nil {
			t.Fatal(err)
		}
		got, err := s.Grant(ctx, "grt_a")
		if err != nil {
			t.Fatal(err)
		}
		if got.Principal != r.Requester || got.Role != r.Role || len(got.ApprovedBy) != 2 || !got.ExpiresAt.Equal(g.ExpiresAt) || got.Status != app.GrantActive {
			t.Errorf("grant = %+v, want %+v", got, g)
		}
		held, _ := s.GrantsOf(ctx, r.Requester)
		if len(held) != 1 {
			t.Errorf("grants of requester = %+v, want one", held)
		}
		// The token path's hand-written read gives the same grant as gorm's, while it lasts.
		active, err := s.ActiveGrants(ctx, r.Requester, g.ExpiresAt.Add(-time.Second))
		if err != nil || len(active) != 1 || !reflect.DeepEqual(active[0], got) {
			t.Errorf("active grants = %+v, %v; want [%+v]", active, err, got)
		}
		if active, err := s.ActiveGrants(ctx, r.Requester, g.ExpiresAt); err != nil || len(active) != 0 {
			t.Errorf("active grants at expiry = %+v, %v; want none", active, err)
		}
		// A second grant for the same request is refused by the schema itself.
		g2 := g
		g2.ID = "grt_b"
		err = s.UpdateRequest(ctx, "req_a", func(r app.Request) (app.RequestChange, error) { return app.RequestChange{Request: r, Grant: &g2}, nil })
		if !errors.Is(err, app.ErrConflict) {
			t.Errorf("second grant: err = %v, want ErrConflict", err)
		}
	})
}

// The database and its WAL files are created readable by their owner only.
func TestDatabaseFilesOwnerOnly(t *testing.T) {
	path := filepath.Join(t.TempDir(), "gatehouse.db")
	s, err := store.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.Ping(context.Background()); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{path, path + "-wal", path + "-shm"} {
		info, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if perm := info.Mode().Perm(); perm != 0o600 {
			t.Errorf("%s is %s, want -rw-------", p, perm)
		}
	}
	if loose := store.ReadableByOthers(path); len(loose) != 0 {
		t.Errorf("ReadableByOthers = %v", loose)
	}
	os.Chmod(path, 0o644)
	if loose := store.ReadableByOthers(path); len(loose) != 1 {
		t.Errorf("ReadableByOthers after chmod 644 = %v, want the database named", loose)
	}
}
