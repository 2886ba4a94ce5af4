package e2e

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/app"
	program "github.com/gatehouse/gatehouse/internal/gatehouse"
	"github.com/gatehouse/gatehouse/internal/pgtest"
	"github.com/gatehouse/gatehouse/internal/slackfake"
)

// testConfig is the policy the end-to-end tests run with; DATABASE is replaced per test.
const testConfig = `
issuer: ISSUER
database: DATABASE
approvals_channel: C0APPROVALS
tokens:
  device_poll_interval: 1s
  access_token_ttl: 10m
  signing_algorithm: ALGORITHM
admins: [U0SECOPS]
roles:
  - name: prod-db-admin
    description: Admin on the production database
    approvers: [U0BOB, S0DBA]
    default_duration: 1h
    max_duration: 4h
    request_ttl: 1h
    channel: C0DBA
    audience: [prod-db]
  - name: k8s-prod-exec
    description: kubectl exec into production pods
    approvers: [U0BOB, U0CAROL, U0ALICE]
    approvals_required: 2
    default_duration: 30m
    max_duration: 2h
    request_ttl: 5m
  - name: deploy
    description: Deploy to production
    approvers: [U01, U02, U03, U04, U05, U06]
    max_duration: 1h
  - name: breakglass-db
    description: Emergency admin on the production database, reviewed afterwards
    break_glass: true
    break_glass_users: [U0ONCALL]
    approvers: [U0BOB]
    default_duration: 30m
    max_duration: 1h
clients:
  - id: gatehouse-cli
    public: true
    grant_types: [device_code, refresh_token]
  - id: resource-server
    secret_env: RESOURCE_SERVER_SECRET
    introspect: true
    grant_types: [client_credentials]
  - id: ci-deployer
    secret_env: CI_DEPLOYER_SECRET
    service: true
    grant_types: [device_code, client_credentials]
    roles: [prod-db-admin, deploy]
  - id: batch-job
    secret_env: BATCH_JOB_SECRET
    service: true
    grant_types: [device_code, client_credentials]
`

// testClock is the injected clock: it starts at the real time and moves only when told.
type testClock struct{ offset atomic.Int64 }

func (c *testClock) Now() time.Time          { return time.Now().Add(time.Duration(c.offset.Load())) }
func (c *testClock) Advance(d time.Duration) { c.offset.Add(int64(d)) }

// gatehouse is a running `gatehouse serve` wired to a fake Slack.
type gatehouse struct {
	t        testing.TB
	slack    *slackfake.Server
	clock    *testClock
	config   string
	svc      *program.Service
	logs     *testLog
	addr     string       // where the OpenID Provider listens
	listener net.Listener // for the next start
	stop     func()
	timeouts program.HTTPTimeouts
	kek      string // GATEHOUSE_KEY_ENCRYPTION_KEY, set on PostgreSQL, where it is required
	database string // the config's database: a SQLite file or a PostgreSQL URL
	lb       string // the load balancer's URL, the issuer, when replicas run behind one
	conns    int    // the Socket Mode connections to wait for at start (all replicas')
}

// newKeyEncryptionKey returns 32 random bytes in standard base64.
func newKeyEncryptionKey() string {
	key := make([]byte, 32)
	rand.Read(key)
	return base64.StdEncoding.EncodeToString(key)
}

// testDelivery retries deliveries quickly: the tests move the clock past waits Slack asks for.
var testDelivery = app.DeliveryOptions{Poll: 20 * time.Millisecond, Backoff: 20 * time.Millisecond, MaxBackoff: time.Second}

// gatehouseOptions change the test config.
type gatehouseOptions struct {
	algorithm string // tokens.signing_algorithm
	clients   string // YAML list items appended to clients:
	roles     string // YAML list items appended to roles:
	timeouts  program.HTTPTimeouts
	lb        string // the issuer: a load balancer's URL (see startReplicas)
	database  string // a database shared with other replicas
}

// withHTTPTimeouts sets the HTTP server's timeouts.
func withHTTPTimeouts(t program.HTTPTimeouts) func(*gatehouseOptions) {
	return func(o *gatehouseOptions) { o.timeouts = t }
}

// signedWith has tokens signed by a key of the given algorithm.
func signedWith(algorithm string) func(*gatehouseOptions) {
	return func(o *gatehouseOptions) { o.algorithm = algorithm }
}

// withClients adds clients (YAML list items, indented like the test config's) to the config.
func withClients(yaml string) func(*gatehouseOptions) {
	return func(o *gatehouseOptions) { o.clients += yaml }
}

// withRoles adds roles (YAML list items, indented like the test config's) to the config.
func withRoles(yaml string) func(*gatehouseOptions) {
	return func(o *gatehouseOptions) { o.roles += yaml }
}

