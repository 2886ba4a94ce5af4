package e2e

import (
	"context"
	"errors"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	program "github.com/gatehouse/gatehouse/internal/gatehouse"
	"golang.org/x/oauth2"
)

// service is a service client of the Gatehouse under test, using x/oauth2 as a CI job would.
func (g *gatehouse) service(clientID string, scopes ...string) *relyingParty {
	g.t.Helper()
	rp := g.client(clientID, scopes...)
	rp.oauth.ClientSecret = serviceSecret(clientID)
	rp.oauth.Endpoint.AuthStyle = oauth2.AuthStyleInHeader
	return rp
}

// ask starts a service's device authorization with the given reason and duration.
func (rp *relyingParty) ask(reason, duration string) (*oauth2.DeviceAuthResponse, error) {
	// x/oauth2 sends no client authentication at the device authorization endpoint by
	// itself; a confidential client adds its secret as a form parameter (RFC 6749 2.3.1).
	opts := []oauth2.AuthCodeOption{oauth2.SetAuthURLParam("client_secret", rp.oauth.ClientSecret)}
	if reason != "" {
		opts = append(opts, oauth2.SetAuthURLParam("reason", reason))
	}
	if duration != "" {
		opts = append(opts, oauth2.SetAuthURLParam("duration", duration))
	}
	return rp.oauth.DeviceAuth(context.Background(), opts...)
}

func TestServiceAsksPersonApproves(t *testing.T) {
	g := startGatehouse(t)
	rp := g.service("ci-deployer", "role:prod-db-admin")
	da, err := rp.ask("migration 2026-11-30", "30m")
	if err != nil {
		t.Fatal(err)
	}
	waiting := rp.wait(da)
	msg := g.message("C0DBA", "service `ci-deployer`", "prod-db-admin", "30m", "migration 2026-11-30")
	if !slices.Equal(msg.Buttons(), []string{"Approve", "Deny"}) {
		t.Fatalf("buttons = %q", msg.Buttons())
	}
	g.approve("U0BOB", msg, "go ahead")
	g.message("C0DBA", "*Approved* by <@U0BOB>")
	got := g.receive(waiting)
	if got.err != nil {
		t.Fatalf("service token: %v", got.err)
	}
	claims := rp.verifyAccess(got.tok.AccessToken, "prod-db")
	if claims.Subject != "ci-deployer" || claims.ClientID != "ci-deployer" || !slices.Equal(claims.Roles, []string{"prod-db-admin"}) ||
		len(claims.Grants) != 1 || !slices.Equal(claims.Grants[0].ApprovedBy, []string{"U0BOB"}) {
		t.Errorf("service token claims = %+v", claims)
	}
	if d := claims.Grants[0].ExpiresAt - time.Now().Unix(); d > 30*60+5 || d < 30*60-60 {
		t.Errorf("grant lasts %ds, want the 30m asked", d)
	}

	t.Run("defaults", func(t *testing.T) {
		rp := g.service("batch-job", "role:deploy")
		if _, err := rp.ask("", ""); err != nil {
			t.Fatal(err)
		}
		g.message("C0APPROVALS", "service `batch-job`", "deploy", "requested by batch-job", "1h")
	})
}

func TestServiceDeniedOrExpired(t *testing.T) {
	g := startGatehouse(t)
	rp := g.service("ci-deployer", "role:deploy")

	t.Run("denied", func(t *testing.T) {
		da, _ := rp.ask("deploy friday evening", "")
		waiting := rp.wait(da)
		msg := g.message("C0APPROVALS", "deploy friday evening")
		g.click("U01", msg, "Deny")
		g.view("U01", "Deny request")
		g.submit("U01", map[string]string{"Reason": "freeze"})
		got := g.receive(waiting)
		var re *oauth2.RetrieveError
		if !errors.As(got.err, &re) || re.ErrorCode != "access_denied" || !strings.Contains(re.ErrorDescription, "freeze") {
			t.Errorf("denied service: %v", got.err)
		}
	})
	t.Run("expired", func(t *testing.T) {
		da, _ := rp.ask("nobody answers", "")
		g.message("C0APPROVALS", "nobody answers")
		g.clock.Advance(11 * time.Minute)
		status, body := g.post("/oauth/token", url.Values{"grant_type": {"urn:ietf:params:oauth:grant-type:device_code"},
			"device_code": {da.DeviceCode}, "client_id": {"ci-deployer"}, "client_secret": {serviceSecret("ci-deployer")}})
		if status != 400 || oauthError(t, body) != "expired_token" {
			t.Errorf("expired: %d %s", status, body)
		}
	})
}

