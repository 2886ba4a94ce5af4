package e2e

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	gooidc "github.com/coreos/go-oidc/v3/oidc"
	"github.com/gatehouse/gatehouse/app"
	program "github.com/gatehouse/gatehouse/internal/gatehouse"
	"golang.org/x/oauth2"
)

func TestDeviceLoginWithExistingGrant(t *testing.T) {
	g := startGatehouse(t)
	grantID := g.grantFor("U0ALICE", "prod-db-admin", "2h", "U0BOB", "C0DBA")

	rp := g.client("gatehouse-cli", "openid", "role:prod-db-admin")
	da := rp.start()
	if !regexpUserCode.MatchString(da.UserCode) || da.Interval != 1 {
		t.Fatalf("device authorization = %+v", da)
	}
	waiting := rp.wait(da)
	g.command("U0ALICE", "login "+da.UserCode)
	form := g.view("U0ALICE", "Confirm sign-in")
	for _, want := range []string{"`gatehouse-cli`", "prod-db-admin", "Confirm only a sign-in you started yourself"} {
		if !strings.Contains(form.AllText(), want) {
			t.Errorf("confirmation does not show %q: %s", want, form.AllText())
		}
	}
	if len(form.Labels()) != 0 {
		t.Errorf("with an active grant the form asks %q", form.Labels())
	}
	g.submit("U0ALICE", nil)
	g.view("U0ALICE", "Signed in")

	got := g.receive(waiting)
	if got.err != nil {
		t.Fatalf("token: %v", got.err)
	}
	claims := rp.verifyAccess(got.tok.AccessToken, "prod-db")
	if claims.Subject != "U0ALICE" || claims.ClientID != "gatehouse-cli" || !slices.Equal(claims.Roles, []string{"prod-db-admin"}) ||
		!slices.Contains(claims.Audience, "gatehouse-cli") || !strings.Contains(claims.Scope, "role:prod-db-admin") || claims.JTI == "" {
		t.Errorf("access token claims = %+v", claims)
	}
	if len(claims.Grants) != 1 || claims.Grants[0].ID != grantID || !slices.Equal(claims.Grants[0].ApprovedBy, []string{"U0BOB"}) ||
		!strings.HasPrefix(claims.Grants[0].RequestID, "req_") || claims.Expiry > claims.Grants[0].ExpiresAt {
		t.Errorf("grants claim = %+v (exp %d)", claims.Grants, claims.Expiry)
	}
	if d := claims.Expiry - claims.IssuedAt; d > 601 || d < 590 {
		t.Errorf("access token lives %ds, want access_token_ttl (600s)", d)
	}

	rawID, _ := got.tok.Extra("id_token").(string)
	idToken, err := rp.provider.Verifier(&gooidc.Config{ClientID: "gatehouse-cli"}).Verify(context.Background(), rawID)
	if err != nil {
		t.Fatalf("ID token: %v", err)
	}
	var id struct {
		Name, Email string
		Roles       []string
	}
	idToken.Claims(&id)
	if idToken.Subject != "U0ALICE" || id.Name != "Alice Example" || id.Email != "alice@example.com" || !slices.Equal(id.Roles, []string{"prod-db-admin"}) {
		t.Errorf("ID token = sub %s %+v", idToken.Subject, id)
	}

	t.Run("device code replay", func(t *testing.T) {
		status, body := g.post("/oauth/token", url.Values{"grant_type": {"urn:ietf:params:oauth:grant-type:device_code"},
			"device_code": {da.DeviceCode}, "client_id": {"gatehouse-cli"}})
		if status != 400 || oauthError(t, body) != "invalid_grant" {
			t.Errorf("replay: %d %s, want invalid_grant", status, body)
		}
	})
	t.Run("introspection", func(t *testing.T) {
		got := g.introspect(got.tok.AccessToken)
		if got["active"] != true || got["sub"] != "U0ALICE" || !strings.Contains(got["scope"].(string), "role:prod-db-admin") {
			t.Errorf("introspection = %v", got)
		}
	})
}

var regexpUserCode = regexp.MustCompile(`^[BCDFGHJKLMNPQRSTVWXZ]{4}-[BCDFGHJKLMNPQRSTVWXZ]{4}$`)

