package oidc

import (
	"context"
	"errors"
	"net/url"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/zitadel/oidc/v3/pkg/oidc"
	"github.com/zitadel/oidc/v3/pkg/op"

	"github.com/gatehouse/gatehouse/app"
)

// BrowserStore keeps browser sign-ins and sessions.
type BrowserStore interface {
	CreateAuthRequest(ctx context.Context, a app.AuthRequest) error
	AuthRequest(ctx context.Context, id string) (app.AuthRequest, error)
	AttachLogin(ctx context.Context, id, loginID string) error
	CompleteAuthRequest(ctx context.Context, id, subject string, at time.Time) error
	SaveAuthCode(ctx context.Context, id, codeHash string, expiresAt time.Time) error
	AuthRequestByCode(ctx context.Context, codeHash string) (app.AuthRequest, error)
	CreateBrowserSession(ctx context.Context, b app.BrowserSession) error
	BrowserSession(ctx context.Context, hash string, now time.Time) (app.BrowserSession, error)
	EndBrowserSession(ctx context.Context, hash string) error
}

// authCodeTTL is how long an authorization code can be exchanged: the relying party does
// it right after the redirect.
const authCodeTTL = time.Minute

// authRequest is a browser sign-in as the library sees it.
type authRequest struct {
	app.AuthRequest
}

var _ op.AuthRequest = (*authRequest)(nil)

func (a *authRequest) GetID() string          { return a.ID }
func (a *authRequest) GetACR() string         { return "" }
func (a *authRequest) GetAMR() []string       { return []string{"slack"} }
func (a *authRequest) GetAuthTime() time.Time { return a.AuthTime }
func (a *authRequest) GetClientID() string    { return a.ClientID }
func (a *authRequest) GetNonce() string       { return a.Nonce }
func (a *authRequest) GetRedirectURI() string { return a.RedirectURI }
func (a *authRequest) GetScopes() []string    { return a.Scopes }
func (a *authRequest) GetState() string       { return a.State }
func (a *authRequest) GetSubject() string     { return a.Subject }
func (a *authRequest) Done() bool             { return a.AuthRequest.Done }
func (a *authRequest) GetResponseType() oidc.ResponseType {
	return oidc.ResponseTypeCode
}
func (a *authRequest) GetResponseMode() oidc.ResponseMode { return oidc.ResponseMode(a.ResponseMode) }

// GetAudience is the client: the tokens' audiences are decided when the code is redeemed.
func (a *authRequest) GetAudience() []string { return []string{a.ClientID} }

func (a *authRequest) GetCodeChallenge() *oidc.CodeChallenge {
	if a.CodeChallenge == "" {
		return nil
	}
	return &oidc.CodeChallenge{Challenge: a.CodeChallenge, Method: oidc.CodeChallengeMethod(a.CodeChallengeMethod)}
}

// CreateAuthRequest records a browser sign-in started at /authorize. state is required (it
// is the client's CSRF protection), a public client must use PKCE (S256), and a role scope
// naming no role in the policy is invalid_scope. Parameters with control characters or
// invalid UTF-8 are invalid_request: no client sends them, and PostgreSQL cannot store
// a NUL byte.
func (s *Storage) CreateAuthRequest(ctx context.Context, req *oidc.AuthRequest, _ string) (op.AuthRequest, error) {
	c, ok := s.clients[req.ClientID]
	if !ok {
		return nil, oidc.ErrInvalidClient()
	}
	if req.State == "" {
		return nil, oidc.ErrInvalidRequest().WithDescription("state is required")
	}
	if !printable(req.State, req.Nonce, req.CodeChallenge) || !printable(req.Scopes...) || !printable(req.Prompt...) {
		return nil, oidc.ErrInvalidRequest().WithDescription("state, nonce, code_challenge, scope and prompt must be printable text")
	}
	if c.cfg.Public && (req.CodeChallenge == "" || req.CodeChallengeMethod != oidc.CodeChallengeMethodS256) {
		return nil, oidc.ErrInvalidRequest().WithDescription("public clients must use PKCE with S256")
	}
	if _, err := s.cfg.Policy.ClientRoles(req.ClientID, req.Scopes); err != nil {
		return nil, oidc.ErrInvalidScope().WithDescription("%s", inputMessage(err))
	}
	now := s.cfg.Now()
	a := app.AuthRequest{
		ID: randomToken(18), ClientID: req.ClientID, RedirectURI: req.RedirectURI, Scopes: req.Scopes, State: req.State,
		Nonce: req.Nonce, CodeChallenge: req.CodeChallenge, CodeChallengeMethod: string(req.CodeChallengeMethod),
		ResponseMode: string(req.ResponseMode), Prompt: req.Prompt, CreatedAt: now.UTC(), ExpiresAt: now.Add(s.cfg.LoginTTL).UTC(),
	}
	if err := s.browser.CreateAuthRequest(ctx, a); err != nil {
		return nil, err
	}
	return &authRequest{AuthRequest: a}, nil
}