func TestServiceRefusals(t *testing.T) {
	g := startGatehouse(t)
	deviceAuth := func(user, pass string, form url.Values) (int, string) {
		req := newFormRequest(g.issuer()+"/device_authorization", form)
		req.SetBasicAuth(user, pass)
		status, body := g.do(req)
		return status, oauthError(t, body) + " " + string(body)
	}
	tests := []struct {
		name, client, secret string
		form                 url.Values
		want                 string
	}{
		{"wrong secret", "ci-deployer", "wrong", url.Values{"scope": {"role:deploy"}}, "invalid_client"},
		{"role not allowed for it", "ci-deployer", serviceSecret("ci-deployer"), url.Values{"scope": {"role:k8s-prod-exec"}}, "invalid_scope"},
		{"role not in policy", "batch-job", serviceSecret("batch-job"), url.Values{"scope": {"role:root"}}, "invalid_scope"},
		{"bad duration", "ci-deployer", serviceSecret("ci-deployer"), url.Values{"scope": {"role:deploy"}, "duration": {"-1h"}}, "invalid_request"},
		{"too long", "ci-deployer", serviceSecret("ci-deployer"), url.Values{"scope": {"role:deploy"}, "duration": {"99999h"}}, "invalid_request"},
		{"hostile reason", "ci-deployer", serviceSecret("ci-deployer"), url.Values{"scope": {"role:deploy"}, "reason": {"ok\u202egnp.exe"}}, "invalid_request"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, got := deviceAuth(tt.client, tt.secret, tt.form)
			want := 400
			if tt.want == "invalid_client" {
				want = 401 // RFC 6749 §5.2
			}
			if status != want || !strings.HasPrefix(got, tt.want+" ") {
				t.Errorf("%d %s, want %s", status, got, tt.want)
			}
		})
	}
	g.svc.App.Wait()
	if n := len(g.slack.Messages("C0APPROVALS")) + len(g.slack.Messages("C0DBA")); n != 0 {
		t.Errorf("refused asks posted %d approval messages", n)
	}
}

func TestServiceClientCredentials(t *testing.T) {
	g := startGatehouse(t)
	cc := func(scope string) (int, []byte) {
		req := newFormRequest(g.issuer()+"/oauth/token", url.Values{"grant_type": {"client_credentials"}, "scope": {scope}})
		req.SetBasicAuth("ci-deployer", serviceSecret("ci-deployer"))
		return g.do(req)
	}
	status, body := cc("")
	if status != 200 {
		t.Fatalf("client credentials without roles: %d %s", status, body)
	}
	var tok struct {
		AccessToken string `json:"access_token"`
	}
	jsonUnmarshal(t, body, &tok)
	claims := g.client("ci-deployer").verifyAccess(tok.AccessToken, "ci-deployer")
	if claims.Subject != "ci-deployer" || len(claims.Roles) != 0 {
		t.Errorf("claims = %+v", claims)
	}
	status, body = cc("role:deploy")
	if status != 400 || oauthError(t, body) != "invalid_scope" || !strings.Contains(string(body), "device flow") {
		t.Errorf("client credentials with a role: %d %s, want invalid_scope pointing at the device flow", status, body)
	}
	req := newFormRequest(g.issuer()+"/oauth/token", url.Values{"grant_type": {"client_credentials"}})
	req.SetBasicAuth("resource-server", resourceServerSecret) // not a service client
	if status, body := g.do(req); status != 400 {
		t.Errorf("a non-service client used client credentials: %d %s", status, body)
	}
}