func TestDeviceLoginWaitsForApproval(t *testing.T) {
	g := startGatehouse(t)
	rp := g.client("gatehouse-cli", "openid", "role:k8s-prod-exec")
	da := rp.start()
	waiting := rp.wait(da)

	g.command("U0ALICE", "login "+da.UserCode)
	form := g.view("U0ALICE", "Confirm sign-in")
	if !slices.Equal(form.Labels(), []string{"Duration", "Reason"}) {
		t.Fatalf("without a grant the form asks %q, want Duration and Reason", form.Labels())
	}
	ack := g.submit("U0ALICE", map[string]string{"Duration": "1h", "Reason": "debug the crash loop"})
	if ack.ResponseAction != "update" {
		t.Fatalf("ack = %+v", ack)
	}
	g.view("U0ALICE", "Access requested")
	msg := g.message("C0APPROVALS", "k8s-prod-exec", "debug the crash loop", "0 / 2")

	select {
	case r := <-waiting:
		t.Fatalf("the client got an answer before approval: %+v", r)
	case <-time.After(1500 * time.Millisecond):
	}
	g.approve("U0BOB", msg, "")
	g.approve("U0CAROL", msg, "")
	clicked := time.Now()
	got := g.receive(waiting)
	if got.err != nil {
		t.Fatalf("token after approval: %v", got.err)
	}
	t.Logf("approval → token in the client: %s", time.Since(clicked))
	claims := rp.verifyAccess(got.tok.AccessToken, "gatehouse-cli")
	if !slices.Equal(claims.Roles, []string{"k8s-prod-exec"}) || len(claims.Grants) != 1 ||
		!slices.Equal(claims.Grants[0].ApprovedBy, []string{"U0BOB", "U0CAROL"}) {
		t.Errorf("claims = %+v", claims)
	}
}

func TestDeviceLoginDeniedOrExpired(t *testing.T) {
	g := startGatehouse(t)
	rp := g.client("gatehouse-cli", "openid", "role:k8s-prod-exec")

	t.Run("denied", func(t *testing.T) {
		da := rp.start()
		waiting := rp.wait(da)
		g.loginInSlack("U0ALICE", da.UserCode, map[string]string{"Reason": "please"})
		msg := g.message("C0APPROVALS", "please")
		g.click("U0BOB", msg, "Deny")
		g.view("U0BOB", "Deny request")
		g.submit("U0BOB", map[string]string{"Reason": "not today"})
		got := g.receive(waiting)
		var re *oauth2.RetrieveError
		if !errors.As(got.err, &re) || re.ErrorCode != "access_denied" || !strings.Contains(re.ErrorDescription, "not today") {
			t.Errorf("denied login: %v, want access_denied with the reason", got.err)
		}
	})
	t.Run("request expired", func(t *testing.T) {
		da := rp.start()
		g.loginInSlack("U0ALICE", da.UserCode, map[string]string{"Reason": "late"})
		g.message("C0APPROVALS", "late")
		g.clock.Advance(6 * time.Minute) // past k8s-prod-exec's request_ttl (5m), within login_ttl
		status, body := g.post("/oauth/token", url.Values{"grant_type": {"urn:ietf:params:oauth:grant-type:device_code"},
			"device_code": {da.DeviceCode}, "client_id": {"gatehouse-cli"}})
		if status != 400 || oauthError(t, body) != "expired_token" || !strings.Contains(string(body), "expired before it was decided") {
			t.Errorf("expired request: %d %s", status, body)
		}
	})
	t.Run("code expired", func(t *testing.T) {
		da := rp.start()
		g.clock.Advance(11 * time.Minute) // past login_ttl
		status, body := g.post("/oauth/token", url.Values{"grant_type": {"urn:ietf:params:oauth:grant-type:device_code"},
			"device_code": {da.DeviceCode}, "client_id": {"gatehouse-cli"}})
		if status != 400 || oauthError(t, body) != "expired_token" {
			t.Errorf("expired code: %d %s", status, body)
		}
		g.command("U0ALICE", "login "+da.UserCode)
		g.ephemeral("U0ALICE", "expired")
	})
}

