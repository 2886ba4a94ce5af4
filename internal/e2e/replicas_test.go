package e2e

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	gooidc "github.com/coreos/go-oidc/v3/oidc"

	"github.com/gatehouse/gatehouse/internal/pgtest"
	"github.com/gatehouse/gatehouse/internal/slackfake"
)

// roundRobin is the load balancer in front of the replicas: each request to the next one,
// no sticky sessions.
type roundRobin struct {
	mu       sync.Mutex
	next     int
	backends []*httputil.ReverseProxy
}

func (lb *roundRobin) add(addr string) {
	lb.mu.Lock()
	defer lb.mu.Unlock()
	lb.backends = append(lb.backends, httputil.NewSingleHostReverseProxy(&url.URL{Scheme: "http", Host: addr}))
}

func (lb *roundRobin) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	lb.mu.Lock()
	p := lb.backends[lb.next%len(lb.backends)]
	lb.next++
	lb.mu.Unlock()
	p.ServeHTTP(w, r)
}

// startReplicas runs two `gatehouse serve` with the same config on one new PostgreSQL
// database and one fake Slack (which spreads envelopes over both connections), behind a
// round-robin load balancer at the issuer URL.
func startReplicas(t *testing.T, options ...func(*gatehouseOptions)) (*gatehouse, *gatehouse) {
	t.Helper()
	database := pgtest.NewDatabase(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	lb := &roundRobin{}
	srv := &http.Server{Handler: lb}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	a := startGatehouse(t, append(options, func(o *gatehouseOptions) { o.lb, o.database = "http://"+ln.Addr().String(), database })...)
	b := a.replica()
	lb.add(a.addr)
	lb.add(b.addr)
	return a, b
}

// replica starts another `gatehouse serve` with g's config, database and fake Slack, on a
// listener of its own.
func (g *gatehouse) replica() *gatehouse {
	g.t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		g.t.Fatal(err)
	}
	r := &gatehouse{t: g.t, slack: g.slack, clock: g.clock, config: g.config, logs: &testLog{t: g.t}, addr: ln.Addr().String(),
		listener: ln, timeouts: g.timeouts, kek: g.kek, database: g.database, lb: g.lb, conns: g.slack.Connections() + 1}
	g.t.Cleanup(func() { r.logs.muted.Store(true) })
	r.start()
	g.t.Cleanup(func() { r.stop() })
	return r
}

// settle waits until neither replica has work due.
func settle(replicas ...*gatehouse) {
	for range 2 {
		for _, g := range replicas {
			g.svc.App.Wait()
		}
	}
}

// approvalMessages counts the approval messages in channel per request ID.
func approvalMessages(fake *slackfake.Server, channel string) map[string][]slackfake.Message {
	out := map[string][]slackfake.Message{}
	for _, m := range fake.Messages(channel) {
		if id := taggedRequest(m); id != "" {
			out[id] = append(out[id], m)
		}
	}
	return out
}

// taggedRequest is the request ID an approval message is tagged with; other messages
// (thread replies are tagged with their delivery) have none.
func taggedRequest(m slackfake.Message) string {
	if m.Metadata == nil {
		return ""
	}
	id, _ := m.Metadata.EventPayload["request_id"].(string)
	return id
}

// dmsContaining counts the DMs to user that contain all of want.
func dmsContaining(fake *slackfake.Server, user string, want ...string) int {
	n := 0
	for _, m := range fake.DMs(user) {
		if containsAll(m.AllText(), want) {
			n++
		}
	}
	return n
}

