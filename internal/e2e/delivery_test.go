package e2e

import (
	"strings"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/internal/slackfake"
)

// approvalMessages returns the messages in channel tagged with requestID, as Slack holds them.
func (g *gatehouse) approvalMessages(channel, requestID string) []slackfake.Message {
	var out []slackfake.Message
	for _, m := range g.slack.Messages(channel) {
		if m.Metadata != nil && m.Metadata.EventPayload["request_id"] == requestID {
			out = append(out, m)
		}
	}
	return out
}

// requestIDIn returns the req_… ID a text names.
func requestIDIn(t testing.TB, text string) string {
	t.Helper()
	i := strings.Index(text, "req_")
	if i < 0 || len(text) < i+20 {
		t.Fatalf("no request ID in %q", text)
	}
	return text[i : i+20]
}

// until waits for cond, moving the clock on by step each time, so that waits Slack asked
// for (Retry-After) and backoffs pass without sleeping through them.
func (g *gatehouse) until(what string, step time.Duration, cond func() bool) {
	g.t.Helper()
	deadline := time.Now().Add(wait)
	for !cond() {
		if time.Now().After(deadline) {
			g.t.Fatalf("%s: not after %v", what, wait)
		}
		g.clock.Advance(step)
		time.Sleep(20 * time.Millisecond)
	}
}

// dmsContaining counts the DMs to user that contain want.
func (g *gatehouse) dmsContaining(user, want string) int {
	n := 0
	for _, m := range g.slack.DMs(user) {
		if strings.Contains(m.AllText(), want) {
			n++
		}
	}
	return n
}

// Five 429s in a row (Retry-After: 1) used to cancel the request after four tries. Now the
// post waits as often as Slack asks and the request is posted exactly once.
func TestRateLimitedPostIsPostedOnce(t *testing.T) {
	g := startGatehouse(t)
	g.slack.Fail("chat.postMessage", slackfake.Fault{Status: 429, RetryAfter: 1, Channel: "C0DBA", Calls: 5})
	g.command("U0ALICE", "prod-db-admin 1h rate limited")
	id := requestIDIn(t, g.ephemeral("U0ALICE", "req_").AllText())
	g.until("posted", time.Second, func() bool { return len(g.approvalMessages("C0DBA", id)) > 0 })
	g.svc.App.Wait()
	if n := len(g.approvalMessages("C0DBA", id)); n != 1 || g.slack.Faulted("chat.postMessage") != 5 {
		t.Fatalf("%d messages for %s after %d rate limits; want 1 after 5", n, id, g.slack.Faulted("chat.postMessage"))
	}
	for _, m := range g.slack.DMs("U0ALICE") {
		if strings.Contains(m.AllText(), "Cancelled") {
			t.Errorf("requester told %q", m.AllText())
		}
	}
	g.approve("U0BOB", g.approvalMessages("C0DBA", id)[0], "")
	g.message("C0DBA", id, "*Approved*")
	g.dm("U0ALICE", "*Approved*", id)
}

// Every Web API method answering 503 used to cancel requests filed meanwhile (after telling
// their requester they were waiting for approval), strand approvals recorded meanwhile on
// a message still showing the buttons, and lose the requester's DM. Now everything owed is
// delivered once Slack is back, once.
func TestSlackOutageEndsWithEverythingDelivered(t *testing.T) {
	g := startGatehouse(t)
	g.command("U0CAROL", "prod-db-admin 1h before the outage")
	before := g.message("C0DBA", "before the outage")
	g.click("U0BOB", before, "Approve")
	g.view("U0BOB", "Approve request")

	g.slack.Fail(slackfake.AnyMethod, slackfake.Fault{Status: 503})
	if ack := g.submit("U0BOB", map[string]string{"Comment": "during the outage"}); ack.ResponseAction != "" {
		t.Fatalf("approving during the outage: %+v", ack)
	}
	g.command("U0ALICE", "prod-db-admin 1h during the outage")
	saved := g.ephemeral("U0ALICE", "saved; it will be posted to <#C0DBA> as soon as Slack answers")
	id := requestIDIn(t, saved.AllText())
	for range 15 { // fifteen seconds of outage, swept every second, and then an hour
		g.clock.Advance(time.Second)
		g.sweep()
	}
	g.clock.Advance(2 * time.Hour) // past request_ttl, counted from filing
	g.sweep()
	if n := len(g.approvalMessages("C0DBA", id)); n != 0 {
		t.Fatalf("%d messages posted during the outage", n)
	}

	g.slack.ClearFaults()
	g.until("everything delivered", time.Minute, func() bool {
		return len(g.approvalMessages("C0DBA", id)) == 1 && g.dmsContaining("U0CAROL", "*Approved*") == 1 &&
			g.dmsContaining("U0ALICE", "is posted in <#C0DBA> now") == 1 &&
			strings.Contains(g.approvalMessages("C0DBA", requestIDIn(t, before.AllText()))[0].AllText(), "*Approved*")
	})
	g.svc.App.Wait()
	posted := g.approvalMessages("C0DBA", id)
	if len(posted) != 1 || !strings.Contains(posted[0].AllText(), "Waiting for approval") {
		t.Fatalf("request filed during the outage: %q, want one message waiting for approval", texts(posted))
	}
	if n := g.dmsContaining("U0CAROL", "*Approved*"); n != 1 {
		t.Errorf("approved requester DMed %d times, want once", n)
	}
	if n := g.dmsContaining("U0ALICE", "is posted in"); n != 1 {
		t.Errorf("saved requester told %d times it is posted, want once", n)
	}
	for _, m := range g.slack.DMs("U0ALICE") {
		if strings.Contains(m.AllText(), "Cancelled") || strings.Contains(m.AllText(), "Expired") {
			t.Errorf("requester of the saved request told %q", m.AllText())
		}
	}
	// Its time runs from the moment it was posted: an hour from now, not from filing.
	g.approve("U0BOB", posted[0], "")
	g.message("C0DBA", id, "*Approved*")
}

