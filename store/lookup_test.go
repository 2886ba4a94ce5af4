package store_test

import (
	"context"
	"errors"
	"testing"

	"github.com/gatehouse/gatehouse/app"
	"github.com/gatehouse/gatehouse/store"
)

// An ID a person typed may hold bytes PostgreSQL cannot store (a NUL). No row has it, on
// any backend: the lookup finds nothing, as for any unknown ID, rather than failing.
func TestLookupByUnstorableKeyFindsNothing(t *testing.T) {
	store.ForEachBackend(t, func(t *testing.T, b store.Backend) {
		s, _ := b.Open(t)
		ctx := context.Background()
		const key = "grt_\x00"
		lookups := map[string]func() error{
			"request":            func() error { _, err := s.Request(ctx, key); return err },
			"grant":              func() error { _, err := s.Grant(ctx, key); return err },
			"login":              func() error { _, err := s.Login(ctx, key); return err },
			"login by user code": func() error { _, err := s.LoginByUserCode(ctx, key); return err },
			"auth request":       func() error { _, err := s.AuthRequest(ctx, key); return err },
			"update request": func() error {
				return s.UpdateRequest(ctx, key, func(r app.Request) (app.RequestChange, error) { return app.RequestChange{Request: r}, nil })
			},
		}
		for name, lookup := range lookups {
			if err := lookup(); !errors.Is(err, app.ErrNotFound) {
				t.Errorf("%s: err = %v, want ErrNotFound", name, err)
			}
		}
	})
}
