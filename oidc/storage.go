package oidc

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
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
	GrantsForToken(ctx context.Context, p app.Principal, roles []string) ([]app.Grant, error)
	RefreshGrants(ctx context.Context, p app.Principal, scopes []string) ([]string, []app.Grant, error)
	GrantsStillActive(ctx context.Context, ids []string) ([]app.Grant, bool, error)
	Login(ctx context.Context, id string) (app.Login, error)
}

// TokenStore records issued tokens and client sessions.
type TokenStore interface {
	SaveTokens(ctx context.Context, access app.IssuedToken, refresh *app.RefreshToken, replaces string) error
	AccessToken(ctx context.Context, id string) (app.IssuedToken, error)
	RevokeClientTokens(ctx context.Context, sessionID, accessID string, e app.AuditEvent) error
	RefreshToken(ctx context.Context, hash string) (app.RefreshToken, error)
	RevokeSession(ctx context.Context, id string, at time.Time) error
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
	_ op.Storage                        = (*Storage)(nil)
	_ op.DeviceAuthorizationStorage     = (*Storage)(nil)
	_ op.CanSetUserinfoFromRequest      = (*Storage)(nil)
	_ op.CanGetPrivateClaimsFromRequest = (*Storage)(nil)
	_ op.ClientCredentialsStorage       = (*Storage)(nil)
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
	sessionID string    // the refresh session continued, if any
	refresh   string    // hash of the refresh token being rotated, if any
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

// grantsClaim is the grants claim of a token: which approval let the caller in.
func grantsClaim(grants []app.Grant) []map[string]any {
	claim := make([]map[string]any, len(grants))
	for i, g := range grants {
		claim[i] = map[string]any{"id": g.ID, "role": g.Role, "request_id": g.RequestID, "approved_by": g.ApprovedBy, "expires_at": g.ExpiresAt.Unix()}
		if g.BreakGlass {
			claim[i]["break_glass"] = true // taken without approval; approved_by is empty
		}
	}
	return claim
}

// asTokenRequest finds the token request behind what the library passes around: one of
// ours, or a browser sign-in redeemed by its code.
func asTokenRequest(req any) (*tokenRequest, error) {
	switch r := req.(type) {
	case *tokenRequest:
		return r, nil
	case *authRequest:
		if r.token != nil {
			return r.token, nil
		}
	}
	return nil, oidc.ErrUnsupportedGrantType().WithDescription("this grant is not supported")
}

// CreateAccessToken records a new access token. Its expiry never passes the earliest end
// of its grants.
func (s *Storage) CreateAccessToken(ctx context.Context, req op.TokenRequest) (string, time.Time, error) {
	r, err := asTokenRequest(req)
	if err != nil {
		return "", time.Time{}, err
	}
	id, _, exp, err := s.saveTokens(ctx, r, false)
	return id, exp, err
}

// CreateAccessAndRefreshTokens records a new access token and the next refresh token of
// the session; rotating a refresh token spends the old one in the same write.
func (s *Storage) CreateAccessAndRefreshTokens(ctx context.Context, req op.TokenRequest, _ string) (string, string, time.Time, error) {
	r, err := asTokenRequest(req)
	if err != nil {
		return "", "", time.Time{}, err
	}
	return s.saveTokens(ctx, r, true)
}

// saveTokens records the access token for r and, when withRefresh, the next refresh token
// of its session (a new session unless r continues one), in one write.
func (s *Storage) saveTokens(ctx context.Context, r *tokenRequest, withRefresh bool) (id, refresh string, exp time.Time, err error) {
	now := s.cfg.Now()
	var next *app.RefreshToken
	if withRefresh {
		if r.sessionID == "" {
			r.sessionID, r.sessionTo = randomToken(18), now.Add(s.cfg.RefreshTokenTTL)
		}
		refresh = randomToken(32)
		next = &app.RefreshToken{Hash: app.HashSecret(refresh), SessionID: r.sessionID, ClientID: r.clientID, Subject: r.subject,
			Scopes: r.scopes, AuthTime: r.authTime, ExpiresAt: r.sessionTo}
	}
	access := app.IssuedToken{ID: randomToken(18), SessionID: r.sessionID, ClientID: r.clientID, Subject: r.subject,
		Scopes: r.scopes, GrantIDs: r.grantIDs(), ExpiresAt: app.TokenExpiry(now, s.cfg.AccessTokenTTL, r.grants)}
	err = s.tokens.SaveTokens(ctx, access, next, r.refresh)
	if errors.Is(err, app.ErrConflict) {
		return "", "", time.Time{}, oidc.ErrInvalidGrant().WithDescription("refresh token already used")
	}
	if err != nil {
		return "", "", time.Time{}, err
	}
	return access.ID, refresh, access.ExpiresAt, nil
}

// TokenRequestByRefreshToken checks a refresh token and has the app re-check the grants
// behind it (see app.Service.RefreshGrants). A refresh token used a second time is a
// replay: the whole session is revoked.
func (s *Storage) TokenRequestByRefreshToken(ctx context.Context, token string) (op.RefreshTokenRequest, error) {
	t, err := s.tokens.RefreshToken(ctx, app.HashSecret(token))
	if err != nil {
		return nil, errors.New("unknown or revoked refresh token")
	}
	now := s.cfg.Now()
	if t.Used {
		if err := s.tokens.RevokeSession(ctx, t.SessionID, now); err != nil {
			return nil, err
		}
		return nil, errors.New("refresh token replayed: session revoked")
	}
	if !now.Before(t.ExpiresAt) {
		return nil, errors.New("refresh token expired")
	}
	scopes, grants, err := s.svc.RefreshGrants(ctx, s.cfg.Policy.Principal(t.Subject), t.Scopes)
	if err != nil {
		return nil, err
	}
	r := &tokenRequest{subject: t.Subject, clientID: t.ClientID, scopes: scopes, grants: grants, authTime: t.AuthTime,
		sessionID: t.SessionID, refresh: t.Hash, sessionTo: t.ExpiresAt}
	r.audience = s.cfg.Policy.Audience(t.ClientID, r.roles())
	return r, nil
}

// errRevocationInServer: server.Revocation searches every token type itself (RFC 7009
// §2.1), whatever the hint; the library's path, which trusts the hint, is never taken.
var errRevocationInServer = errors.New("revocation is handled by the server")

// GetRefreshTokenInfo is never called; see errRevocationInServer.
func (s *Storage) GetRefreshTokenInfo(context.Context, string, string) (string, string, error) {
	return "", "", errRevocationInServer
}

// RevokeToken is never called; see errRevocationInServer.
func (s *Storage) RevokeToken(context.Context, string, string, string) *oidc.Error {
	return oidc.ErrServerError().WithParent(errRevocationInServer)
}

// errTokenInactive: the access token is unknown, revoked, expired or a grant behind it
// ended. Callers answer "inactive" or invalid_token, without saying which.
var errTokenInactive = errors.New("token inactive")

// activeToken returns an access token's record, its grants and their roles, if it is still
// good: not revoked (itself or its session), not expired, and every grant it carries still
// active.
func (s *Storage) activeToken(ctx context.Context, id, subject string) (app.IssuedToken, []app.Grant, []string, error) {
	t, err := s.tokens.AccessToken(ctx, id)
	if errors.Is(err, app.ErrNotFound) {
		return app.IssuedToken{}, nil, nil, errTokenInactive
	}
	if err != nil {
		return app.IssuedToken{}, nil, nil, err
	}
	if t.Revoked || t.Subject != subject || !s.cfg.Now().Before(t.ExpiresAt) {
		return app.IssuedToken{}, nil, nil, errTokenInactive
	}
	grants, ok, err := s.svc.GrantsStillActive(ctx, t.GrantIDs)
	if err != nil {
		return app.IssuedToken{}, nil, nil, err
	}
	if !ok {
		return app.IssuedToken{}, nil, nil, errTokenInactive
	}
	roles := make([]string, len(grants))
	for i, g := range grants {
		roles[i] = g.Role
	}
	return t, grants, roles, nil
}

// SetIntrospectionFromToken answers introspection: active only while activeToken says so,
// with the roles and grants the token carries.
func (s *Storage) SetIntrospectionFromToken(ctx context.Context, resp *oidc.IntrospectionResponse, tokenID, subject, _ string) error {
	t, grants, roles, err := s.activeToken(ctx, tokenID, subject)
	if err != nil {
		return err
	}
	resp.Subject, resp.ClientID, resp.Scope, resp.TokenType = t.Subject, t.ClientID, t.Scopes, oidc.BearerToken
	resp.Expiration = oidc.FromTime(t.ExpiresAt)
	resp.Audience = s.cfg.Policy.Audience(t.ClientID, roles)
	resp.Claims = map[string]any{"roles": roles, "grants": grantsClaim(grants)}
	return nil
}

// GetPrivateClaimsFromRequest adds Gatehouse's claims to an access token.
func (s *Storage) GetPrivateClaimsFromRequest(_ context.Context, req op.TokenRequest, _ []string) (map[string]any, error) {
	r, err := asTokenRequest(req)
	if err != nil {
		return nil, err
	}
	return map[string]any{"scope": strings.Join(r.scopes, " "), "roles": r.roles(), "grants": grantsClaim(r.grants)}, nil
}

// GetPrivateClaimsFromScopes is unused: GetPrivateClaimsFromRequest takes its place.
func (s *Storage) GetPrivateClaimsFromScopes(context.Context, string, string, []string) (map[string]any, error) {
	return nil, nil
}

// SetUserinfoFromRequest fills an ID token: who (name and email from Slack) and the roles.
func (s *Storage) SetUserinfoFromRequest(ctx context.Context, info *oidc.UserInfo, req op.IDTokenRequest, _ []string) error {
	r, err := asTokenRequest(req)
	if err != nil {
		return err
	}
	return s.setUserinfo(ctx, info, r.subject, r.roles())
}

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

// SetUserinfoFromToken answers the userinfo endpoint for a still-active access token.
func (s *Storage) SetUserinfoFromToken(ctx context.Context, info *oidc.UserInfo, tokenID, subject, _ string) error {
	t, _, roles, err := s.activeToken(ctx, tokenID, subject)
	if err != nil {
		return err
	}
	return s.setUserinfo(ctx, info, t.Subject, roles)
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