// A post whose answer was lost after Slack took it (a timeout, a crash) is adopted on the
// next attempt by its request ID, not posted again; later redraws land on it.
func TestLostAnswerMessageIsAdopted(t *testing.T) {
	g := startGatehouse(t)
	g.slack.Fail("chat.postMessage", slackfake.Fault{Status: 500, Applied: true, Channel: "C0DBA", Calls: 1})
	g.command("U0ALICE", "prod-db-admin 1h lost answer")
	id := requestIDIn(t, g.ephemeral("U0ALICE", "req_").AllText())
	g.until("posted and adopted", time.Second, func() bool { return g.slack.Calls("conversations.history") > 0 })
	g.svc.App.Wait()
	msgs := g.approvalMessages("C0DBA", id)
	if len(msgs) != 1 {
		t.Fatalf("%d messages for %s, want 1", len(msgs), id)
	}
	g.approve("U0BOB", msgs[0], "")
	g.approvalMessageAt("C0DBA", msgs[0].TS, "*Approved*")
	if n := len(g.approvalMessages("C0DBA", id)); n != 1 {
		t.Errorf("%d messages after approval, want 1", n)
	}
}

// A permanent error is not retried on and on: the requester is told plainly what is wrong
// and that the request is saved; once an admin fixes it, the request is posted.
func TestBotNotInChannelIsToldAndSaved(t *testing.T) {
	g := startGatehouse(t)
	g.slack.Fail("chat.postMessage", slackfake.Fault{Error: "not_in_channel", Channel: "C0DBA", Calls: 1})
	g.command("U0ALICE", "prod-db-admin 1h nobody invited the bot")
	g.ephemeral("U0ALICE", "saved; it will be posted to <#C0DBA>")
	told := g.dm("U0ALICE", "the bot is not in <#C0DBA>; ask an admin to invite it", "is saved")
	id := requestIDIn(t, told.AllText())
	g.svc.App.Wait()
	if n := len(g.approvalMessages("C0DBA", id)); n != 0 {
		t.Fatalf("%d messages while the bot is not in the channel", n)
	}
	g.clock.Advance(11 * time.Minute) // the admin invited the bot; the post is tried again
	g.until("posted", time.Second, func() bool { return len(g.approvalMessages("C0DBA", id)) == 1 })
	g.dm("U0ALICE", "is posted in <#C0DBA> now")
	if n := g.dmsContaining("U0ALICE", "ask an admin"); n != 1 {
		t.Errorf("requester told %d times about the problem, want once", n)
	}
}

