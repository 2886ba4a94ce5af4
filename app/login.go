package app

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"
)

// LoginStatus is where a pending OIDC sign-in is in its life.
type LoginStatus string

// Login states: pending → bound → issued | denied. A login past ExpiresAt is expired
// whatever its status says.
const (
	LoginPending LoginStatus = "pending" // waiting for someone to run /access login CODE
	LoginBound   LoginStatus = "bound"   // a Slack user confirmed it; waiting for approvals
	LoginIssued  LoginStatus = "issued"  // tokens were handed out; the code is spent
	LoginDenied  LoginStatus = "denied"  // a request it needed was denied, expired or cancelled
)

// Login is a pending OIDC sign-in (device code or browser code) waiting to be bound to a
// Slack user with /access login CODE.
type Login struct {
	ID           string
	ClientID     string
	Scopes       []string
	Roles        []string  // from the role: scopes
	UserCode     string    // what the person types in Slack, e.g. BCDF-GHJK
	SecretHash   string    // SHA-256 of the client's secret (device code or browser cookie); never stored itself
	Subject      Principal // who signs in: a Slack user once bound, or the service itself
	Status       LoginStatus
	RequestIDs   []string // requests filed for roles the user held no grant for
	DenyReason   string
	CreatedAt    time.Time
	ExpiresAt    time.Time
	LastPolledAt time.Time
}

// LoginStore keeps logins.
type LoginStore interface {
	// CreateLogin stores a new login; a user code already in use is ErrConflict.
	CreateLogin(ctx context.Context, l Login) error
	Login(ctx context.Context, id string) (Login, error)
	LoginByUserCode(ctx context.Context, code string) (Login, error)
	LoginBySecret(ctx context.Context, hash string) (Login, error)
	// TryCodeGuess records an attempt by user at a code at now unless user made max
	// attempts in the window before; it returns the attempt's ID and whether it may go on.
	TryCodeGuess(ctx context.Context, user string, now time.Time, window time.Duration, max int) (uint64, bool, error)
	// ForgetCodeGuess gives back an attempt: the code was right.
	ForgetCodeGuess(ctx context.Context, id uint64) error
	// UpdateLogin changes a login with one conditional write, like UpdateRequest, appending
	// the audit events update returns in the same transaction.
	UpdateLogin(ctx context.Context, id string, update func(Login) (Login, []AuditEvent, error)) error
	// SpendLogin redeems a login on its own (see LoginSpend), with its audit events in the
	// same write; ErrConflict if it was spent or moved meanwhile.
	SpendLogin(ctx context.Context, sp LoginSpend, events []AuditEvent) error
}

// LoginSpend redeems a ready login: one conditional write marks it issued, if it is still
// bound, unexpired at At and not polled after PolledBefore — else that write fails with
// ErrConflict and changes nothing.
type LoginSpend struct {
	LoginID      string
	At           time.Time
	PolledBefore time.Time
}

// Login errors, each meaning one answer to the waiting client.
var (
	// ErrLoginPending: nobody has confirmed the login yet, or approval is still pending.
	ErrLoginPending = errors.New("authorization pending")
	// ErrSlowDown: the client polls faster than the announced interval.
	ErrSlowDown = errors.New("polling too fast")
	// ErrLoginDenied: a request the login needed was denied, expired or cancelled.
	ErrLoginDenied = errors.New("access denied")
	// ErrLoginExpired: the login's code expired before tokens were issued.
	ErrLoginExpired = errors.New("login expired")
	// ErrLoginUsed: the login already yielded tokens; its code is spent.
	ErrLoginUsed = errors.New("login already used")
	// ErrBadUserCode: the code typed in Slack is unknown, expired or already used. One
	// answer for the three, so that a guesser learns nothing about codes that existed.
	ErrBadUserCode = errors.New("unknown, expired or used sign-in code")
	// ErrTooManyAttempts: the user typed too many wrong codes; they must wait.
	ErrTooManyAttempts = errors.New("too many wrong codes")
)

// LoginStart is a client's ask to sign someone in, or, for a service, to get a token for
// itself.
type LoginStart struct {
	ClientID string
	Scopes   []string
	Secret   string        // the device code, or the browser's sign-in cookie; stored hashed
	Lifetime time.Duration // how long the code stays usable
	Service  bool          // the client asks for itself: nobody types a code
	Duration string        // for a service's requests; empty means each role's default
	Reason   string        // for a service's requests; empty means "requested by <client>"
}

