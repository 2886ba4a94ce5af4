package oidc

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"time"

	"github.com/zitadel/oidc/v3/pkg/oidc"
	"github.com/zitadel/oidc/v3/pkg/op"

	"github.com/gatehouse/gatehouse/app"
)

// accessTokenType is the JWT header typ of access tokens (RFC 9068 §2.1). ID tokens keep
// "JWT", so a service that checks typ never takes an ID token for an access token.
const accessTokenType = "at+jwt"

// accessTokenClaims are the claims of a Gatehouse access token (RFC 9068 §2.2 plus roles
// and grants). sid names the client session it was issued with, so that revoking the
// session ends it.
type accessTokenClaims struct {
	Issuer    string       `json:"iss"`
	Subject   string       `json:"sub"`
	Audience  []string     `json:"aud"`
	Expiry    int64        `json:"exp"`
	IssuedAt  int64        `json:"iat"`
	AuthTime  int64        `json:"auth_time,omitempty"`
	JTI       string       `json:"jti"`
	ClientID  string       `json:"client_id"`
	Scope     string       `json:"scope"`
	SessionID string       `json:"sid,omitempty"`
	Roles     []string     `json:"roles"`
	Grants    []grantClaim `json:"grants"`
}

// grantClaim is one entry of the grants claim: which approval let the caller in.
type grantClaim struct {
	ID         string   `json:"id"`
	Role       string   `json:"role"`
	RequestID  string   `json:"request_id"`
	ApprovedBy []string `json:"approved_by"`
	ExpiresAt  int64    `json:"expires_at"`
	BreakGlass bool     `json:"break_glass,omitempty"` // taken without approval; approved_by is empty
}

func grantClaims(grants []app.Grant) []grantClaim {
	claims := make([]grantClaim, len(grants))
	for i, g := range grants {
		claims[i] = grantClaim{ID: g.ID, Role: g.Role, RequestID: g.RequestID, ApprovedBy: g.ApprovedBy, ExpiresAt: g.ExpiresAt.Unix(), BreakGlass: g.BreakGlass}
	}
	return claims
}

func (c *accessTokenClaims) ref() app.TokenRef {
	ids := make([]string, len(c.Grants))
	for i, g := range c.Grants {
		ids[i] = g.ID
	}
	return app.TokenRef{JTI: c.JTI, SessionID: c.SessionID, GrantIDs: ids}
}

// issue is one token response about to be made.
type issue struct {
	req         *tokenRequest
	client      *Client
	grantType   oidc.GrantType
	withRefresh bool
	withIDToken bool
	nonce       string // of a browser sign-in, for its ID token
	// What the tokens redeem, spent in the issuance's write, with its audit events.
	login  *app.LoginSpend
	code   *app.CodeSpend
	events []app.AuditEvent
}

