package app_test

import (
	"context"
	"errors"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/app"
	"github.com/gatehouse/gatehouse/store"
)

// recorder is a Notifier that remembers what people would have been told.
type recorder struct {
	mu      sync.Mutex
	posted  []app.Request
	told    []app.Request
	postErr error
	thread  []string    // thread replies: "remind U0BOB,S0DBA" or "escalate U0LEAD"
	alarms  []app.Grant // break-glass notices posted
}

func (r *recorder) PostRequest(_ context.Context, req app.Request, g *app.Grant) (app.MessageRef, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if g != nil {
		r.alarms = append(r.alarms, *g)
		return app.MessageRef{Channel: "C0APPROVALS", TS: "1.000" + req.ID}, nil
	}
	if r.postErr != nil {
		return app.MessageRef{}, r.postErr
	}
	r.posted = append(r.posted, req)
	return app.MessageRef{Channel: "C0APPROVALS", TS: "1.000" + req.ID}, nil
}
func (r *recorder) FindRequestMessage(context.Context, app.Request) (app.MessageRef, error) {
	return app.MessageRef{}, app.ErrNotFound
}
func (r *recorder) UpdateRequest(context.Context, app.Request, *app.Grant) error   { return nil }
func (r *recorder) NotifyPosted(context.Context, app.Request, string) error        { return nil }
func (r *recorder) NotifyStuck(context.Context, app.Request, string, string) error { return nil }
func (r *recorder) Sent(context.Context, app.MessageRef, string) (bool, error)     { return false, nil }
func (r *recorder) RemindApprovers(_ context.Context, _ app.Request, approvers []string, _ string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.thread = append(r.thread, "remind "+strings.Join(approvers, ","))
	return nil
}
func (r *recorder) AnnounceEscalation(_ context.Context, _ app.Request, approvers []string, _ string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.thread = append(r.thread, "escalate "+strings.Join(approvers, ","))
	return nil
}
func (r *recorder) RefreshHomes(context.Context, []string, func(string) (app.Overview, error)) error {
	return nil
}
func (r *recorder) NotifyRequester(_ context.Context, req app.Request, _ *app.Grant, _ string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.told = append(r.told, req)
	return nil
}

type groups map[string][]string

func (g groups) GroupMembers(_ context.Context, id string) (app.Members, error) {
	return app.Members{IDs: g[id]}, nil
}

type clock struct{ now atomic.Int64 }

func (c *clock) Now() time.Time          { return time.Unix(0, c.now.Load()).UTC() }
func (c *clock) Advance(d time.Duration) { c.now.Add(int64(d)) }
func newClock(t time.Time) *clock        { c := &clock{}; c.now.Store(t.UnixNano()); return c }
func alice() app.Principal               { return app.User("U0ALICE") }
func input(role, d, reason string) app.RequestInput {
	return app.RequestInput{Role: role, Duration: d, Reason: reason}
}

type fixture struct {
	svc   *app.Service
	store *store.Store
	clock *clock
	notes *recorder
}

