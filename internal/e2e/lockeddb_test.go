package e2e

import (
	"context"
	"database/sql"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	_ "gorm.io/driver/sqlite" // registers the sqlite3 driver for the other connection
)

// Another process holding the database's write lock used to make an Approve submission
// answer after 10 s (Slack had shown the approver an error after 3), an Approve click fail
// to open its form, and /readyz hang. Now reads go on, writes give up in time with words
// that say so, /readyz answers 503 at once, and tokens wait for the lock.
func TestLockedDatabaseAnswersInTime(t *testing.T) {
	g := startGatehouse(t)
	if strings.HasPrefix(g.database, "postgres://") {
		t.Skip("holds SQLite's write lock from another connection")
	}
	g.command("U0ALICE", "prod-db-admin 1h locked database")
	msg := g.message("C0DBA", "locked database")
	g.click("U0BOB", msg, "Approve")
	g.view("U0BOB", "Approve request")

	other, err := sql.Open("sqlite3", g.database+"?_busy_timeout=5000")
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	lock, err := other.Conn(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer lock.Close()
	if _, err := lock.ExecContext(context.Background(), "BEGIN EXCLUSIVE"); err != nil {
		t.Fatal(err)
	}
	locked := true
	unlock := func() {
		if locked {
			locked = false
			if _, err := lock.ExecContext(context.Background(), "ROLLBACK"); err != nil {
				t.Fatal(err)
			}
		}
	}
	defer unlock()

	ack := g.submit("U0BOB", map[string]string{"Comment": "while locked"})
	if ack.Errors["comment"] != "Gatehouse is busy; nothing was changed, try again." || ack.Latency > 3*time.Second {
		t.Errorf("approving while locked: %+v after %v; want the busy answer within 3 s", ack.Errors, ack.Latency)
	}

	g.click("U0DAVE", msg, "Approve") // reading does not wait for the lock
	g.view("U0DAVE", "Approve request")

	ackCmd, err := g.slack.SlashCommand("U0CAROL", "C0GENERAL", "/access", "prod-db-admin 1h while locked")
	if err != nil || ackCmd.Latency > 2*time.Second {
		t.Fatalf("command while locked: %v after %v", err, ackCmd.Latency)
	}
	g.ephemeral("U0CAROL", "Gatehouse is busy; nothing was changed, try again.")

	// A token asked for while the lock is held is issued once it is released (it used to
	// fail after SQLite's 100 ms with a server_error).
	tokenStatus := make(chan int, 1)
	go func() {
		req := newFormRequest(g.issuer()+"/oauth/token", url.Values{"grant_type": {"client_credentials"}})
		req.SetBasicAuth("ci-deployer", serviceSecret("ci-deployer"))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			tokenStatus <- 0
			return
		}
		resp.Body.Close()
		tokenStatus <- resp.StatusCode
	}()

	start := time.Now()
	req, _ := http.NewRequest("GET", g.issuer()+"/readyz", nil)
	// The check gives the database 0.7 s; a balancer's probe typically waits 1–5 s.
	if status, body := g.do(req); status != http.StatusServiceUnavailable || time.Since(start) > 2*time.Second {
		t.Errorf("/readyz while locked = %d %s after %v; want 503 within 2 s", status, body, time.Since(start))
	}

	unlock()
	if status := <-tokenStatus; status != http.StatusOK {
		t.Errorf("a token asked for while the lock was held: %d, want 200 once it was released", status)
	}
	if ack := g.submit("U0BOB", map[string]string{"Comment": "after the lock"}); ack.ResponseAction != "" {
		t.Fatalf("approving after the lock: %+v", ack)
	}
	g.message("C0DBA", "locked database", "*Approved* by <@U0BOB>")
	if status, body := g.do(req); status != http.StatusOK {
		t.Errorf("/readyz after the lock = %d %s", status, body)
	}
}