// Polls racing for one ready device code: the code is spent by the write that records
// the tokens, so exactly one poll gets them; every other one is told the code is used (or
// to slow down), never an error of ours, and the audit trail shows one redemption.
func TestRacingPollsOfAReadyDeviceCodeGetTokensOnce(t *testing.T) {
	g := startGatehouse(t)
	grantID := g.grantFor("U0ALICE", "prod-db-admin", "2h", "U0BOB", "C0DBA")
	da := g.client("gatehouse-cli", "openid", "role:prod-db-admin").start()
	g.command("U0ALICE", "login "+da.UserCode)
	g.view("U0ALICE", "Confirm sign-in")
	g.submit("U0ALICE", nil)
	g.view("U0ALICE", "Signed in")

	const polls = 8
	form := url.Values{"grant_type": {"urn:ietf:params:oauth:grant-type:device_code"}, "device_code": {da.DeviceCode}, "client_id": {"gatehouse-cli"}}
	type answer struct {
		status int
		body   string
	}
	answers := make(chan answer, polls)
	for range polls {
		go func() {
			resp, err := http.PostForm(g.issuer()+"/oauth/token", form)
			if err != nil {
				answers <- answer{0, err.Error()}
				return
			}
			defer resp.Body.Close()
			body, _ := io.ReadAll(resp.Body)
			answers <- answer{resp.StatusCode, string(body)}
		}()
	}
	issued := 0
	for range polls {
		a := <-answers
		switch {
		case a.status == 200 && strings.Contains(a.body, "access_token"):
			issued++
		case a.status == 400 && (oauthError(t, []byte(a.body)) == "invalid_grant" || oauthError(t, []byte(a.body)) == "slow_down"):
		default:
			t.Errorf("poll answered %d %s", a.status, a.body)
		}
	}
	if issued != 1 {
		t.Errorf("%d polls got tokens, want exactly 1", issued)
	}
	grant, err := g.svc.Store.Grant(context.Background(), grantID)
	if err != nil {
		t.Fatal(err)
	}
	events, err := g.svc.Store.AuditEvents(context.Background(), grant.RequestID)
	if err != nil {
		t.Fatal(err)
	}
	counts := map[string]int{}
	for _, e := range events {
		counts[e.Action]++
	}
	if counts["login.issued"] != 1 || counts["token.issued"] != 1 {
		t.Errorf("audit trail: %d login.issued, %d token.issued; want 1 of each", counts["login.issued"], counts["token.issued"])
	}
}

func TestDevicePollingFasterThanAnnouncedGetsSlowDown(t *testing.T) {
	g := startGatehouse(t)
	da := g.client("gatehouse-cli", "openid").start()
	form := url.Values{"grant_type": {"urn:ietf:params:oauth:grant-type:device_code"}, "device_code": {da.DeviceCode}, "client_id": {"gatehouse-cli"}}
	if status, body := g.post("/oauth/token", form); oauthError(t, body) != "authorization_pending" || !strings.Contains(string(body), "/access login "+da.UserCode) {
		t.Fatalf("first poll: %d %s", status, body)
	}
	if _, body := g.post("/oauth/token", form); oauthError(t, body) != "slow_down" {
		t.Errorf("second poll at once: %s, want slow_down", body)
	}
	g.clock.Advance(time.Second)
	if _, body := g.post("/oauth/token", form); oauthError(t, body) != "authorization_pending" {
		t.Errorf("poll after the interval: %s, want authorization_pending", body)
	}
}

func TestGuessingUserCodesIsRateLimited(t *testing.T) {
	g := startGatehouse(t)
	for i := range 5 {
		g.command("U0EVE", "login BCDF-GHJK")
		g.ephemeralCount("U0EVE", i+1)
	}
	rp := g.client("gatehouse-cli", "openid")
	g.command("U0EVE", "login "+rp.start().UserCode) // even the right code, once over the limit
	g.ephemeral("U0EVE", "Too many wrong codes")
	if v, open := g.slack.OpenView("U0EVE"); open {
		t.Errorf("a guesser got the %q form", v.Title)
	}
	g.clock.Advance(10 * time.Minute)
	g.command("U0EVE", "login "+rp.start().UserCode)
	g.view("U0EVE", "Confirm sign-in")
}

