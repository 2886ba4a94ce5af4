package oidc

import (
	"context"
	"errors"
	"slices"

	"github.com/zitadel/oidc/v3/pkg/oidc"
	"github.com/zitadel/oidc/v3/pkg/op"

	"github.com/gatehouse/gatehouse/app"
)

// errBadCode is the one answer to a code that is unknown, expired or already used.
func errBadCode() *oidc.Error {
	return oidc.ErrInvalidGrant().WithDescription("unknown, expired or already used code")
}

// CodeExchange redeems an authorization code. Every check comes first — the code is known
// and unexpired, issued to this client for this redirect_uri, and a stored PKCE challenge
// is met by its verifier, for every client (RFC 7636 §4.6) — and only then is the code
// spent, in one conditional write, so a failed exchange does not burn it. A code presented
// again once spent is a replay: the client session its tokens belong to is revoked
// (RFC 6749 §4.1.2) and the answer is invalid_grant.
func (s *server) CodeExchange(ctx context.Context, r *op.ClientRequest[oidc.AccessTokenRequest]) (*op.Response, error) {
	client, ok := r.Client.(*Client)
	if !ok || !client.allows(oidc.GrantTypeCode) {
		return nil, oidc.ErrUnauthorizedClient().WithDescription("this client may not use the authorization code grant")
	}
	a, err := s.checkCode(ctx, client, r.Data)
	if err != nil {
		return nil, err
	}
	roles, _ := s.cfg.Policy.RolesOfScopes(a.Scopes)
	grants, err := s.svc.GrantsForToken(ctx, app.User(a.Subject), roles)
	if errors.Is(err, app.ErrNoActiveGrant) {
		return nil, oidc.ErrInvalidGrant().WithDescription("%s", err.Error())
	}
	if err != nil {
		return nil, errStore(err)
	}
	req := &tokenRequest{
		subject: a.Subject, clientID: a.ClientID, scopes: a.Scopes, audience: s.cfg.Policy.Audience(a.ClientID, roles),
		authTime: a.AuthTime, grants: grants, sessionID: randomToken(18), sessionTo: s.cfg.Now().Add(s.cfg.RefreshTokenTTL),
	}
	resp, err := s.mint(ctx, issue{req: req, client: client, grantType: oidc.GrantTypeCode, withIDToken: true, nonce: a.Nonce,
		withRefresh: slices.Contains(a.Scopes, oidc.ScopeOfflineAccess) && client.allows(oidc.GrantTypeRefreshToken),
		code:        &app.CodeSpend{AuthRequestID: a.ID, CodeHash: a.CodeHash}})
	if errors.Is(err, app.ErrConflict) { // another exchange of the same code won: this one is a replay of it
		if _, err := s.checkCode(ctx, client, r.Data); err != nil {
			return nil, err // the replay revoked what the winner got
		}
		return nil, errBadCode()
	}
	if err != nil {
		return nil, err
	}
	return op.NewResponse(resp), nil
}

// checkCode returns the sign-in a code was issued for if the exchange may go ahead; a
// replayed code revokes what it issued.
func (s *server) checkCode(ctx context.Context, client *Client, data *oidc.AccessTokenRequest) (app.AuthRequest, error) {
	a, err := s.storage.browser.AuthRequestByCode(ctx, app.HashSecret(data.Code))
	now := s.cfg.Now()
	switch {
	case errors.Is(err, app.ErrNotFound) || data.Code == "":
		return a, errBadCode()
	case err != nil:
		return a, errStore(err)
	case a.SessionID != "":
		// The session ends at most RefreshTokenTTL after the code was redeemed, before now.
		if err := s.storage.revokeSession(ctx, a.SessionID, now.Add(s.cfg.RefreshTokenTTL), client.GetID(), a.Subject,
			"authorization code replayed: the tokens it issued are revoked"); err != nil {
			return a, errStore(err)
		}
		s.cfg.Log.Warn("authorization code replayed: the tokens it issued are revoked", "client_id", a.ClientID, "auth_request", a.ID)
		return a, errBadCode()
	case !now.Before(a.CodeExpiresAt):
		return a, errBadCode()
	case a.ClientID != client.GetID():
		return a, oidc.ErrInvalidGrant().WithDescription("the code was issued to another client")
	case data.RedirectURI != a.RedirectURI:
		return a, oidc.ErrInvalidGrant().WithDescription("redirect_uri does not match the authorization request")
	}
	if err := op.AuthorizeCodeChallenge(data.CodeVerifier, (&authRequest{AuthRequest: a}).GetCodeChallenge()); err != nil {
		return a, err
	}
	return a, nil
}
