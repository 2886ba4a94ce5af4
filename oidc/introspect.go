package oidc

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/zitadel/oidc/v3/pkg/oidc"
	"github.com/zitadel/oidc/v3/pkg/op"

	"github.com/gatehouse/gatehouse/app"
)

// errInactive: the token is not a valid, unrevoked Gatehouse access token now.
var errInactive = errors.New("token inactive")

// accessToken checks raw as a Gatehouse access token and returns its claims: a compact JWS
// with header typ at+jwt, signed by a published key, from this issuer, unexpired, and not
// revoked (itself, its client session or any grant it carries). Anything else, an ID token
// included, is errInactive. The token is never looked up: revocations come from a cache.
func (s *Storage) accessToken(ctx context.Context, raw string) (*accessTokenClaims, error) {
	jws, err := jose.ParseSigned(raw, []jose.SignatureAlgorithm{jose.RS256, jose.ES256})
	if err != nil || len(jws.Signatures) != 1 {
		return nil, errInactive
	}
	header := jws.Signatures[0].Protected
	if typ, _ := header.ExtraHeaders[jose.HeaderType].(string); typ != accessTokenType {
		return nil, errInactive
	}
	pub, err := s.keys.publicKey(ctx, header.KeyID)
	if err != nil || pub.alg != jose.SignatureAlgorithm(header.Algorithm) {
		return nil, errInactive
	}
	payload, err := jws.Verify(pub.key)
	if err != nil {
		return nil, errInactive
	}
	var c accessTokenClaims
	if json.Unmarshal(payload, &c) != nil || c.Issuer != s.cfg.Issuer || c.JTI == "" {
		return nil, errInactive
	}
	now := s.cfg.Now()
	if !now.Before(time.Unix(c.Expiry, 0)) {
		return nil, errInactive
	}
	revoked, err := s.tokens.Revoked(ctx, c.ref(), now)
	if err != nil {
		return nil, err
	}
	if revoked {
		return nil, errInactive
	}
	return &c, nil
}

// Introspect answers introspection (RFC 7662) for an authenticated confidential client:
// active only while accessToken says so, with the roles and grants the token carries.
func (s *server) Introspect(ctx context.Context, r *op.Request[op.IntrospectionRequest]) (*op.Response, error) {
	cc := r.Data.ClientCredentials
	if cc == nil || cc.ClientAssertion != "" {
		return nil, oidc.ErrInvalidClient().WithDescription("authenticate with HTTP Basic")
	}
	if err := s.storage.AuthorizeClientIDSecret(ctx, cc.ClientID, cc.ClientSecret); err != nil {
		return nil, oidc.ErrUnauthorizedClient().WithParent(err)
	}
	resp := new(oidc.IntrospectionResponse)
	if r.Data.IntrospectionRequest == nil {
		return op.NewResponse(resp), nil
	}
	c, err := s.storage.accessToken(ctx, r.Data.Token)
	if errors.Is(err, errInactive) {
		return op.NewResponse(resp), nil
	}
	if err != nil {
		return nil, oidc.ErrServerError().WithParent(err)
	}
	resp.Active, resp.Subject, resp.ClientID, resp.TokenType = true, c.Subject, c.ClientID, oidc.BearerToken
	resp.Scope = oidc.SpaceDelimitedArray(splitScope(c.Scope))
	resp.Expiration, resp.IssuedAt = oidc.FromTime(time.Unix(c.Expiry, 0)), oidc.FromTime(time.Unix(c.IssuedAt, 0))
	resp.Audience, resp.Issuer, resp.JWTID = c.Audience, c.Issuer, c.JTI
	resp.Claims = map[string]any{"roles": c.Roles, "grants": c.Grants}
	return op.NewResponse(resp), nil
}

// UserInfo answers the userinfo endpoint for an active access token: who, and the roles
// the token still carries (a revoked grant ends the token, an expired one outlives it never).
func (s *server) UserInfo(ctx context.Context, r *op.Request[oidc.UserInfoRequest]) (*op.Response, error) {
	c, err := s.storage.accessToken(ctx, r.Data.AccessToken)
	if errors.Is(err, errInactive) {
		return nil, op.NewStatusError(oidc.ErrInvalidRequest().WithDescription("access token invalid"), http.StatusUnauthorized)
	}
	if err != nil {
		return nil, op.NewStatusError(oidc.ErrServerError().WithParent(err), http.StatusInternalServerError)
	}
	info := new(oidc.UserInfo)
	if err := s.storage.setUserinfo(ctx, info, c.Subject, c.Roles); err != nil {
		return nil, op.NewStatusError(oidc.ErrServerError().WithParent(err), http.StatusInternalServerError)
	}
	return op.NewResponse(info), nil
}

// Revocation revokes a refresh token (ending its whole client session) or an access token
// (RFC 7009), whatever the token_type_hint says. Only the client the token was issued to
// may revoke it; unknown tokens are ignored, as RFC 7009 asks.
func (s *server) Revocation(ctx context.Context, r *op.ClientRequest[oidc.RevocationRequest]) (*op.Response, error) {
	if err := s.storage.revoke(ctx, r.Data.Token, r.Client.GetID()); err != nil {
		return nil, op.RevocationError(err)
	}
	return op.NewResponse(nil), nil
}

func (s *Storage) revoke(ctx context.Context, token, clientID string) error {
	now := s.cfg.Now()
	if t, err := s.tokens.RefreshToken(ctx, app.HashSecret(token)); err == nil {
		if t.ClientID != clientID {
			return oidc.ErrUnauthorizedClient().WithDescription("the token was issued to another client")
		}
		return s.revokeSession(ctx, t, now)
	}
	c, err := s.accessToken(ctx, token)
	if errors.Is(err, errInactive) {
		return nil
	}
	if err != nil {
		return oidc.ErrServerError().WithParent(err)
	}
	if c.ClientID != clientID {
		return oidc.ErrUnauthorizedClient().WithDescription("the token was issued to another client")
	}
	if err := s.tokens.RevokeToken(ctx, c.JTI, now, time.Unix(c.Expiry, 0)); err != nil {
		return oidc.ErrServerError().WithParent(err)
	}
	return nil
}

// revokeSession ends the client session of t: its refresh tokens, and every access token
// issued with it, which all expire by the session's end plus one access token lifetime.
func (s *Storage) revokeSession(ctx context.Context, t app.RefreshToken, now time.Time) error {
	if err := s.tokens.RevokeSession(ctx, t.SessionID, now, t.ExpiresAt.Add(s.cfg.AccessTokenTTL)); err != nil {
		return fmt.Errorf("revoke session: %w", err)
	}
	return nil
}
