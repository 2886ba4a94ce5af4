package store_test

import (
	"context"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/store"
)

func TestCodeGuessesCountedPerUserAndWindow(t *testing.T) {
	store.ForEachBackend(t, func(t *testing.T, b store.Backend) {
		s, _ := b.Open(t)
		ctx := context.Background()
		const window, max = time.Minute, 3
		try := func(user string, at time.Time) (uint64, bool) {
			t.Helper()
			id, ok, err := s.TryCodeGuess(ctx, user, at, window, max)
			if err != nil {
				t.Fatal(err)
			}
			return id, ok
		}
		var last uint64
		for i := range max {
			id, ok := try("U0MALLORY", t0.Add(time.Duration(i)*time.Second))
			if !ok {
				t.Fatalf("attempt %d refused, want %d allowed", i+1, max)
			}
			last = id
		}
		if _, ok := try("U0MALLORY", t0.Add(10*time.Second)); ok {
			t.Error("an attempt past the limit was allowed")
		}
		if _, ok := try("U0ALICE", t0.Add(10*time.Second)); !ok {
			t.Error("another user's attempt was refused")
		}
		if err := s.ForgetCodeGuess(ctx, last); err != nil {
			t.Fatal(err)
		}
		if _, ok := try("U0MALLORY", t0.Add(11*time.Second)); !ok {
			t.Error("a forgotten attempt still counts")
		}
		if _, ok := try("U0MALLORY", t0.Add(window+time.Second)); !ok {
			t.Error("attempts older than the window still count")
		}
	})
}