func TestRefreshRotatesAndRechecksGrants(t *testing.T) {
	g := startGatehouse(t)
	grantID := g.grantFor("U0ALICE", "prod-db-admin", "1h", "U0BOB", "C0DBA")
	rp := g.client("gatehouse-cli", "openid", "offline_access", "role:prod-db-admin")
	da := rp.start()
	waiting := rp.wait(da)
	g.loginInSlack("U0ALICE", da.UserCode, nil)
	got := g.receive(waiting)
	if got.err != nil || got.tok.RefreshToken == "" {
		t.Fatalf("token: %+v, %v; want a refresh token", got.tok, got.err)
	}
	refresh := func(token string) (int, []byte) {
		return g.post("/oauth/token", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {token}, "client_id": {"gatehouse-cli"}})
	}
	status, body := refresh(got.tok.RefreshToken)
	if status != 200 {
		t.Fatalf("refresh: %d %s", status, body)
	}
	var rotated struct {
		AccessToken  string `json:"access_token"`
		RefreshToken string `json:"refresh_token"`
	}
	jsonUnmarshal(t, body, &rotated)
	if rotated.RefreshToken == "" || rotated.RefreshToken == got.tok.RefreshToken {
		t.Fatalf("refresh did not rotate the refresh token: %s", body)
	}
	if claims := rp.verifyAccess(rotated.AccessToken, "prod-db"); claims.Grants[0].ID != grantID {
		t.Errorf("refreshed token carries %+v", claims.Grants)
	}
	if status, body := refresh(got.tok.RefreshToken); status != 400 || oauthError(t, body) != "invalid_grant" {
		t.Errorf("reusing a rotated refresh token: %d %s, want invalid_grant", status, body)
	}
	// The replay revoked the session: the newest refresh token is dead too.
	if status, body := refresh(rotated.RefreshToken); status != 400 || oauthError(t, body) != "invalid_grant" {
		t.Errorf("refresh after a replay: %d %s, want invalid_grant", status, body)
	}

	t.Run("revoked grant", func(t *testing.T) {
		rp2 := g.client("gatehouse-cli", "openid", "offline_access", "role:prod-db-admin")
		tok := rp2.signIn("U0ALICE")
		if g.introspect(tok.AccessToken)["active"] != true {
			t.Fatal("fresh token not active")
		}
		g.command("U0ALICE", "revoke "+grantID+" done early")
		g.ephemeral("U0ALICE", "*Revoked*")
		if got := g.introspect(tok.AccessToken); got["active"] != false {
			t.Errorf("after revoking the grant, introspection = %v", got)
		}
		if status, body := refresh(tok.RefreshToken); status != 400 || oauthError(t, body) != "invalid_grant" {
			t.Errorf("refresh after revoke: %d %s", status, body)
		}
	})
}

// Refreshes of one token racing each other: one rotates it, and the others, replays of it,
// revoke the session — also when they read the token before the winner rotated it (they
// used to be refused without revoking anything, so whoever won, thief or client, kept the
// session).
func TestRacingRefreshesRevoke(t *testing.T) {
	g := startGatehouse(t)
	for round := range 3 {
		tok := g.client("gatehouse-cli", "openid", "offline_access").signIn("U0ALICE")
		form := url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tok.RefreshToken}, "client_id": {"gatehouse-cli"}}
		statuses := make([]int, 4)
		bodies := make([][]byte, 4)
		var wg sync.WaitGroup
		for i := range statuses {
			wg.Go(func() { statuses[i], bodies[i] = g.post("/oauth/token", form) })
		}
		wg.Wait()
		var winner string
		for i, status := range statuses {
			if status == http.StatusOK {
				var got struct {
					RefreshToken string `json:"refresh_token"`
				}
				jsonUnmarshal(t, bodies[i], &got)
				winner = got.RefreshToken
			}
		}
		if winner == "" {
			t.Fatalf("round %d: no refresh of four won: %v", round, statuses)
		}
		next := url.Values{"grant_type": {"refresh_token"}, "refresh_token": {winner}, "client_id": {"gatehouse-cli"}}
		if status, body := g.post("/oauth/token", next); status != http.StatusBadRequest {
			t.Errorf("round %d: the winner's refresh token after racing replays: %d %s, want 400 (session revoked)", round, status, body)
		}
	}
}