// newDatabase returns the database of a gatehouse under test whose files are in dir: a new
// SQLite file there, unless the test runs on PostgreSQL (see onPostgres and -postgres).
var newDatabase = func(t testing.TB, dir string) string {
	if *allOnPostgres {
		return pgtest.NewDatabase(t)
	}
	return filepath.Join(dir, "gatehouse.db")
}

// startGatehouse runs the real serve command against a new fake Slack and a new database.
func startGatehouse(t testing.TB, options ...func(*gatehouseOptions)) *gatehouse {
	t.Helper()
	opts := gatehouseOptions{algorithm: "RS256"}
	for _, o := range options {
		o(&opts)
	}
	fake := slackfake.New(t)
	fake.AddUserGroup("S0DBA", "U0DAVE")
	fake.AddUser("U0ALICE", "Alice Example", "alice@example.com")
	dir := t.TempDir()
	config := filepath.Join(dir, "gatehouse.yaml")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	g := &gatehouse{t: t, slack: fake, clock: &testClock{}, config: config, logs: &testLog{t: t}, addr: ln.Addr().String(), listener: ln, timeouts: opts.timeouts}
	g.lb = opts.lb
	database := opts.database
	if database == "" {
		database = newDatabase(t, dir)
	}
	if strings.HasPrefix(database, "postgres://") { // replicas must share it, so it is required
		g.kek = newKeyEncryptionKey()
	}
	g.database = database
	yaml := strings.NewReplacer("DATABASE", database, "ISSUER", g.issuer(), "ALGORITHM", opts.algorithm,
		"\nclients:\n", "\n"+opts.roles+"clients:\n").Replace(testConfig) + opts.clients
	if err := os.WriteFile(config, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	// Cleanups run last-in first-out: stop (its logs still reach the test), then mute, so
	// nothing logged later through the process-wide logger reaches a finished test.
	t.Cleanup(func() { g.logs.muted.Store(true) })
	g.start()
	t.Cleanup(func() { g.stop() })
	return g
}

// issuer is the OpenID Provider's URL: the load balancer's, if replicas run behind one.
func (g *gatehouse) issuer() string {
	if g.lb != "" {
		return g.lb
	}
	return "http://" + g.addr
}

// start runs serve until stop is called, and waits for the Socket Mode connection.
func (g *gatehouse) start() {
	g.t.Helper()
	env := map[string]string{
		"SLACK_BOT_TOKEN":        slackfake.BotToken,
		"SLACK_APP_TOKEN":        slackfake.AppToken,
		"SLACK_API_URL":          g.slack.APIURL(),
		"RESOURCE_SERVER_SECRET": resourceServerSecret,
		"CI_DEPLOYER_SECRET":     serviceSecret("ci-deployer"),
		"BATCH_JOB_SECRET":       serviceSecret("batch-job"),
	}
	if g.kek != "" {
		env["GATEHOUSE_KEY_ENCRYPTION_KEY"] = g.kek
	}
	if g.listener == nil { // a restart listens again on the same address
		ln, err := net.Listen("tcp", g.addr)
		if err != nil {
			g.t.Fatal(err)
		}
		g.listener = ln
	}
	ready := make(chan *program.Service, 1)
	m := &program.Main{
		Getenv: func(k string) string { return env[k] },
		Stdout: g.logs, Stderr: g.logs,
		Now:      g.clock.Now,
		Delivery: testDelivery,
		Listener: g.listener,
		Ready:    func(s *program.Service) { ready <- s },

		HTTPTimeouts: g.timeouts,
	}
	g.listener = nil
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx, []string{"serve", "--config", g.config}) }()
	select {
	case g.svc = <-ready:
	case err := <-done:
		cancel()
		g.t.Fatalf("serve stopped at start: %v", err)
	}
	var once sync.Once
	g.stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				g.t.Errorf("serve returned %v", err)
			}
		})
	}
	if err := g.waitConnected(); err != nil {
		g.t.Fatal(err)
	}
}

func (g *gatehouse) waitConnected() error {
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		if g.svc.Bot.Connected() && g.slack.Connections() >= max(1, g.conns) {
			return nil
		}
		time.Sleep(5 * time.Millisecond)
	}
	return errors.New("gatehouse did not connect over Socket Mode")
}

// restart stops serve and starts it again on the same database and fake Slack.
func (g *gatehouse) restart() {
	g.t.Helper()
	g.stop()
	g.start()
}

// testLog sends the program's output to the test log, unless muted, and keeps all of it.
type testLog struct {
	t     testing.TB
	muted atomic.Bool
	mu    sync.Mutex
	all   strings.Builder
}

func (w *testLog) Write(p []byte) (int, error) {
	w.mu.Lock()
	w.all.Write(p)
	w.mu.Unlock()
	if !w.muted.Load() {
		w.t.Log(strings.TrimRight(string(p), "\n"))
	}
	return len(p), nil
}

// String returns everything the program logged.
func (w *testLog) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.all.String()
}

