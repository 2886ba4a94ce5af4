package e2e

import (
	"io"
	"net"
	"net/http"
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
func startBehindBlackHole(t *testing.T) (*pgtest.Server, *blackHole, *gatehouse) {
	server := pgtest.Start(t)
	database := server.NewDatabase(t)
	hole := newBlackHole(t, "127.0.0.1:"+strconv.Itoa(server.Port()))
	through := strings.Replace(database, ":"+strconv.Itoa(server.Port())+"/", ":"+strconv.Itoa(hole.port())+"/", 1)
	saved := newDatabase
	newDatabase = func(testing.TB, string) string { return through }
	t.Cleanup(func() { newDatabase = saved })
	return server, hole, startGatehouse(t)
}

// When PostgreSQL stops answering — its host drops packets, or the server is down — a
// replica reports itself unready within 3 s, answering each probe, and ready again once the
// database is back, without a restart and without losing what it had recorded.
func TestReadinessFollowsPostgresOutage(t *testing.T) {
	server, hole, g := startBehindBlackHole(t)
	g.waitReadiness(t, http.StatusOK, 0)
	g.command("U0ALICE", "prod-db-admin 1h before the outage")
	id := requestID(t, g.ephemeral("U0ALICE", "waiting").AllText())

	t.Run("packets dropped", func(t *testing.T) {
		hole.dropping.Store(true)
		g.waitReadiness(t, http.StatusServiceUnavailable, 3*time.Second)
		hole.dropping.Store(false)
		g.waitReadiness(t, http.StatusOK, 5*time.Second)
	})
	t.Run("server down", func(t *testing.T) {
		server.Stop()
		g.waitReadiness(t, http.StatusServiceUnavailable, 3*time.Second)
		if err := server.Restart(); err != nil {
			t.Fatal(err)
		}
		g.waitReadiness(t, http.StatusOK, 5*time.Second)
	})

	g.approve("U0BOB", g.message("C0DBA", id), "after the outage")
	g.dm("U0ALICE", "*Approved*", id)
}