// A refresh token used again is a replay however many rotations ago it was replaced
// (only the newest token of a session is stored: the token names its chain and
// generation), and it revokes the session; so does revoking an old one at /revoke.
func TestReplayOfAnOlderRefreshTokenRevokesTheSession(t *testing.T) {
	g := startGatehouse(t)
	g.grantFor("U0ALICE", "prod-db-admin", "1h", "U0BOB", "C0DBA")
	refresh := func(token string) (int, string) {
		status, body := g.post("/oauth/token", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {token}, "client_id": {"gatehouse-cli"}})
		var tok struct {
			RefreshToken string `json:"refresh_token"`
		}
		if status == 200 {
			jsonUnmarshal(t, body, &tok)
		}
		return status, tok.RefreshToken
	}
	for _, replay := range []string{"refresh", "revoke"} {
		t.Run(replay, func(t *testing.T) {
			chain := []string{g.client("gatehouse-cli", "openid", "offline_access", "role:prod-db-admin").signIn("U0ALICE").RefreshToken}
			for range 3 {
				status, next := refresh(chain[len(chain)-1])
				if status != 200 || next == "" {
					t.Fatalf("rotation %d: %d", len(chain), status)
				}
				chain = append(chain, next)
			}
			if replay == "refresh" {
				if status, _ := refresh(chain[1]); status != 400 {
					t.Errorf("reusing a token replaced two rotations ago: %d, want 400", status)
				}
				g.auditedReplay(t, "refresh token replayed")
			} else if status, body := g.post("/revoke", url.Values{"token": {chain[0]}, "client_id": {"gatehouse-cli"}}); status != 200 {
				t.Errorf("revoking a token replaced three rotations ago: %d %s", status, body)
			}
			if status, _ := refresh(chain[len(chain)-1]); status != 400 {
				t.Errorf("the newest token after the %s of an old one: %d, want 400 (session revoked)", replay, status)
			}
		})
	}
}

// A refresh token issued before tokens named their chain (a bare secret, stored by its
// hash) still refreshes; the session goes on with a chain, and the old token used again
// is a replay.
func TestRefreshTokenFromBeforeChainsStillWorks(t *testing.T) {
	g := startGatehouse(t)
	ctx := context.Background()
	now := g.clock.Now()
	legacy := "bare-secret-from-an-older-gatehouse"
	err := g.svc.Store.RecordIssuance(ctx, app.Issuance{At: now, SessionID: "ses_legacy", Refresh: &app.RefreshToken{
		Hash: app.HashSecret(legacy), SessionID: "ses_legacy", ClientID: "gatehouse-cli", Subject: "U0ALICE",
		Scopes: []string{"openid", "offline_access"}, AuthTime: now, ExpiresAt: now.Add(time.Hour)}})
	if err != nil {
		t.Fatal(err)
	}
	form := func(token string) url.Values {
		return url.Values{"grant_type": {"refresh_token"}, "refresh_token": {token}, "client_id": {"gatehouse-cli"}}
	}
	status, body := g.post("/oauth/token", form(legacy))
	if status != 200 {
		t.Fatalf("refresh with a token from before chains: %d %s", status, body)
	}
	var rotated struct {
		RefreshToken string `json:"refresh_token"`
	}
	jsonUnmarshal(t, body, &rotated)
	if _, _, ok := strings.Cut(rotated.RefreshToken, "."); !ok {
		t.Errorf("the new refresh token %q names no chain", rotated.RefreshToken)
	}
	if status, body := g.post("/oauth/token", form(legacy)); status != 400 || oauthError(t, body) != "invalid_grant" {
		t.Errorf("the old token again: %d %s, want invalid_grant", status, body)
	}
	if status, _ := g.post("/oauth/token", form(rotated.RefreshToken)); status != 400 {
		t.Errorf("the new token after the replay: %d, want 400 (session revoked)", status)
	}
}