// quiet stops sending the program's logs to the test log (benchmarks drown in them).
func (g *gatehouse) quiet() { g.logs.muted.Store(true) }

const wait = 5 * time.Second

// resourceServerSecret is the secret of the test's confidential client, which introspects.
const resourceServerSecret = "s3cret-of-the-resource-server"

// serviceSecret is the secret of a test service client.
func serviceSecret(clientID string) string { return "s3cret-of-" + clientID }

// command runs a slash command as user and fails the test if Slack would not get an ack.
func (g *gatehouse) command(user, text string) {
	g.t.Helper()
	if _, err := g.slack.SlashCommand(user, "C0GENERAL", "/access", text); err != nil {
		g.t.Fatalf("/access %s: %v", text, err)
	}
}

// ephemeral waits for a private answer to user containing want.
func (g *gatehouse) ephemeral(user, want string) slackfake.Message {
	g.t.Helper()
	m, err := g.slack.WaitEphemeral(user, wait, func(m slackfake.Message) bool { return strings.Contains(m.AllText(), want) })
	if err != nil {
		g.t.Fatalf("no ephemeral to %s containing %q; got %v", user, want, texts(g.slack.Ephemerals(user)))
	}
	return m
}

// ephemeralCount waits until user has been told n things privately.
func (g *gatehouse) ephemeralCount(user string, n int) {
	g.t.Helper()
	deadline := time.Now().Add(wait)
	for len(g.slack.Ephemerals(user)) < n {
		if time.Now().After(deadline) {
			g.t.Fatalf("%s was told %d things privately, want %d: %q", user, len(g.slack.Ephemerals(user)), n, texts(g.slack.Ephemerals(user)))
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// message waits for a message in channel containing all of want.
func (g *gatehouse) message(channel string, want ...string) slackfake.Message {
	g.t.Helper()
	m, err := g.slack.WaitMessage(channel, wait, func(m slackfake.Message) bool { return containsAll(m.AllText(), want) })
	if err != nil {
		g.t.Fatalf("no message in %s containing %q; got %v", channel, want, texts(g.slack.Messages(channel)))
	}
	return m
}

// dm waits for a DM to user containing all of want.
func (g *gatehouse) dm(user string, want ...string) slackfake.Message {
	g.t.Helper()
	m, err := g.slack.WaitDM(user, wait, func(m slackfake.Message) bool { return containsAll(m.AllText(), want) })
	if err != nil {
		g.t.Fatalf("no DM to %s containing %q; got %v", user, want, texts(g.slack.DMs(user)))
	}
	return m
}

// view waits for user's open modal with the given title.
func (g *gatehouse) view(user, title string) slackfake.View {
	g.t.Helper()
	v, err := g.slack.WaitView(user, wait, func(v slackfake.View) bool { return v.Title == title })
	if err != nil {
		open, _ := g.slack.OpenView(user)
		g.t.Fatalf("no %q modal open for %s; open: %q; told privately: %q", title, user, open.Title, texts(g.slack.Ephemerals(user)))
	}
	return v
}

// openView waits for a modal open for user that shows text.
func (g *gatehouse) openView(user, text string) slackfake.View {
	g.t.Helper()
	v, err := g.slack.WaitView(user, wait, func(v slackfake.View) bool { return strings.Contains(v.AllText(), text) })
	if err != nil {
		open, _ := g.slack.OpenView(user)
		g.t.Fatalf("no modal showing %q open for %s; open: %q; told privately: %q", text, user, open.AllText(), texts(g.slack.Ephemerals(user)))
	}
	return v
}

// click clicks a button on a message as user.
func (g *gatehouse) click(user string, m slackfake.Message, label string) {
	g.t.Helper()
	if _, err := g.slack.ClickButton(user, m, label); err != nil {
		g.t.Fatalf("%s clicking %s: %v", user, label, err)
	}
}

// submit submits user's open modal and returns the ack.
func (g *gatehouse) submit(user string, values map[string]string) slackfake.Ack {
	g.t.Helper()
	ack, err := g.slack.Submit(user, values)
	if err != nil {
		g.t.Fatalf("%s submitting %v: %v", user, values, err)
	}
	return ack
}

// approve clicks Approve on m as user and submits the modal with a comment.
func (g *gatehouse) approve(user string, m slackfake.Message, comment string) slackfake.Ack {
	g.t.Helper()
	g.click(user, m, "Approve")
	g.view(user, "Approve request")
	ack := g.submit(user, map[string]string{"Comment": comment})
	if ack.ResponseAction != "" {
		g.t.Fatalf("%s approving: the form stayed open: %+v", user, ack)
	}
	return ack
}

func containsAll(s string, want []string) bool {
	for _, w := range want {
		if !strings.Contains(s, w) {
			return false
		}
	}
	return true
}

func texts(ms []slackfake.Message) []string {
	var out []string
	for _, m := range ms {
		out = append(out, m.AllText())
	}
	return out
}