// StartLogin records a new sign-in and returns it with a fresh, unique user code. For a
// service, nobody confirms a code: the login is bound to the service at once and a request
// is filed for each role, with the service as requester. A role scope naming no role in the
// policy, or a bad duration or reason, is an *InputError and starts nothing.
func (s *Service) StartLogin(ctx context.Context, in LoginStart) (Login, error) {
	roles, err := s.Policy.ClientRoles(in.ClientID, in.Scopes)
	if err != nil {
		return Login{}, err
	}
	service := Principal{Kind: PrincipalService, ID: in.ClientID}
	var inputs []RequestInput
	if in.Service {
		if in.Reason == "" {
			in.Reason = "requested by " + in.ClientID
		}
		for _, role := range roles {
			input := RequestInput{Role: role, Duration: in.Duration, Reason: in.Reason}
			if err := s.CheckRequest(input); err != nil {
				return Login{}, err
			}
			inputs = append(inputs, input)
		}
	}
	// A service's requests are filed first, so the login is bound with them in one write:
	// a poll never sees it bound without its requests.
	filed, err := s.fileRequests(ctx, service, inputs, SourceOIDC)
	if err != nil {
		return Login{}, err
	}
	now := s.Now()
	l := Login{
		ID: newID("lgn"), ClientID: in.ClientID, Scopes: in.Scopes, Roles: roles, SecretHash: HashSecret(in.Secret),
		Status: LoginPending, CreatedAt: now, ExpiresAt: now.Add(in.Lifetime), RequestIDs: requestIDs(filed),
	}
	if in.Service {
		l.Status, l.Subject = LoginBound, service
	}
	// User codes are short; on the rare clash with another login, draw again.
	for range 5 {
		l.UserCode = newUserCode()
		if err = s.Logins.CreateLogin(ctx, l); !errors.Is(err, ErrConflict) {
			break
		}
	}
	if err != nil {
		s.cancelRequests(ctx, filed, "the sign-in it was filed for could not start")
		return Login{}, fmt.Errorf("start login: %w", err)
	}
	return l, nil
}

// fileRequests files a request per input for p; if one cannot be filed, those already
// filed are cancelled and nothing is left waiting.
func (s *Service) fileRequests(ctx context.Context, p Principal, inputs []RequestInput, source string) ([]Request, error) {
	var filed []Request
	for _, input := range inputs {
		r, err := s.RequestAccess(ctx, p, input, source)
		if err != nil {
			s.cancelRequests(ctx, filed, "another request of the same sign-in could not be filed")
			return nil, err
		}
		filed = append(filed, r)
	}
	return filed, nil
}

// cancelRequests cancels requests filed for a sign-in that did not go ahead.
func (s *Service) cancelRequests(ctx context.Context, requests []Request, reason string) {
	for _, r := range requests {
		if _, err := s.cancelRequest(ctx, r.ID, reason); err != nil && !errors.Is(err, ErrNotPending) {
			s.Log.Error("cancelling request failed", "request_id", r.ID, "err", err)
		}
	}
}

func requestIDs(requests []Request) []string {
	ids := make([]string, len(requests))
	for i, r := range requests {
		ids[i] = r.ID
	}
	return ids
}

// PendingLogin is a login as shown to the person confirming it.
type PendingLogin struct {
	Login
	Missing    []Role // requested roles the user holds no active grant for: confirming files requests
	BreakGlass []Role // those of Missing the user may take at once (break-glass) rather than ask for
}

// FindLogin looks up the login behind a code typed by user in Slack. An unknown, expired
// or used code is ErrBadUserCode, whichever it is, and counts towards the user's guessing
// limit (ErrTooManyAttempts once reached).
func (s *Service) FindLogin(ctx context.Context, user, typed string) (PendingLogin, error) {
	now := s.Now()
	attempt, ok, err := s.Logins.TryCodeGuess(ctx, user, now, wrongCodesWindow, maxWrongCodes)
	if err != nil {
		return PendingLogin{}, fmt.Errorf("find login: %w", err)
	}
	if !ok {
		return PendingLogin{}, ErrTooManyAttempts
	}
	l, err := s.Logins.LoginByUserCode(ctx, NormalizeUserCode(typed))
	switch {
	case errors.Is(err, ErrNotFound), err == nil && (!now.Before(l.ExpiresAt) || l.Status != LoginPending):
		return PendingLogin{}, ErrBadUserCode
	case err != nil:
		return PendingLogin{}, err
	}
	if err := s.Logins.ForgetCodeGuess(ctx, attempt); err != nil {
		return PendingLogin{}, fmt.Errorf("find login: %w", err)
	}
	missing, err := s.missingRoles(ctx, User(user), l.Roles)
	p := PendingLogin{Login: l, Missing: missing}
	for _, r := range missing {
		// A failed look-up shows the role as asked for; confirming decides it again.
		if may, _ := s.mayBreakGlass(ctx, r, user); may {
			p.BreakGlass = append(p.BreakGlass, r)
		}
	}
	return p, err
}