// mint makes a token response: it signs the access token (and the ID token when asked),
// then records the issuance — the refresh token rotated or created in the same write, the
// grants re-checked in it, the audit events — and answers only once that committed. A
// revocation that commits before the record wins: the tokens are never handed out.
func (s *server) mint(ctx context.Context, in issue) (*oidc.AccessTokenResponse, error) {
	r, now := in.req, s.cfg.Now()
	var next *app.RefreshToken
	var refresh string
	if in.withRefresh {
		if r.sessionID == "" {
			r.sessionID, r.sessionTo = randomToken(18), now.Add(s.cfg.RefreshTokenTTL)
		}
		chain, gen := r.chain, r.gen+1
		if chain == "" { // a new session, or one whose token is from before chains
			chain, gen = newRefreshChain(), 0
		}
		refresh = newRefreshToken(chain, gen)
		next = &app.RefreshToken{Hash: app.HashSecret(refresh), Chain: chain, Generation: gen, SessionID: r.sessionID, ClientID: r.clientID, Subject: r.subject,
			Scopes: r.scopes, AuthTime: r.authTime, ExpiresAt: r.sessionTo}
	}
	key, err := s.storage.keys.activeKey(ctx)
	if err != nil {
		return nil, err
	}
	exp := app.TokenExpiry(now, s.cfg.AccessTokenTTL, r.grants)
	claims := &accessTokenClaims{
		Issuer: op.IssuerFromContext(ctx), Subject: r.subject, Audience: r.audience, Expiry: exp.Unix(), IssuedAt: now.Unix(),
		JTI: randomToken(18), ClientID: r.clientID, Scope: strings.Join(r.scopes, " "), SessionID: r.sessionID,
		Roles: r.roles(), Grants: grantClaims(r.grants),
	}
	if !r.authTime.IsZero() {
		claims.AuthTime = r.authTime.Unix()
	}
	accessToken, err := signJSON(key, claims, true)
	if err != nil {
		return nil, err
	}
	resp := &oidc.AccessTokenResponse{
		AccessToken: accessToken, RefreshToken: refresh, TokenType: oidc.BearerToken,
		ExpiresIn: uint64(exp.Sub(now).Seconds()), Scope: r.scopes,
	}
	if in.withIDToken {
		if resp.IDToken, err = s.idToken(ctx, key, in, accessToken, now); err != nil {
			return nil, err
		}
	}
	err = s.storage.tokens.RecordIssuance(ctx, app.Issuance{
		At: now, GrantIDs: r.grantIDs(), Login: in.login, Code: in.code, SessionID: r.sessionID, Refresh: next, Replaces: r.refresh,
		Events: append(in.events, app.IssuanceEvents(now, r.clientID, s.cfg.Policy.Principal(r.subject), string(in.grantType), claims.JTI, exp, r.grants)...),
	})
	switch {
	case errors.Is(err, app.ErrConflict): // the caller says, in its grant's words, what was spent
		return nil, app.ErrConflict
	case errors.Is(err, app.ErrGrantEnded):
		return nil, oidc.ErrInvalidGrant().WithDescription("a grant behind the token ended before it was issued")
	case err != nil:
		return nil, errStore(err)
	}
	s.cfg.Metrics.TokenIssued(string(in.grantType))
	return resp, nil
}

// idTokenClaims are the claims of a Gatehouse ID token. Its audience is only the client,
// and it expires no later than the earliest grant behind its roles.
type idTokenClaims struct {
	Issuer        string   `json:"iss"`
	Subject       string   `json:"sub"`
	Audience      []string `json:"aud"`
	Expiry        int64    `json:"exp"`
	IssuedAt      int64    `json:"iat"`
	AuthTime      int64    `json:"auth_time,omitempty"`
	Nonce         string   `json:"nonce,omitempty"`
	AMR           []string `json:"amr"`
	AccessHash    string   `json:"at_hash,omitempty"`
	Name          string   `json:"name,omitempty"`
	Email         string   `json:"email,omitempty"`
	EmailVerified *bool    `json:"email_verified,omitempty"`
	Roles         []string `json:"roles"`
}

func (s *server) idToken(ctx context.Context, key *signingKey, in issue, accessToken string, now time.Time) (string, error) {
	r := in.req
	claims := &idTokenClaims{
		Issuer: op.IssuerFromContext(ctx), Subject: r.subject, Audience: []string{r.clientID},
		Expiry: app.TokenExpiry(now, in.client.IDTokenLifetime(), r.grants).Unix(), IssuedAt: now.Unix(),
		Nonce: in.nonce, AMR: r.GetAMR(), Roles: r.roles(),
	}
	if !r.authTime.IsZero() {
		claims.AuthTime = r.authTime.Unix()
	}
	var err error
	if claims.AccessHash, err = oidc.ClaimHash(accessToken, key.alg); err != nil {
		return "", err
	}
	var info oidc.UserInfo
	if err := s.storage.setUserinfo(ctx, &info, r.subject, claims.Roles); err != nil {
		return "", err
	}
	claims.Name, claims.Email = info.Name, info.Email
	if info.Email != "" {
		verified := bool(info.EmailVerified)
		claims.EmailVerified = &verified
	}
	return signJSON(key, claims, false)
}

func signJSON(key *signingKey, claims any, access bool) (string, error) {
	payload, err := json.Marshal(claims)
	if err != nil {
		return "", err
	}
	return key.sign(payload, access)
}
