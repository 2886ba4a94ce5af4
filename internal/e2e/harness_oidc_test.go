package e2e

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	gooidc "github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"

	"github.com/gatehouse/gatehouse/internal/slackfake"
)

// relyingParty is a real OIDC client of the Gatehouse under test: go-oidc for discovery
// and verification, x/oauth2 for the flows.
type relyingParty struct {
	g        *gatehouse
	provider *gooidc.Provider
	oauth    oauth2.Config
}

func (g *gatehouse) client(clientID string, scopes ...string) *relyingParty {
	g.t.Helper()
	provider, err := gooidc.NewProvider(context.Background(), g.issuer())
	if err != nil {
		g.t.Fatalf("discovery: %v", err)
	}
	var discovery struct {
		DeviceAuthorizationEndpoint string `json:"device_authorization_endpoint"`
	}
	provider.Claims(&discovery)
	return &relyingParty{g: g, provider: provider, oauth: oauth2.Config{
		ClientID: clientID, Scopes: scopes,
		Endpoint: oauth2.Endpoint{DeviceAuthURL: discovery.DeviceAuthorizationEndpoint, TokenURL: provider.Endpoint().TokenURL, AuthStyle: oauth2.AuthStyleInParams},
	}}
}

// start begins a device authorization.
func (rp *relyingParty) start() *oauth2.DeviceAuthResponse {
	rp.g.t.Helper()
	da, err := rp.oauth.DeviceAuth(context.Background())
	if err != nil {
		rp.g.t.Fatalf("device authorization: %v", err)
	}
	return da
}

// wait polls for the tokens in the background, as a waiting CLI does.
func (rp *relyingParty) wait(da *oauth2.DeviceAuthResponse) <-chan tokenResult {
	done := make(chan tokenResult, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		tok, err := rp.oauth.DeviceAccessToken(ctx, da)
		done <- tokenResult{tok, err}
	}()
	return done
}

type tokenResult struct {
	tok *oauth2.Token
	err error
}

func (g *gatehouse) receive(ch <-chan tokenResult) tokenResult {
	g.t.Helper()
	select {
	case r := <-ch:
		return r
	case <-time.After(20 * time.Second):
		g.t.Fatal("the client never got an answer")
		return tokenResult{}
	}
}

// accessClaims are the claims of a Gatehouse access token.
type accessClaims struct {
	Subject  string   `json:"sub"`
	Audience []string `json:"aud"`
	Expiry   int64    `json:"exp"`
	IssuedAt int64    `json:"iat"`
	JTI      string   `json:"jti"`
	ClientID string   `json:"client_id"`
	Scope    string   `json:"scope"`
	Roles    []string `json:"roles"`
	Grants   []struct {
		ID         string   `json:"id"`
		Role       string   `json:"role"`
		RequestID  string   `json:"request_id"`
		ApprovedBy []string `json:"approved_by"`
		ExpiresAt  int64    `json:"expires_at"`
	} `json:"grants"`
}

// verifyAccess checks an access token's signature against JWKS, its issuer, audience and
// expiry with go-oidc, as a service would, and returns its claims.
func (rp *relyingParty) verifyAccess(token, audience string) accessClaims {
	rp.g.t.Helper()
	verified, err := rp.provider.VerifierContext(context.Background(), &gooidc.Config{ClientID: audience}).Verify(context.Background(), token)
	if err != nil {
		rp.g.t.Fatalf("access token does not verify for audience %s: %v", audience, err)
	}
	var c accessClaims
	if err := verified.Claims(&c); err != nil {
		rp.g.t.Fatal(err)
	}
	return c
}

// loginInSlack confirms a sign-in code in Slack as user, filling the form when asked.
func (g *gatehouse) loginInSlack(user, code string, values map[string]string) slackfake.Ack {
	g.t.Helper()
	g.command(user, "login "+code)
	g.view(user, "Confirm sign-in")
	return g.submit(user, values)
}

