package e2e

import (
	"context"
	"crypto/rand"
	"fmt"
	"html/template"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	gooidc "github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"
)

// chromiumPath is Debian's Chromium, which .ci/run installs when it is missing.
const chromiumPath = "/usr/bin/chromium"

// browserTimeout bounds everything one case does in the browser.
const browserTimeout = 60 * time.Second

// TestBrowserSignIn drives a real Chromium through the authorization code flow of a web
// app: the sign-in page shows a code, the person signs in and asks for the role in Slack,
// and the page returns to the app by itself once an approver has decided.
func TestBrowserSignIn(t *testing.T) {
	requireChromium(t)

	t.Run("approved", func(t *testing.T) {
		g, app := startWithWebApp(t)
		b := openBrowser(t)
		start := time.Now()
		code := b.signInPage(app, g)
		b.screenshot("signin.png")

		g.loginInSlack("U0ALICE", code, map[string]string{"Reason": "browser e2e approved"})
		b.waitStatus("Waiting for approval")
		msg := g.message("C0DBA", "browser e2e approved")
		g.approve("U0BOB", msg, "")

		if got, want := b.result(app), "signed in as U0ALICE; roles prod-db-admin; approved by U0BOB"; got != want {
			t.Errorf("the web app says %q, want %q", got, want)
		}
		b.screenshot("signed-in.png")
		t.Logf("sign-in page → signed in, in the browser: %s", time.Since(start))
	})

	t.Run("denied", func(t *testing.T) {
		g, app := startWithWebApp(t)
		b := openBrowser(t)
		code := b.signInPage(app, g)

		g.loginInSlack("U0ALICE", code, map[string]string{"Reason": "browser e2e denied"})
		b.waitStatus("Waiting for approval")
		msg := g.message("C0DBA", "browser e2e denied")
		g.click("U0BOB", msg, "Deny")
		g.view("U0BOB", "Deny request")
		g.submit("U0BOB", map[string]string{"Reason": "not today"})

		if got, want := b.result(app), "error: access_denied"; got != want {
			t.Errorf("the web app says %q, want %q", got, want)
		}
		b.screenshot("denied.png")
	})
}

