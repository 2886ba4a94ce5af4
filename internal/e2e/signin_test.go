package e2e

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	gooidc "github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"
)

// The browser flow without a browser: an HTTP client with a cookie jar plays the browser.

const webappRedirect = "http://127.0.0.1:9/callback" // never fetched: the test reads the redirect

var webapp = withClients(`
  - id: webapp
    public: true
    redirect_uris: [` + webappRedirect + `]
    grant_types: [authorization_code, refresh_token]
`)

// httpBrowser is an HTTP client with its own cookies that does not follow redirects.
type httpBrowser struct {
	g      *gatehouse
	client *http.Client
}

func (g *gatehouse) httpBrowser() *httpBrowser {
	jar, _ := cookiejar.New(nil)
	return &httpBrowser{g: g, client: &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
}

// get fetches a URL and returns the status, the Location header and the body.
func (b *httpBrowser) get(u string) (int, string, string) {
	b.g.t.Helper()
	if strings.HasPrefix(u, "/") {
		u = b.g.issuer() + u
	}
	resp, err := b.client.Get(u)
	if err != nil {
		b.g.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header.Get("Location"), string(body)
}

// webSignIn is one sign-in of the webapp client: its PKCE verifier, state and nonce.
type webSignIn struct {
	oauth                  oauth2.Config
	verifier, state, nonce string
}

func (g *gatehouse) webSignIn(scopes ...string) *webSignIn {
	rp := g.client("webapp", scopes...)
	rp.oauth.RedirectURL = webappRedirect
	rp.oauth.Endpoint.AuthURL = rp.provider.Endpoint().AuthURL
	return &webSignIn{oauth: rp.oauth, verifier: oauth2.GenerateVerifier(), state: "st-" + randomWord(), nonce: "n-" + randomWord()}
}

func randomWord() string { return strings.ReplaceAll(time.Now().Format("150405.000000000"), ".", "") }

func (w *webSignIn) authorizeURL(extra ...oauth2.AuthCodeOption) string {
	return w.oauth.AuthCodeURL(w.state, append([]oauth2.AuthCodeOption{oauth2.S256ChallengeOption(w.verifier), gooidc.Nonce(w.nonce)}, extra...)...)
}

var userCodeInPage = regexp.MustCompile(`<span id="user-code">([A-Z]{4}-[A-Z]{4})</span>`)

// open goes to /authorize and on to the sign-in page, returning its code.
func (b *httpBrowser) open(w *webSignIn) (signinURL, code string) {
	b.g.t.Helper()
	status, loc, body := b.get(w.authorizeURL())
	if status != http.StatusFound || !strings.HasPrefix(loc, "/signin?id=") {
		b.g.t.Fatalf("authorize: %d %s %s", status, loc, body)
	}
	status, _, page := b.get(loc)
	m := userCodeInPage.FindStringSubmatch(page)
	if status != http.StatusOK || m == nil {
		b.g.t.Fatalf("sign-in page: %d %s", status, page)
	}
	return loc, m[1]
}

// follow polls the page's status until it says where to go next, then goes there and
// returns the final redirect to the client.
func (b *httpBrowser) follow(signinURL string) *url.URL {
	b.g.t.Helper()
	id := strings.TrimPrefix(signinURL, "/signin?id=")
	deadline := time.Now().Add(wait)
	for time.Now().Before(deadline) {
		_, _, body := b.get("/signin/status?id=" + id)
		var st struct{ Status, Message, Next string }
		if err := json.Unmarshal([]byte(body), &st); err != nil {
			b.g.t.Fatalf("status: %v: %s", err, body)
		}
		if st.Next != "" {
			if !strings.HasPrefix(st.Next, "/") {
				u, _ := url.Parse(st.Next)
				return u
			}
			status, loc, page := b.get(st.Next)
			if status != http.StatusFound {
				b.g.t.Fatalf("callback: %d %s", status, page)
			}
			u, _ := url.Parse(loc)
			return u
		}
		time.Sleep(100 * time.Millisecond)
	}
	b.g.t.Fatal("the sign-in never finished")
	return nil
}

func TestBrowserSignInBoundToItsBrowser(t *testing.T) {
	g := startGatehouse(t, webapp)
	g.grantFor("U0ALICE", "prod-db-admin", "1h", "U0BOB", "C0DBA")
	w := g.webSignIn("openid", "role:prod-db-admin")
	b := g.httpBrowser()
	signinURL, code := b.open(w)

	t.Run("another browser cannot finish it", func(t *testing.T) {
		other := g.httpBrowser()
		if status, _, _ := other.get(signinURL); status != http.StatusForbidden {
			t.Errorf("another browser opened the sign-in page: %d", status)
		}
	})

	g.loginInSlack("U0ALICE", code, nil)
	back := b.follow(signinURL)
	if back.Query().Get("state") != w.state || back.Query().Get("code") == "" {
		t.Fatalf("back at the client with %s", back)
	}
	t.Run("another browser cannot take the code", func(t *testing.T) {
		other := g.httpBrowser()
		if status, _, _ := other.get("/authorize/callback?" + strings.TrimPrefix(signinURL, "/signin?")); status != http.StatusForbidden {
			t.Errorf("callback from another browser: %d", status)
		}
	})
	t.Run("PKCE mismatch", func(t *testing.T) {
		if _, err := w.oauth.Exchange(context.Background(), back.Query().Get("code"), oauth2.VerifierOption(oauth2.GenerateVerifier())); err == nil {
			t.Error("exchange with the wrong verifier succeeded")
		}
	})
}

func TestBrowserSessionAndCodeRules(t *testing.T) {
	g := startGatehouse(t, webapp)
	g.grantFor("U0ALICE", "prod-db-admin", "1h", "U0BOB", "C0DBA")
	w := g.webSignIn("openid", "role:prod-db-admin")
	b := g.httpBrowser()
	signinURL, code := b.open(w)
	g.loginInSlack("U0ALICE", code, nil)
	back := b.follow(signinURL)

	tok, err := w.oauth.Exchange(context.Background(), back.Query().Get("code"), oauth2.VerifierOption(w.verifier))
	if err != nil {
		t.Fatalf("code exchange: %v", err)
	}
	rp := g.client("webapp")
	rawID, _ := tok.Extra("id_token").(string)
	idToken, err := rp.provider.Verifier(&gooidc.Config{ClientID: "webapp"}).Verify(context.Background(), rawID)
	if err != nil || idToken.Nonce != w.nonce || idToken.Subject != "U0ALICE" {
		t.Fatalf("ID token: %v, nonce %q, sub %q", err, idToken.Nonce, idToken.Subject)
	}
	claims := rp.verifyAccess(tok.AccessToken, "prod-db")
	if !slices.Equal(claims.Roles, []string{"prod-db-admin"}) || claims.ClientID != "webapp" {
		t.Errorf("access token claims = %+v", claims)
	}
	t.Run("code replay", func(t *testing.T) {
		if _, err := w.oauth.Exchange(context.Background(), back.Query().Get("code"), oauth2.VerifierOption(w.verifier)); err == nil {
			t.Error("a code yielded tokens twice")
		}
	})
	t.Run("session skips the code", func(t *testing.T) {
		w2 := g.webSignIn("openid", "role:prod-db-admin")
		status, loc, _ := b.get(w2.authorizeURL())
		status, loc, _ = b.get(loc)
		if status != http.StatusFound || !strings.HasPrefix(loc, "/authorize/callback") {
			t.Fatalf("with a session the sign-in page answered %d %s", status, loc)
		}
		status, loc, _ = b.get(loc)
		u, _ := url.Parse(loc)
		if status != http.StatusFound || u.Query().Get("code") == "" || u.Query().Get("state") != w2.state {
			t.Errorf("session sign-in ended at %d %s", status, loc)
		}
	})
	t.Run("prompt=login asks again", func(t *testing.T) {
		w3 := g.webSignIn("openid", "role:prod-db-admin")
		_, loc, _ := b.get(w3.authorizeURL(oauth2.SetAuthURLParam("prompt", "login")))
		_, _, page := b.get(loc)
		if !userCodeInPage.MatchString(page) {
			t.Errorf("prompt=login did not show a code: %s", page)
		}
	})
	t.Run("prompt=none without a session", func(t *testing.T) {
		w4 := g.webSignIn("openid", "role:prod-db-admin")
		fresh := g.httpBrowser()
		_, loc, _ := fresh.get(w4.authorizeURL(oauth2.SetAuthURLParam("prompt", "none")))
		_, loc, _ = fresh.get(loc)
		u, _ := url.Parse(loc)
		if u.Query().Get("error") != "login_required" || u.Query().Get("state") != w4.state {
			t.Errorf("prompt=none without session: %s", loc)
		}
	})
}

func TestBrowserSignInRefusals(t *testing.T) {
	g := startGatehouse(t, webapp)
	b := g.httpBrowser()
	t.Run("denied", func(t *testing.T) {
		w := g.webSignIn("openid", "role:prod-db-admin")
		signinURL, code := b.open(w)
		g.loginInSlack("U0ALICE", code, map[string]string{"Reason": "browser please"})
		msg := g.message("C0DBA", "browser please")
		g.click("U0BOB", msg, "Deny")
		g.view("U0BOB", "Deny request")
		g.submit("U0BOB", map[string]string{"Reason": "no"})
		back := b.follow(signinURL)
		if back.Query().Get("error") != "access_denied" || back.Query().Get("state") != w.state {
			t.Errorf("denied sign-in went back with %s", back)
		}
	})
	t.Run("expired", func(t *testing.T) {
		w := g.webSignIn("openid", "role:prod-db-admin")
		signinURL, _ := b.open(w)
		g.clock.Advance(11 * time.Minute)
		if status, _, page := b.get(signinURL); status != http.StatusBadRequest || !strings.Contains(page, "expired") {
			t.Errorf("expired sign-in page: %d", status)
		}
	})
	for _, tt := range []struct {
		name   string
		mutate func(q url.Values)
		want   string // in the error redirect's error, or "page" for an error shown by Gatehouse itself
	}{
		{"redirect URI mismatch", func(q url.Values) { q.Set("redirect_uri", "http://127.0.0.1:9/evil") }, "page"},
		{"unknown client", func(q url.Values) { q.Set("client_id", "nope") }, "page"},
		{"missing state", func(q url.Values) { q.Del("state") }, "invalid_request"},
		{"no PKCE for a public client", func(q url.Values) { q.Del("code_challenge"); q.Del("code_challenge_method") }, "invalid_request"},
		{"role not in policy", func(q url.Values) { q.Set("scope", "openid role:root") }, "invalid_scope"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			w := g.webSignIn("openid", "role:prod-db-admin")
			u, _ := url.Parse(w.authorizeURL())
			q := u.Query()
			tt.mutate(q)
			u.RawQuery = q.Encode()
			status, loc, body := b.get(u.String())
			if status >= 500 {
				t.Fatalf("%d %s", status, body)
			}
			if tt.want == "page" {
				if strings.HasPrefix(loc, "http://127.0.0.1:9/") {
					t.Errorf("redirected to an unverified place: %s", loc)
				}
				return
			}
			back, _ := url.Parse(loc)
			if back.Query().Get("error") != tt.want {
				t.Errorf("%d %s, want error %s", status, loc, tt.want)
			}
		})
	}
}

func TestBrowserRoleNotAllowedForClientIsRefused(t *testing.T) {
	g := startGatehouse(t, withClients(`
  - id: narrow
    public: true
    redirect_uris: [`+webappRedirect+`]
    grant_types: [authorization_code]
    roles: [deploy]
`))
	w := g.webSignIn("openid", "role:prod-db-admin")
	w.oauth.ClientID = "narrow"
	b := g.httpBrowser()
	_, loc, body := b.get(w.authorizeURL())
	back, _ := url.Parse(loc)
	if back.Query().Get("error") != "invalid_scope" || back.Query().Get("state") != w.state {
		t.Errorf("a role the client may not ask for: %s %s", loc, body)
	}
}