// A failed user-group look-up is no refusal: the last known membership stands, and with none
// the approver is told Slack could not confirm it.
func TestGroupLookupFailureIsNoRefusal(t *testing.T) {
	g := startGatehouse(t)
	g.command("U0ALICE", "prod-db-admin 1h group lookups")
	msg := g.message("C0DBA", "group lookups")

	g.slack.Fail("usergroups.users.list", slackfake.Fault{Status: 503})
	g.click("U0DAVE", msg, "Approve")
	g.ephemeral("U0DAVE", "Slack could not confirm your user-group membership; nothing was changed, try again in a minute")

	g.slack.ClearFaults()
	g.click("U0DAVE", msg, "Approve") // learns the membership
	g.view("U0DAVE", "Approve request")
	g.slack.Fail("usergroups.users.list", slackfake.Fault{Error: "internal_error"})
	g.clock.Advance(10 * time.Minute) // the cached membership is stale, and Slack fails
	if ack := g.submit("U0DAVE", map[string]string{"Comment": "from the group"}); ack.ResponseAction != "" {
		t.Fatalf("approving with a stale membership while Slack fails: %+v", ack)
	}
	g.message("C0DBA", "group lookups", "*Approved* by <@U0DAVE>")
	for _, m := range g.slack.Ephemerals("U0DAVE") {
		if strings.Contains(m.AllText(), "not an approver") {
			t.Errorf("approver refused: %q", m.AllText())
		}
	}
}

// The last known membership of a user group stands in for Slack only for an hour, and only
// while Slack fails in a way that passes: someone removed from an approver group must not
// keep deciding through a long outage, or once the bot lost its usergroups:read scope. It
// used to stand in however old, whatever Slack said.
func TestStaleGroupMembershipIsBounded(t *testing.T) {
	g := startGatehouse(t)
	g.command("U0ALICE", "prod-db-admin 1h before the outage")
	g.click("U0DAVE", g.message("C0DBA", "before the outage"), "Approve") // learns the membership
	g.openView("U0DAVE", "before the outage")

	g.slack.Fail("usergroups.users.list", slackfake.Fault{Status: 503})
	g.clock.Advance(61 * time.Minute)
	g.command("U0ALICE", "prod-db-admin 1h an hour into the outage")
	msg := g.message("C0DBA", "an hour into the outage")
	// refused checks that Dave's nth private answer is the refusal, after what.
	refused := func(n int, after string) {
		t.Helper()
		g.ephemeralCount("U0DAVE", n)
		if got := g.slack.Ephemerals("U0DAVE")[n-1].AllText(); got != "Slack could not confirm your user-group membership; nothing was changed, try again in a minute." {
			t.Errorf("approver told %q %s", got, after)
		}
	}
	g.click("U0DAVE", msg, "Approve")
	refused(1, "an hour into the outage")

	g.slack.ClearFaults()
	g.click("U0DAVE", msg, "Approve") // learns it again
	g.openView("U0DAVE", "an hour into the outage")
	g.slack.Fail("usergroups.users.list", slackfake.Fault{Error: "missing_scope"})
	g.clock.Advance(3 * time.Minute) // past the cache's two minutes
	g.click("U0DAVE", msg, "Approve")
	refused(2, "without usergroups:read")
	// Once Slack refused for good, what it said before stays forgotten when it then only
	// fails for a while.
	g.slack.ClearFaults()
	g.slack.Fail("usergroups.users.list", slackfake.Fault{Status: 503})
	g.click("U0DAVE", msg, "Approve")
	refused(3, "after a refusal for good, then a 503")
}

// A user group that no longer exists has no members, however recently it had some.
func TestDeletedGroupHasNoMembers(t *testing.T) {
	g := startGatehouse(t)
	g.command("U0ALICE", "prod-db-admin 1h group deleted")
	msg := g.message("C0DBA", "group deleted")
	g.click("U0DAVE", msg, "Approve") // learns the membership
	g.openView("U0DAVE", "group deleted")
	g.slack.Fail("usergroups.users.list", slackfake.Fault{Error: "no_such_subteam"})
	g.clock.Advance(3 * time.Minute) // past the cache's two minutes
	g.click("U0DAVE", msg, "Approve")
	g.ephemeral("U0DAVE", "Slack could not confirm your user-group membership")
}

// A form that does not open says why: it expired, or Slack is not answering. It used to say
// "Slack did not let me open the form in time" whatever happened.
func TestFormErrorsSayWhatHappened(t *testing.T) {
	g := startGatehouse(t)
	g.slack.Fail("views.open", slackfake.Fault{Status: 503, Calls: 1})
	g.command("U0ALICE", "")
	g.ephemeral("U0ALICE", "Slack did not answer, so the form could not open. Nothing was changed. Please run the command again.")
	g.slack.Fail("views.open", slackfake.Fault{Error: "expired_trigger_id", Calls: 1})
	g.command("U0ALICE", "")
	g.ephemeral("U0ALICE", "The form expired before Slack let me open it (Slack allows 3 seconds). Please run the command again.")
}
