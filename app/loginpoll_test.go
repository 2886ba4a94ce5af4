package app_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/app"
)

// A ready poll writes nothing: the login is spent only by the write that records what it
// yields. A poll in between makes that write fail without spending it, and the next poll
// tells where the login stands; once spent, polls get ErrLoginUsed.
func TestReadyLoginSpentOnlyByItsRedemption(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	l := f.login(t, "device-code")
	if _, _, err := f.svc.ConfirmLogin(ctx, app.LoginConfirmation{LoginID: l.ID, User: "U0ALICE"}); err != nil {
		t.Fatal(err)
	}
	ready, err := f.svc.PollLogin(ctx, "cli", "device-code", 0)
	if err != nil || ready.Spend == nil || len(ready.Events) != 1 || ready.Events[0].Action != app.ActionLoginIssued {
		t.Fatalf("ready poll: %+v, %v; want a spend and one login.issued event", ready, err)
	}
	if got, _ := f.svc.Login(ctx, l.ID); got.Status != app.LoginBound {
		t.Fatalf("after a ready poll the login is %s, want still bound", got.Status)
	}
	f.clock.Advance(time.Second)
	if _, err := f.svc.PollLogin(ctx, "cli", "device-code", 0); err != nil { // another poll, also ready
		t.Fatal(err)
	}
	if err := f.store.UpdateLogin(ctx, l.ID, func(cur app.Login) (app.Login, []app.AuditEvent, error) {
		cur.LastPolledAt = f.clock.Now() // as a pending poll racing the first one would
		return cur, nil, nil
	}); err != nil {
		t.Fatal(err)
	}
	if err := f.svc.RedeemLogin(ctx, ready); !errors.Is(err, app.ErrLoginPending) {
		t.Fatalf("redeeming a login polled since: %v, want ErrLoginPending", err)
	}
	again, err := f.svc.PollLogin(ctx, "cli", "device-code", 0)
	if err != nil {
		t.Fatalf("poll after the lost redemption: %v", err)
	}
	if err := f.svc.RedeemLogin(ctx, again); err != nil {
		t.Fatalf("redeem: %v", err)
	}
	if _, err := f.svc.PollLogin(ctx, "cli", "device-code", 0); !errors.Is(err, app.ErrLoginUsed) {
		t.Errorf("poll after the redemption: %v, want ErrLoginUsed", err)
	}
	if err := f.svc.RedeemLogin(ctx, again); !errors.Is(err, app.ErrLoginPending) {
		t.Errorf("second redemption: %v, want ErrLoginPending (the next poll says it is used)", err)
	}
}