// Two replicas, one database, one Slack: requests filed and approved across replicas (each
// approval's form opened at one replica and submitted to the other) are posted once,
// approved at quorum, redrawn and DMed once; a token from the load balancer verifies with
// either replica's keys and introspects at both; a revocation at one is seen by both
// within a second.
func TestReplicasDecideOnceAndShareTokens(t *testing.T) {
	a, b := startReplicas(t)
	const n = 4
	var msgs []slackfake.Message
	for i := range n {
		a.command(fmt.Sprintf("U0REQ%d", i), fmt.Sprintf("k8s-prod-exec 30m across replicas %d", i))
	}
	for i := range n {
		msgs = append(msgs, a.message("C0APPROVALS", fmt.Sprintf("across replicas %d", i)))
	}
	for _, m := range msgs {
		a.approve("U0BOB", m, "")
		a.approve("U0CAROL", m, "")
	}
	for i, m := range msgs {
		id := requestIDIn(t, m.AllText())
		a.message("C0APPROVALS", "*Approved*", id)
		a.dm(fmt.Sprintf("U0REQ%d", i), "*Approved*", id)
	}
	settle(a, b)
	posted := approvalMessages(a.slack, "C0APPROVALS")
	for i, m := range msgs {
		id := requestIDIn(t, m.AllText())
		r, err := b.svc.Store.Request(context.Background(), id)
		if err != nil {
			t.Fatal(err)
		}
		if len(r.Decisions) != 2 || r.GrantID == "" {
			t.Errorf("%s: %d decisions, grant %q; want 2 and a grant", id, len(r.Decisions), r.GrantID)
		}
		if got := posted[id]; len(got) != 1 || got[0].Updated < 1 || got[0].Updated > 2 {
			t.Errorf("%s: %d messages (%+v), want one redrawn once per decision at most", id, len(got), got)
		}
		if got := dmsContaining(a.slack, fmt.Sprintf("U0REQ%d", i), "*Approved*", id); got != 1 {
			t.Errorf("%s: its requester was DMed %d times that it was approved, want once", id, got)
		}
	}

	grantID := a.grantFor("U0ALICE", "prod-db-admin", "1h", "U0BOB", "C0DBA")
	rp := a.client("gatehouse-cli", "openid", "offline_access", "role:prod-db-admin")
	tok := rp.signIn("U0ALICE")
	var discovery struct {
		JWKS string `json:"jwks_uri"`
	}
	if err := rp.provider.Claims(&discovery); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for _, g := range []*gatehouse{a, b} {
		keys := gooidc.NewRemoteKeySet(ctx, strings.Replace(discovery.JWKS, a.lb, "http://"+g.addr, 1))
		if _, err := gooidc.NewVerifier(a.lb, keys, &gooidc.Config{ClientID: "prod-db"}).Verify(ctx, tok.AccessToken); err != nil {
			t.Errorf("the token does not verify with the keys of the replica at %s: %v", g.addr, err)
		}
		if got := introspectAt(t, g, tok.AccessToken); got["active"] != true {
			t.Errorf("introspection at %s: %v", g.addr, got)
		}
	}

	a.command("U0ALICE", "revoke "+grantID+" done early")
	a.ephemeral("U0ALICE", "*Revoked*")
	deadline := time.Now().Add(time.Second)
	for _, g := range []*gatehouse{a, b} {
		for introspectAt(t, g, tok.AccessToken)["active"] != false {
			if time.Now().After(deadline) {
				t.Fatalf("the replica at %s still says the token is active a second after the revocation", g.addr)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	for _, g := range []*gatehouse{a, b} {
		req := newFormRequest("http://"+g.addr+"/oauth/token", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tok.RefreshToken},
			"client_id": {"gatehouse-cli"}})
		if status, body := g.do(req); status != 400 || oauthError(t, body) != "invalid_grant" {
			t.Errorf("refresh at %s after the revocation: %d %s", g.addr, status, body)
		}
		req, _ = http.NewRequest("GET", "http://"+g.addr+"/userinfo", nil)
		req.Header.Set("Authorization", "Bearer "+tok.AccessToken)
		if status, body := g.do(req); status != 401 {
			t.Errorf("userinfo at %s after the revocation: %d %s", g.addr, status, body)
		}
	}
}

// introspectAt asks replica g itself (not the load balancer) about a token.
func introspectAt(t *testing.T, g *gatehouse, token string) map[string]any {
	t.Helper()
	req := newFormRequest("http://"+g.addr+"/oauth/introspect", url.Values{"token": {token}})
	req.SetBasicAuth("resource-server", resourceServerSecret)
	status, body := g.do(req)
	var out map[string]any
	if status != http.StatusOK {
		t.Fatalf("introspection at %s: %d %s", g.addr, status, body)
	}
	jsonUnmarshal(t, body, &out)
	return out
}

// shortLivedRole expires its requests after two minutes, reminds after one.
const shortLivedRole = `  - name: short-lived
    description: Expires quickly
    approvers: [U0BOB, U0CAROL]
    approvals_required: 2
    max_duration: 1h
    request_ttl: 2m
    remind_after: 1m
    channel: C0SHORT
`

// With two replicas both sweeping at once, each reminder is sent once and each request
// expires once: one reminder in its thread, one redraw, one DM to its requester.
func TestReplicasRemindAndExpireOnce(t *testing.T) {
	a, b := startReplicas(t, withRoles(shortLivedRole))
	const n = 6
	for i := range n {
		a.command(fmt.Sprintf("U0REQ%d", i), fmt.Sprintf("short-lived 30m soon expired %d", i))
	}
	for i := range n {
		a.message("C0SHORT", fmt.Sprintf("soon expired %d", i))
	}
	settle(a, b)
	sweepBoth := func() {
		var wg sync.WaitGroup
		for _, g := range []*gatehouse{a, b, a, b} {
			wg.Go(func() {
				if err := g.svc.App.Sweep(context.Background()); err != nil {
					t.Error(err)
				}
			})
		}
		wg.Wait()
		settle(a, b)
	}
	a.clock.Advance(61 * time.Second)
	sweepBoth()
	a.clock.Advance(time.Minute)
	sweepBoth()
	posted := approvalMessages(a.slack, "C0SHORT")
	if len(posted) != n {
		t.Fatalf("%d requests posted, want %d", len(posted), n)
	}
	for id, ms := range posted {
		if len(ms) != 1 || ms[0].Updated != 1 || !strings.Contains(ms[0].AllText(), "*Expired*") {
			t.Errorf("%s: %d messages, redrawn %d times, %q; want one, redrawn once, expired", id, len(ms), ms[0].Updated, ms[0].AllText())
		}
		if got := len(a.replies("C0SHORT", ms[0].TS)); got != 1 {
			t.Errorf("%s: %d thread replies, want one reminder", id, got)
		}
	}
	for i := range n {
		if got := dmsContaining(a.slack, fmt.Sprintf("U0REQ%d", i), "*Expired*"); got != 1 {
			t.Errorf("U0REQ%d was DMed %d times that the request expired, want once", i, got)
		}
	}
}
