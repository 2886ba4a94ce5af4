package store_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/app"
	"github.com/gatehouse/gatehouse/store"
)

// message is the approval message of request id, in a channel of its own.
func message(id string) app.Delivery {
	return app.Delivery{Kind: app.DeliverMessage, RequestID: id, Target: "C_" + id}
}

func claim(t *testing.T, s interface {
	ClaimDeliveries(context.Context, string, time.Time, time.Time, int, []string) ([]app.Delivery, error)
}, owner string, at time.Time) []app.Delivery {
	t.Helper()
	got, err := s.ClaimDeliveries(context.Background(), owner, at, at.Add(10*time.Second), 10, nil)
	if err != nil {
		t.Fatal(err)
	}
	return got
}

// A request's message is owed once however often it is asked for; asked for again while it
// is being drawn, it is drawn once more afterwards.
func TestOutboxCoalescesMessages(t *testing.T) {
	store.ForEachBackend(t, func(t *testing.T, b store.Backend) {
		s, _ := b.Open(t)
		ctx := context.Background()
		r := pendingRequest("req_a")
		if err := s.CreateRequest(ctx, r, created(r), message(r.ID), app.Delivery{Kind: app.DeliverOutcome, RequestID: r.ID, Target: "U0ALICE"}); err != nil {
			t.Fatal(err)
		}
		redraw := func() {
			t.Helper()
			err := s.UpdateRequest(ctx, r.ID, func(cur app.Request) (app.RequestChange, error) {
				return app.RequestChange{Request: cur, Deliveries: []app.Delivery{message(r.ID)}}, nil
			})
			if err != nil {
				t.Fatal(err)
			}
		}
		redraw()
		got := claim(t, s, "a", t0)
		if len(got) != 2 || got[0].Kind != app.DeliverMessage || got[1].Kind != app.DeliverOutcome {
			t.Fatalf("claimed %+v, want one message and the outcome", got)
		}
		redraw() // while it is being drawn
		if done, err := s.FinishDelivery(ctx, "a", got[0].ID, t0); err != nil || done {
			t.Fatalf("finishing a message asked for again: done %v, %v; want kept", done, err)
		}
		again := claim(t, s, "a", t0)
		if len(again) != 1 || again[0].ID != got[0].ID {
			t.Fatalf("claimed %+v, want the message again", again)
		}
		for _, d := range append(again, got[1]) {
			if done, err := s.FinishDelivery(ctx, "a", d.ID, t0); err != nil || !done {
				t.Fatalf("finish %d: %v, %v", d.ID, done, err)
			}
		}
		if depth, _, err := s.OutboxState(ctx); err != nil || depth != 0 {
			t.Errorf("outbox depth %d, %v; want empty", depth, err)
		}
	})
}

