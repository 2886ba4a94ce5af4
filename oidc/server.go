package oidc

import (
	"context"
	"crypto/rand"
	"errors"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/rs/cors"
	"github.com/zitadel/oidc/v3/pkg/oidc"
	"github.com/zitadel/oidc/v3/pkg/op"

	"github.com/gatehouse/gatehouse/app"
)

// Config sets up the provider.
type Config struct {
	Issuer          string
	Policy          app.Policy
	Clients         []ClientConfig
	AccessTokenTTL  time.Duration
	IDTokenTTL      time.Duration
	RefreshTokenTTL time.Duration
	PollInterval    time.Duration // announced to device-flow clients, and enforced
	LoginTTL        time.Duration // how long a device code stays usable
	Now             func() time.Time
	Log             *slog.Logger
	Metrics         Metrics
}

// Metrics counts what the provider does.
type Metrics interface {
	TokenIssued(grantType string)
}

// Deps are the provider's collaborators.
type Deps struct {
	Service   Service
	Tokens    TokenStore
	Browser   BrowserStore
	Keys      *Keyring
	Directory Directory
}

// NewHandler returns the OpenID Provider's HTTP handler: discovery, JWKS, authorize and the
// sign-in page, token, device authorization, userinfo, introspection, revocation and end
// session.
func NewHandler(cfg Config, d Deps) (http.Handler, error) {
	storage := &Storage{cfg: cfg, svc: d.Service, tokens: d.Tokens, keys: d.Keys, people: d.Directory, browser: d.Browser, clients: map[string]*Client{}}
	for _, c := range cfg.Clients {
		storage.clients[c.ID] = newClient(c, cfg.IDTokenTTL)
	}
	var cryptoKey [32]byte // the library seals authorization codes with it; they live a minute, so a key per start is enough
	rand.Read(cryptoKey[:])
	opts := []op.Option{op.WithLogger(cfg.Log)}
	if strings.HasPrefix(cfg.Issuer, "http://") {
		opts = append(opts, op.WithAllowInsecure()) // for loopback set-ups; production issuers are https
	}
	provider, err := op.NewProvider(&op.Config{
		CryptoKey:             cryptoKey,
		CodeMethodS256:        true,
		AuthMethodPost:        false, // confidential clients authenticate with HTTP Basic
		GrantTypeRefreshToken: true,
		SupportedScopes:       []string{oidc.ScopeOpenID, oidc.ScopeProfile, oidc.ScopeEmail, oidc.ScopeOfflineAccess},
		DeviceAuthorization: op.DeviceAuthorizationConfig{
			Lifetime: cfg.LoginTTL, PollInterval: cfg.PollInterval, UserFormPath: "/device",
		},
	}, storage, op.StaticIssuer(cfg.Issuer), opts...)
	if err != nil {
		return nil, err
	}
	s := &server{LegacyServer: op.NewLegacyServer(provider, *op.DefaultEndpoints), cfg: cfg, storage: storage, svc: d.Service}
	pages := &signin{cfg: cfg, svc: d.Service, browser: d.Browser, secure: strings.HasPrefix(cfg.Issuer, "https://"),
		clients: storage.clients, hints: provider.IDTokenHintVerifier}
	callback := pages.guard(http.HandlerFunc(op.AuthorizeCallbackHandler(provider)))
	opHandler := op.RegisterLegacyServer(s, callback.ServeHTTP, op.WithServerCORSOptions(&cors.Options{
		// Token, JWKS and discovery may be called from browsers, but never with cookies:
		// the library's default (any origin, with credentials) is not acceptable.
		AllowedOrigins:   []string{"*"},
		AllowCredentials: false,
		AllowedMethods:   []string{http.MethodGet, http.MethodHead, http.MethodPost},
		AllowedHeaders:   []string{"Authorization", "Content-Type", "Accept"},
	}), op.WithFallbackLogger(cfg.Log))
	mux := http.NewServeMux()
	pages.routes(mux, callback)
	mux.Handle("/", opHandler)
	return guardHTTP(mux), nil
}