func TestRevokingRefreshTokenEndsTheSession(t *testing.T) {
	g := startGatehouse(t)
	g.grantFor("U0ALICE", "prod-db-admin", "1h", "U0BOB", "C0DBA")
	rp := g.client("gatehouse-cli", "openid", "offline_access", "role:prod-db-admin")
	tok := rp.signIn("U0ALICE")
	if status, body := g.post("/revoke", url.Values{"token": {tok.RefreshToken}, "client_id": {"someone-else"}}); status == 200 {
		t.Errorf("an unknown client revoked the token: %s", body)
	}
	if status, body := g.post("/revoke", url.Values{"token": {tok.RefreshToken}, "token_type_hint": {"refresh_token"}, "client_id": {"gatehouse-cli"}}); status != 200 {
		t.Fatalf("revocation: %d %s", status, body)
	}
	if got := g.introspect(tok.AccessToken); got["active"] != false {
		t.Errorf("access token of the revoked session: %v", got)
	}
	status, body := g.post("/oauth/token", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tok.RefreshToken}, "client_id": {"gatehouse-cli"}})
	if status != 400 || oauthError(t, body) != "invalid_grant" {
		t.Errorf("refresh with a revoked token: %d %s", status, body)
	}
}

func TestTokenExpiryCappedByGrant(t *testing.T) {
	g := startGatehouse(t)
	g.grantFor("U0ALICE", "prod-db-admin", "1h", "U0BOB", "C0DBA")
	g.clock.Advance(time.Hour - 30*time.Second) // the grant ends in 30 s
	rp := g.client("gatehouse-cli", "openid", "role:prod-db-admin")
	tok := rp.signIn("U0ALICE")
	claims := rp.verifyAccess(tok.AccessToken, "prod-db")
	if claims.Expiry != claims.Grants[0].ExpiresAt {
		t.Errorf("exp %d, want the grant's end %d", claims.Expiry, claims.Grants[0].ExpiresAt)
	}
	if tok.ExpiresIn > 31 {
		t.Errorf("expires_in %d, want at most 30", tok.ExpiresIn)
	}
}

func TestBadClientsAndScopes(t *testing.T) {
	g := startGatehouse(t)
	tests := []struct {
		name, path string
		form       url.Values
		basic      [2]string
		status     int
		code       string
	}{
		{"unknown client", "/device_authorization", url.Values{"client_id": {"nope"}, "scope": {"openid"}}, [2]string{}, 401, "invalid_client"},
		{"role not in policy", "/device_authorization", url.Values{"client_id": {"gatehouse-cli"}, "scope": {"openid role:root"}}, [2]string{}, 400, "invalid_scope"},
		{"scope nobody offers", "/device_authorization", url.Values{"client_id": {"gatehouse-cli"}, "scope": {"openid prod:write"}}, [2]string{}, 400, "invalid_scope"},
		{"client credentials with a scope nobody offers", "/oauth/token", url.Values{"grant_type": {"client_credentials"}, "scope": {"prod:write"}},
			[2]string{"ci-deployer", serviceSecret("ci-deployer")}, 400, "invalid_scope"},
		{"client without device flow", "/device_authorization", url.Values{"scope": {"openid"}}, [2]string{"resource-server", resourceServerSecret}, 400, "unauthorized_client"},
		{"wrong client secret", "/device_authorization", url.Values{"scope": {"openid"}}, [2]string{"resource-server", "wrong"}, 401, "invalid_client"},
		{"introspection with wrong secret", "/oauth/introspect", url.Values{"token": {"x"}}, [2]string{"resource-server", "wrong"}, 401, "invalid_client"},
		{"introspection by a client not marked introspect", "/oauth/introspect", url.Values{"token": {"x"}}, [2]string{"ci-deployer", serviceSecret("ci-deployer")}, 403, "unauthorized_client"},
		{"introspection by a public client", "/oauth/introspect", url.Values{"token": {"x"}, "client_id": {"gatehouse-cli"}}, [2]string{}, 401, "invalid_client"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := newFormRequest(g.issuer()+tt.path, tt.form)
			if tt.basic[0] != "" {
				req.SetBasicAuth(tt.basic[0], tt.basic[1])
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			body, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != tt.status || oauthError(t, body) != tt.code {
				t.Errorf("%d %s, want %d %s", resp.StatusCode, body, tt.status, tt.code)
			}
			if challenge := resp.Header.Get("WWW-Authenticate"); (tt.status == 401) != strings.HasPrefix(challenge, "Basic") {
				t.Errorf("WWW-Authenticate %q with status %d", challenge, resp.StatusCode)
			}
		})
	}
}

