package e2e

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/internal/pgtest"
)

// blackHole forwards TCP connections to a server until told to drop: then it keeps every
// connection open but passes nothing on, as a network that loses packets does.
type blackHole struct {
	ln       net.Listener
	target   string
	dropping atomic.Bool
	mu       sync.Mutex
	conns    []net.Conn
}

func newBlackHole(t *testing.T, target string) *blackHole {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	b := &blackHole{ln: ln, target: target}
	go b.serve()
	t.Cleanup(b.close)
	return b
}

func (b *blackHole) port() int { return b.ln.Addr().(*net.TCPAddr).Port }

func (b *blackHole) serve() {
	for {
		client, err := b.ln.Accept()
		if err != nil {
			return
		}
		server, err := net.Dial("tcp", b.target)
		if err != nil {
			client.Close()
			continue
		}
		b.mu.Lock()
		b.conns = append(b.conns, client, server)
		b.mu.Unlock()
		go b.pass(server, client)
		go b.pass(client, server)
	}
}

// pass copies src to dst, dropping what arrives while the hole is open.
func (b *blackHole) pass(dst, src net.Conn) {
	defer dst.Close()
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if err != nil {
			return
		}
		if b.dropping.Load() {
			continue
		}
		if _, err := dst.Write(buf[:n]); err != nil {
			return
		}
	}
}

func (b *blackHole) close() {
	b.ln.Close()
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, c := range b.conns {
		c.Close()
	}
}

// readiness returns /readyz's status, or 0 when no answer came within two seconds.
func (g *gatehouse) readiness() int {
	client := &http.Client{Timeout: 2 * time.Second}
	resp, err := client.Get(g.issuer() + "/readyz")
	if err != nil {
		return 0
	}
	defer resp.Body.Close()
	io.Copy(io.Discard, resp.Body)
	return resp.StatusCode
}