// server takes over the parts of the device flow the library gets wrong for us: it does
// not retry a clashing user code, never answers slow_down and never marks a device code
// used. Everything else is the library's LegacyServer.
type server struct {
	*op.LegacyServer
	cfg     Config
	storage *Storage
	svc     Service
}

// DeviceAuthorization starts a device flow: a login with a unique user code, and a device
// code stored only as a hash. For a service client nobody types the code: its requests go
// to the approvers at once, with the optional form parameters duration and reason (a bad
// one is invalid_request). Asking for a role not in the policy, or one the client may not
// ask for, is invalid_scope.
func (s *server) DeviceAuthorization(ctx context.Context, r *op.ClientRequest[oidc.DeviceAuthorizationRequest]) (*op.Response, error) {
	client, ok := r.Client.(*Client)
	if !ok || !client.allows(oidc.GrantTypeDeviceCode) {
		return nil, oidc.ErrUnauthorizedClient().WithDescription("this client may not use the device flow")
	}
	deviceCode := randomToken(32)
	login, err := s.svc.StartLogin(ctx, app.LoginStart{
		ClientID: client.GetID(), Scopes: r.Data.Scopes, Secret: deviceCode, Lifetime: s.cfg.LoginTTL,
		Service: s.cfg.Policy.Principal(client.GetID()).Kind == app.PrincipalService, Duration: r.Form.Get("duration"), Reason: r.Form.Get("reason"),
	})
	var input *app.InputError
	if errors.As(err, &input) {
		p := input.Problems[0]
		if p.Field == app.FieldRole {
			return nil, oidc.ErrInvalidScope().WithDescription("%s", p.Message)
		}
		return nil, oidc.ErrInvalidRequest().WithDescription("%s: %s", p.Field, p.Message)
	}
	if err != nil {
		return nil, errStore(err)
	}
	return op.NewResponse(&oidc.DeviceAuthorizationResponse{
		DeviceCode:      deviceCode,
		UserCode:        login.UserCode,
		VerificationURI: s.cfg.Issuer + "/device",
		ExpiresIn:       int(s.cfg.LoginTTL / time.Second),
		Interval:        int(s.cfg.PollInterval / time.Second),
	}), nil
}

// DeviceToken answers a polling device-flow client: authorization_pending (with where
// things stand in the description), slow_down, access_denied (with why), expired_token,
// or the tokens — once; a replayed device code gets invalid_grant.
func (s *server) DeviceToken(ctx context.Context, r *op.ClientRequest[oidc.DeviceAccessTokenRequest]) (*op.Response, error) {
	client, ok := r.Client.(*Client)
	if !ok || !client.allows(oidc.GrantTypeDeviceCode) {
		return nil, oidc.ErrUnauthorizedClient().WithDescription("this client may not use the device flow")
	}
	resp, err := s.redeemDeviceCode(ctx, client, r.Data.DeviceCode)
	if errors.Is(err, app.ErrConflict) { // a poll in between moved the login: answer from where it stands now
		resp, err = s.redeemDeviceCode(ctx, client, r.Data.DeviceCode)
	}
	if errors.Is(err, app.ErrConflict) {
		return nil, oidc.ErrInvalidGrant().WithDescription("unknown or already used device code")
	}
	if err != nil {
		return nil, err
	}
	return op.NewResponse(resp), nil
}