func newFixture(t *testing.T, roles ...app.Role) *fixture {
	t.Helper()
	db, err := store.Open(filepath.Join(t.TempDir(), "gatehouse.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	if len(roles) == 0 {
		r := validRole()
		r.Approvers = []string{"U0BOB", "U0CAROL", "U0ALICE", "S0DBA"}
		r.ApprovalsRequired = 2
		roles = []app.Role{r}
	}
	f := &fixture{store: db, clock: newClock(time.Date(2026, 11, 30, 9, 0, 0, 0, time.UTC)), notes: &recorder{}}
	f.svc = app.NewService(app.Deps{
		Policy: app.Policy{ApprovalsChannel: "C0APPROVALS", Roles: roles}.WithDefaults(),
		Store:  db, Grants: db, Logins: db, Outbox: db, Notifier: f.notes, Groups: groups{"S0DBA": {"U0DAVE"}}, Now: f.clock.Now,
	})
	t.Cleanup(f.svc.Wait)
	return f
}

func (f *fixture) request(t *testing.T) app.Request {
	t.Helper()
	r, err := f.svc.RequestAccess(context.Background(), alice(), input("prod-db-admin", "2h", "incident 4123"), app.SourceSlack)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// login starts a device-flow login of client cli for openid, good for ten minutes, whose
// device code is secret.
func (f *fixture) login(t *testing.T, secret string) app.Login {
	t.Helper()
	l, err := f.svc.StartLogin(context.Background(), app.LoginStart{ClientID: "cli", Scopes: []string{"openid"}, Secret: secret, Lifetime: 10 * time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func (f *fixture) decide(user string, r app.Request, approve bool, comment string) (app.Request, error) {
	return f.svc.Decide(context.Background(), app.DecisionInput{RequestID: r.ID, Approver: user, Approve: approve, Comment: comment, Source: app.SourceSlack})
}

func TestRequestAccessRejectsBadInput(t *testing.T) {
	tests := []struct {
		name      string
		in        app.RequestInput
		field     string
		substring string
	}{
		{"unknown role", input("prod-db-root", "1h", "x"), app.FieldRole, `no role called "prod-db-root"`},
		{"mention as role", input("<@U0BOB|bob>", "1h", "x"), app.FieldRole, "no role called"},
		{"empty role", input(" ", "1h", "x"), app.FieldRole, "Pick a role"},
		{"zero", input("prod-db-admin", "0h", "x"), app.FieldDuration, "must be positive"},
		{"negative", input("prod-db-admin", "-1h", "x"), app.FieldDuration, "must be positive"},
		{"beyond max", input("prod-db-admin", "5h", "x"), app.FieldDuration, "at most 4h"},
		{"huge", input("prod-db-admin", "99999h", "x"), app.FieldDuration, "at most 4h"},
		{"overflow", input("prod-db-admin", "9999999999999h", "x"), app.FieldDuration, "not a duration"},
		{"days", input("prod-db-admin", "1d", "x"), app.FieldDuration, "Go syntax"},
		{"empty reason", input("prod-db-admin", "1h", "   "), app.FieldReason, "reason is required"},
		{"long reason", input("prod-db-admin", "1h", strings.Repeat("a", 5000)), app.FieldReason, "1000 characters (this is 5000)"},
		{"bidi override", input("prod-db-admin", "1h", "fix \u202eevil"), app.FieldReason, "U+202E"},
		{"zero-width space", input("prod-db-admin", "1h", "a\u200bb"), app.FieldReason, "invisible"},
		{"control character", input("prod-db-admin", "1h", "a\x07b"), app.FieldReason, "control"},
		{"invalid UTF-8", input("prod-db-admin", "1h", "a\xffb"), app.FieldReason, "UTF-8"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t)
			_, err := f.svc.RequestAccess(context.Background(), alice(), tt.in, app.SourceSlack)
			var in *app.InputError
			if !errors.As(err, &in) {
				t.Fatalf("err = %v, want an InputError", err)
			}
			if in.Problems[0].Field != tt.field || !strings.Contains(in.Problems[0].Message, tt.substring) {
				t.Errorf("problem = %+v, want field %s mentioning %q", in.Problems[0], tt.field, tt.substring)
			}
			f.svc.Wait()
			if len(f.notes.posted) != 0 {
				t.Errorf("bad input was posted to approvers: %+v", f.notes.posted)
			}
		})
	}
	t.Run("emoji and accents are fine", func(t *testing.T) {
		f := newFixture(t)
		r, err := f.svc.RequestAccess(context.Background(), alice(), input("Prod-DB-Admin", "", "🧑‍💻 réparer l'incident"), app.SourceSlack)
		if err != nil || r.Duration != time.Hour || r.Role != "prod-db-admin" {
			t.Errorf("got %+v, %v; want the role's default duration", r, err)
		}
	})
}

func TestQuorumCreatesGrantFromApproval(t *testing.T) {
	f := newFixture(t)
	r := f.request(t)
	f.clock.Advance(10 * time.Minute) // the grant's time counts from approval, not from the request
	after, err := f.decide("U0BOB", r, true, "")
	if err != nil || after.Status != app.StatusPending || len(after.Approvers()) != 1 {
		t.Fatalf("after one approval: %+v, %v; want pending with 1 approval", after, err)
	}
	approvedAt := f.clock.Now().Add(time.Minute)
	f.clock.Advance(time.Minute)
	after, err = f.decide("U0DAVE", r, true, "via group") // U0DAVE approves through the S0DBA group
	if err != nil || after.Status != app.StatusApproved {
		t.Fatalf("after quorum: %+v, %v; want approved", after, err)
	}
	g, err := f.store.Grant(context.Background(), after.GrantID)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(g.ApprovedBy, []string{"U0BOB", "U0DAVE"}) || g.Principal != alice() || !g.CreatedAt.Equal(approvedAt) ||
		!g.ExpiresAt.Equal(approvedAt.Add(2*time.Hour)) || g.Status != app.GrantActive {
		t.Errorf("grant = %+v", g)
	}
	f.svc.Wait()
	if len(f.notes.told) != 1 || f.notes.told[0].Status != app.StatusApproved {
		t.Errorf("requester was told %+v, want one approval", f.notes.told)
	}
	events, _ := f.store.AuditEvents(context.Background(), r.ID)
	var actions []string
	for _, e := range events {
		actions = append(actions, e.Action)
	}
	want := []string{app.ActionRequestCreated, app.ActionDecisionApprove, app.ActionDecisionApprove, app.ActionRequestApproved, app.ActionGrantCreated}
	if !slices.Equal(actions, want) {
		t.Errorf("audit trail = %v, want %v", actions, want)
	}
}

func TestDecisionRefusals(t *testing.T) {
	f := newFixture(t)
	r := f.request(t)
	tests := []struct {
		name    string
		user    string
		approve bool
		comment string
		want    error
	}{
		{"requester who is also an approver", "U0ALICE", true, "", app.ErrSelfApproval},
		{"not an approver", "U0MALLORY", true, "", app.ErrNotApprover},
		{"not an approver denying", "U0MALLORY", false, "no", app.ErrNotApprover},
		{"deny without reason", "U0BOB", false, "  ", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := f.decide(tt.user, r, tt.approve, tt.comment)
			var in *app.InputError
			if tt.want == nil && !errors.As(err, &in) || tt.want != nil && !errors.Is(err, tt.want) {
				t.Errorf("err = %v, want %v", err, tt.want)
			}
			got, _ := f.store.Request(context.Background(), r.ID)
			if got.Status != app.StatusPending || len(got.Decisions) != 0 {
				t.Errorf("request changed: %+v", got)
			}
		})
	}
	t.Run("same approver twice counts once", func(t *testing.T) {
		if _, err := f.decide("U0BOB", r, true, ""); err != nil {
			t.Fatal(err)
		}
		after, err := f.decide("U0BOB", r, true, "")
		if !errors.Is(err, app.ErrAlreadyDecided) || len(after.Approvers()) != 1 || after.Status != app.StatusPending {
			t.Errorf("second click: %+v, %v", after, err)
		}
	})
	t.Run("deny ends the request", func(t *testing.T) {
		after, err := f.decide("U0CAROL", r, false, "not during the freeze")
		if err != nil || after.Status != app.StatusDenied {
			t.Fatalf("deny: %+v, %v", after, err)
		}
		if _, err := f.decide("U0DAVE", r, true, ""); !errors.Is(err, app.ErrNotPending) {
			t.Errorf("approving a denied request: err = %v, want ErrNotPending", err)
		}
	})
}

func TestPendingRequestExpires(t *testing.T) {
	f := newFixture(t)
	r := f.request(t)
	f.svc.Wait()               // posted
	f.clock.Advance(time.Hour) // request_ttl
	after, err := f.decide("U0BOB", r, true, "")
	if !errors.Is(err, app.ErrNotPending) || after.Status != app.StatusExpired {
		t.Fatalf("late approval: %+v, %v; want expired", after, err)
	}
	if after.GrantID != "" {
		t.Error("an expired request got a grant")
	}
}

// Approvers clicking at the same instant must yield exactly one grant.
func TestConcurrentApprovalsGrantOnce(t *testing.T) {
	role := validRole()
	role.Approvers = []string{"U01", "U02", "U03", "U04", "U05", "U06"}
	for i := range 20 {
		f := newFixture(t, role)
		r := f.request(t)
		var wg sync.WaitGroup
		var approved atomic.Int32
		for _, a := range role.Approvers {
			wg.Go(func() {
				after, err := f.decide(a, r, true, "")
				if err == nil && after.Status == app.StatusApproved {
					approved.Add(1)
				} else if err != nil && !errors.Is(err, app.ErrNotPending) {
					t.Errorf("round %d: %s: %v", i, a, err)
				}
			})
		}
		wg.Wait()
		got, _ := f.store.Request(context.Background(), r.ID)
		grants, _ := f.store.GrantsOf(context.Background(), alice())
		if approved.Load() != 1 || len(grants) != 1 || len(got.Decisions) != 1 {
			t.Fatalf("round %d: %d approvals succeeded, %d grants, %d decisions; want 1 each", i, approved.Load(), len(grants), len(got.Decisions))
		}
	}
}

// Slack being unreachable never cancels a request: it stays saved, does not expire while its
// approvers cannot see it, and is posted once Slack answers, its request_ttl counted from then.
func TestUnpostedRequestWaitsForSlack(t *testing.T) {
	f := newFixture(t)
	f.notes.postErr = &app.DeliveryError{Method: "chat.postMessage", Code: "http_503"}
	r := f.request(t)
	f.svc.Wait()
	f.clock.Advance(2 * time.Hour) // past request_ttl from filing
	if err := f.svc.Sweep(context.Background()); err != nil {
		t.Fatal(err)
	}
	f.svc.Wait()
	got, _ := f.store.Request(context.Background(), r.ID)
	if got.Status != app.StatusPending || len(f.notes.told) != 0 || len(f.notes.posted) != 0 {
		t.Fatalf("while Slack fails: status %s, told %d, posted %d; want pending, nothing said", got.Status, len(f.notes.told), len(f.notes.posted))
	}
	f.notes.mu.Lock()
	f.notes.postErr = nil
	f.notes.mu.Unlock()
	f.clock.Advance(10 * time.Minute) // past any backoff
	f.svc.Wait()
	got, _ = f.store.Request(context.Background(), r.ID)
	if got.Message.TS == "" || len(f.notes.posted) != 1 || !got.ExpiresAt.Equal(f.clock.Now().Add(time.Hour)) {
		t.Fatalf("after Slack came back: %+v, posted %d; want posted once, open for request_ttl from now", got, len(f.notes.posted))
	}
	if _, err := f.decide("U0BOB", r, true, ""); err != nil {
		t.Errorf("deciding the posted request: %v", err)
	}
}

// A burst of guesses at once stays within the limit.
func TestCodeGuessingLimitHoldsUnderABurst(t *testing.T) {
	f := newFixture(t)
	var wg sync.WaitGroup
	var notFound, limited atomic.Int32
	for range 12 {
		wg.Go(func() {
			_, err := f.svc.FindLogin(context.Background(), "U0EVE", "BCDF-GHJK")
			switch {
			case errors.Is(err, app.ErrBadUserCode):
				notFound.Add(1)
			case errors.Is(err, app.ErrTooManyAttempts):
				limited.Add(1)
			default:
				t.Errorf("err = %v", err)
			}
		})
	}
	wg.Wait()
	if notFound.Load() != 5 || limited.Load() != 7 {
		t.Errorf("%d codes looked up, %d refused; want 5 and 7", notFound.Load(), limited.Load())
	}
}

// A refresh keeps the roles whose grants are still active and drops the others; with none
// left it fails.
func TestRefreshGrantsDropsEndedRoles(t *testing.T) {
	db := validRole()
	db.Approvers = []string{"U0BOB"}
	ops := db
	ops.Name = "ops"
	f := newFixture(t, db, ops)
	ctx := context.Background()
	grantOf := func(role string) app.Grant {
		r, err := f.svc.RequestAccess(ctx, alice(), input(role, "1h", "work"), app.SourceSlack)
		if err != nil {
			t.Fatal(err)
		}
		after, err := f.decide("U0BOB", r, true, "")
		if err != nil {
			t.Fatal(err)
		}
		g, _ := f.store.Grant(ctx, after.GrantID)
		return g
	}
	dbGrant, opsGrant := grantOf("prod-db-admin"), grantOf("ops")
	scopes := []string{"openid", "role:prod-db-admin", "role:ops"}

	if _, err := f.svc.RevokeGrant(ctx, dbGrant.ID, "U0ALICE", "done", app.SourceSlack); err != nil {
		t.Fatal(err)
	}
	kept, grants, err := f.svc.RefreshGrants(ctx, alice(), scopes)
	if err != nil || !slices.Equal(kept, []string{"openid", "role:ops"}) || len(grants) != 1 || grants[0].ID != opsGrant.ID {
		t.Fatalf("after revoking one grant: %v %v %v", kept, grants, err)
	}
	f.clock.Advance(time.Hour) // the other one ends too
	if _, _, err := f.svc.RefreshGrants(ctx, alice(), scopes); !errors.Is(err, app.ErrNoActiveGrant) {
		t.Errorf("with no grant left: err = %v, want ErrNoActiveGrant", err)
	}
	if kept, _, err := f.svc.RefreshGrants(ctx, alice(), []string{"openid"}); err != nil || len(kept) != 1 {
		t.Errorf("a session without roles: %v %v", kept, err)
	}
}
