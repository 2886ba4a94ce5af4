package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/oauth2"

	"github.com/gatehouse/gatehouse/app"
	program "github.com/gatehouse/gatehouse/internal/gatehouse"
)

// Tests for the findings of the security review (issue 11), one per finding.

var confidentialWebapp = withClients(`
  - id: webapp-confidential
    secret_env: RESOURCE_SERVER_SECRET
    redirect_uris: [` + webappRedirect + `]
    grant_types: [authorization_code, refresh_token]
`)

// browserCode signs U0ALICE in through clientID's browser flow (no role) and returns the
// authorization code and the sign-in's PKCE verifier.
func (g *gatehouse) browserCode(clientID string, scopes ...string) (code string, w *webSignIn) {
	g.t.Helper()
	rp := g.client(clientID, scopes...)
	rp.oauth.RedirectURL = webappRedirect
	rp.oauth.Endpoint.AuthURL = rp.provider.Endpoint().AuthURL
	w = &webSignIn{oauth: rp.oauth, verifier: oauth2.GenerateVerifier(), state: "st-" + randomWord(), nonce: "n-" + randomWord()}
	b := g.httpBrowser()
	signinURL, userCode := b.open(w)
	g.loginInSlack("U0ALICE", userCode, nil)
	u := b.follow(signinURL)
	if u.Query().Get("code") == "" {
		g.t.Fatalf("no code in %s", u)
	}
	return u.Query().Get("code"), w
}

// exchange redeems a code as the confidential web app, with the given verifier.
func (g *gatehouse) exchange(code, verifier string) (int, map[string]any) {
	g.t.Helper()
	form := url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {webappRedirect}}
	if verifier != "" {
		form.Set("code_verifier", verifier)
	}
	req := newFormRequest(g.issuer()+"/oauth/token", form)
	req.SetBasicAuth("webapp-confidential", resourceServerSecret)
	status, body := g.do(req)
	var out map[string]any
	json.Unmarshal(body, &out)
	return status, out
}

// Findings 3 and 9: a stored challenge needs its verifier, also from a confidential
// client; failed exchanges do not burn the code; a replay revokes what the code issued.
func TestCodeExchangeChecksFirstAndReplayRevokes(t *testing.T) {
	g := startGatehouse(t, confidentialWebapp)
	code, w := g.browserCode("webapp-confidential", "openid", "offline_access")

	if status, out := g.exchange(code, ""); status != 400 || out["error"] != "invalid_request" {
		t.Errorf("no code_verifier: %d %v, want invalid_request", status, out)
	}
	if status, out := g.exchange(code, oauth2.GenerateVerifier()); status != 400 || out["error"] != "invalid_grant" {
		t.Errorf("wrong code_verifier: %d %v, want invalid_grant", status, out)
	}
	status, tokens := g.exchange(code, w.verifier)
	if status != 200 {
		t.Fatalf("the right exchange after failed ones: %d %v (the failures burnt the code)", status, tokens)
	}
	access, _ := tokens["access_token"].(string)
	g.replayRevokes(t, code, w.verifier, access)
	refresh, _ := tokens["refresh_token"].(string)
	req := newFormRequest(g.issuer()+"/oauth/token", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {refresh}})
	req.SetBasicAuth("webapp-confidential", resourceServerSecret)
	if status, body := g.do(req); status != 400 {
		t.Errorf("after the replay the code's refresh token answers %d %s", status, body)
	}
}

