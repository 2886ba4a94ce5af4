package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	jose "github.com/go-jose/go-jose/v4"

	"github.com/gatehouse/gatehouse/internal/slackfake"
)

// verifyAccessToken accepts a Gatehouse access token meant for audience, and nothing else.
func verifyAccessToken(ctx context.Context, issuer, audience, raw string) (*AccessClaims, error) {
	jws, err := jose.ParseSigned(raw, []jose.SignatureAlgorithm{jose.RS256, jose.ES256})
	if err != nil || jws.Signatures[0].Protected.ExtraHeaders[jose.HeaderType] != "at+jwt" {
		return nil, errors.New("not an access token")
	}
	provider, err := oidc.NewProvider(ctx, issuer) // in a service: once, at start
	if err != nil {
		return nil, err
	}
	// The signature (JWKS), iss, exp, and that aud holds audience.
	token, err := provider.Verifier(&oidc.Config{ClientID: audience}).Verify(ctx, raw)
	if err != nil {
		return nil, err
	}
	var claims AccessClaims
	return &claims, token.Claims(&claims)
}

// AccessClaims are what a service reads from a Gatehouse access token.
type AccessClaims struct {
	Subject  string   `json:"sub"`
	ClientID string   `json:"client_id"`
	Roles    []string `json:"roles"`
	Grants   []struct {
		ID         string   `json:"id"`
		ApprovedBy []string `json:"approved_by"`
	} `json:"grants"`
}

