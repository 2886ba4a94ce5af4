package oidc

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/zitadel/oidc/v3/pkg/oidc"
	"github.com/zitadel/oidc/v3/pkg/op"

	"github.com/gatehouse/gatehouse/app"
)

// Service is what the provider needs from the app.
type Service interface {
	StartLogin(ctx context.Context, in app.LoginStart) (app.Login, error)
	PollLogin(ctx context.Context, clientID, secret string, interval time.Duration) (app.LoginOutcome, error)
	RedeemLogin(ctx context.Context, outcome app.LoginOutcome) error
	GrantsForToken(ctx context.Context, p app.Principal, roles []string) ([]app.Grant, error)
	RefreshGrants(ctx context.Context, p app.Principal, scopes []string) ([]string, []app.Grant, error)
	Login(ctx context.Context, id string) (app.Login, error)
}

// TokenStore records issuances, client sessions and revocations. Access tokens themselves
// are not stored: they are self-contained JWTs.
type TokenStore interface {
	// RecordIssuance records tokens about to be handed out (see app.Issuance): app.ErrGrantEnded
	// when a grant ended first, app.ErrConflict when the code or refresh token they redeem
	// was spent or revoked.
	RecordIssuance(ctx context.Context, iss app.Issuance) error
	RefreshToken(ctx context.Context, hash string) (app.RefreshToken, error)
	// RefreshChain returns the newest refresh token of a chain.
	RefreshChain(ctx context.Context, chain string) (app.RefreshToken, error)
	// RevokeClientTokens records a revocation of a client session or of one access token,
	// with its audit event.
	RevokeClientTokens(ctx context.Context, r app.Revocation, e app.AuditEvent) error
	// Revoked reports whether a token was revoked, itself, by its session or by a grant.
	Revoked(ctx context.Context, ref app.TokenRef, now time.Time) (bool, error)
	Ping(ctx context.Context) error
}

// Directory tells who a Slack user is, for ID tokens and userinfo.
type Directory interface {
	Profile(ctx context.Context, userID string) (app.Profile, error)
}

// Storage implements op.Storage over the app and the token store.
type Storage struct {
	cfg     Config
	svc     Service
	tokens  TokenStore
	keys    *Keyring
	people  Directory
	browser BrowserStore
	clients map[string]*Client
}

var (
	_ op.Storage                    = (*Storage)(nil)
	_ op.DeviceAuthorizationStorage = (*Storage)(nil)
	_ op.ClientCredentialsStorage   = (*Storage)(nil)
)

// tokenRequest is every token Gatehouse mints: who, for which client, which scopes, and
// the grants behind its roles, looked up once at mint time so the access token's claims,
// its expiry and its record agree.
type tokenRequest struct {
	subject   string
	clientID  string
	scopes    []string
	audience  []string
	authTime  time.Time
	grants    []app.Grant
	sessionID string // the refresh session continued, if any
	refresh   string // hash of the refresh token being rotated, if any
	chain     string // and its chain and generation (see app.RefreshToken)
	gen       int
	sessionTo time.Time // when the refresh session ends
}

var _ op.RefreshTokenRequest = (*tokenRequest)(nil)

func (r *tokenRequest) GetSubject() string     { return r.subject }
func (r *tokenRequest) GetAudience() []string  { return r.audience }
func (r *tokenRequest) GetScopes() []string    { return r.scopes }
func (r *tokenRequest) GetAMR() []string       { return []string{"slack"} }
func (r *tokenRequest) GetAuthTime() time.Time { return r.authTime }
func (r *tokenRequest) GetClientID() string    { return r.clientID }

// SetCurrentScopes narrows a refresh to fewer scopes, and the grants with them.
func (r *tokenRequest) SetCurrentScopes(scopes []string) {
	r.scopes = scopes
	r.grants = slices.DeleteFunc(r.grants, func(g app.Grant) bool {
		return !slices.Contains(scopes, app.RoleScopePrefix+g.Role)
	})
}

func (r *tokenRequest) roles() []string {
	roles := make([]string, len(r.grants))
	for i, g := range r.grants {
		roles[i] = g.Role
	}
	return roles
}

func (r *tokenRequest) grantIDs() []string {
	ids := make([]string, len(r.grants))
	for i, g := range r.grants {
		ids[i] = g.ID
	}
	return ids
}

// errHandledByServer: the library calls these storage methods only from the parts of its
// server that Gatehouse's server replaces (token responses, introspection, userinfo,
// revocation): Gatehouse signs its tokens itself (see mint), and its revocation searches
// every token type whatever the hint (RFC 7009 §2.1), where the library's trusts the hint.
var errHandledByServer = errors.New("handled by Gatehouse's server")

// CreateAccessToken is never called; see errHandledByServer.
func (s *Storage) CreateAccessToken(context.Context, op.TokenRequest) (string, time.Time, error) {
	return "", time.Time{}, errHandledByServer
}

