package app

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
)

// RoleScopePrefix marks an OAuth scope that asks for a role: role:prod-db-admin.
const RoleScopePrefix = "role:"

// GrantStore finds the grants a principal holds.
type GrantStore interface {
	// ActiveGrants returns the principal's grants that are active and not yet expired at now.
	ActiveGrants(ctx context.Context, p Principal, now time.Time) ([]Grant, error)
	// Grant returns one grant, or ErrNotFound.
	Grant(ctx context.Context, id string) (Grant, error)
	// EndGrant moves an active grant to status (revoked or expired), recording who ended it,
	// why, the event and the deliveries owed, in one conditional write; a grant no longer
	// active is ErrNotPending.
	EndGrant(ctx context.Context, id string, status GrantStatus, e AuditEvent, owed ...Delivery) error
	// ExpiredGrants returns up to limit grants still active whose time is up at now.
	ExpiredGrants(ctx context.Context, now time.Time, limit int) ([]Grant, error)
	BreakGlassStore
}

// ErrNoActiveGrant: the principal holds no active grant for a role a token asks for.
var ErrNoActiveGrant = fmt.Errorf("no active grant for the role")

// StandardScopes are the scopes besides role: ones that a token may carry.
var StandardScopes = []string{"openid", "profile", "email", "offline_access"}

// RolesOfScopes returns the roles named by role: scopes, checking each against the policy.
// An unknown role, or a scope that is neither standard nor a role, is an *InputError on
// FieldRole: a token never carries a scope nobody vetted.
func (p Policy) RolesOfScopes(scopes []string) ([]string, error) {
	var roles []string
	var bad InputError
	for _, s := range scopes {
		name, ok := strings.CutPrefix(s, RoleScopePrefix)
		if !ok {
			if s != "" && !slices.Contains(StandardScopes, s) {
				bad.add(FieldRole, fmt.Sprintf("The scope %q is not offered: use %s or role:<role>.", clip(s, 40), strings.Join(StandardScopes, ", ")))
			}
			continue
		}
		if _, known := p.Role(name); !known {
			bad.add(FieldRole, fmt.Sprintf("There is no role called %q.", clip(name, 40)))
			continue
		}
		if !slices.Contains(roles, name) {
			roles = append(roles, name)
		}
	}
	return roles, bad.orNil()
}

// Audience returns the token audience for a client asking for roles: the client itself
// plus each role's audiences.
func (p Policy) Audience(clientID string, roles []string) []string {
	aud := []string{clientID}
	for _, name := range roles {
		r, _ := p.Role(name)
		for _, a := range r.Audience {
			if !slices.Contains(aud, a) {
				aud = append(aud, a)
			}
		}
	}
	return aud
}

// GrantsForToken returns, for each role, the active grant that lasts longest, checked at
// this moment: a token is never minted for a role without one. A missing role is
// ErrNoActiveGrant, naming the role.
func (s *Service) GrantsForToken(ctx context.Context, p Principal, roles []string) ([]Grant, error) {
	if len(roles) == 0 {
		return nil, nil
	}
	held, err := s.Grants.ActiveGrants(ctx, p, s.Now())
	if err != nil {
		return nil, err
	}
	grants, missing := longestGrants(held, roles)
	if len(missing) > 0 {
		return nil, fmt.Errorf("%w %s", ErrNoActiveGrant, strings.Join(missing, ", "))
	}
	return grants, nil
}

// RefreshGrants re-checks, at a refresh, the grants behind a session's scopes: a role whose
// grant ended drops out of the scopes, and a session that asked for roles and has none
// left is ErrNoActiveGrant. It returns the scopes and grants of the new token.
func (s *Service) RefreshGrants(ctx context.Context, p Principal, scopes []string) ([]string, []Grant, error) {
	var roles []string
	for _, scope := range scopes {
		if role, ok := strings.CutPrefix(scope, RoleScopePrefix); ok {
			roles = append(roles, role)
		}
	}
	if len(roles) == 0 {
		return scopes, nil, nil
	}
	held, err := s.Grants.ActiveGrants(ctx, p, s.Now())
	if err != nil {
		return nil, nil, err
	}
	grants, missing := longestGrants(held, roles)
	if len(grants) == 0 {
		return nil, nil, fmt.Errorf("%w: none of the session's roles has one left", ErrNoActiveGrant)
	}
	kept := slices.DeleteFunc(slices.Clone(scopes), func(scope string) bool {
		role, ok := strings.CutPrefix(scope, RoleScopePrefix)
		return ok && slices.Contains(missing, role)
	})
	return kept, grants, nil
}

