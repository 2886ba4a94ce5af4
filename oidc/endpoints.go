package oidc

import (
	"context"
	"errors"
	"net/http"

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

// UserInfo answers the current roles for a good access token; any other token gets 401
// invalid_token (RFC 6750 §3.1) and no internal text.
func (s *server) UserInfo(ctx context.Context, r *op.Request[oidc.UserInfoRequest]) (*op.Response, error) {
	claims, err := op.VerifyAccessToken[*oidc.AccessTokenClaims](ctx, r.Data.AccessToken, s.Provider().AccessTokenVerifier(ctx))
	if err != nil {
		return nil, errInvalidToken()
	}
	info := new(oidc.UserInfo)
	err = s.storage.SetUserinfoFromToken(ctx, info, claims.JWTID, claims.Subject, "")
	switch {
	case errors.Is(err, errTokenInactive):
		return nil, errInvalidToken()
	case err != nil:
		s.cfg.Log.Error("userinfo failed", "err", err)
		return nil, oidc.ErrServerError()
	}
	return op.NewResponse(info), nil
}

// Introspect answers RFC 7662 introspection, for authenticated clients marked
// introspect: true only (bad credentials: 401; others: 403).
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
	claims, err := op.VerifyAccessToken[*oidc.AccessTokenClaims](ctx, r.Data.Token, s.Provider().AccessTokenVerifier(ctx))
	if err != nil {
		return op.NewResponse(resp), nil
	}
	err = s.storage.SetIntrospectionFromToken(ctx, resp, claims.JWTID, claims.Subject, c.GetID())
	switch {
	case errors.Is(err, errTokenInactive):
	case err != nil:
		s.cfg.Log.Error("introspection failed; answering inactive", "err", err)
	default:
		resp.Active = true
	}
	return op.NewResponse(resp), nil
}

// Revocation revokes a refresh token (its whole client session) or an access token of the
// calling client. The token_type_hint is not trusted: every token type is searched
// (RFC 7009 §2.1). Unknown tokens are ignored, as RFC 7009 asks. Each revocation is an
// audit event.
func (s *server) Revocation(ctx context.Context, r *op.ClientRequest[oidc.RevocationRequest]) (*op.Response, error) {
	if err := s.revoke(ctx, r.Data.Token, r.Client.GetID()); err != nil {
		return nil, op.RevocationError(err)
	}
	return op.NewResponse(nil), nil
}

func (s *server) revoke(ctx context.Context, token, clientID string) error {
	event := app.AuditEvent{At: s.cfg.Now(), Actor: clientID, Action: app.ActionTokenRevoked, Source: app.SourceOIDC}
	refresh, err := s.storage.tokens.RefreshToken(ctx, app.HashSecret(token))
	switch {
	case err == nil && refresh.ClientID != clientID:
		return errOtherClient()
	case err == nil:
		event.Principal, event.Reason = s.cfg.Policy.Principal(refresh.Subject), "refresh token revoked: its client session ended"
		return s.recordRevocation(ctx, refresh.SessionID, "", event)
	case !errors.Is(err, app.ErrNotFound):
		return oidc.ErrServerError().WithParent(err)
	}
	claims, err := op.VerifyAccessToken[*oidc.AccessTokenClaims](ctx, token, s.Provider().AccessTokenVerifier(ctx))
	if err != nil {
		return nil // not a token of ours, or already expired: nothing to revoke
	}
	access, err := s.storage.tokens.AccessToken(ctx, claims.JWTID)
	switch {
	case errors.Is(err, app.ErrNotFound):
		return nil
	case err != nil:
		return oidc.ErrServerError().WithParent(err)
	case access.ClientID != clientID:
		return errOtherClient()
	case access.Revoked:
		return nil
	}
	event.Principal, event.Reason = s.cfg.Policy.Principal(access.Subject), "access token revoked"
	return s.recordRevocation(ctx, "", access.ID, event)
}

func (s *server) recordRevocation(ctx context.Context, sessionID, accessID string, e app.AuditEvent) error {
	if err := s.storage.tokens.RevokeClientTokens(ctx, sessionID, accessID, e); err != nil {
		return oidc.ErrServerError().WithParent(err)
	}
	return nil
}

func errOtherClient() *oidc.Error {
	return oidc.ErrUnauthorizedClient().WithDescription("the token was issued to another client")
}
