package oidc

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/zitadel/oidc/v3/pkg/oidc"
	"github.com/zitadel/oidc/v3/pkg/op"

	"github.com/gatehouse/gatehouse/app"
)

// errInvalidToken is the RFC 6750 answer to a bad, expired or revoked bearer token; it
// says nothing more, whatever the reason.
func errInvalidToken() error {
	return op.NewStatusError(&oidc.Error{ErrorType: "invalid_token", Description: "the access token is invalid, expired or revoked"},
		http.StatusUnauthorized)
}

// errStore answers a request the store failed: server_error, never an answer about the
// grant (a client told invalid_grant throws its refresh token away). The database being
// busy, unreachable or slower than the request's time is 503, and the client may try again.
func errStore(err error) error {
	e := oidc.ErrServerError().WithParent(err)
	if databaseDown(err) {
		return op.NewStatusError(e.WithDescription("the database did not answer in time; try again"), http.StatusServiceUnavailable)
	}
	return e
}

// databaseDown reports whether err says the database did not answer in time: busy,
// unreachable or slower than the request's time. That is no answer about what was asked.
func databaseDown(err error) bool {
	return errors.Is(err, app.ErrBusy) || errors.Is(err, app.ErrUnavailable) || errors.Is(err, context.DeadlineExceeded)
}

// errBadClient answers bad client credentials with 401 (RFC 6749 §5.2, RFC 7662 §2.3);
// serveOAuth adds WWW-Authenticate.
func errBadClient() error {
	return op.NewStatusError(oidc.ErrInvalidClient().WithDescription("unknown client or wrong secret"), http.StatusUnauthorized)
}

// VerifyClient authenticates the client at the token, device authorization and revocation
// endpoints; bad credentials get 401.
func (s *server) VerifyClient(ctx context.Context, r *op.Request[op.ClientCredentials]) (op.Client, error) {
	c, err := s.LegacyServer.VerifyClient(ctx, r)
	var e *oidc.Error
	if errors.As(err, &e) && e.ErrorType == oidc.InvalidClient {
		return nil, errBadClient()
	}
	return c, err
}

// VerifyAuthRequest adds Gatehouse's redirect_uri rule to the library's checks: exact
// match, except the port of a public client's loopback redirect (RFC 8252 §7.3).
func (s *server) VerifyAuthRequest(ctx context.Context, r *op.Request[oidc.AuthRequest]) (*op.ClientRequest[oidc.AuthRequest], error) {
	cr, err := s.LegacyServer.VerifyAuthRequest(ctx, r)
	if err != nil {
		return nil, err
	}
	if c, ok := cr.Client.(*Client); ok && r.Data.RedirectURI != "" && !c.redirectAllowed(r.Data.RedirectURI) {
		return nil, oidc.ErrInvalidRequestRedirectURI().WithDescription("redirect_uri is not registered for this client")
	}
	return cr, nil
}

// Discovery lists exactly what works (RFC 8414 §2): the code flow only, the four grants
// Gatehouse serves, and the client authentication each endpoint accepts. A confidential
// client may send its secret by HTTP Basic or in the form (client_secret_post): both work
// everywhere, and gatehouse token uses the form at device authorization.
func (s *server) Discovery(ctx context.Context, r *op.Request[struct{}]) (*op.Response, error) {
	resp, err := s.LegacyServer.Discovery(ctx, r)
	if err != nil {
		return nil, err
	}
	d, ok := resp.Data.(*oidc.DiscoveryConfiguration)
	if !ok {
		return resp, nil
	}
	secret := []oidc.AuthMethod{oidc.AuthMethodBasic, oidc.AuthMethodPost}
	d.ResponseTypesSupported = []string{string(oidc.ResponseTypeCode)}
	d.ResponseModesSupported = []string{string(oidc.ResponseModeQuery)}
	d.GrantTypesSupported = []oidc.GrantType{oidc.GrantTypeCode, oidc.GrantTypeRefreshToken, oidc.GrantTypeDeviceCode, oidc.GrantTypeClientCredentials}
	d.TokenEndpointAuthMethodsSupported = append([]oidc.AuthMethod{oidc.AuthMethodNone}, secret...)
	d.RevocationEndpointAuthMethodsSupported = append([]oidc.AuthMethod{oidc.AuthMethodNone}, secret...)
	d.IntrospectionEndpointAuthMethodsSupported = secret
	d.TokenEndpointAuthSigningAlgValuesSupported = nil
	d.RevocationEndpointAuthSigningAlgValuesSupported = nil
	d.IntrospectionEndpointAuthSigningAlgValuesSupported = nil
	d.RequestObjectSigningAlgValuesSupported = nil
	d.RequestParameterSupported = false
	d.CodeChallengeMethodsSupported = []oidc.CodeChallengeMethod{oidc.CodeChallengeMethodS256}
	d.ClaimsSupported = []string{"iss", "sub", "aud", "exp", "iat", "auth_time", "nonce", "amr", "at_hash", "azp", "jti",
		"client_id", "scope", "name", "email", "email_verified", "roles", "grants"}
	return resp, nil
}

