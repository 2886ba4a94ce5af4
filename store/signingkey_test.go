package store_test

import (
	"bytes"
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/app"
	"github.com/gatehouse/gatehouse/store"
)

func signingKey(id string, createdAt time.Time) app.SigningKey {
	return app.SigningKey{ID: id, Algorithm: "ES256", PrivateKey: []byte("der of " + id), CreatedAt: createdAt}
}

func TestSigningKeyRoundTripSurvivesReopen(t *testing.T) {
	store.ForEachBackend(t, func(t *testing.T, b store.Backend) {
		s, path := b.Open(t)
		ctx := context.Background()
		if keys, err := s.SigningKeys(ctx); err != nil || len(keys) != 0 {
			t.Fatalf("signing keys of a new database = %+v, %v; want none", keys, err)
		}
		want := signingKey("kid_a", t0)
		if err := s.AddSigningKey(ctx, want); err != nil {
			t.Fatal(err)
		}
		s.Close()
		s, err := store.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		keys, err := s.SigningKeys(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(keys) != 1 {
			t.Fatalf("signing keys = %+v, want one", keys)
		}
		got := keys[0]
		if got.ID != want.ID || got.Algorithm != want.Algorithm || !bytes.Equal(got.PrivateKey, want.PrivateKey) ||
			!got.CreatedAt.Equal(want.CreatedAt) || !got.RetiredAt.IsZero() {
			t.Errorf("signing key = %+v, want %+v", got, want)
		}
	})
}

func TestAddSigningKeyRetiresTheActiveKey(t *testing.T) {
	store.ForEachBackend(t, func(t *testing.T, b store.Backend) {
		s, _ := b.Open(t)
		ctx := context.Background()
		for i, id := range []string{"kid_a", "kid_b", "kid_c"} {
			if err := s.AddSigningKey(ctx, signingKey(id, t0.Add(time.Duration(i)*time.Hour))); err != nil {
				t.Fatal(err)
			}
		}
		keys, err := s.SigningKeys(ctx)
		if err != nil {
			t.Fatal(err)
		}
		want := []struct {
			id      string
			retired time.Time
		}{
			{"kid_c", time.Time{}},
			{"kid_b", t0.Add(2 * time.Hour)},
			{"kid_a", t0.Add(time.Hour)},
		}
		if len(keys) != len(want) {
			t.Fatalf("signing keys = %+v, want %d", keys, len(want))
		}
		for i, w := range want {
			if keys[i].ID != w.id || !keys[i].RetiredAt.Equal(w.retired) {
				t.Errorf("key %d = %s retired %v, want %s retired %v", i, keys[i].ID, keys[i].RetiredAt, w.id, w.retired)
			}
		}

		t.Run("duplicate ID changes nothing", func(t *testing.T) {
			err := s.AddSigningKey(ctx, signingKey("kid_a", t0.Add(3*time.Hour)))
			if !errors.Is(err, app.ErrConflict) {
				t.Errorf("err = %v, want ErrConflict", err)
			}
			keys, _ := s.SigningKeys(ctx)
			if len(keys) != 3 || keys[0].ID != "kid_c" || !keys[0].RetiredAt.IsZero() {
				t.Errorf("after a refused add, keys = %+v; want kid_c still active", keys)
			}
		})
		t.Run("incomplete key refused", func(t *testing.T) {
			k := signingKey("kid_d", time.Time{})
			if err := s.AddSigningKey(ctx, k); err == nil {
				t.Error("a key without CreatedAt was stored")
			}
		})
	})
}

func TestPruneSigningKeys(t *testing.T) {
	store.ForEachBackend(t, func(t *testing.T, b store.Backend) {
		s, _ := b.Open(t)
		ctx := context.Background()
		// kid_a retired at t0+1h, kid_b at t0+2h, kid_c active.
		for i, id := range []string{"kid_a", "kid_b", "kid_c"} {
			if err := s.AddSigningKey(ctx, signingKey(id, t0.Add(time.Duration(i)*time.Hour))); err != nil {
				t.Fatal(err)
			}
		}
		tests := []struct {
			name          string
			retiredBefore time.Time
			deleted       int
			left          []string
		}{
			{"none retired that early", t0.Add(time.Hour), 0, []string{"kid_c", "kid_b", "kid_a"}},
			{"the oldest", t0.Add(90 * time.Minute), 1, []string{"kid_c", "kid_b"}},
			{"never the active key", t0.Add(24 * time.Hour), 1, []string{"kid_c"}},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				n, err := s.PruneSigningKeys(ctx, tt.retiredBefore)
				if err != nil {
					t.Fatal(err)
				}
				if n != tt.deleted {
					t.Errorf("deleted %d, want %d", n, tt.deleted)
				}
				keys, _ := s.SigningKeys(ctx)
				var left []string
				for _, k := range keys {
					left = append(left, k.ID)
				}
				if !slices.Equal(left, tt.left) {
					t.Errorf("keys left = %v, want %v", left, tt.left)
				}
			})
		}
	})
}