// Exchanges of one code racing each other: one gets tokens, and the others, replays of it,
// revoke them — also when they looked the code up before the winner spent it (they used to
// be refused without revoking anything).
func TestRacingCodeExchangesRevoke(t *testing.T) {
	g := startGatehouse(t, confidentialWebapp)
	for round := range 3 {
		code, w := g.browserCode("webapp-confidential", "openid")
		statuses := make([]int, 4)
		answers := make([]map[string]any, 4)
		var wg sync.WaitGroup
		for i := range statuses {
			wg.Go(func() { statuses[i], answers[i] = g.exchange(code, w.verifier) })
		}
		wg.Wait()
		var access []string
		for i, status := range statuses {
			if status == http.StatusOK {
				token, _ := answers[i]["access_token"].(string)
				access = append(access, token)
			} else if answers[i]["error"] != "invalid_grant" {
				t.Errorf("round %d: a losing exchange answered %d %v, want invalid_grant", round, status, answers[i])
			}
		}
		if len(access) != 1 {
			t.Fatalf("round %d: %d exchanges of one code got tokens, want 1", round, len(access))
		}
		if got := g.introspect(access[0]); got["active"] != false {
			t.Errorf("round %d: the winner's access token after racing replays introspects %v, want inactive", round, got)
		}
	}
}

// Finding 4: a wrong token_type_hint does not save the token; revocation is audited.
func TestRevocationIgnoresAWrongHint(t *testing.T) {
	g := startGatehouse(t)
	g.grantFor("U0ALICE", "prod-db-admin", "2h", "U0BOB", "C0DBA")
	rp := g.client("gatehouse-cli", "openid", "offline_access", "role:prod-db-admin")
	tok := rp.signIn("U0ALICE")
	status, body := g.post("/revoke", url.Values{"token": {tok.RefreshToken}, "token_type_hint": {"access_token"}, "client_id": {"gatehouse-cli"}})
	if status != 200 {
		t.Fatalf("revoke: %d %s", status, body)
	}
	if _, err := rp.oauth.TokenSource(context.Background(), &oauth2.Token{RefreshToken: tok.RefreshToken}).Token(); err == nil {
		t.Error("the refresh token still works after its revocation")
	}
	if got := g.introspect(tok.AccessToken); got["active"] != false {
		t.Errorf("the session's access token introspects %v", got)
	}
	events := g.auditEvents(app.ActionTokenRevoked)
	if len(events) != 1 || events[0].Actor != "gatehouse-cli" || events[0].Principal.ID != "U0ALICE" {
		t.Errorf("token.revoked events = %+v, want one by gatehouse-cli about U0ALICE", events)
	}
}

// Finding 7: userinfo answers a revoked token with 401 invalid_token, no internal text and
// no ERROR log line.
func TestUserinfoRefusesRevokedTokenQuietly(t *testing.T) {
	g := startGatehouse(t)
	grantID := g.grantFor("U0ALICE", "prod-db-admin", "2h", "U0BOB", "C0DBA")
	tok := g.client("gatehouse-cli", "openid", "role:prod-db-admin").signIn("U0ALICE")
	g.command("U0ALICE", "revoke "+grantID+" done")
	g.ephemeral("U0ALICE", "*Revoked*")
	for name, token := range map[string]string{"revoked": tok.AccessToken, "garbage": "not-a-token"} {
		req, _ := http.NewRequest("GET", g.issuer()+"/userinfo", nil)
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 401 || !strings.Contains(resp.Header.Get("WWW-Authenticate"), `error="invalid_token"`) ||
			strings.Contains(string(body), "store") || strings.Contains(string(body), "not found") {
			t.Errorf("%s token: %d %q %s", name, resp.StatusCode, resp.Header.Get("WWW-Authenticate"), body)
		}
	}
	if strings.Contains(g.logs.String(), "level=ERROR") {
		t.Errorf("a bad token at userinfo logged an error:\n%s", g.logs.String())
	}
}

