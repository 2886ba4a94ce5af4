package store_test

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/app"
	"github.com/gatehouse/gatehouse/store"
)

func TestLoginUpdatedByVersion(t *testing.T) {
	store.ForEachBackend(t, func(t *testing.T, b store.Backend) {
		s, _ := b.Open(t)
		ctx := context.Background()
		l := app.Login{ID: "lgn_1", ClientID: "kubectl", Scopes: []string{"openid"}, Roles: []string{"prod-db-admin"}, UserCode: "BCDF-GHJK",
			SecretHash: "sh", Status: app.LoginPending, CreatedAt: t0, ExpiresAt: t0.Add(10 * time.Minute)}
		if err := s.CreateLogin(ctx, l); err != nil {
			t.Fatal(err)
		}
		taken := l
		taken.ID, taken.SecretHash = "lgn_2", "sh2"
		if err := s.CreateLogin(ctx, taken); !errors.Is(err, app.ErrConflict) {
			t.Errorf("user code taken twice: err = %v, want ErrConflict", err)
		}
		// Concurrent binds: every update lands, none overwrites another.
		const polls = 8
		done := make(chan error, polls)
		for i := range polls {
			go func() {
				done <- s.UpdateLogin(ctx, "lgn_1", func(l app.Login) (app.Login, []app.AuditEvent, error) {
					l.RequestIDs = append(l.RequestIDs, "req_"+string(rune('a'+i)))
					return l, []app.AuditEvent{{At: t0, Actor: "U0ALICE", Action: app.ActionRequestCreated}}, nil
				})
			}()
		}
		for range polls {
			if err := <-done; err != nil {
				t.Error(err)
			}
		}
		for _, find := range []func() (app.Login, error){
			func() (app.Login, error) { return s.Login(ctx, "lgn_1") },
			func() (app.Login, error) { return s.LoginByUserCode(ctx, "BCDF-GHJK") },
			func() (app.Login, error) { return s.LoginBySecret(ctx, "sh") },
		} {
			got, err := find()
			if err != nil || got.ID != "lgn_1" || len(got.RequestIDs) != polls || !slices.Equal(got.Roles, l.Roles) {
				t.Errorf("login = %+v, %v; want %d request IDs", got, err, polls)
			}
		}
		if _, err := s.LoginBySecret(ctx, ""); !errors.Is(err, app.ErrNotFound) {
			t.Errorf("empty secret: err = %v, want ErrNotFound", err)
		}
	})
}