// missingRoles returns the roles p holds no active grant for.
func (s *Service) missingRoles(ctx context.Context, p Principal, roles []string) ([]Role, error) {
	held, err := s.Grants.ActiveGrants(ctx, p, s.Now())
	if err != nil {
		return nil, err
	}
	_, names := longestGrants(held, roles)
	missing := make([]Role, len(names))
	for i, name := range names {
		missing[i], _ = s.Policy.Role(name)
	}
	return missing, nil
}

// LoginConfirmation is a user's confirmation of a login, with what to ask for when roles
// need approval.
type LoginConfirmation struct {
	LoginID  string
	User     string
	Duration string // for the requests filed; empty means each role's default
	Reason   string // required when a request is filed
	Source   string
}

// ConfirmLogin binds the login to the user. For every requested role the user holds no
// active grant for, it files a request (same approval flow as /access); the waiting client
// gets its tokens once all are approved. Bad duration or reason is an *InputError and
// changes nothing.
func (s *Service) ConfirmLogin(ctx context.Context, in LoginConfirmation) (Login, []Request, error) {
	l, err := s.Logins.Login(ctx, in.LoginID)
	if err != nil {
		return Login{}, nil, err
	}
	missing, err := s.missingRoles(ctx, User(in.User), l.Roles)
	if err != nil {
		return Login{}, nil, err
	}
	inputs := make([]RequestInput, len(missing))
	for i, r := range missing {
		inputs[i] = RequestInput{Role: r.Name, Duration: in.Duration, Reason: in.Reason}
		if err := s.CheckRequest(inputs[i]); err != nil {
			return Login{}, nil, err
		}
	}
	now := s.Now()
	if l.Status != LoginPending {
		return Login{}, nil, ErrLoginUsed
	}
	if !now.Before(l.ExpiresAt) {
		return Login{}, nil, ErrLoginExpired
	}
	// The requests are filed first and the login bound with them in one conditional write,
	// so a poll never sees it bound without them; if the binding loses (someone else bound
	// it, or it expired meanwhile), the requests are cancelled.
	filed, err := s.fileRequests(ctx, User(in.User), inputs, in.Source)
	if err != nil {
		return Login{}, nil, err
	}
	err = s.Logins.UpdateLogin(ctx, in.LoginID, func(cur Login) (Login, []AuditEvent, error) {
		if cur.Status != LoginPending {
			return cur, nil, ErrLoginUsed
		}
		if !now.Before(cur.ExpiresAt) {
			return cur, nil, ErrLoginExpired
		}
		cur.Status, cur.Subject, cur.RequestIDs = LoginBound, User(in.User), requestIDs(filed)
		l = cur
		return cur, []AuditEvent{{At: now, Actor: in.User, Action: ActionLoginConfirmed, Principal: cur.Subject,
			Reason: "sign-in of client " + cur.ClientID + " for " + strings.Join(cur.Scopes, " "), Source: in.Source}}, nil
	})
	if err != nil {
		s.cancelRequests(ctx, filed, "the sign-in it was filed for was already used or expired")
		return Login{}, nil, err
	}
	s.Log.Info("login confirmed", "login_id", l.ID, "user", in.User, "client_id", l.ClientID, "requests", len(filed))
	return l, filed, nil
}

// LoginOutcome says what a waiting client gets now.
type LoginOutcome struct {
	Login  Login
	Grants []Grant // set when tokens may be issued: one per requested role, active now
	Reason string  // for a pending or denied login, in words for the person at the client
	// When tokens may be issued: what redeems the login, and its audit events, to record
	// with what the caller hands out.
	Spend  *LoginSpend
	Events []AuditEvent
}