// A claim holds for its lease; after it, another process takes the work over. A retry waits
// until its time; several claimers at once each get different deliveries.
func TestOutboxLeasesAndRetries(t *testing.T) {
	store.ForEachBackend(t, func(t *testing.T, b store.Backend) {
		s, _ := b.Open(t)
		ctx := context.Background()
		for _, id := range []string{"req_a", "req_b", "req_c", "req_d"} {
			r := pendingRequest(id)
			if err := s.CreateRequest(ctx, r, created(r), message(id)); err != nil {
				t.Fatal(err)
			}
		}
		first := claim(t, s, "dead", t0)
		if len(first) != 4 || first[0].Attempts != 1 {
			t.Fatalf("claimed %+v", first)
		}
		if got := claim(t, s, "survivor", t0.Add(5*time.Second)); len(got) != 0 {
			t.Fatalf("claimed %d deliveries under a live lease", len(got))
		}
		taken := claim(t, s, "survivor", t0.Add(11*time.Second))
		if len(taken) != 4 || taken[0].Attempts != 2 {
			t.Fatalf("after the lease: %+v, want all four taken over on their second attempt", taken)
		}
		// The dead holder comes back late: a failure is no longer its own to settle (its
		// refusal would tell the survivor's next attempt that nothing landed), but what it
		// delivered is delivered.
		if err := s.RetryDelivery(ctx, "dead", taken[2].ID, t0.Add(time.Hour), "ratelimited"); err != nil {
			t.Fatal(err)
		}
		if done, err := s.FinishDelivery(ctx, "dead", taken[1].ID, t0.Add(12*time.Second)); err != nil || !done {
			t.Fatalf("a late holder's delivery: %v, %v; want it done", done, err)
		}
		if err := s.RetryDelivery(ctx, "survivor", taken[0].ID, t0.Add(time.Minute), "http_503"); err != nil {
			t.Fatal(err)
		}
		if got := claim(t, s, "survivor", t0.Add(15*time.Second)); len(got) != 0 {
			t.Fatalf("claimed a delivery before its retry time: %+v", got)
		}
		retried := claim(t, s, "survivor", t0.Add(time.Minute)) // the others' leases ran out too; the one delivered is gone
		if len(retried) != 3 || retried[0].ID != taken[0].ID || retried[0].LastError != "http_503" {
			t.Fatalf("at its retry time: %+v", retried)
		}
		// Its holder dies without reporting back: the next attempt must not take that attempt
		// for refused like the one before (it may have reached Slack), so it knows of none.
		again := claim(t, s, "survivor", t0.Add(time.Minute+11*time.Second))
		if len(again) != 3 || again[0].ID != taken[0].ID || again[0].LastError != "" || again[0].Attempts != 4 {
			t.Fatalf("after a holder died mid-attempt: %+v, want the fourth attempt with no last error", again)
		}

		// Four claimers at once, in rounds: a row one of them is claiming is passed over by
		// the others (on PostgreSQL), so a round may leave some for the next; none is ever
		// claimed twice, and all are claimed within a few rounds.
		var mu sync.Mutex
		seen := map[int64]int{}
		for round := 0; round < 3 && len(seen) < 3; round++ {
			var wg sync.WaitGroup
			for _, owner := range []string{"p1", "p2", "p3", "p4"} {
				wg.Go(func() {
					got, err := s.ClaimDeliveries(ctx, owner, t0.Add(time.Hour), t0.Add(time.Hour+10*time.Second), 2, nil)
					if err != nil && !errors.Is(err, app.ErrBusy) {
						t.Error(err)
					}
					mu.Lock()
					for _, d := range got {
						seen[d.ID]++
					}
					mu.Unlock()
				})
			}
			wg.Wait()
		}
		for id, n := range seen {
			if n != 1 {
				t.Errorf("delivery %d claimed %d times", id, n)
			}
		}
		if len(seen) != 3 {
			t.Errorf("%d deliveries claimed by four claimers in three rounds, want all 3", len(seen))
		}
	})
}

// Deliveries to one target are claimed one at a time, oldest first, by any process: while
// one process holds a target's delivery, another claims none for that target (it used to
// claim the next one, so two replicas sent to one person or thread at once, out of order);
// a target the claimer says is busy is passed over.
func TestOutboxClaimsOnePerTarget(t *testing.T) {
	store.ForEachBackend(t, func(t *testing.T, b store.Backend) {
		s, _ := b.Open(t)
		ctx := context.Background()
		for _, id := range []string{"req_a", "req_b", "req_c"} {
			r := pendingRequest(id)
			dm := app.Delivery{Kind: app.DeliverOutcome, RequestID: id, Target: "U0ALICE"}
			if err := s.CreateRequest(ctx, r, created(r), dm); err != nil {
				t.Fatal(err)
			}
		}
		var order []string
		for range 3 {
			got := claim(t, s, "a", t0)
			if len(got) != 1 {
				t.Fatalf("claimed %d deliveries to one user at once, want 1", len(got))
			}
			order = append(order, got[0].RequestID)
			if busy, err := s.ClaimDeliveries(ctx, "a", t0, t0.Add(time.Second), 10, []string{"U0ALICE"}); err != nil || len(busy) != 0 {
				t.Fatalf("claimed %+v for a busy target, %v", busy, err)
			}
			if other := claim(t, s, "another replica", t0); len(other) != 0 {
				t.Fatalf("another replica claimed %+v while %s is in flight to the same user", other, got[0].RequestID)
			}
			if _, err := s.FinishDelivery(ctx, "a", got[0].ID, t0); err != nil {
				t.Fatal(err)
			}
		}
		if order[0] != "req_a" || order[1] != "req_b" || order[2] != "req_c" {
			t.Errorf("delivered in order %q, want as owed", order)
		}
	})
}
