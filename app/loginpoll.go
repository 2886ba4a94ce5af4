package app

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"
)

// PollLogin answers a client waiting for its sign-in — a device-flow client polling with
// its device code, or a sign-in page with its browser's cookie. It succeeds once —
// when the login is bound and every requested role has an active grant — and marks the
// code spent in the same conditional write, so a replay gets ErrLoginUsed. Errors:
// ErrNotFound (unknown code or another client's), ErrSlowDown, ErrLoginPending,
// ErrLoginDenied, ErrLoginExpired, ErrLoginUsed; the outcome's Reason says more.
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
	var events []AuditEvent
	err = s.Logins.UpdateLogin(ctx, l.ID, func(cur Login) (Login, []AuditEvent, error) {
		events = nil
		switch {
		case cur.Status == LoginIssued:
			return cur, nil, ErrLoginUsed
		case cur.Status == LoginDenied:
			outcome.Reason = cur.DenyReason
			return cur, nil, ErrLoginDenied
		case !now.Before(cur.ExpiresAt):
			return cur, nil, ErrLoginExpired
		case now.Sub(cur.LastPolledAt) < interval:
			return cur, nil, ErrSlowDown
		}
		cur.LastPolledAt = now
		if cur.Status == l.Status { // bound logins get their requests in the binding write
			switch verdict {
			case nil:
				cur.Status = LoginIssued
				for _, g := range outcome.Grants {
					events = append(events, AuditEvent{At: now, Actor: cur.ClientID, Action: ActionLoginIssued, Principal: cur.Subject,
						RequestID: g.RequestID, GrantID: g.ID, Reason: "tokens for client " + cur.ClientID, Source: SourceOIDC})
				}
				if len(outcome.Grants) == 0 {
					events = append(events, AuditEvent{At: now, Actor: cur.ClientID, Action: ActionLoginIssued, Principal: cur.Subject,
						Reason: "tokens for client " + cur.ClientID, Source: SourceOIDC})
				}
			case ErrLoginDenied, ErrLoginExpired:
				cur.Status, cur.DenyReason = LoginDenied, outcome.Reason
				events = []AuditEvent{{At: now, Actor: SystemActor, Action: ActionLoginDenied, Principal: cur.Subject,
					Reason: outcome.Reason, Source: SourceOIDC}}
			}
		} else {
			verdict = ErrLoginPending // it moved on meanwhile; the next poll will see where to
		}
		outcome.Login = cur
		return cur, events, nil
	})
	if err != nil {
		return outcome, err
	}
	s.recorded(events...)
	if verdict != nil {
		return outcome, verdict
	}
	s.Log.Info("login completed", "login_id", l.ID, "client_id", clientID, "subject", l.Subject.ID, "roles", l.Roles)
	return outcome, nil
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
