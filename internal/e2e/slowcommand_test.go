package e2e

import (
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/internal/slackfake"
)

// A command that takes longer than the lease on it (here its answer waits 12 s on Slack)
// is still carried out once: the live process keeps its lease, so nothing takes the
// command over and answers it a second time.
func TestSlowCommandIsCarriedOutOnce(t *testing.T) {
	g := startGatehouse(t)
	g.slack.Fail(slackfake.ResponseURLs, slackfake.Fault{Delay: 12 * time.Second, Calls: 1})
	g.command("U0ALICE", "prod-db-admin 1h slow answer")
	for deadline := time.Now().Add(20 * time.Second); len(g.slack.Ephemerals("U0ALICE")) == 0; time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("Alice was never answered")
		}
	}
	time.Sleep(3 * time.Second) // a second run, started when the lease ran out, would have answered by now
	if n := len(g.slack.Ephemerals("U0ALICE")); n != 1 {
		t.Errorf("Alice was answered %d times, want once: %q", n, texts(g.slack.Ephemerals("U0ALICE")))
	}
}