// waitReadiness polls /readyz until it answers want, and fails the test if that takes
// longer than within, or if any answer takes longer than the probe's timeout.
func (g *gatehouse) waitReadiness(t *testing.T, want int, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		got := g.readiness()
		if got == want {
			return
		}
		if got == 0 {
			t.Fatalf("/readyz gave no answer within 2 s (want %d)", want)
		}
		if time.Now().After(deadline) {
			t.Fatalf("/readyz = %d after %s, want %d", got, within, want)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// startBehindBlackHole starts Gatehouse on a new PostgreSQL database that it reaches
// through a black hole, so a test can drop its packets or stop the server.
func startBehindBlackHole(t *testing.T, options ...func(*gatehouseOptions)) (*pgtest.Server, *blackHole, *gatehouse) {
	server := pgtest.Start(t)
	database := server.NewDatabase(t)
	hole := newBlackHole(t, "127.0.0.1:"+strconv.Itoa(server.Port()))
	through := strings.Replace(database, ":"+strconv.Itoa(server.Port())+"/", ":"+strconv.Itoa(hole.port())+"/", 1)
	saved := newDatabase
	newDatabase = func(testing.TB, string) string { return through }
	t.Cleanup(func() { newDatabase = saved })
	return server, hole, startGatehouse(t, options...)
}

// When PostgreSQL stops answering — its host drops packets, or the server is down — a
// replica reports itself unready within 3 s, answering each probe, and ready again once the
// database is back, without a restart and without losing what it had recorded. The token
// endpoint answers 503 within its 5 s, and a refresh token refused meanwhile still works
// after: a refresh used to hang for as long as the network did, or to answer
// invalid_grant, which tells a client to throw its refresh token away. `gatehouse token`
// waits through it (it used to give up at the first poll the outage answered), and so does
// a browser sign-in (its page said the sign-in had expired).
func TestReadinessFollowsPostgresOutage(t *testing.T) {
	server, hole, g := startBehindBlackHole(t, webapp)
	g.waitReadiness(t, http.StatusOK, 0)
	g.command("U0ALICE", "prod-db-admin 1h before the outage")
	id := requestID(t, g.ephemeral("U0ALICE", "waiting").AllText())
	tok := g.client("gatehouse-cli", "openid", "offline_access").signIn("U0ALICE")
	refresh := tok.RefreshToken

	t.Run("packets dropped", func(t *testing.T) {
		hole.dropping.Store(true)
		answered := tokensDuringOutage(g, refresh)
		g.waitReadiness(t, http.StatusServiceUnavailable, 3*time.Second)
		answered(t)
		hole.dropping.Store(false)
		g.waitReadiness(t, http.StatusOK, 5*time.Second)
		refresh = refreshes(t, g, refresh)
	})
	t.Run("server down", func(t *testing.T) {
		cli := g.runTokenCommand(t) // people waiting to sign in: the outage is no answer
		browser := g.httpBrowser()
		signinURL, userCode := browser.open(g.webSignIn("openid"))
		server.Stop()
		answered := tokensDuringOutage(g, refresh)
		g.waitReadiness(t, http.StatusServiceUnavailable, 3*time.Second)
		answered(t)
		introspectionSaysUnavailable(t, g, tok.AccessToken)
		if status, _, page := browser.get(signinURL); status != http.StatusServiceUnavailable || !strings.Contains(page, "Gatehouse did not answer") {
			t.Errorf("the sign-in page during the outage: %d %s", status, page)
		}
		cli.stderr.waitFor(t, "Gatehouse did not answer")
		if err := server.Restart(); err != nil {
			t.Fatal(err)
		}
		g.waitReadiness(t, http.StatusOK, 5*time.Second)
		refreshes(t, g, refresh)
		g.loginInSlack("U0ALICE", cli.code, nil)
		if token := cli.wait(t); token == "" {
			t.Error("gatehouse token printed no token after the outage")
		}
		g.loginInSlack("U0ALICE", userCode, nil)
		if code := browser.follow(signinURL).Query().Get("code"); code == "" {
			t.Error("the browser sign-in got no code after the outage")
		}
	})

	g.approve("U0BOB", g.message("C0DBA", id), "after the outage")
	g.dm("U0ALICE", "*Approved*", id)
}

// tokensDuringOutage asks for a service's token, refreshes refresh and revokes it at once;
// the function it returns checks that each was told, within 5 s and a little, that the
// database did not answer (503), not that the grant is bad.
func tokensDuringOutage(g *gatehouse, refresh string) func(*testing.T) {
	service := newFormRequest(g.issuer()+"/oauth/token", url.Values{"grant_type": {"client_credentials"}})
	service.SetBasicAuth("ci-deployer", serviceSecret("ci-deployer"))
	asks := map[string]*http.Request{
		"client credentials": service,
		"refresh": newFormRequest(g.issuer()+"/oauth/token", url.Values{"grant_type": {"refresh_token"},
			"refresh_token": {refresh}, "client_id": {"gatehouse-cli"}}),
		"revocation": newFormRequest(g.issuer()+"/revoke", url.Values{"token": {refresh}, "client_id": {"gatehouse-cli"}}),
	}
	client := &http.Client{Timeout: 7 * time.Second}
	answers := make(chan string, len(asks))
	for name, req := range asks {
		go func() {
			resp, err := client.Do(req)
			if err != nil {
				answers <- fmt.Sprintf("%s: %v", name, err)
				return
			}
			defer resp.Body.Close()
			body, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != http.StatusServiceUnavailable || !strings.Contains(string(body), `"server_error"`) {
				answers <- fmt.Sprintf("%s: %d %s", name, resp.StatusCode, body)
				return
			}
			answers <- ""
		}()
	}
	return func(t *testing.T) {
		t.Helper()
		for range asks {
			if problem := <-answers; problem != "" {
				t.Errorf("during the outage, %s; want 503 server_error within 7 s", problem)
			}
		}
	}
}

// refreshes refreshes refresh and returns its successor. Right after an outage a pooled
// connection broken by it may still fail one request with 503, which says to try again: it
// does, for up to a second.
func refreshes(t *testing.T, g *gatehouse, refresh string) string {
	t.Helper()
	form := url.Values{"grant_type": {"refresh_token"}, "refresh_token": {refresh}, "client_id": {"gatehouse-cli"}}
	status, body := g.post("/oauth/token", form)
	for try := 0; status == http.StatusServiceUnavailable && try < 5; try++ {
		time.Sleep(200 * time.Millisecond)
		status, body = g.post("/oauth/token", form)
	}
	var tok struct {
		RefreshToken string `json:"refresh_token"`
	}
	if status != http.StatusOK || jsonDecode(body, &tok) != nil || tok.RefreshToken == "" {
		t.Fatalf("refreshing after the outage: %d %s", status, body)
	}
	return tok.RefreshToken
}

// introspectionSaysUnavailable checks that, once the revocations in memory are too old to
// answer from (0.5 s), introspecting token says the database did not answer (503) rather
// than that the token is inactive: a resource server must not take (or cache) an outage
// for a revocation. It used to answer active: false.
func introspectionSaysUnavailable(t *testing.T, g *gatehouse, token string) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Second)
	for {
		req := newFormRequest(g.issuer()+"/oauth/introspect", url.Values{"token": {token}})
		req.SetBasicAuth("resource-server", resourceServerSecret)
		status, body := g.do(req)
		if status == http.StatusServiceUnavailable {
			return
		}
		if !strings.Contains(string(body), `"active":true`) || time.Now().After(deadline) {
			t.Fatalf("introspection during the outage: %d %s; want 503 once the revocations in memory are stale", status, body)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