// CreateAccessAndRefreshTokens is never called; see errHandledByServer.
func (s *Storage) CreateAccessAndRefreshTokens(context.Context, op.TokenRequest, string) (string, string, time.Time, error) {
	return "", "", time.Time{}, errHandledByServer
}

// TokenRequestByRefreshToken checks a refresh token and has the app re-check the grants
// behind it (see app.Service.RefreshGrants): invalid_grant when the token is unknown,
// expired, revoked or replayed (a refresh token used a second time revokes the whole
// session) or no grant is left; a store that fails is no such answer (see errStore).
func (s *Storage) TokenRequestByRefreshToken(ctx context.Context, token string) (op.RefreshTokenRequest, error) {
	t, err := s.refreshToken(ctx, token)
	switch {
	case errors.Is(err, app.ErrNotFound):
		return nil, oidc.ErrInvalidGrant().WithDescription("unknown or revoked refresh token")
	case err != nil:
		return nil, errStore(err)
	}
	now := s.cfg.Now()
	if t.Used {
		if err := s.revokeSession(ctx, t.SessionID, t.ExpiresAt, t.ClientID, t.Subject, "refresh token replayed: its session is revoked"); err != nil {
			return nil, errStore(err)
		}
		return nil, oidc.ErrInvalidGrant().WithDescription("refresh token replayed: session revoked")
	}
	if !now.Before(t.ExpiresAt) {
		return nil, oidc.ErrInvalidGrant().WithDescription("refresh token expired")
	}
	scopes, grants, err := s.svc.RefreshGrants(ctx, s.cfg.Policy.Principal(t.Subject), t.Scopes)
	switch {
	case errors.Is(err, app.ErrNoActiveGrant):
		return nil, oidc.ErrInvalidGrant().WithDescription("%s", err.Error())
	case err != nil:
		return nil, errStore(err)
	}
	r := &tokenRequest{subject: t.Subject, clientID: t.ClientID, scopes: scopes, grants: grants, authTime: t.AuthTime,
		sessionID: t.SessionID, refresh: t.Hash, chain: t.Chain, gen: t.Generation, sessionTo: t.ExpiresAt}
	r.audience = s.cfg.Policy.Audience(t.ClientID, r.roles())
	return r, nil
}

// revokeSession ends a client session — its refresh tokens, and every access token issued
// in it, which all expire by the session's end plus one access token lifetime — and audits
// it: by actor (a client), about subject, saying why.
func (s *Storage) revokeSession(ctx context.Context, id string, end time.Time, actor, subject, why string) error {
	now := s.cfg.Now()
	r := app.Revocation{Kind: app.RevokedSession, Ref: id, At: now, Until: end.Add(s.cfg.AccessTokenTTL)}
	e := app.AuditEvent{At: now, Actor: actor, Action: app.ActionTokenRevoked, Principal: s.cfg.Policy.Principal(subject), Reason: why, Source: app.SourceOIDC}
	if err := s.tokens.RevokeClientTokens(ctx, r, e); err != nil {
		return fmt.Errorf("revoke session: %w", err)
	}
	return nil
}

// GetRefreshTokenInfo is never called; see errHandledByServer.
func (s *Storage) GetRefreshTokenInfo(context.Context, string, string) (string, string, error) {
	return "", "", errHandledByServer
}

// RevokeToken is never called; see errHandledByServer.
func (s *Storage) RevokeToken(context.Context, string, string, string) *oidc.Error {
	return oidc.ErrServerError().WithParent(errHandledByServer)
}

// SetIntrospectionFromToken is never called; see errHandledByServer.
func (s *Storage) SetIntrospectionFromToken(context.Context, *oidc.IntrospectionResponse, string, string, string) error {
	return errHandledByServer
}

// SetUserinfoFromToken is never called; see errHandledByServer.
func (s *Storage) SetUserinfoFromToken(context.Context, *oidc.UserInfo, string, string, string) error {
	return errHandledByServer
}

// GetPrivateClaimsFromScopes is never called; see errHandledByServer.
func (s *Storage) GetPrivateClaimsFromScopes(context.Context, string, string, []string) (map[string]any, error) {
	return nil, nil
}

// setUserinfo fills who the subject is (name and email from Slack for a person) and roles.
func (s *Storage) setUserinfo(ctx context.Context, info *oidc.UserInfo, subject string, roles []string) error {
	info.Subject = subject
	if s.cfg.Policy.Principal(subject).Kind == app.PrincipalUser {
		// Best effort: an approved sign-in is not lost because Slack's profile look-up failed;
		// the token then carries no name or email.
		if p, err := s.people.Profile(ctx, subject); err != nil {
			s.cfg.Log.Warn("profile look-up failed; issuing the ID token without name and email", "subject", subject, "err", err)
		} else {
			info.Name, info.Email = p.Name, p.Email
			info.EmailVerified = oidc.Bool(p.Email != "")
		}
	}
	info.AppendClaims("roles", roles)
	return nil
}