// UserInfo answers who and the roles for a good access token (see Storage.accessToken);
// any other token gets 401 invalid_token (RFC 6750 §3.1) and no internal text.
func (s *server) UserInfo(ctx context.Context, r *op.Request[oidc.UserInfoRequest]) (*op.Response, error) {
	c, err := s.storage.accessToken(ctx, r.Data.AccessToken)
	switch {
	case errors.Is(err, errInactive):
		return nil, errInvalidToken()
	case err != nil:
		s.cfg.Log.Error("userinfo failed", "err", err)
		return nil, errStore(err)
	}
	info := new(oidc.UserInfo)
	if err := s.storage.setUserinfo(ctx, info, c.Subject, c.Roles); err != nil {
		s.cfg.Log.Error("userinfo failed", "err", err)
		return nil, errStore(err)
	}
	return op.NewResponse(info), nil
}

// Introspect answers RFC 7662 introspection, for authenticated clients marked
// introspect: true only (bad credentials: 401; others: 403): active only while
// Storage.accessToken says so, with the roles and grants the token carries; 503 while the
// revocations cannot be checked.
func (s *server) Introspect(ctx context.Context, r *op.Request[op.IntrospectionRequest]) (*op.Response, error) {
	cc := r.Data.ClientCredentials
	c, ok := s.storage.clients[cc.ClientID]
	if cc.ClientAssertion != "" || !ok || !c.checkSecret(cc.ClientSecret) {
		return nil, errBadClient()
	}
	if !c.cfg.Introspect {
		return nil, op.NewStatusError(oidc.ErrUnauthorizedClient().WithDescription("only clients marked introspect: true may introspect tokens"),
			http.StatusForbidden)
	}
	resp := new(oidc.IntrospectionResponse)
	if r.Data.IntrospectionRequest == nil {
		return op.NewResponse(resp), nil
	}
	claims, err := s.storage.accessToken(ctx, r.Data.Token)
	switch {
	case errors.Is(err, errInactive):
		return op.NewResponse(resp), nil
	case err != nil: // no verdict: a resource server must not take (or cache) an outage for a revocation
		s.cfg.Log.Error("introspection failed", "err", err)
		return nil, errStore(err)
	}
	resp.Active, resp.Subject, resp.ClientID, resp.TokenType = true, claims.Subject, claims.ClientID, oidc.BearerToken
	resp.Scope = oidc.SpaceDelimitedArray(splitScope(claims.Scope))
	resp.Expiration, resp.IssuedAt = oidc.FromTime(time.Unix(claims.Expiry, 0)), oidc.FromTime(time.Unix(claims.IssuedAt, 0))
	resp.Audience, resp.Issuer, resp.JWTID = claims.Audience, claims.Issuer, claims.JTI
	resp.Claims = map[string]any{"roles": claims.Roles, "grants": claims.Grants}
	return op.NewResponse(resp), nil
}

// Revocation revokes a refresh token (its whole client session) or an access token of the
// calling client. The token_type_hint is not trusted: every token type is searched
// (RFC 7009 §2.1). Unknown tokens are ignored, as RFC 7009 asks. Each revocation is an
// audit event.
func (s *server) Revocation(ctx context.Context, r *op.ClientRequest[oidc.RevocationRequest]) (*op.Response, error) {
	if err := s.revoke(ctx, r.Data.Token, r.Client.GetID()); err != nil {
		if errors.As(err, new(op.StatusError)) { // errStore's 503: RevocationError would make it 500
			return nil, err
		}
		return nil, op.RevocationError(err)
	}
	return op.NewResponse(nil), nil
}

// revoke records what revoking token asks for. A refresh token ends its client session,
// whose tokens all expire by the session's end plus one access token lifetime; an access
// token is revoked by its jti until it expires.
func (s *server) revoke(ctx context.Context, token, clientID string) error {
	refresh, err := s.storage.refreshToken(ctx, token)
	switch {
	case err == nil && refresh.ClientID != clientID:
		return errOtherClient()
	case err == nil:
		if err := s.storage.revokeSession(ctx, refresh.SessionID, refresh.ExpiresAt, clientID, refresh.Subject,
			"refresh token revoked: its client session ended"); err != nil {
			return errStore(err)
		}
		return nil
	case !errors.Is(err, app.ErrNotFound):
		return errStore(err)
	}
	access, err := s.storage.accessToken(ctx, token)
	switch {
	case errors.Is(err, errInactive):
		return nil // not an access token of ours, expired or already revoked: nothing to revoke
	case err != nil:
		return errStore(err)
	case access.ClientID != clientID:
		return errOtherClient()
	}
	now := s.cfg.Now()
	r := app.Revocation{Kind: app.RevokedToken, Ref: access.JTI, At: now, Until: time.Unix(access.Expiry, 0)}
	e := app.AuditEvent{At: now, Actor: clientID, Action: app.ActionTokenRevoked, Principal: s.cfg.Policy.Principal(access.Subject),
		Reason: fmt.Sprintf("access token %s revoked", access.JTI), Source: app.SourceOIDC}
	if err := s.storage.tokens.RevokeClientTokens(ctx, r, e); err != nil {
		return errStore(err)
	}
	return nil
}

func errOtherClient() *oidc.Error {
	return oidc.ErrUnauthorizedClient().WithDescription("the token was issued to another client")
}