// introspect asks Gatehouse about a token as the resource server does.
func (g *gatehouse) introspect(token string) map[string]any {
	g.t.Helper()
	req, _ := http.NewRequest("POST", g.issuer()+"/oauth/introspect", strings.NewReader(url.Values{"token": {token}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth("resource-server", resourceServerSecret)
	var out map[string]any
	status, body := g.do(req)
	if status != http.StatusOK || json.Unmarshal(body, &out) != nil {
		g.t.Fatalf("introspection: %d %s", status, body)
	}
	return out
}

// post sends a form to a Gatehouse endpoint and returns the status and body.
func (g *gatehouse) post(path string, form url.Values) (int, []byte) {
	g.t.Helper()
	req, _ := http.NewRequest("POST", g.issuer()+path, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return g.do(req)
}

func (g *gatehouse) do(req *http.Request) (int, []byte) {
	g.t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		g.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, body
}

// oauthError returns the error code of an OAuth error answer.
func oauthError(t *testing.T, body []byte) string {
	t.Helper()
	var e struct {
		Error string `json:"error"`
	}
	json.Unmarshal(body, &e)
	return e.Error
}

// grantFor has user ask for role by text and approver approve it; it returns the grant ID.
func (g *gatehouse) grantFor(user, role, duration, approver, channel string) string {
	g.t.Helper()
	reason := "needed for the test " + user + " " + randomWord()
	g.command(user, role+" "+duration+" "+reason)
	msg := g.message(channel, reason)
	g.approve(approver, msg, "")
	final := g.message(channel, "*Approved*", requestIDRe.FindString(msg.AllText()))
	return grantIDRe.FindString(final.AllText())
}

var grantIDRe = regexp.MustCompile(`grt_[a-z2-7]{16}`)

func jsonUnmarshal(t *testing.T, body []byte, v any) {
	t.Helper()
	if err := json.Unmarshal(body, v); err != nil {
		t.Fatalf("%v: %s", err, body)
	}
}

func newFormRequest(u string, form url.Values) *http.Request {
	return newRawRequest("POST", u, form.Encode())
}

func newRawRequest(method, u, body string) *http.Request {
	req, _ := http.NewRequest(method, u, strings.NewReader(body))
	if method == "POST" {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	return req
}

// kid returns the key ID in a JWT's header.
func kid(t *testing.T, jwt string) string {
	t.Helper()
	header, _, _ := strings.Cut(jwt, ".")
	raw, err := base64.RawURLEncoding.DecodeString(header)
	if err != nil {
		t.Fatal(err)
	}
	var h struct {
		KID string `json:"kid"`
	}
	jsonUnmarshal(t, raw, &h)
	return h.KID
}

// lineWatcher collects what a command writes and lets a test wait for a line.
type lineWatcher struct {
	mu  sync.Mutex
	buf strings.Builder
}

func newLineWatcher() *lineWatcher { return &lineWatcher{} }

func (w *lineWatcher) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.Write(p)
}

func (w *lineWatcher) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.String()
}

// waitFor returns the first line containing want.
func (w *lineWatcher) waitFor(t *testing.T, want string) string {
	t.Helper()
	deadline := time.Now().Add(wait)
	for time.Now().Before(deadline) {
		for _, line := range strings.Split(w.String(), "\n") {
			if strings.Contains(line, want) {
				return line
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("no line with %q in %q", want, w.String())
	return ""
}

func jsonDecode(body []byte, v any) error { return json.Unmarshal(body, v) }

// signIn runs the device flow for rp with user confirming in Slack, for roles user already
// holds, and returns the tokens.
func (rp *relyingParty) signIn(user string) *oauth2.Token {
	rp.g.t.Helper()
	da := rp.start()
	waiting := rp.wait(da)
	rp.g.loginInSlack(user, da.UserCode, nil)
	got := rp.g.receive(waiting)
	if got.err != nil {
		rp.g.t.Fatal(got.err)
	}
	return got.tok
}
