package e2e

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/internal/slackfake"
)

func TestListShowsGrantsRequestsAndWaiting(t *testing.T) {
	g := startGatehouse(t)
	grantID := g.grantFor("U0ALICE", "prod-db-admin", "2h", "U0BOB", "C0DBA")
	g.command("U0ALICE", "k8s-prod-exec 30m look at pods")
	pendingID := requestID(t, g.message("C0APPROVALS", "look at pods").AllText())

	g.command("U0ALICE", "list")
	mine := g.ephemeral("U0ALICE", "*Your active grants*").AllText()
	for _, want := range []string{"*prod-db-admin* until", grantID, "*Your pending requests*", "*k8s-prod-exec* for 30m — 0 of 2 approvals — `" + pendingID + "`", "*Waiting on you*\nNothing."} {
		if !strings.Contains(mine, want) {
			t.Errorf("alice's list lacks %q:\n%s", want, mine)
		}
	}
	g.command("U0CAROL", "list")
	carol := g.ephemeral("U0CAROL", "*Waiting on you*").AllText()
	if !strings.Contains(carol, "<@U0ALICE> asks for *k8s-prod-exec*") {
		t.Errorf("an approver's list lacks the request waiting on them:\n%s", carol)
	}
	g.command("U0SECOPS", "list")
	admin := g.ephemeral("U0SECOPS", "*Other pending requests* (admin view)").AllText()
	if !strings.Contains(admin, pendingID) {
		t.Errorf("an admin's list lacks other requests:\n%s", admin)
	}
}

func TestHomeTab(t *testing.T) {
	g := startGatehouse(t)
	g.command("U0ALICE", "k8s-prod-exec 30m from the home tab")
	id := requestID(t, g.message("C0APPROVALS", "from the home tab").AllText())

	home := g.home("U0BOB", id)
	if !strings.Contains(home.AllText(), "*Waiting on you* (1)") || !strings.Contains(home.AllText(), "from the home tab") {
		t.Fatalf("Bob's Home: %s", home.AllText())
	}
	if _, err := g.slack.ClickHomeButton("U0BOB", "decide_"+id, "Approve"); err != nil {
		t.Fatal(err)
	}
	g.view("U0BOB", "Approve request")
	g.submit("U0BOB", map[string]string{"Comment": "from home"})
	g.message("C0APPROVALS", id, "1 / 2", "from home")
	// The tab is refreshed: the request no longer waits on Bob.
	g.waitHome("U0BOB", func(v slackfake.View) bool { return strings.Contains(v.AllText(), "*Waiting on you* (0)") })

	// Alice's own tab shows her request with its progress.
	g.home("U0ALICE", "*k8s-prod-exec* for 30m — 1 of 2 approvals — `"+id+"`")
}

// views.publish failing (503) leaves a Home tab as it was — the decision made from it
// stands — and the next time the user opens the tab it is drawn again, up to date.
func TestHomeTabRedrawnAfterViewsPublishFails(t *testing.T) {
	g := startGatehouse(t)
	g.command("U0ALICE", "k8s-prod-exec 30m stale home")
	id := requestID(t, g.message("C0APPROVALS", "stale home").AllText())
	g.home("U0BOB", "*Waiting on you* (1)")

	g.slack.Fail("views.publish", slackfake.Fault{Status: http.StatusServiceUnavailable, Calls: 100})
	if _, err := g.slack.ClickHomeButton("U0BOB", "decide_"+id, "Approve"); err != nil {
		t.Fatal(err)
	}
	g.view("U0BOB", "Approve request")
	g.submit("U0BOB", map[string]string{"Comment": "while Slack fails"})
	g.message("C0APPROVALS", id, "1 / 2", "while Slack fails")
	g.svc.App.Wait()
	if g.slack.Faulted("views.publish") == 0 {
		t.Fatal("no views.publish was refused: the test tried nothing")
	}

	g.slack.ClearFaults()
	g.home("U0BOB", "*Waiting on you* (0)")
}

// home opens user's Home tab and waits for it to show want.
func (g *gatehouse) home(user, want string) slackfake.View {
	g.t.Helper()
	if _, err := g.slack.OpenHome(user); err != nil {
		g.t.Fatal(err)
	}
	return g.waitHome(user, func(v slackfake.View) bool { return strings.Contains(v.AllText(), want) })
}

func (g *gatehouse) waitHome(user string, match func(slackfake.View) bool) slackfake.View {
	g.t.Helper()
	var last slackfake.View
	for range 500 {
		if v, ok := g.slack.Home(user); ok {
			last = v
			if match(v) {
				return v
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	g.t.Fatalf("%s's Home never matched; last: %s", user, last.AllText())
	return last
}
