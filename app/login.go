package app

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"math/big"
	"slices"
	"strings"
	"sync"
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
	// UpdateLogin changes a login with one conditional write, like UpdateRequest, appending
	// the audit events update returns in the same transaction.
	UpdateLogin(ctx context.Context, id string, update func(Login) (Login, []AuditEvent, error)) error
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
			continue
		}
		s.inBackground(func(ctx context.Context) { s.refresh(ctx, r.ID) })
	}
}

func requestIDs(requests []Request) []string {
	ids := make([]string, len(requests))
	for i, r := range requests {
		ids[i] = r.ID
	}
	return ids
}

// HashSecret returns the hex SHA-256 of a high-entropy secret (device codes, refresh
// tokens), the form in which such secrets are stored and looked up.
func HashSecret(secret string) string {
	sum := sha256.Sum256([]byte(secret))
	return hex.EncodeToString(sum[:])
}

// userCodeAlphabet has no vowels (no words) and no look-alike characters.
const userCodeAlphabet = "BCDFGHJKLMNPQRSTVWXZ"

// newUserCode returns a code like BCDF-GHJK: 20^8 ≈ 2.6e10 possibilities.
func newUserCode() string {
	var b strings.Builder
	for i := range 8 {
		if i == 4 {
			b.WriteByte('-')
		}
		n, _ := rand.Int(rand.Reader, big.NewInt(int64(len(userCodeAlphabet))))
		b.WriteByte(userCodeAlphabet[n.Int64()])
	}
	return b.String()
}

// NormalizeUserCode accepts a code typed loosely (bcdf ghjk, BCDFGHJK) and writes it the
// way it was issued.
func NormalizeUserCode(typed string) string {
	var b strings.Builder
	for _, c := range strings.ToUpper(typed) {
		if strings.ContainsRune(userCodeAlphabet, c) {
			b.WriteRune(c)
		}
	}
	code := b.String()
	if len(code) == 8 {
		code = code[:4] + "-" + code[4:]
	}
	return code
}

// Guessing limits for user codes, per Slack user.
const (
	maxWrongCodes    = 5
	wrongCodesWindow = 10 * time.Minute
)

// codeGuesses remembers each user's recent attempts at a code that were not right.
type codeGuesses struct {
	mu       sync.Mutex
	attempts map[string][]time.Time
}

// try reserves an attempt for user at now, or reports that the user is over the limit.
// Reserving before looking the code up keeps a burst of guesses within the limit too.
func (g *codeGuesses) try(user string, now time.Time) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	recent := slices.DeleteFunc(g.attempts[user], func(t time.Time) bool { return now.Sub(t) >= wrongCodesWindow })
	if len(recent) >= maxWrongCodes {
		g.attempts[user] = recent
		return false
	}
	g.attempts[user] = append(recent, now)
	return true
}

// right gives back the attempt reserved at now: the code was right.
func (g *codeGuesses) right(user string, now time.Time) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if i := slices.Index(g.attempts[user], now); i >= 0 {
		g.attempts[user] = slices.Delete(g.attempts[user], i, i+1)
	}
	if len(g.attempts[user]) == 0 {
		delete(g.attempts, user)
	}
}

// PendingLogin is a login as shown to the person confirming it.
type PendingLogin struct {
	Login
	Missing    []Role // requested roles the user holds no active grant for: confirming files requests
	BreakGlass []Role // those of Missing the user may take at once (break-glass) rather than ask for
}

// FindLogin looks up the login behind a code typed by user in Slack. Wrong and expired
// codes count towards the user's guessing limit (ErrTooManyAttempts once reached).
func (s *Service) FindLogin(ctx context.Context, user, typed string) (PendingLogin, error) {
	now := s.Now()
	if !s.guesses.try(user, now) {
		return PendingLogin{}, ErrTooManyAttempts
	}
	l, err := s.Logins.LoginByUserCode(ctx, NormalizeUserCode(typed))
	switch {
	case err != nil:
		return PendingLogin{}, err
	case !now.Before(l.ExpiresAt):
		return PendingLogin{}, ErrLoginExpired
	case l.Status != LoginPending:
		return PendingLogin{}, ErrLoginUsed
	}
	s.guesses.right(user, now)
	missing, err := s.missingRoles(ctx, User(user), l.Roles)
	p := PendingLogin{Login: l, Missing: missing}
	for _, r := range missing {
		if s.mayBreakGlass(ctx, r, user) {
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
}

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
			if !s.Now().Before(r.ExpiresAt) {
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
