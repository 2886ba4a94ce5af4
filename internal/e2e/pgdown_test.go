package e2e

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/internal/slackfake"
)

// unavailableText is what people are told while the database cannot be reached.
const unavailableText = "Gatehouse can't record anything right now; nothing was changed."

// While PostgreSQL cannot be reached — its host drops packets, or the server is stopped for
// ten seconds — a command, an Approve click and an Approve submission each get words saying
// so within Slack's 3 s, instead of silence or a promise; once the database is back the
// same replica, not restarted, carries on, and what it had acknowledged before is posted
// once.
func TestSlackAnswersTruthfullyDuringPostgresOutage(t *testing.T) {
	server, hole, g := startBehindBlackHole(t)
	g.quiet() // the outage is logged as errors, as it should be
	g.waitReadiness(t, http.StatusOK, 0)

	outages := []struct {
		name       string
		begin, end func()
	}{
		{"packets dropped", func() { hole.dropping.Store(true) }, func() { hole.dropping.Store(false) }},
		{"server stopped", server.Stop, func() {
			if err := server.Restart(); err != nil {
				t.Fatal(err)
			}
		}},
	}
	for i, o := range outages {
		func() { // the harness fails the test it was started in: no subtests
			t.Logf("outage: %s", o.name)
			g.command("U0ALICE", "prod-db-admin 1h before "+o.name)
			g.ephemeralCount("U0ALICE", i+1)
			id := requestID(t, g.slack.Ephemerals("U0ALICE")[i].AllText())
			msg := posted(t, g, id)
			g.click("U0BOB", msg, "Approve")
			g.view("U0BOB", "Approve request")
			// A request filed just before: its requester was shown its ID, its post may be
			// in flight.
			g.command("U0ERIN", "prod-db-admin 1h just before "+o.name)
			g.ephemeralCount("U0ERIN", i+1)
			erin := requestID(t, g.slack.Ephemerals("U0ERIN")[i].AllText())
			began := time.Now()
			o.begin()
			g.waitReadiness(t, http.StatusServiceUnavailable, 3*time.Second)
			answersTruthfully(t, g, msg, o.name)
			time.Sleep(time.Until(began.Add(10 * time.Second)))
			o.end()
			g.waitReadiness(t, http.StatusOK, 10*time.Second)

			// The form refused during the outage is taken when submitted again.
			if ack := g.submit("U0BOB", map[string]string{"Comment": "after " + o.name}); ack.ResponseAction != "" {
				t.Fatalf("approving after the outage: %+v", ack)
			}
			g.dm("U0ALICE", "*Approved*", id)

			// Nothing refused was recorded; what was acknowledged before is posted once.
			posted(t, g, erin)
			if n := countMessages(g.slack.Messages("C0DBA"), erin); n != 1 {
				t.Errorf("request %s, shown to its requester before the outage, is posted %d times", erin, n)
			}
			if n := countMessages(g.slack.Messages("C0DBA"), "during "+o.name); n != 0 {
				t.Errorf("a command refused during the outage was posted %d times", n)
			}
			// The same process files and decides again.
			g.command("U0CAROL", "prod-db-admin 1h after "+o.name)
			g.ephemeralCount("U0CAROL", 2*(i+1)) // one refusal during, one answer after
			after := requestID(t, g.slack.Ephemerals("U0CAROL")[2*i+1].AllText())
			g.approve("U0BOB", posted(t, g, after), "after "+o.name)
			g.dm("U0CAROL", "*Approved*", after)
		}()
	}
}

// answersTruthfully checks that a command, a click and a submission each get the words
// for an unreachable database within 3 s.
func answersTruthfully(t *testing.T, g *gatehouse, msg slackfake.Message, outage string) {
	t.Helper()
	ack := g.submit("U0BOB", map[string]string{"Comment": "during " + outage})
	if !strings.Contains(ack.Errors["comment"], unavailableText) || ack.Latency > 3*time.Second {
		t.Errorf("approving: %+v after %v; want %q within 3 s", ack.Errors, ack.Latency, unavailableText)
	}

	cmd, err := g.slack.SlashCommand("U0CAROL", "C0GENERAL", "/access", "prod-db-admin 1h during "+outage)
	if err != nil || cmd.Latency > 3*time.Second {
		t.Fatalf("command: %v after %v", err, cmd.Latency)
	}
	g.ephemeral("U0CAROL", unavailableText)

	told := len(g.slack.Ephemerals("U0DAVE"))
	clicked := time.Now()
	g.click("U0DAVE", msg, "Approve")
	for len(g.slack.Ephemerals("U0DAVE")) == told && time.Since(clicked) < 3*time.Second {
		time.Sleep(5 * time.Millisecond)
	}
	if now := g.slack.Ephemerals("U0DAVE"); len(now) != told+1 || !strings.Contains(now[told].AllText(), unavailableText) {
		t.Errorf("clicking Approve: told %q within %v; want %q within 3 s", texts(g.slack.Ephemerals("U0DAVE")[told:]), time.Since(clicked), unavailableText)
	}
	if open, _ := g.slack.OpenView("U0DAVE"); open.Title != "" {
		t.Errorf("clicking Approve opened %q", open.Title)
	}
}

// posted waits for request id's message in the approvals channel. A post whose outcome
// could not be recorded during the outage is looked for in the channel's history once its
// claim runs out (10 s), and the posts behind it in the channel wait for it.
func posted(t *testing.T, g *gatehouse, id string) slackfake.Message {
	t.Helper()
	m, err := g.slack.WaitMessage("C0DBA", 30*time.Second, func(m slackfake.Message) bool { return strings.Contains(m.AllText(), id) })
	if err != nil {
		t.Fatalf("request %s is not posted 30 s after the outage", id)
	}
	return m
}

func countMessages(ms []slackfake.Message, want string) int {
	n := 0
	for _, m := range ms {
		if strings.Contains(m.AllText(), want) {
			n++
		}
	}
	return n
}