// startWithWebApp starts Gatehouse with the client webapp, and the web app behind it,
// which asks for role:prod-db-admin and calls an API of audience prod-db.
func startWithWebApp(t *testing.T) (*gatehouse, *webApp) {
	t.Helper()
	// The redirect URI must be known before Gatehouse reads its config.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	g := startGatehouse(t, withClients(`
  - id: webapp
    public: true
    redirect_uris: [http://`+ln.Addr().String()+`/callback]
    grant_types: [authorization_code, refresh_token]
`))
	return g, startWebApp(t, g, ln, "webapp", "prod-db", "openid", "role:prod-db-admin")
}

// requireChromium skips the test where Chromium is missing, except in CI, which must
// never skip it silently.
func requireChromium(t *testing.T) {
	t.Helper()
	if _, err := os.Stat(chromiumPath); err == nil {
		return
	}
	if os.Getenv("CI") != "" {
		t.Fatalf("%s is missing, and CI must run the browser test: .ci/run installs Debian's chromium package", chromiumPath)
	}
	t.Skipf("%s is missing: install Debian's chromium package (apt-get install chromium) to run the browser test", chromiumPath)
}

// browser is one headless Chromium with a fresh profile, so cases share no cookies.
type browser struct {
	t   *testing.T
	ctx context.Context // bounded by browserTimeout
}

func openBrowser(t *testing.T) *browser {
	t.Helper()
	profile := t.TempDir() // made before the cleanup below, so removed after Chromium exits
	opts := append(slices.Clone(chromedp.DefaultExecAllocatorOptions[:]),
		chromedp.ExecPath(chromiumPath),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		// Without these Chromium keeps calling home, which floods a closed network.
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.UserDataDir(profile),
		chromedp.WindowSize(1024, 768),
	)
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	browserCtx, cancelBrowser := chromedp.NewContext(allocCtx)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(browserCtx, 10*time.Second)
		defer cancel()
		chromedp.Cancel(ctx) // closes Chromium gracefully
		cancelBrowser()
		cancelAlloc()
	})
	// The first Run starts Chromium and ties it to its context: that one has no timeout.
	if err := chromedp.Do(browserCtx); err != nil {
		t.Fatalf("starting %s: %v", chromiumPath, err)
	}
	ctx, cancel := context.WithTimeout(browserCtx, browserTimeout)
	t.Cleanup(cancel)
	return &browser{t: t, ctx: ctx}
}

// browserPage is what the browser shows at a moment.
type browserPage struct {
	URL    string `json:"url"`
	Status string `json:"status"` // the sign-in page's #status
	Result string `json:"result"` // the web app's #result
	Body   string `json:"body"`
}

const browserPageJS = `({
	url: location.href,
	status: document.querySelector('#status')?.textContent ?? '',
	result: document.querySelector('#result')?.textContent ?? '',
	body: document.body?.innerText ?? '',
})`

// page reads what the browser shows; during a navigation it may fail, and pollers retry.
func (b *browser) page() (browserPage, error) {
	return chromedp.Run(b.ctx, chromedp.Evaluate[browserPage](browserPageJS))
}

// waitFor polls the browser until ready holds, for at most d.
func (b *browser) waitFor(what string, d time.Duration, ready func(browserPage) bool) browserPage {
	b.t.Helper()
	deadline := time.Now().Add(d)
	var last browserPage
	var lastErr error
	for {
		p, err := b.page()
		if err == nil && ready(p) {
			return p
		}
		if err == nil {
			last = p
		}
		lastErr = err
		if time.Now().After(deadline) || b.ctx.Err() != nil {
			b.screenshot("failure.png")
			b.t.Fatalf("the browser never showed %s; last at %s (status %q, error %v):\n%s", what, last.URL, last.Status, lastErr, last.Body)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// signInPage starts the web app's login and returns the code Gatehouse's sign-in page shows.
func (b *browser) signInPage(app *webApp, g *gatehouse) string {
	b.t.Helper()
	if err := chromedp.Do(b.ctx, chromedp.Navigate(app.url+"/login")); err != nil {
		b.t.Fatalf("opening %s/login: %v", app.url, err)
	}
	ctx, cancel := context.WithTimeout(b.ctx, 10*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, chromedp.WaitVisible(chromedp.CSS("#user-code"))); err != nil {
		p, _ := b.page()
		b.screenshot("failure.png")
		b.t.Fatalf("no sign-in code visible (%v); the browser is at %s:\n%s", err, p.URL, p.Body)
	}
	code, err := chromedp.Run(b.ctx, chromedp.Text(chromedp.CSS("#user-code")))
	if err != nil {
		b.t.Fatal(err)
	}
	code = strings.TrimSpace(code)
	if !regexpUserCode.MatchString(code) {
		b.t.Errorf("the sign-in page shows the code %q, want one like BCDF-GHJK", code)
	}
	heading, err := chromedp.Run(b.ctx, chromedp.Text(chromedp.CSS("h1")))
	if err != nil {
		b.t.Fatal(err)
	}
	if !strings.Contains(heading, "webapp") {
		b.t.Errorf("the sign-in page's heading %q does not name the client webapp", heading)
	}
	copyButton, err := chromedp.Run(b.ctx, chromedp.Evaluate[bool](`document.querySelector('button#copy') !== null`))
	if err != nil || !copyButton {
		b.t.Errorf("the sign-in page has no copy button (%v)", err)
	}
	p := b.waitFor("the wait for Slack", 5*time.Second, func(p browserPage) bool { return strings.Contains(p.Status, "Waiting for you in Slack") })
	if !strings.HasPrefix(p.URL, g.issuer()+"/") {
		b.t.Errorf("the sign-in page is at %s, not on Gatehouse (%s)", p.URL, g.issuer())
	}
	for _, want := range []string{"prod-db-admin", "/access login"} {
		if !strings.Contains(p.Body, want) {
			b.t.Errorf("the sign-in page does not say %q:\n%s", want, p.Body)
		}
	}
	return code
}

// waitStatus waits until the sign-in page's status line says want.
func (b *browser) waitStatus(want string) {
	b.t.Helper()
	b.waitFor(fmt.Sprintf("the status %q", want), 10*time.Second, func(p browserPage) bool { return strings.Contains(p.Status, want) })
}

// result waits until the browser is back on the web app's callback and returns what it says.
func (b *browser) result(app *webApp) string {
	b.t.Helper()
	p := b.waitFor("the web app's callback page", 20*time.Second, func(p browserPage) bool {
		return strings.HasPrefix(p.URL, app.url+"/callback?") && p.Result != ""
	})
	return p.Result
}

// screenshot saves the whole page into the test's artifact directory.
func (b *browser) screenshot(name string) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 10*time.Second)
	defer cancel()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		b.t.Logf("no screenshot %s: %v", name, err)
		return
	}
	path := filepath.Join(b.t.ArtifactDir(), name)
	if err := os.WriteFile(path, png, 0o644); err != nil {
		b.t.Fatal(err)
	}
	b.t.Logf("screenshot: %s", path)
}

// webApp is a relying party as a web application builds one: x/oauth2 for the code flow
// with PKCE, go-oidc for discovery and for verifying both tokens.
type webApp struct {
	url      string
	clientID string
	audience string // the resource server whose audience the access token must carry
	provider *gooidc.Provider
	oauth    oauth2.Config

	mu     sync.Mutex
	logins map[string]webLogin // by state
}

// webLogin is what the app remembers between /login and /callback.
type webLogin struct{ nonce, verifier string }

// stateCookie binds the state to the browser that started the login.
const stateCookie = "webapp_state"

func startWebApp(t *testing.T, g *gatehouse, ln net.Listener, clientID, audience string, scopes ...string) *webApp {
	t.Helper()
	provider, err := gooidc.NewProvider(context.Background(), g.issuer())
	if err != nil {
		t.Fatalf("discovery: %v", err)
	}
	var discovery struct {
		AuthorizationEndpoint string `json:"authorization_endpoint"`
	}
	provider.Claims(&discovery)
	if discovery.AuthorizationEndpoint != g.issuer()+"/authorize" {
		t.Errorf("authorization_endpoint = %q, want %s/authorize", discovery.AuthorizationEndpoint, g.issuer())
	}
	app := &webApp{
		url: "http://" + ln.Addr().String(), clientID: clientID, audience: audience, provider: provider,
		logins: map[string]webLogin{},
	}
	endpoint := provider.Endpoint()
	endpoint.AuthStyle = oauth2.AuthStyleInParams // a public client sends only its client_id
	app.oauth = oauth2.Config{ClientID: clientID, Endpoint: endpoint, RedirectURL: app.url + "/callback", Scopes: scopes}

	mux := http.NewServeMux()
	mux.HandleFunc("GET /login", app.login)
	mux.HandleFunc("GET /callback", app.callback)
	srv := httptest.NewUnstartedServer(mux)
	srv.Listener.Close()
	srv.Listener = ln
	srv.Start()
	t.Cleanup(srv.Close)
	return app
}

// login sends the browser to Gatehouse with a new state, nonce and PKCE verifier.
func (a *webApp) login(w http.ResponseWriter, r *http.Request) {
	state, nonce, verifier := rand.Text(), rand.Text(), oauth2.GenerateVerifier()
	a.mu.Lock()
	a.logins[state] = webLogin{nonce: nonce, verifier: verifier}
	a.mu.Unlock()
	http.SetCookie(w, &http.Cookie{Name: stateCookie, Value: state, Path: "/", HttpOnly: true, SameSite: http.SameSiteLaxMode})
	http.Redirect(w, r, a.oauth.AuthCodeURL(state, oauth2.S256ChallengeOption(verifier), gooidc.Nonce(nonce)), http.StatusFound)
}

// callback checks the state, redeems the code and shows who signed in, or the error.
func (a *webApp) callback(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	cookie, err := r.Cookie(stateCookie)
	if err != nil || q.Get("state") == "" || cookie.Value != q.Get("state") {
		a.show(w, http.StatusBadRequest, fmt.Sprintf("error: the state %q is not the one this browser was sent with", q.Get("state")))
		return
	}
	a.mu.Lock()
	login, ok := a.logins[q.Get("state")]
	delete(a.logins, q.Get("state"))
	a.mu.Unlock()
	if !ok {
		a.show(w, http.StatusBadRequest, "error: the state was used already")
		return
	}
	if e := q.Get("error"); e != "" {
		a.show(w, http.StatusOK, "error: "+e)
		return
	}
	said, err := a.signIn(r.Context(), q.Get("code"), login)
	if err != nil {
		a.show(w, http.StatusBadGateway, "error: "+err.Error())
		return
	}
	a.show(w, http.StatusOK, said)
}

// signIn redeems the code and verifies the tokens as a web app and its API would.
func (a *webApp) signIn(ctx context.Context, code string, login webLogin) (string, error) {
	tok, err := a.oauth.Exchange(ctx, code, oauth2.VerifierOption(login.verifier))
	if err != nil {
		return "", fmt.Errorf("code exchange: %w", err)
	}
	rawID, _ := tok.Extra("id_token").(string)
	idToken, err := a.provider.VerifierContext(ctx, &gooidc.Config{ClientID: a.clientID}).Verify(ctx, rawID)
	if err != nil {
		return "", fmt.Errorf("ID token: %w", err)
	}
	if idToken.Nonce != login.nonce {
		return "", fmt.Errorf("ID token: nonce %q, want %q", idToken.Nonce, login.nonce)
	}
	access, err := a.provider.VerifierContext(ctx, &gooidc.Config{ClientID: a.audience}).Verify(ctx, tok.AccessToken)
	if err != nil {
		return "", fmt.Errorf("access token for %s: %w", a.audience, err)
	}
	var claims accessClaims
	if err := access.Claims(&claims); err != nil {
		return "", fmt.Errorf("access token: %w", err)
	}
	if claims.Subject != idToken.Subject {
		return "", fmt.Errorf("access token for %s, ID token for %s", claims.Subject, idToken.Subject)
	}
	var approvers []string
	for _, grant := range claims.Grants {
		approvers = append(approvers, grant.ApprovedBy...)
	}
	return fmt.Sprintf("signed in as %s; roles %s; approved by %s", idToken.Subject, strings.Join(claims.Roles, ","), strings.Join(approvers, ",")), nil
}

var webAppPage = template.Must(template.New("page").Parse(
	`<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Web app</title></head><body><p id="result">{{.}}</p></body></html>`))

func (a *webApp) show(w http.ResponseWriter, status int, text string) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	webAppPage.Execute(w, text)
}