func TestKeyRotationKeepsOldTokensVerifiable(t *testing.T) {
	g := startGatehouse(t)
	g.grantFor("U0ALICE", "prod-db-admin", "1h", "U0BOB", "C0DBA")
	token := func() string {
		rp := g.client("gatehouse-cli", "openid", "role:prod-db-admin")
		return rp.signIn("U0ALICE").AccessToken
	}
	before := token()
	var out strings.Builder
	kek := func(k string) string { return map[string]string{"GATEHOUSE_KEY_ENCRYPTION_KEY": g.kek}[k] } // set on PostgreSQL
	m := &program.Main{Getenv: kek, Stdout: &out, Stderr: g.logs, Now: g.clock.Now}
	if err := m.Run(context.Background(), []string{"keys", "rotate", "--config", g.config, "--algorithm", "ES256"}); err != nil {
		t.Fatalf("keys rotate: %v", err)
	}
	g.clock.Advance(31 * time.Second) // the running server re-reads its keys within 30 s
	after := token()
	rp := g.client("gatehouse-cli")
	rp.verifyAccess(before, "gatehouse-cli")
	rp.verifyAccess(after, "gatehouse-cli")
	if kid(t, before) == kid(t, after) || !strings.Contains(out.String(), kid(t, after)) {
		t.Errorf("after rotation tokens are signed with %s, before with %s; rotate said %q", kid(t, after), kid(t, before), out.String())
	}
}

func TestMalformedRequestsGetOAuthErrorsNever500(t *testing.T) {
	g := startGatehouse(t)
	long := strings.Repeat("x", 100_000)
	requests := []struct{ method, path, body string }{
		{"POST", "/oauth/token", ""},
		{"POST", "/oauth/token", "grant_type=password&username=a&password=b&client_id=gatehouse-cli"},
		{"POST", "/oauth/token", "grant_type=urn:ietf:params:oauth:grant-type:device_code&client_id=gatehouse-cli"},
		{"POST", "/oauth/token", "grant_type=urn:ietf:params:oauth:grant-type:device_code&client_id=gatehouse-cli&device_code=" + long},
		{"POST", "/oauth/token", "grant_type=refresh_token&client_id=gatehouse-cli&refresh_token=%00%ff"},
		{"POST", "/oauth/token", "grant_type=client_credentials&client_id=gatehouse-cli"},
		{"POST", "/oauth/token", "grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer&assertion=abc"},
		{"POST", "/oauth/token", "%zz=%zz"},
		{"POST", "/device_authorization", ""},
		{"POST", "/device_authorization", "client_id=gatehouse-cli&scope=" + url.QueryEscape("role:"+long)},
		{"POST", "/device_authorization", "client_id=gatehouse-cli&scope=role:prod-db-admin%00"},
		{"POST", "/oauth/introspect", "token=abc"},
		{"POST", "/revoke", "token=abc"},
		{"POST", "/revoke", "client_id=gatehouse-cli"},
		{"GET", "/userinfo", ""},
		{"GET", "/authorize?client_id=gatehouse-cli&response_type=code&scope=openid&redirect_uri=http://evil", ""},
		{"GET", "/authorize?%zz", ""},
		{"GET", "/end_session?id_token_hint=garbage", ""},
		{"GET", "/keys", ""},
		{"GET", "/.well-known/openid-configuration", ""},
	}
	for _, r := range requests {
		req := newRawRequest(r.method, g.issuer()+r.path, r.body)
		status, body := g.do(req)
		if status >= 500 {
			t.Errorf("%s %s %.80s: %d %s", r.method, r.path, r.body, status, body)
		}
	}
}