// SetUserinfoFromScopes is deprecated by the library; SetUserinfoFromRequest does the work.
func (s *Storage) SetUserinfoFromScopes(context.Context, *oidc.UserInfo, string, string, []string) error {
	return nil
}

// GetClientByClientID returns a configured client.
func (s *Storage) GetClientByClientID(_ context.Context, id string) (op.Client, error) {
	c, ok := s.clients[id]
	if !ok {
		return nil, oidc.ErrInvalidClient().WithDescription("unknown client %q", clip(id))
	}
	return c, nil
}

// AuthorizeClientIDSecret checks a confidential client's secret.
func (s *Storage) AuthorizeClientIDSecret(_ context.Context, id, secret string) error {
	c, ok := s.clients[id]
	if !ok || !c.checkSecret(secret) {
		return errors.New("unknown client or wrong secret")
	}
	return nil
}

// ClientCredentials authenticates a service client for the client credentials grant.
func (s *Storage) ClientCredentials(_ context.Context, id, secret string) (op.Client, error) {
	c, ok := s.clients[id]
	if !ok || !c.checkSecret(secret) {
		return nil, oidc.ErrInvalidClient().WithDescription("unknown client or wrong secret")
	}
	if s.cfg.Policy.Principal(id).Kind != app.PrincipalService || !c.allows(oidc.GrantTypeClientCredentials) {
		return nil, oidc.ErrUnauthorizedClient().WithDescription("only service clients with the client_credentials grant may use it")
	}
	return c, nil
}

// ClientCredentialsTokenRequest is a service's token for scopes that need no approval. A
// role scope always needs one: it is refused, pointing at the device flow.
func (s *Storage) ClientCredentialsTokenRequest(_ context.Context, clientID string, scopes []string) (op.TokenRequest, error) {
	for _, scope := range scopes {
		if role, ok := strings.CutPrefix(scope, app.RoleScopePrefix); ok {
			return nil, oidc.ErrInvalidScope().WithDescription("%s needs approval, which client credentials cannot wait for: "+
				"use the device flow (gatehouse token --client-id %s --client-secret-env VAR --role %s)", clip(scope), clientID, clip(role))
		}
	}
	if _, err := s.cfg.Policy.RolesOfScopes(scopes); err != nil {
		return nil, oidc.ErrInvalidScope().WithDescription("%s", inputMessage(err))
	}
	return &tokenRequest{subject: clientID, clientID: clientID, scopes: scopes, audience: []string{clientID}, authTime: s.cfg.Now()}, nil
}

// SigningKey returns the active signing key (from memory; see Keyring).
func (s *Storage) SigningKey(ctx context.Context) (op.SigningKey, error) {
	return s.keys.SigningKey(ctx)
}

// SignatureAlgorithms returns the active key's algorithm.
func (s *Storage) SignatureAlgorithms(ctx context.Context) ([]jose.SignatureAlgorithm, error) {
	return s.keys.SignatureAlgorithms(ctx)
}

// KeySet returns the public keys published in JWKS.
func (s *Storage) KeySet(ctx context.Context) ([]op.Key, error) { return s.keys.KeySet(ctx) }

// Health reports whether the database answers.
func (s *Storage) Health(ctx context.Context) error { return s.tokens.Ping(ctx) }

// GetKeyByIDAndClientID: JWT client assertions are not accepted.
func (s *Storage) GetKeyByIDAndClientID(context.Context, string, string) (*jose.JSONWebKey, error) {
	return nil, oidc.ErrInvalidClient().WithDescription("client assertions are not supported")
}

// ValidateJWTProfileScopes: the JWT bearer grant is not accepted.
func (s *Storage) ValidateJWTProfileScopes(context.Context, string, []string) ([]string, error) {
	return nil, oidc.ErrUnsupportedGrantType()
}

// errDeviceFlowInServer: the device flow is handled by server.DeviceAuthorization and
// server.DeviceToken; the storage methods exist because the library only announces the
// device flow for storages that have them.
var errDeviceFlowInServer = errors.New("device flow is handled by the server")

// StoreDeviceAuthorization is never called; see errDeviceFlowInServer.
func (s *Storage) StoreDeviceAuthorization(context.Context, string, string, string, time.Time, []string) error {
	return errDeviceFlowInServer
}

// GetDeviceAuthorizatonState is never called; see errDeviceFlowInServer.
func (s *Storage) GetDeviceAuthorizatonState(context.Context, string, string) (*op.DeviceAuthorizationState, error) {
	return nil, errDeviceFlowInServer
}

func splitScope(scope string) []string { return strings.Fields(scope) }

// randomToken returns n random bytes, URL-safe encoded.
func randomToken(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// clip shortens untrusted text echoed in an error, without splitting a character.
func clip(s string) string {
	if r := []rune(s); len(r) > 64 {
		return string(r[:64]) + "…"
	}
	return s
}