// Two services and one person waiting at once each get only their own token.
func TestServicesAndPersonWaitingAtOnce(t *testing.T) {
	g := startGatehouse(t)
	ci := g.service("ci-deployer", "role:deploy")
	batch := g.service("batch-job", "role:deploy")
	person := g.client("gatehouse-cli", "openid", "role:deploy")

	daCI, _ := ci.ask("ci run 1", "")
	daBatch, _ := batch.ask("batch run 1", "")
	daPerson := person.start()
	waitCI, waitBatch, waitPerson := ci.wait(daCI), batch.wait(daBatch), person.wait(daPerson)
	g.loginInSlack("U0ALICE", daPerson.UserCode, map[string]string{"Reason": "alice run 1"})

	// Approved in the opposite order.
	for i, reason := range []string{"alice run 1", "batch run 1", "ci run 1"} {
		g.approve(approversOfDeploy[i], g.message("C0APPROVALS", reason), "")
	}
	for _, w := range []struct {
		rp      *relyingParty
		ch      <-chan tokenResult
		subject string
	}{{ci, waitCI, "ci-deployer"}, {batch, waitBatch, "batch-job"}, {person, waitPerson, "U0ALICE"}} {
		got := g.receive(w.ch)
		if got.err != nil {
			t.Fatalf("%s: %v", w.subject, got.err)
		}
		claims := w.rp.verifyAccess(got.tok.AccessToken, w.rp.oauth.ClientID)
		if claims.Subject != w.subject || len(claims.Grants) != 1 {
			t.Errorf("%s got a token for %s: %+v", w.subject, claims.Subject, claims)
		}
		r, err := g.svc.Store.Request(context.Background(), claims.Grants[0].RequestID)
		if err != nil || r.Requester.ID != w.subject {
			t.Errorf("%s's token carries the grant of %s's request", w.subject, r.Requester.ID)
		}
	}
}

var approversOfDeploy = []string{"U01", "U02", "U03"}

func TestTokenCommandForAService(t *testing.T) {
	g := startGatehouse(t)
	run := func(reason string) (<-chan error, *strings.Builder, *lineWatcher) {
		var stdout strings.Builder
		stderr := newLineWatcher()
		env := map[string]string{"CI_SECRET": serviceSecret("ci-deployer")}
		m := &program.Main{Getenv: func(k string) string { return env[k] }, Stdout: &stdout, Stderr: stderr}
		done := make(chan error, 1)
		go func() {
			done <- m.Run(context.Background(), []string{"token", "--issuer", g.issuer(), "--client-id", "ci-deployer",
				"--client-secret-env", "CI_SECRET", "--role", "deploy", "--scope", "", "--reason", reason, "--duration", "15m"})
		}()
		return done, &stdout, stderr
	}
	finish := func(done <-chan error) error {
		select {
		case err := <-done:
			return err
		case <-time.After(20 * time.Second):
			t.Fatal("gatehouse token never finished")
			return nil
		}
	}

	done, stdout, stderr := run("nightly deploy")
	msg := g.message("C0APPROVALS", "service `ci-deployer`", "nightly deploy", "15m")
	stderr.waitFor(t, "waiting for approval by U01, U02, U03, U04, U05, U06 of deploy (0 of 1 approvals)")
	g.approve("U01", msg, "")
	if err := finish(done); err != nil {
		t.Fatalf("gatehouse token: %v\n%s", err, stderr)
	}
	if claims := g.client("ci-deployer").verifyAccess(strings.TrimSpace(stdout.String()), "ci-deployer"); claims.Subject != "ci-deployer" {
		t.Errorf("claims = %+v", claims)
	}
	if strings.Contains(stderr.String(), "/access login") {
		t.Errorf("a service was told to type a code: %s", stderr)
	}

	done, stdout, _ = run("friday deploy")
	msg = g.message("C0APPROVALS", "friday deploy")
	g.click("U02", msg, "Deny")
	g.view("U02", "Deny request")
	g.submit("U02", map[string]string{"Reason": "freeze"})
	if err := finish(done); err == nil || !strings.Contains(err.Error(), "denied") || !strings.Contains(err.Error(), "freeze") {
		t.Errorf("denied: err = %v, want the denial and its reason", err)
	}
	if stdout.Len() != 0 {
		t.Errorf("a denied run printed %q", stdout.String())
	}
}
