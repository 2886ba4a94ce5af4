// Package oidc is Gatehouse's OpenID Provider: zitadel/oidc's op with a storage that mints
// tokens only for roles with an active grant, and a server that takes over the device flow
// (unique user codes, slow_down, single-use device codes). It reaches the domain through
// the app package and storage through small interfaces it declares.
package oidc

import (
	"crypto/sha256"
	"crypto/subtle"
	"net"
	"net/url"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/zitadel/oidc/v3/pkg/oidc"
	"github.com/zitadel/oidc/v3/pkg/op"
	"golang.org/x/crypto/bcrypt"

	"github.com/gatehouse/gatehouse/app"
)

// ClientConfig is an OAuth client as the config file describes it, with its secret resolved.
type ClientConfig struct {
	ID           string
	Public       bool
	Secret       string // from secret_env; empty when SecretHash is used
	SecretHash   string // bcrypt
	RedirectURIs []string
	GrantTypes   []string // authorization_code, refresh_token, device_code, client_credentials
	Introspect   bool     // a resource server: may call introspection (RFC 7662 §4)
}

// Client implements op.Client for a configured client.
type Client struct {
	cfg        ClientConfig
	idTokenTTL time.Duration

	// verified remembers the secret that matched the bcrypt hash (by its SHA-256), so
	// bcrypt's deliberate slowness is paid once, not on every token request. Only one
	// secret matches a hash; an atomic pointer keeps the token path free of a lock that
	// every request of a busy client would queue on.
	verified atomic.Pointer[[32]byte]
}

var _ op.Client = (*Client)(nil)

func newClient(cfg ClientConfig, idTokenTTL time.Duration) *Client {
	return &Client{cfg: cfg, idTokenTTL: idTokenTTL}
}

// checkSecret reports whether secret is this client's secret, in constant time.
func (c *Client) checkSecret(secret string) bool {
	if c.cfg.Public || secret == "" {
		return false
	}
	sum := sha256.Sum256([]byte(secret))
	if c.cfg.SecretHash == "" {
		want := sha256.Sum256([]byte(c.cfg.Secret))
		return subtle.ConstantTimeCompare(sum[:], want[:]) == 1
	}
	if known := c.verified.Load(); known != nil && subtle.ConstantTimeCompare(sum[:], known[:]) == 1 {
		return true
	}
	if bcrypt.CompareHashAndPassword([]byte(c.cfg.SecretHash), []byte(secret)) != nil {
		return false
	}
	c.verified.Store(&sum)
	return true
}

// allows reports whether the client registered the grant type.
func (c *Client) allows(g oidc.GrantType) bool { return slices.Contains(c.GrantTypes(), g) }

// GetID returns the client ID.
func (c *Client) GetID() string { return c.cfg.ID }

// redirectAllowed reports whether uri is one of the client's redirect URIs: exactly, except
// that a public client's loopback redirect (http on a loopback IP literal) may use any
// port, as a native app picks a free one (RFC 8252 §7.3). Scheme, host, path and query
// must still match, and a fragment never does.
func (c *Client) redirectAllowed(uri string) bool {
	if slices.Contains(c.cfg.RedirectURIs, uri) {
		return true
	}
	u, err := url.Parse(uri)
	if err != nil || !c.cfg.Public || !loopbackIP(u) || u.Fragment != "" || strings.Contains(uri, "#") || u.User != nil {
		return false
	}
	for _, r := range c.cfg.RedirectURIs {
		reg, err := url.Parse(r)
		if err == nil && loopbackIP(reg) && reg.Hostname() == u.Hostname() && reg.EscapedPath() == u.EscapedPath() && reg.RawQuery == u.RawQuery {
			return true
		}
	}
	return false
}

// loopbackIP reports whether u is an http URL on a loopback IP literal (not "localhost").
func loopbackIP(u *url.URL) bool {
	ip := net.ParseIP(u.Hostname())
	return u.Scheme == "http" && ip != nil && ip.IsLoopback()
}

// RedirectURIs returns the registered redirect URIs.
func (c *Client) RedirectURIs() []string { return c.cfg.RedirectURIs }

// PostLogoutRedirectURIs returns the URIs RP-initiated logout may return to.
func (c *Client) PostLogoutRedirectURIs() []string { return c.cfg.RedirectURIs }

// ApplicationType is native for public clients, web for confidential ones.
func (c *Client) ApplicationType() op.ApplicationType {
	if c.cfg.Public {
		return op.ApplicationTypeNative
	}
	return op.ApplicationTypeWeb
}

// AuthMethod is none for public clients and HTTP Basic for confidential ones.
func (c *Client) AuthMethod() oidc.AuthMethod {
	if c.cfg.Public {
		return oidc.AuthMethodNone
	}
	return oidc.AuthMethodBasic
}

// ResponseTypes allows only the code flow.
func (c *Client) ResponseTypes() []oidc.ResponseType {
	if slices.Contains(c.cfg.GrantTypes, "authorization_code") {
		return []oidc.ResponseType{oidc.ResponseTypeCode}
	}
	return nil
}

// grantTypeNames maps config names to OAuth grant types.
var grantTypeNames = map[string]oidc.GrantType{
	"authorization_code": oidc.GrantTypeCode,
	"refresh_token":      oidc.GrantTypeRefreshToken,
	"device_code":        oidc.GrantTypeDeviceCode,
	"client_credentials": oidc.GrantTypeClientCredentials,
}

// GrantTypes returns the grant types the client registered.
func (c *Client) GrantTypes() []oidc.GrantType {
	types := make([]oidc.GrantType, 0, len(c.cfg.GrantTypes))
	for _, g := range c.cfg.GrantTypes {
		types = append(types, grantTypeNames[g])
	}
	return types
}

// LoginURL is where the authorize endpoint sends the browser to sign in.
func (c *Client) LoginURL(id string) string { return "/signin?id=" + id }

// AccessTokenType: access tokens are always JWTs.
func (c *Client) AccessTokenType() op.AccessTokenType { return op.AccessTokenTypeJWT }

// IDTokenLifetime is id_token_ttl.
func (c *Client) IDTokenLifetime() time.Duration { return c.idTokenTTL }

// DevMode is off: redirect URIs must be exact and secure.
func (c *Client) DevMode() bool { return false }

// RestrictAdditionalIdTokenScopes keeps every scope.
func (c *Client) RestrictAdditionalIdTokenScopes() func([]string) []string {
	return func(s []string) []string { return s }
}

// RestrictAdditionalAccessTokenScopes keeps every scope.
func (c *Client) RestrictAdditionalAccessTokenScopes() func([]string) []string {
	return func(s []string) []string { return s }
}

// IsScopeAllowed lets role: scopes through the library's authorize checks, so that
// CreateAuthRequest can refuse one the client may not ask for instead of dropping it silently.
func (c *Client) IsScopeAllowed(scope string) bool {
	return strings.HasPrefix(scope, app.RoleScopePrefix)
}

// IDTokenUserinfoClaimsAssertion puts name and email in the ID token itself.
func (c *Client) IDTokenUserinfoClaimsAssertion() bool { return true }

// ClockSkew is zero: Gatehouse's clock is the reference.
func (c *Client) ClockSkew() time.Duration { return 0 }
