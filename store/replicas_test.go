package store_test

import (
	"context"
	"database/sql"
	"slices"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // the driver behind gorm's postgres dialector

	"github.com/gatehouse/gatehouse/app"
	"github.com/gatehouse/gatehouse/store"
)

// A replica claiming owed work passes over the rows another replica's claim holds at that
// moment, taking the rest at once, instead of waiting for that claim to commit (PostgreSQL:
// FOR UPDATE SKIP LOCKED; SQLite serialises its writers).
func TestClaimsPassOverRowsAnotherReplicaHolds(t *testing.T) {
	b := store.Backends[1] // postgres
	s, database := b.Open(t)
	ctx := context.Background()
	for _, id := range []string{"req_a", "req_b"} {
		r := pendingRequest(id)
		if err := s.CreateRequest(ctx, r, created(r), message(id)); err != nil {
			t.Fatal(err)
		}
	}
	other, err := sql.Open("pgx", database)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	tx, err := other.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()
	// Another replica is in the middle of claiming req_a's message.
	if _, err := tx.ExecContext(ctx, "SELECT id FROM outbox WHERE request_id = 'req_a' FOR UPDATE"); err != nil {
		t.Fatal(err)
	}
	cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	got, err := s.ClaimDeliveries(cctx, "survivor", t0, t0.Add(10*time.Second), 10, nil)
	if err != nil {
		t.Fatalf("claim waited for the other replica's claim: %v", err)
	}
	if len(got) != 1 || got[0].RequestID != "req_b" {
		t.Fatalf("claimed %+v, want req_b's message only", got)
	}
	if err := tx.Rollback(); err != nil { // the other claim gave up: its row is free again
		t.Fatal(err)
	}
	if again := claim(t, s, "survivor", t0); len(again) != 1 || again[0].RequestID != "req_a" {
		t.Fatalf("claimed %+v once the row was free, want req_a's message", again)
	}
}

// Who opened their App Home is kept in the database, for every replica.
func TestHomeViewersAreShared(t *testing.T) {
	store.ForEachBackend(t, func(t *testing.T, b store.Backend) {
		s, database := b.Open(t)
		ctx := context.Background()
		for _, u := range []string{"U0BOB", "U0CAROL", "U0BOB"} {
			if err := s.AddHomeViewer(ctx, u, t0); err != nil {
				t.Fatal(err)
			}
		}
		replica, err := store.Open(database)
		if err != nil {
			t.Fatal(err)
		}
		defer replica.Close()
		got, err := replica.HomeViewers(ctx, []string{"U0ALICE", "U0BOB", "U0CAROL"})
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(got, []string{"U0BOB", "U0CAROL"}) {
			t.Errorf("viewers %q, want U0BOB and U0CAROL", got)
		}
		if none, err := replica.HomeViewers(ctx, nil); err != nil || len(none) != 0 {
			t.Errorf("viewers among nobody: %q, %v", none, err)
		}
	})
}

// An action Slack delivers to two replicas at the same moment, or twice within one burst, is
// new to exactly one of them, once; the rest of each burst is kept as usual.
func TestActionsRecordedOnceAcrossReplicas(t *testing.T) {
	store.ForEachBackend(t, func(t *testing.T, b store.Backend) {
		s, database := b.Open(t)
		replica, err := store.Open(database)
		if err != nil {
			t.Fatal(err)
		}
		defer replica.Close()
		ctx := context.Background()
		action := func(key string) app.Action {
			return app.Action{Key: key, Kind: "slash_commands", Payload: []byte(`{}`), ReceivedAt: t0}
		}
		bursts := [][]app.Action{
			{action("t1"), action("t2"), action("t2"), action("t3")},
			{action("t3"), action("t4"), action("t1")},
		}
		fresh := make([][]bool, 2)
		errs := make(chan error, 2)
		for i, db := range []*store.Store{s, replica} {
			go func() {
				var err error
				fresh[i], err = db.RecordActions(ctx, bursts[i], "replica", t0.Add(time.Minute))
				errs <- err
			}()
		}
		for range 2 {
			if err := <-errs; err != nil {
				t.Fatalf("a replica's burst failed: %v", err)
			}
		}
		count := map[string]int{}
		for i, burst := range bursts {
			for j, a := range burst {
				if fresh[i][j] {
					count[a.Key]++
				}
			}
		}
		for _, k := range []string{"t1", "t2", "t3", "t4"} {
			if count[k] != 1 {
				t.Errorf("action %s new %d times, want once (fresh %v)", k, count[k], fresh)
			}
		}
	})
}
