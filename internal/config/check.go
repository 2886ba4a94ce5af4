package config

import (
	"fmt"
	"net"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/gatehouse/gatehouse/app"
)

var (
	grantTypes   = []string{"authorization_code", "refresh_token", "device_code", "client_credentials"}
	clientIDRe   = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)
	envNameRe    = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
	bcryptHashRe = regexp.MustCompile(`^\$2[aby]\$\d\d\$[./A-Za-z0-9]{53}$`)
)

// check reports problems outside the policy: addresses, token settings, clients.
func (c *Config) check() []string {
	var problems []string
	add := func(format string, args ...any) { problems = append(problems, fmt.Sprintf(format, args...)) }
	if u, err := url.Parse(c.Issuer); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" ||
		u.RawQuery != "" || u.Fragment != "" || strings.HasSuffix(c.Issuer, "/") {
		add("issuer %q must be an absolute http(s) URL without query, fragment or trailing slash", c.Issuer)
	}
	if _, _, err := net.SplitHostPort(c.Listen); err != nil {
		add("listen %q must be host:port", c.Listen)
	}
	for name, d := range map[string]time.Duration{
		"access_token_ttl": c.Tokens.AccessTokenTTL, "id_token_ttl": c.Tokens.IDTokenTTL, "refresh_token_ttl": c.Tokens.RefreshTokenTTL,
		"device_poll_interval": c.Tokens.DevicePollInterval, "login_ttl": c.Tokens.LoginTTL,
	} {
		if d < 0 {
			add("tokens.%s must be positive", name)
		}
	}
	if d := c.Tokens.DevicePollInterval; d < time.Second || d%time.Second != 0 {
		add("tokens.device_poll_interval %s must be whole seconds, at least 1s: clients are told it in seconds", d)
	}
	if a := c.Tokens.SigningAlgorithm; a != app.AlgRS256 && a != app.AlgES256 {
		add("tokens.signing_algorithm %q must be RS256 or ES256", a)
	}
	seen := map[string]bool{}
	for i, cl := range c.Clients {
		where := fmt.Sprintf("clients[%d]", i)
		if cl.ID != "" {
			where = fmt.Sprintf("client %q", cl.ID)
		}
		switch {
		case !clientIDRe.MatchString(cl.ID):
			add("%s: id must be 1-64 letters, digits, '.', '_' or '-' (no ':')", where)
		case seen[cl.ID]:
			add("%s: defined more than once", where)
		}
		seen[cl.ID] = true
		switch {
		case cl.Public && (cl.SecretEnv != "" || cl.SecretHash != ""):
			add("%s: a public client has no secret; remove secret_env/secret_hash or public", where)
		case !cl.Public && (cl.SecretEnv == "") == (cl.SecretHash == ""):
			add("%s: a confidential client needs exactly one of secret_env or secret_hash", where)
		}
		if cl.SecretEnv != "" && !envNameRe.MatchString(cl.SecretEnv) {
			add("%s: secret_env %q is not an environment variable name", where, cl.SecretEnv)
		}
		if cl.SecretHash != "" && !bcryptHashRe.MatchString(cl.SecretHash) {
			add("%s: secret_hash must be a bcrypt hash ($2a$/$2b$/$2y$…)", where)
		}
		if cl.Service && cl.Public {
			add("%s: a service client must be confidential", where)
		}
		if cl.Introspect && cl.Public {
			add("%s: a client that introspects must be confidential", where)
		}
		if len(cl.GrantTypes) == 0 && !cl.Introspect {
			add("%s: grant_types must list at least one of %s", where, strings.Join(grantTypes, ", "))
		}
		for _, g := range cl.GrantTypes {
			if !slices.Contains(grantTypes, g) {
				add("%s: unknown grant type %q (known: %s)", where, g, strings.Join(grantTypes, ", "))
			}
		}
		if slices.Contains(cl.GrantTypes, "authorization_code") && len(cl.RedirectURIs) == 0 {
			add("%s: authorization_code needs redirect_uris", where)
		}
		for _, r := range cl.RedirectURIs {
			if u, err := url.Parse(r); err != nil || u.Scheme == "" || u.Host == "" || u.Fragment != "" {
				add("%s: redirect URI %q must be absolute, without fragment", where, r)
			}
		}
		for _, r := range cl.Roles {
			if _, ok := c.Policy.Role(r); !ok {
				add("%s: roles names %q, which is not a role in this policy", where, r)
			}
		}
	}
	return problems
}