// redeemDeviceCode polls the login of a device code and, once it is ready, issues its
// tokens, spending the login in the issuance's write: app.ErrConflict when another poll
// moved it between the two.
func (s *server) redeemDeviceCode(ctx context.Context, client *Client, deviceCode string) (*oidc.AccessTokenResponse, error) {
	outcome, err := s.svc.PollLogin(ctx, client.GetID(), deviceCode, s.cfg.PollInterval)
	switch {
	case errors.Is(err, app.ErrLoginPending):
		return nil, oidc.ErrAuthorizationPending().WithDescription("%s", outcome.Reason)
	case errors.Is(err, app.ErrSlowDown):
		return nil, oidc.ErrSlowDown().WithDescription("poll at most every %s", s.cfg.PollInterval)
	case errors.Is(err, app.ErrLoginDenied):
		return nil, oidc.ErrAccessDenied().WithDescription("%s", outcome.Reason)
	case errors.Is(err, app.ErrLoginExpired):
		return nil, oidc.ErrExpiredDeviceCode().WithDescription("%s", outcome.Reason)
	case errors.Is(err, app.ErrLoginUsed), errors.Is(err, app.ErrNotFound):
		return nil, oidc.ErrInvalidGrant().WithDescription("unknown or already used device code")
	case err != nil:
		return nil, errStore(err)
	}
	l := outcome.Login
	req := &tokenRequest{
		subject: l.Subject.ID, clientID: l.ClientID, scopes: l.Scopes, authTime: s.cfg.Now(), grants: outcome.Grants,
		audience: s.cfg.Policy.Audience(l.ClientID, l.Roles),
	}
	resp, err := s.mint(ctx, issue{req: req, client: client, grantType: oidc.GrantTypeDeviceCode,
		withRefresh: slices.Contains(l.Scopes, oidc.ScopeOfflineAccess) && client.allows(oidc.GrantTypeRefreshToken),
		withIDToken: slices.Contains(l.Scopes, oidc.ScopeOpenID), login: outcome.Spend, events: outcome.Events})
	if err == nil {
		s.cfg.Log.Info("login completed", "login_id", l.ID, "client_id", l.ClientID, "subject", l.Subject.ID, "roles", l.Roles)
	}
	return resp, err
}

// RefreshToken exchanges a refresh token: the storage re-checks the grants and the refresh
// token rotates. The answer carries no new ID token (OIDC Core 12.2 allows it), which
// keeps a refresh to one signature.
func (s *server) RefreshToken(ctx context.Context, r *op.ClientRequest[oidc.RefreshTokenRequest]) (*op.Response, error) {
	client, ok := r.Client.(*Client)
	if !ok {
		return nil, oidc.ErrInvalidClient()
	}
	found, err := s.storage.TokenRequestByRefreshToken(ctx, r.Data.RefreshToken)
	if err != nil {
		return nil, err
	}
	req := found.(*tokenRequest)
	if req.clientID != client.GetID() {
		return nil, oidc.ErrInvalidGrant().WithDescription("the refresh token was issued to another client")
	}
	if err := op.ValidateRefreshTokenScopes(r.Data.Scopes, req); err != nil {
		return nil, err
	}
	resp, err := s.mint(ctx, issue{req: req, client: client, grantType: oidc.GrantTypeRefreshToken, withRefresh: true})
	if errors.Is(err, app.ErrConflict) { // another refresh of the same token won: this one is a replay of it
		if _, err := s.storage.TokenRequestByRefreshToken(ctx, r.Data.RefreshToken); err != nil {
			return nil, err // the replay revoked the session the winner went on with
		}
		return nil, oidc.ErrInvalidGrant().WithDescription("refresh token already used or revoked")
	}
	if err != nil {
		return nil, err
	}
	return op.NewResponse(resp), nil
}

// ClientCredentialsExchange issues a service's token for scopes that need no approval. It
// writes nothing of its own: its audit event goes out by group commit with others.
func (s *server) ClientCredentialsExchange(ctx context.Context, r *op.ClientRequest[oidc.ClientCredentialsRequest]) (*op.Response, error) {
	client, ok := r.Client.(*Client)
	if !ok {
		return nil, oidc.ErrInvalidClient()
	}
	req, err := s.storage.ClientCredentialsTokenRequest(ctx, client.GetID(), r.Data.Scope)
	if err != nil {
		return nil, err
	}
	resp, err := s.mint(ctx, issue{req: req.(*tokenRequest), client: client, grantType: oidc.GrantTypeClientCredentials})
	if err != nil {
		return nil, err
	}
	return op.NewResponse(resp), nil
}

// JWTProfile: the JWT bearer grant is not offered.
func (s *server) JWTProfile(context.Context, *op.Request[oidc.JWTProfileGrantRequest]) (*op.Response, error) {
	return nil, oidc.ErrUnsupportedGrantType().WithDescription("the JWT bearer grant is not supported")
}