// longestGrants picks, for each role, the grant in held that lasts longest; roles held by no
// grant come back as missing.
func longestGrants(held []Grant, roles []string) (grants []Grant, missing []string) {
	for _, role := range roles {
		var best *Grant
		for i, g := range held {
			if g.Role == role && (best == nil || g.ExpiresAt.After(best.ExpiresAt)) {
				best = &held[i]
			}
		}
		if best == nil {
			missing = append(missing, role)
			continue
		}
		grants = append(grants, *best)
	}
	return grants, missing
}

// TokenExpiry is when an access token minted now with ttl must expire: never after the
// earliest end of the grants it carries.
func TokenExpiry(now time.Time, ttl time.Duration, grants []Grant) time.Time {
	exp := now.Add(ttl)
	for _, g := range grants {
		if g.ExpiresAt.Before(exp) {
			exp = g.ExpiresAt
		}
	}
	return exp
}

// ActionTokenIssued is the audit action of a token handed to a client.
const ActionTokenIssued = "token.issued"

// Issuance is the record of tokens about to be handed out, written before they are, in
// one write: the grants they carry (still active at At, checked in the same write), the
// code they redeem (a device-flow login or an authorization code, spent by it), the client
// session they belong to, the refresh token they come with and the one it replaces, and
// their audit events.
type Issuance struct {
	At        time.Time
	GrantIDs  []string
	Login     *LoginSpend   // the device-flow login these tokens redeem, if any
	Code      *CodeSpend    // the authorization code these tokens redeem, if any
	SessionID string        // the client session, if any; opened by this write unless Replaces is set
	Refresh   *RefreshToken // the session's next refresh token, if any
	Replaces  string        // hash of the refresh token it rotates, if any (see RefreshToken)
	Events    []AuditEvent
}

// CodeSpend redeems an authorization code: the write binds its sign-in to the issuance's
// client session, if the code is still unspent and unexpired at the issuance's At — else
// the write fails with ErrConflict.
type CodeSpend struct {
	AuthRequestID string
	CodeHash      string
}

// ErrGrantEnded: a grant a token was about to carry ended first.
var ErrGrantEnded = errors.New("a grant behind the token ended")

// TokenRef is what identifies an access token to revocation: its jti, the client session
// it was issued with (if any), and the grants it carries.
type TokenRef struct {
	JTI       string
	SessionID string
	GrantIDs  []string
}

// RevocationKind says what a revocation ended.
type RevocationKind string

// What a revocation ends: an approval grant (every token carrying it), a client session
// (its refresh tokens and every access token issued with them), or one access token.
const (
	RevokedGrant   RevocationKind = "grant"
	RevokedSession RevocationKind = "session"
	RevokedToken   RevocationKind = "token"
)

// Revocation records that something was revoked at At; after Until no token it affects
// can still be valid, so it may be forgotten.
type Revocation struct {
	Kind  RevocationKind
	Ref   string // the grant ID, session ID or jti
	At    time.Time
	Until time.Time
}

// RefreshToken is a client session's refresh token: using it yields new tokens and the
// next one, and it can be used once. Only its hash is stored. Tokens come in chains, one
// per session: each names its chain and its generation in it, and replaces the one before
// in place, so that a refresh writes one row and a token used again — however many
// generations old — is still recognised (its chain has moved past it). Tokens from before
// chains (Chain empty) are kept, marked used, when they are replaced.
type RefreshToken struct {
	Hash       string
	Chain      string
	Generation int
	SessionID  string
	ClientID   string
	Subject    string
	Scopes     []string
	AuthTime   time.Time
	ExpiresAt  time.Time
	Used       bool
}