// TestREADMEVerificationRejectsIDTokens runs the README's verification code (the test
// checks that it is the README's, character for character) against an access token and
// an ID token of the same sign-in: only the access token passes, at the role's audience.
func TestREADMEVerificationRejectsIDTokens(t *testing.T) {
	readme, err := os.ReadFile(filepath.Join(repoRoot(t), "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	_, section, _ := strings.Cut(string(readme), "### Verifying tokens in a service")
	_, block, _ := strings.Cut(section, "```go\n")
	block, _, _ = strings.Cut(block, "```")
	_, self, _, _ := runtime.Caller(0)
	source, err := os.ReadFile(self)
	if err != nil {
		t.Fatal(err)
	}
	if block == "" || !strings.Contains(string(source), block) {
		t.Fatalf("the README's verification example is not the code this test runs:\n%s", block)
	}

	g := startGatehouse(t)
	g.grantFor("U0ALICE", "prod-db-admin", "1h", "U0BOB", "C0DBA")
	tok := g.client("gatehouse-cli", "openid", "role:prod-db-admin").signIn("U0ALICE")
	idToken, _ := tok.Extra("id_token").(string)
	if idToken == "" {
		t.Fatal("no ID token")
	}
	ctx := context.Background()
	claims, err := verifyAccessToken(ctx, g.issuer(), "prod-db", tok.AccessToken)
	if err != nil {
		t.Fatalf("the access token does not pass the README's check: %v", err)
	}
	if claims.Subject != "U0ALICE" || claims.ClientID != "gatehouse-cli" || !slices.Equal(claims.Roles, []string{"prod-db-admin"}) || len(claims.Grants) != 1 {
		t.Errorf("claims = %+v", claims)
	}
	for _, audience := range []string{"prod-db", "gatehouse-cli"} {
		if _, err := verifyAccessToken(ctx, g.issuer(), audience, idToken); err == nil {
			t.Errorf("the ID token passes the README's check for audience %s", audience)
		}
	}
}

// TestIDTokenIsOnlyForItsClientAndNoLongerThanItsGrant: an ID token's aud is its client
// alone, and it expires with the earliest grant behind its roles.
func TestIDTokenIsOnlyForItsClientAndNoLongerThanItsGrant(t *testing.T) {
	g := startGatehouse(t)
	g.grantFor("U0ALICE", "prod-db-admin", "1h", "U0BOB", "C0DBA")
	g.clock.Advance(time.Hour - 30*time.Second) // the grant ends in 30 s; id_token_ttl is 10m
	rp := g.client("gatehouse-cli", "openid", "role:prod-db-admin")
	tok := rp.signIn("U0ALICE")
	idToken, _ := tok.Extra("id_token").(string)
	var id struct {
		Audience []string `json:"aud"`
		Expiry   int64    `json:"exp"`
		Roles    []string `json:"roles"`
	}
	jsonUnmarshal(t, jwtPayload(t, idToken), &id)
	access := rp.verifyAccess(tok.AccessToken, "prod-db")
	if !slices.Equal(id.Audience, []string{"gatehouse-cli"}) {
		t.Errorf("ID token aud = %v, want only the client", id.Audience)
	}
	if id.Expiry > access.Grants[0].ExpiresAt {
		t.Errorf("ID token exp %d outlives its grant (ends %d)", id.Expiry, access.Grants[0].ExpiresAt)
	}
	if header := jwtHeader(t, idToken); header["typ"] != "JWT" {
		t.Errorf("ID token header %v", header)
	}
}

// Slack's profile look-up failing while an ID token is minted (users.info answering 503)
// costs the person nothing they were approved for: the tokens are issued, the ID token
// without name and email, and a warning says why. Once Slack answers, the next sign-in's
// ID token names the person again.
func TestIDTokenIssuedWhileSlackProfileLookupFails(t *testing.T) {
	g := startGatehouse(t)
	g.grantFor("U0ALICE", "prod-db-admin", "1h", "U0BOB", "C0DBA")
	type idClaims struct {
		Subject string   `json:"sub"`
		Name    string   `json:"name"`
		Email   string   `json:"email"`
		Roles   []string `json:"roles"`
	}
	signIn := func() idClaims {
		tok := g.client("gatehouse-cli", "openid", "role:prod-db-admin").signIn("U0ALICE")
		raw, _ := tok.Extra("id_token").(string)
		var id idClaims
		jsonUnmarshal(t, jwtPayload(t, raw), &id)
		return id
	}
	g.slack.Fail("users.info", slackfake.Fault{Status: http.StatusServiceUnavailable, Calls: 100})
	id := signIn()
	if id.Subject != "U0ALICE" || id.Name != "" || id.Email != "" || !slices.Equal(id.Roles, []string{"prod-db-admin"}) {
		t.Errorf("ID token while users.info fails = %+v, want the subject and roles, no name or email", id)
	}
	if g.slack.Faulted("users.info") == 0 {
		t.Fatal("users.info was never called: the test tried nothing")
	}
	if !strings.Contains(g.logs.String(), "profile look-up failed; issuing the ID token without name and email") {
		t.Error("no warning says why the ID token has no name")
	}
	g.slack.ClearFaults()
	if id := signIn(); id.Name != "Alice Example" || id.Email != "alice@example.com" {
		t.Errorf("ID token once Slack answers = %+v, want Alice's name and email", id)
	}
}

// TestAccessTokensPassStrictRFC9068Validation validates access tokens of every grant as an
// RFC 9068 §4 resource server must, and refuses the ID token the same way.
func TestAccessTokensPassStrictRFC9068Validation(t *testing.T) {
	g := startGatehouse(t, signedWith("ES256"))
	g.grantFor("U0ALICE", "prod-db-admin", "1h", "U0BOB", "C0DBA")
	tok := g.client("gatehouse-cli", "openid", "offline_access", "role:prod-db-admin").signIn("U0ALICE")
	status, body := g.post("/oauth/token", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tok.RefreshToken}, "client_id": {"gatehouse-cli"}})
	if status != 200 {
		t.Fatalf("refresh: %d %s", status, body)
	}
	var refreshed struct {
		AccessToken string `json:"access_token"`
	}
	jsonUnmarshal(t, body, &refreshed)
	req := newFormRequest(g.issuer()+"/oauth/token", url.Values{"grant_type": {"client_credentials"}})
	req.SetBasicAuth("ci-deployer", serviceSecret("ci-deployer"))
	status, body = g.do(req)
	if status != 200 {
		t.Fatalf("client credentials: %d %s", status, body)
	}
	var service struct {
		AccessToken string `json:"access_token"`
	}
	jsonUnmarshal(t, body, &service)

	now := g.clock.Now()
	for name, c := range map[string]struct{ token, audience string }{
		"device flow": {tok.AccessToken, "prod-db"}, "refresh": {refreshed.AccessToken, "prod-db"},
		"client credentials": {service.AccessToken, "ci-deployer"},
	} {
		if err := validateRFC9068(g.issuer(), c.audience, c.token, now); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
	idToken, _ := tok.Extra("id_token").(string)
	if err := validateRFC9068(g.issuer(), "gatehouse-cli", idToken, now); err == nil {
		t.Error("the ID token passes as an RFC 9068 access token")
	}
}

// validateRFC9068 is RFC 9068 §4, written from the RFC rather than from Gatehouse's code:
// typ at+jwt, a signature by a key of the issuer's JWKS with the alg it names (never none),
// iss exactly the issuer, aud holding the resource server, exp in the future, and the
// required claims sub, client_id, iat and jti.
func validateRFC9068(issuer, audience, raw string, now time.Time) error {
	jws, err := jose.ParseSigned(raw, []jose.SignatureAlgorithm{jose.RS256, jose.RS384, jose.RS512, jose.ES256, jose.ES384, jose.PS256})
	if err != nil {
		return fmt.Errorf("not a JWS: %w", err)
	}
	if len(jws.Signatures) != 1 {
		return errors.New("not exactly one signature")
	}
	h := jws.Signatures[0].Protected
	typ, _ := h.ExtraHeaders[jose.HeaderType].(string)
	if t := strings.ToLower(typ); t != "at+jwt" && t != "application/at+jwt" {
		return fmt.Errorf("typ %q", typ)
	}
	var discovery struct {
		Issuer  string `json:"issuer"`
		JWKSURI string `json:"jwks_uri"`
	}
	if err := getJSON(issuer+"/.well-known/openid-configuration", &discovery); err != nil {
		return err
	}
	var keys jose.JSONWebKeySet
	if err := getJSON(discovery.JWKSURI, &keys); err != nil {
		return err
	}
	found := keys.Key(h.KeyID)
	if len(found) != 1 || found[0].Algorithm != h.Algorithm {
		return fmt.Errorf("kid %q alg %s not in JWKS", h.KeyID, h.Algorithm)
	}
	payload, err := jws.Verify(found[0].Key)
	if err != nil {
		return fmt.Errorf("signature: %w", err)
	}
	var c struct {
		Issuer   string          `json:"iss"`
		Subject  string          `json:"sub"`
		Audience json.RawMessage `json:"aud"`
		Expiry   *int64          `json:"exp"`
		IssuedAt *int64          `json:"iat"`
		JTI      string          `json:"jti"`
		ClientID string          `json:"client_id"`
	}
	if err := json.Unmarshal(payload, &c); err != nil {
		return err
	}
	var aud []string
	if json.Unmarshal(c.Audience, &aud) != nil {
		var one string
		if json.Unmarshal(c.Audience, &one) != nil {
			return fmt.Errorf("aud %s", c.Audience)
		}
		aud = []string{one}
	}
	switch {
	case c.Issuer != discovery.Issuer || c.Issuer != issuer:
		return fmt.Errorf("iss %q", c.Issuer)
	case !slices.Contains(aud, audience):
		return fmt.Errorf("aud %v lacks %s", aud, audience)
	case c.Expiry == nil || !now.Before(time.Unix(*c.Expiry, 0)):
		return errors.New("exp missing or passed")
	case c.IssuedAt == nil || time.Unix(*c.IssuedAt, 0).After(now.Add(time.Minute)):
		return errors.New("iat missing or in the future")
	case c.Subject == "" || c.ClientID == "" || c.JTI == "":
		return fmt.Errorf("sub %q, client_id %q, jti %q: all are required", c.Subject, c.ClientID, c.JTI)
	}
	return nil
}

func getJSON(u string, v any) error {
	resp, err := http.Get(u)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		return fmt.Errorf("GET %s: %s", u, resp.Status)
	}
	return json.NewDecoder(resp.Body).Decode(v)
}