func TestTokenCommand(t *testing.T) {
	g := startGatehouse(t)
	g.grantFor("U0ALICE", "prod-db-admin", "1h", "U0BOB", "C0DBA")
	cli := g.runTokenCommand(t, "--role", "prod-db-admin")
	g.loginInSlack("U0ALICE", cli.code, nil)
	claims := g.client("gatehouse-cli").verifyAccess(cli.wait(t), "prod-db")
	if !slices.Equal(claims.Roles, []string{"prod-db-admin"}) {
		t.Errorf("claims = %+v", claims)
	}
	if !strings.Contains(cli.stderr.String(), "Approved.") {
		t.Errorf("progress on stderr: %s", cli.stderr)
	}
}

// tokenCommand is `gatehouse token` running against a gatehouse.
type tokenCommand struct {
	code   string // the user code it asks its user to confirm in Slack
	stdout strings.Builder
	stderr *lineWatcher
	done   chan error
}

// runTokenCommand starts `gatehouse token` with args and waits until it shows its code.
func (g *gatehouse) runTokenCommand(t *testing.T, args ...string) *tokenCommand {
	t.Helper()
	c := &tokenCommand{stderr: newLineWatcher(), done: make(chan error, 1)}
	m := &program.Main{Getenv: func(string) string { return "" }, Stdout: &c.stdout, Stderr: c.stderr}
	go func() {
		c.done <- m.Run(context.Background(), append([]string{"token", "--issuer", g.issuer()}, args...))
	}()
	line := c.stderr.waitFor(t, "/access login ")
	c.code = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(line), "/access login "))
	return c
}

// wait waits for the command to finish and returns the token it printed.
func (c *tokenCommand) wait(t *testing.T) string {
	t.Helper()
	select {
	case err := <-c.done:
		if err != nil {
			t.Fatalf("gatehouse token: %v\n%s", err, c.stderr)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("gatehouse token never finished")
	}
	return strings.TrimSpace(c.stdout.String())
}

// Logs never contain tokens or secrets, whatever the flow.
func TestLogsHoldNoSecrets(t *testing.T) {
	g := startGatehouse(t)
	g.grantFor("U0ALICE", "prod-db-admin", "1h", "U0BOB", "C0DBA")
	rp := g.client("gatehouse-cli", "openid", "offline_access", "role:prod-db-admin")
	da := rp.start()
	waiting := rp.wait(da)
	g.loginInSlack("U0ALICE", da.UserCode, nil)
	got := g.receive(waiting)
	if got.err != nil {
		t.Fatal(got.err)
	}
	_, refreshed := g.post("/oauth/token", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {got.tok.RefreshToken}, "client_id": {"gatehouse-cli"}})
	g.post("/oauth/token", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {got.tok.RefreshToken}, "client_id": {"gatehouse-cli"}}) // a replay, logged as refused
	req := newFormRequest(g.issuer()+"/oauth/introspect", url.Values{"token": {got.tok.AccessToken}})
	req.SetBasicAuth("resource-server", "wrong-"+resourceServerSecret)
	g.do(req)
	g.svc.App.Wait()

	idToken, _ := got.tok.Extra("id_token").(string)
	var rotated struct {
		AccessToken  string `json:"access_token"`
		RefreshToken string `json:"refresh_token"`
	}
	jsonUnmarshal(t, refreshed, &rotated)
	logs := g.logs.String()
	for name, secret := range map[string]string{
		"device code": da.DeviceCode, "access token": got.tok.AccessToken, "refresh token": got.tok.RefreshToken,
		"ID token": idToken, "rotated access token": rotated.AccessToken, "rotated refresh token": rotated.RefreshToken,
		"client secret": resourceServerSecret, "bot token": "xoxb-fake", "app token": "xapp-fake",
	} {
		if secret != "" && strings.Contains(logs, secret) {
			t.Errorf("the logs contain the %s", name)
		}
	}
	if !strings.Contains(logs, "login completed") {
		t.Error("the logs are empty: the test would see nothing")
	}
}
