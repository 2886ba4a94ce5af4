package app

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"
)

// PollLogin answers a client waiting for its sign-in — a device-flow client polling with
// its device code, or a sign-in page with its browser's cookie. Errors: ErrNotFound
// (unknown code or another client's), ErrSlowDown, ErrLoginPending, ErrLoginDenied,
// ErrLoginExpired, ErrLoginUsed; the outcome's Reason says more. A poll that is not ready
// records when it came (for ErrSlowDown) and any denial. A ready one — the login bound and
// every requested role with an active grant — writes nothing: its outcome carries the
// Spend that redeems the login and the events that go with it, which the caller records in
// the same write as what it hands out (Issuance.Login for tokens, RedeemLogin otherwise), so
// that a login yields once and never without that record.
func (s *Service) PollLogin(ctx context.Context, clientID, secret string, interval time.Duration) (LoginOutcome, error) {
	l, err := s.Logins.LoginBySecret(ctx, HashSecret(secret))
	if err != nil {
		return LoginOutcome{}, err
	}
	if l.ClientID != clientID {
		return LoginOutcome{}, ErrNotFound
	}
	// Work out, before the write, whether the approvals are there; the write then only
	// checks that the login did not move meanwhile.
	outcome := LoginOutcome{Login: l, Reason: "waiting for you to run /access login " + l.UserCode + " in Slack"}
	verdict := ErrLoginPending
	if l.Status == LoginBound {
		p, err := s.loginProgress(ctx, l)
		if err != nil {
			return LoginOutcome{}, err
		}
		outcome.Reason, outcome.Grants, verdict = p.reason, p.grants, p.verdict
	}
	now := s.Now()
	if verdict == nil {
		if err := pollAllowed(l, now, interval); err != nil {
			return outcome, err
		}
		outcome.Spend = &LoginSpend{LoginID: l.ID, At: now, PolledBefore: now.Add(-interval)}
		outcome.Events = loginIssuedEvents(l, outcome.Grants, now)
		return outcome, nil
	}
	err = s.Logins.UpdateLogin(ctx, l.ID, func(cur Login) (Login, []AuditEvent, error) {
		if err := pollAllowed(cur, now, interval); err != nil {
			if errors.Is(err, ErrLoginDenied) {
				outcome.Reason = cur.DenyReason
			}
			return cur, nil, err
		}
		cur.LastPolledAt = now
		var events []AuditEvent
		if cur.Status == l.Status && (verdict == ErrLoginDenied || verdict == ErrLoginExpired) {
			cur.Status, cur.DenyReason = LoginDenied, outcome.Reason
			events = []AuditEvent{{At: now, Actor: SystemActor, Action: ActionLoginDenied, Principal: cur.Subject,
				Reason: outcome.Reason, Source: SourceOIDC}}
		} else if cur.Status != l.Status {
			verdict = ErrLoginPending // it moved on meanwhile; the next poll will see where to
		}
		outcome.Login = cur
		return cur, events, nil
	})
	if err != nil {
		return outcome, err
	}
	return outcome, verdict
}

// pollAllowed says whether a poll of l at now may go on: not once the login yielded, was
// denied or expired, nor sooner than interval after the last poll.
func pollAllowed(l Login, now time.Time, interval time.Duration) error {
	switch {
	case l.Status == LoginIssued:
		return ErrLoginUsed
	case l.Status == LoginDenied:
		return ErrLoginDenied
	case !now.Before(l.ExpiresAt):
		return ErrLoginExpired
	case now.Sub(l.LastPolledAt) < interval:
		return ErrSlowDown
	}
	return nil
}

// loginIssuedEvents are the audit events of a login yielding: one per grant, or one.
func loginIssuedEvents(l Login, grants []Grant, now time.Time) []AuditEvent {
	return perGrant(AuditEvent{At: now, Actor: l.ClientID, Action: ActionLoginIssued, Principal: l.Subject,
		Reason: "tokens for client " + l.ClientID, Source: SourceOIDC}, grants)
}

// RedeemLogin spends a ready login (see PollLogin) on its own, for a caller that hands out
// nothing that must be recorded with it: a browser sign-in, which goes on to its code.
// ErrLoginPending if another poll moved it meanwhile: the next poll says where it stands
// (spent by that poll: ErrLoginUsed).
func (s *Service) RedeemLogin(ctx context.Context, outcome LoginOutcome) error {
	err := s.Logins.SpendLogin(ctx, *outcome.Spend, outcome.Events)
	if errors.Is(err, ErrConflict) {
		return ErrLoginPending
	}
	if err == nil {
		l := outcome.Login
		s.Log.Info("login completed", "login_id", l.ID, "client_id", l.ClientID, "subject", l.Subject.ID, "roles", l.Roles)
	}
	return err
}

// progress is where a bound login stands: verdict nil with the grants when tokens may be
// issued, ErrLoginDenied or ErrLoginExpired when a request ended without approval, else
// ErrLoginPending.
type progress struct {
	verdict error
	reason  string // in words for the person at the client
	grants  []Grant
}

// loginProgress looks at a bound login's requests and grants.
func (s *Service) loginProgress(ctx context.Context, l Login) (progress, error) {
	var waiting []string
	for _, id := range l.RequestIDs {
		r, err := s.Store.Request(ctx, id)
		if err != nil {
			return progress{}, err
		}
		switch r.Status {
		case StatusDenied:
			d := r.Decisions[len(r.Decisions)-1]
			return progress{ErrLoginDenied, fmt.Sprintf("request %s for %s was denied by %s: %s", r.ID, r.Role, d.Approver, d.Comment), nil}, nil
		case StatusCancelled:
			return progress{ErrLoginDenied, fmt.Sprintf("request %s for %s was cancelled", r.ID, r.Role), nil}, nil
		case StatusExpired:
			return progress{ErrLoginExpired, fmt.Sprintf("request %s for %s expired before it was decided", r.ID, r.Role), nil}, nil
		case StatusPending:
			if r.timeUp(s.Now()) {
				return progress{ErrLoginExpired, fmt.Sprintf("request %s for %s expired before it was decided", r.ID, r.Role), nil}, nil
			}
			role, _ := s.Policy.Role(r.Role)
			waiting = append(waiting, fmt.Sprintf("by %s of %s (%d of %d approvals)", strings.Join(requestApprovers(r, role), ", "),
				r.Role, len(r.Approvers()), r.ApprovalsRequired))
		}
	}
	if len(waiting) > 0 {
		return progress{ErrLoginPending, "waiting for approval " + strings.Join(waiting, "; "), nil}, nil
	}
	grants, err := s.GrantsForToken(ctx, l.Subject, l.Roles)
	if errors.Is(err, ErrNoActiveGrant) {
		return progress{ErrLoginDenied, "a grant ended before the token was issued: " + err.Error(), nil}, nil
	}
	if err != nil {
		return progress{}, err
	}
	return progress{nil, "approved", grants}, nil
}

// Login returns a login by ID.
func (s *Service) Login(ctx context.Context, id string) (Login, error) {
	return s.Logins.Login(ctx, id)
}