// Profile is what Slack says about a person, for ID tokens.
type Profile struct {
	Name  string
	Email string
}

// ErrNotAllowed: the user may not do this to that grant.
var ErrNotAllowed = errors.New("not allowed")

// ActionGrantRevoked is the audit action of an early revoke.
const ActionGrantRevoked = "grant.revoked"

// ActionTokenRevoked: a client revoked a token of its own (RFC 7009); the reason says
// whether it ended a client session or one access token.
const ActionTokenRevoked = "token.revoked"

// RevokeGrant ends a grant early, and with it every token that carries it: introspection
// answers active: false and refreshes fail from now on. The holder, an approver of the
// role and an admin may revoke it. Errors: ErrNotFound, ErrNotAllowed, ErrNotPending (the
// grant already ended).
func (s *Service) RevokeGrant(ctx context.Context, grantID, user, reason, source string) (Grant, error) {
	reason, problem := checkText(reason, true)
	if problem != "" {
		return Grant{}, &InputError{Problems: []FieldProblem{{Field: FieldReason, Message: problem}}}
	}
	g, err := s.Grants.Grant(ctx, grantID)
	if err != nil {
		return Grant{}, err
	}
	may, err := s.mayRevoke(ctx, g, user)
	if err != nil {
		return g, err
	}
	if !may {
		return g, ErrNotAllowed
	}
	now := s.Now()
	if g.Status != GrantActive || !now.Before(g.ExpiresAt) {
		return g, ErrNotPending
	}
	event := AuditEvent{At: now, Actor: user, Action: ActionGrantRevoked, Principal: g.Principal, RequestID: g.RequestID,
		GrantID: g.ID, Reason: reason, Source: source}
	if err := s.Grants.EndGrant(ctx, g.ID, GrantRevoked, event, s.grantEndedDeliveries(g)...); err != nil {
		return g, err
	}
	s.recorded(event)
	s.owed()
	s.Log.Info("grant revoked", "grant_id", g.ID, "by", user, "reason", reason)
	g.Status, g.EndedBy, g.EndReason = GrantRevoked, user, reason
	return g, nil
}

// grantEndedDeliveries are what the end of a grant owes: its approval message redrawn and
// its holder told.
func (s *Service) grantEndedDeliveries(g Grant) []Delivery {
	ended := s.owe(DeliverGrantEnded, g.RequestID, g.Role, g.Principal)
	ended.GrantID = g.ID
	return []Delivery{s.owe(DeliverMessage, g.RequestID, g.Role, g.Principal), ended}
}

// mayRevoke: the holder, an approver of the grant's role, or an admin.
func (s *Service) mayRevoke(ctx context.Context, g Grant, user string) (bool, error) {
	if g.Principal == User(user) || slices.Contains(s.Policy.Admins, user) {
		return true, nil
	}
	role, ok := s.Policy.Role(g.Role)
	if !ok {
		return false, nil
	}
	return s.isApprover(ctx, role, user)
}

// IssuanceEvents are the audit events of an access token handed to a client: one per grant
// it carries (so each approval's trail shows every token it let out), or one if it carries
// none. The reason names the token's jti, how it was obtained and when it expires.
func IssuanceEvents(at time.Time, clientID string, subject Principal, grantType, jti string, exp time.Time, grants []Grant) []AuditEvent {
	reason := fmt.Sprintf("access token %s for client %s (%s), expires %s", jti, clientID, grantType, exp.UTC().Format(time.RFC3339))
	return perGrant(AuditEvent{At: at, Actor: clientID, Action: ActionTokenIssued, Principal: subject, Reason: reason, Source: SourceOIDC}, grants)
}

// perGrant is event once for each grant, naming it and its request, or event alone when
// there is no grant.
func perGrant(event AuditEvent, grants []Grant) []AuditEvent {
	if len(grants) == 0 {
		return []AuditEvent{event}
	}
	events := make([]AuditEvent, len(grants))
	for i, g := range grants {
		events[i] = event
		events[i].RequestID, events[i].GrantID = g.RequestID, g.ID
	}
	return events
}