// Finding 5: bodies over 64 KiB get 413; a trickled body and an idle keep-alive are cut off.
func TestHTTPLimits(t *testing.T) {
	g := startGatehouse(t, withHTTPTimeouts(program.HTTPTimeouts{Read: 300 * time.Millisecond, Idle: 300 * time.Millisecond}))
	big := url.Values{"grant_type": {"refresh_token"}, "refresh_token": {strings.Repeat("x", 100<<10)}}
	if status, _ := g.post("/oauth/token", big); status != http.StatusRequestEntityTooLarge {
		t.Errorf("a 100 KiB form: %d, want 413", status)
	}

	conn, err := net.Dial("tcp", g.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "POST /oauth/token HTTP/1.1\r\nHost: %s\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 100\r\n\r\n", g.addr)
	cut := make(chan struct{})
	go func() {
		io.Copy(io.Discard, conn) // returns when the server closes the connection
		close(cut)
	}()
	for i := 0; i < 50; i++ { // one byte every 50 ms: 2.5 s if never cut off
		select {
		case <-cut:
			i = 50
		case <-time.After(50 * time.Millisecond):
			conn.Write([]byte("a"))
		}
	}
	select {
	case <-cut:
	case <-time.After(2 * time.Second):
		t.Error("a body trickled at 20 bytes/s held the connection past the read timeout")
	}

	idle, err := net.Dial("tcp", g.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer idle.Close()
	fmt.Fprintf(idle, "GET /healthz HTTP/1.1\r\nHost: %s\r\n\r\n", g.addr)
	r := bufio.NewReader(idle)
	if resp, err := http.ReadResponse(r, nil); err != nil || resp.StatusCode != 200 {
		t.Fatalf("healthz: %v", err)
	} else {
		io.Copy(io.Discard, resp.Body)
	}
	idle.SetReadDeadline(time.Now().Add(3 * time.Second))
	if _, err := r.ReadByte(); err != io.EOF {
		t.Errorf("an idle keep-alive was not closed: %v", err)
	}
}

// Finding 8: end_session signs out the calling browser only, and asks first without a
// matching id_token_hint.
func TestEndSessionSignsOutOnlyThisBrowser(t *testing.T) {
	g := startGatehouse(t, webapp)
	signedIn := func(b *httpBrowser) bool {
		w := g.webSignIn("openid")
		_, loc, _ := b.get(w.authorizeURL())
		status, _, _ := b.get(loc)
		return status == http.StatusFound // a session goes straight on to the callback
	}
	browsers := []*httpBrowser{g.httpBrowser(), g.httpBrowser()}
	for _, b := range browsers {
		signinURL, code := b.open(g.webSignIn("openid"))
		g.loginInSlack("U0ALICE", code, nil)
		b.follow(signinURL)
		if !signedIn(b) {
			t.Fatal("a browser that signed in has no session")
		}
	}
	a, other := browsers[0], browsers[1]
	status, _, page := a.get("/end_session?client_id=webapp&post_logout_redirect_uri=" + url.QueryEscape(webappRedirect))
	if status != 200 || !strings.Contains(page, "Sign out of Gatehouse?") || !signedIn(a) {
		t.Fatalf("end_session without a hint: %d, signed in %v: %s", status, signedIn(a), page)
	}
	resp, err := a.client.PostForm(g.issuer()+"/end_session", url.Values{"client_id": {"webapp"}, "post_logout_redirect_uri": {webappRedirect}, "state": {"s1"}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusFound || resp.Header.Get("Location") != webappRedirect+"?state=s1" {
		t.Errorf("confirmed sign-out: %d to %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	if signedIn(a) {
		t.Error("the browser that signed out is still signed in")
	}
	if !signedIn(other) {
		t.Error("signing out one browser signed out the user's other browser")
	}
}

// Finding 11: exact redirect_uri, except the port of a loopback redirect.
func TestRedirectURIExactExceptLoopbackPort(t *testing.T) {
	g := startGatehouse(t, webapp)
	b := g.httpBrowser()
	for uri, ok := range map[string]bool{
		webappRedirect:                          true,
		"http://127.0.0.1:5555/callback":        true,
		"http://localhost:9/callback":           false,
		"https://127.0.0.1:9/callback":          false,
		"http://127.0.0.1:9/callback#fragment":  false,
		"http://127.0.0.1:9/other":              false,
		"http://127.0.0.1:9/callback?extra=one": false,
	} {
		w := g.webSignIn("openid")
		w.oauth.RedirectURL = uri
		status, loc, body := b.get(w.authorizeURL())
		if got := status == http.StatusFound && strings.HasPrefix(loc, "/signin?id="); got != ok {
			t.Errorf("redirect_uri %s: %d %s %s, want accepted=%v", uri, status, loc, body, ok)
		}
	}
}

// Finding 12: discovery lists exactly what works.
func TestDiscoveryListsWhatWorks(t *testing.T) {
	g := startGatehouse(t)
	resp, err := http.Get(g.issuer() + "/.well-known/openid-configuration")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var d struct {
		GrantTypes    []string `json:"grant_types_supported"`
		ResponseTypes []string `json:"response_types_supported"`
		TokenAuth     []string `json:"token_endpoint_auth_methods_supported"`
		Introspection []string `json:"introspection_endpoint_auth_methods_supported"`
		PKCE          []string `json:"code_challenge_methods_supported"`
	}
	json.NewDecoder(resp.Body).Decode(&d)
	slices.Sort(d.GrantTypes)
	want := []string{"authorization_code", "client_credentials", "refresh_token", "urn:ietf:params:oauth:grant-type:device_code"}
	if !slices.Equal(d.GrantTypes, want) || !slices.Equal(d.ResponseTypes, []string{"code"}) ||
		!slices.Equal(d.TokenAuth, []string{"none", "client_secret_basic", "client_secret_post"}) ||
		!slices.Equal(d.Introspection, []string{"client_secret_basic", "client_secret_post"}) || !slices.Equal(d.PKCE, []string{"S256"}) {
		t.Errorf("discovery = %+v", d)
	}
}

// Finding 2: the database and the key-encryption key file created beside it are 0600.
func TestDatabaseAndKeyFilesOwnerOnly(t *testing.T) {
	if *allOnPostgres {
		t.Skip("SQLite files only")
	}
	g := startGatehouse(t)
	dir := filepath.Dir(g.config)
	for _, name := range []string{"gatehouse.db", "gatehouse.db-wal", "gatehouse.db.kek"} {
		info, err := os.Stat(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if perm := info.Mode().Perm(); perm != 0o600 {
			t.Errorf("%s is %s, want -rw-------", name, perm)
		}
	}
	if !strings.Contains(g.logs.String(), "gatehouse.db.kek (created now") {
		t.Error("start-up did not say it created the key-encryption key file")
	}
}

// replayRevokes checks that redeeming code (with verifier) again is refused and makes the
// access token it issued, active until then, inactive (RFC 6749 §4.1.2).
func (g *gatehouse) replayRevokes(t *testing.T, code, verifier, access string) {
	t.Helper()
	if got := g.introspect(access); got["active"] != true {
		t.Fatalf("fresh access token introspects %v", got)
	}
	if status, out := g.exchange(code, verifier); status != 400 || out["error"] != "invalid_grant" {
		t.Errorf("replay: %d %v, want invalid_grant", status, out)
	}
	if got := g.introspect(access); got["active"] != false {
		t.Errorf("after the replay the code's access token introspects %v, want inactive", got)
	}
	g.auditedReplay(t, "authorization code replayed")
}

// auditedReplay checks that the audit trail says a session was revoked because one of its
// secrets was used again (why), once.
func (g *gatehouse) auditedReplay(t *testing.T, why string) {
	t.Helper()
	var found []app.AuditEvent
	for _, e := range g.auditEvents(app.ActionTokenRevoked) {
		if strings.Contains(e.Reason, why) {
			found = append(found, e)
		}
	}
	if len(found) != 1 || found[0].Principal.ID != "U0ALICE" {
		t.Errorf("token.revoked events saying %q: %+v, want one about U0ALICE", why, found)
	}
}

// auditEvents returns the audit trail's events of action, oldest first.
func (g *gatehouse) auditEvents(action string) []app.AuditEvent {
	g.t.Helper()
	var events []app.AuditEvent
	err := g.svc.Store.AuditExport(context.Background(), time.Time{}, func(e app.AuditEvent) error {
		if e.Action == action {
			events = append(events, e)
		}
		return nil
	})
	if err != nil {
		g.t.Fatal(err)
	}
	return events
}
