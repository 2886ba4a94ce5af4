package app_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/app"
)

// Unknown, expired and used codes get one answer: a guesser learns nothing about codes
// that existed.
func TestBadUserCodesGetOneAnswer(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	used := f.login(t, "used")
	if _, _, err := f.svc.ConfirmLogin(ctx, app.LoginConfirmation{LoginID: used.ID, User: "U0ALICE"}); err != nil {
		t.Fatal(err)
	}
	expired := f.login(t, "expired")
	f.clock.Advance(11 * time.Minute)
	for name, code := range map[string]string{"unknown": "BCDF-GHJK", "expired": expired.UserCode, "used": used.UserCode} {
		if _, err := f.svc.FindLogin(ctx, "U0EVE", code); !errors.Is(err, app.ErrBadUserCode) {
			t.Errorf("%s code: %v, want ErrBadUserCode", name, err)
		}
	}
}

// The guessing limit is counted in the database: a second replica on the same database
// refuses a user who used up the limit on the first.
func TestCodeGuessingLimitSharedByReplicas(t *testing.T) {
	f := newFixture(t)
	other := app.NewService(app.Deps{Policy: app.Policy{ApprovalsChannel: "C0APPROVALS", Roles: []app.Role{validRole()}}.WithDefaults(),
		Store: f.store, Grants: f.store, Logins: f.store, Notifier: f.notes, Groups: groups{}, Now: f.clock.Now})
	ctx := context.Background()
	for range 5 {
		if _, err := f.svc.FindLogin(ctx, "U0EVE", "BCDF-GHJK"); !errors.Is(err, app.ErrBadUserCode) {
			t.Fatalf("guess: %v", err)
		}
	}
	if _, err := other.FindLogin(ctx, "U0EVE", "BCDF-GHJK"); !errors.Is(err, app.ErrTooManyAttempts) {
		t.Errorf("the other replica answered %v, want ErrTooManyAttempts", err)
	}
	f.clock.Advance(10 * time.Minute)
	if _, err := other.FindLogin(ctx, "U0EVE", "BCDF-GHJK"); !errors.Is(err, app.ErrBadUserCode) {
		t.Errorf("after the window: %v, want the code looked up again", err)
	}
}