// AuthRequestByID returns an unexpired sign-in.
func (s *Storage) AuthRequestByID(ctx context.Context, id string) (op.AuthRequest, error) {
	a, err := s.browser.AuthRequest(ctx, id)
	switch {
	case errors.Is(err, app.ErrNotFound):
		return nil, oidc.ErrInvalidRequest().WithDescription("unknown or expired sign-in")
	case err != nil: // the library shows the error's text to the browser: no database details in it
		s.cfg.Log.Error("loading a browser sign-in failed", "auth_request", id, "err", err)
		return nil, oidc.ErrServerError().WithDescription("the database did not answer in time; try again")
	}
	if !s.cfg.Now().Before(a.ExpiresAt) {
		return nil, oidc.ErrInvalidRequest().WithDescription("the sign-in expired")
	}
	return &authRequest{AuthRequest: a}, nil
}

// SaveAuthCode records the code issued for a done sign-in (hashed, short-lived).
func (s *Storage) SaveAuthCode(ctx context.Context, id, code string) error {
	return s.browser.SaveAuthCode(ctx, id, app.HashSecret(code), s.cfg.Now().Add(authCodeTTL))
}

// errCodeExchangeInServer: server.CodeExchange checks a code before it spends it; the
// library's redeem-first path is never taken.
var errCodeExchangeInServer = errors.New("code exchange is handled by the server")

// AuthRequestByCode is never called; see errCodeExchangeInServer.
func (s *Storage) AuthRequestByCode(context.Context, string) (op.AuthRequest, error) {
	return nil, errCodeExchangeInServer
}

// DeleteAuthRequest keeps the sign-in: it is purged a day after it ends, and until then a
// replayed code is recognised and revokes what the code issued.
func (s *Storage) DeleteAuthRequest(context.Context, string) error { return nil }

// TerminateSession is never called: endSession signs out only the calling browser.
func (s *Storage) TerminateSession(context.Context, string, string) error {
	return errors.New("end session is handled by the sign-in pages")
}

// inputMessage returns the words of an *app.InputError.
func inputMessage(err error) string {
	var input *app.InputError
	if !errors.As(err, &input) {
		return err.Error()
	}
	msgs := make([]string, len(input.Problems))
	for i, p := range input.Problems {
		msgs[i] = p.Message
	}
	return strings.Join(msgs, " ")
}

// errorRedirect is where a sign-in that ends without tokens sends the browser: back to the
// client with the error and its state.
func errorRedirect(a app.AuthRequest, code, description string) string {
	u, err := url.Parse(a.RedirectURI) // checked against the client's registered URIs at /authorize
	if err != nil {
		return "/"
	}
	q := u.Query()
	q.Set("error", code)
	q.Set("error_description", description)
	if a.State != "" {
		q.Set("state", a.State)
	}
	u.RawQuery = q.Encode()
	return u.String()
}

// printable reports whether every value is valid UTF-8 without control characters.
func printable(values ...string) bool {
	for _, v := range values {
		if !utf8.ValidString(v) || strings.ContainsFunc(v, unicode.IsControl) {
			return false
		}
	}
	return true
}