// jwtHeader and jwtPayload decode a JWT's parts without checking anything.
func jwtHeader(t *testing.T, jwt string) map[string]any {
	t.Helper()
	jws, err := jose.ParseSigned(jwt, []jose.SignatureAlgorithm{jose.RS256, jose.ES256})
	if err != nil {
		t.Fatal(err)
	}
	h := jws.Signatures[0].Protected
	out := map[string]any{"alg": h.Algorithm, "kid": h.KeyID}
	for k, v := range h.ExtraHeaders {
		out[string(k)] = v
	}
	return out
}

func jwtPayload(t *testing.T, jwt string) []byte {
	t.Helper()
	jws, err := jose.ParseSigned(jwt, []jose.SignatureAlgorithm{jose.RS256, jose.ES256})
	if err != nil {
		t.Fatal(err)
	}
	return jws.UnsafePayloadWithoutVerification()
}

// repoRoot is the directory holding go.mod, above this test's package.
func repoRoot(t *testing.T) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("no go.mod above the test")
		}
		dir = parent
	}
}

// TestRevokingAnAccessTokenEndsOnlyIt: RFC 7009 on an access token records its jti; it
// introspects inactive at once, whatever the hint, and only its own client may revoke it.
func TestRevokingAnAccessTokenEndsOnlyIt(t *testing.T) {
	g := startGatehouse(t)
	rp := g.client("gatehouse-cli", "openid", "offline_access")
	tok := rp.signIn("U0ALICE")
	req := newFormRequest(g.issuer()+"/oauth/token", url.Values{"grant_type": {"client_credentials"}})
	req.SetBasicAuth("ci-deployer", serviceSecret("ci-deployer"))
	_, body := g.do(req)
	var service struct {
		AccessToken string `json:"access_token"`
	}
	jsonUnmarshal(t, body, &service)
	if status, body := g.post("/revoke", url.Values{"token": {service.AccessToken}, "client_id": {"gatehouse-cli"}}); status == 200 {
		t.Errorf("another client revoked the service's token: %s", body)
	}
	if g.introspect(service.AccessToken)["active"] != true {
		t.Error("the service's token is inactive after another client tried to revoke it")
	}
	if status, body := g.post("/revoke", url.Values{"token": {tok.AccessToken}, "token_type_hint": {"refresh_token"}, "client_id": {"gatehouse-cli"}}); status != 200 {
		t.Fatalf("revoke: %d %s", status, body)
	}
	if got := g.introspect(tok.AccessToken); got["active"] != false {
		t.Errorf("revoked access token introspects %v", got)
	}
	if status, body := g.post("/oauth/token", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tok.RefreshToken}, "client_id": {"gatehouse-cli"}}); status != 200 {
		t.Errorf("revoking the access token ended its session too: %d %s", status, body)
	}
	idToken, _ := tok.Extra("id_token").(string)
	if got := g.introspect(idToken); got["active"] != false {
		t.Errorf("an ID token introspects as %v", got)
	}
}

// TestReplayedCodeRevokesTokensWithoutRefresh: a code redeemed without offline_access opens
// a client session all the same (its access token names it), so replaying the code still
// revokes the access token it issued.
func TestReplayedCodeRevokesTokensWithoutRefresh(t *testing.T) {
	g := startGatehouse(t, confidentialWebapp)
	code, w := g.browserCode("webapp-confidential", "openid")
	status, tokens := g.exchange(code, w.verifier)
	if status != 200 || tokens["refresh_token"] != nil {
		t.Fatalf("exchange: %d %v, want tokens without a refresh token", status, tokens)
	}
	access, _ := tokens["access_token"].(string)
	g.replayRevokes(t, code, w.verifier, access)
}
