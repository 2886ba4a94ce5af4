package e2e

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/internal/slackfake"
)

func TestRequestAndGrantExpire(t *testing.T) {
	g := startGatehouse(t)
	ctx := context.Background()

	g.command("U0ALICE", "prod-db-admin 1h nobody looks")
	pending := g.message("C0DBA", "nobody looks")
	g.command("U0CAROL", "prod-db-admin 1h short job")
	job := g.message("C0DBA", "short job")
	g.approve("U0BOB", job, "")
	g.message("C0DBA", "short job", "*Approved*")

	g.clock.Advance(61 * time.Minute) // past request_ttl and the grant's hour
	if err := g.svc.App.Sweep(ctx); err != nil {
		t.Fatal(err)
	}
	expired := g.message("C0DBA", "nobody looks", "*Expired*: not decided in time.")
	if len(expired.Buttons()) != 0 || expired.TS != pending.TS {
		t.Errorf("expired request message: buttons %q, updated in place %v", expired.Buttons(), expired.TS == pending.TS)
	}
	g.dm("U0ALICE", "*Expired*", "was not decided in time")
	g.message("C0DBA", "short job", "*Approved*", "*Expired* at")
	g.dm("U0CAROL", "*Expired*: your access to *prod-db-admin* has ended")

	// A second sweep finds nothing new: nobody is told twice.
	if err := g.svc.App.Sweep(ctx); err != nil {
		t.Fatal(err)
	}
	g.svc.App.Wait()
	if n := len(g.slack.DMs("U0CAROL")); n != 2 { // approved, then expired
		t.Errorf("holder got %d DMs, want 2", n)
	}
}

func TestExpiryCatchesUpAfterRestart(t *testing.T) {
	g := startGatehouse(t)
	g.command("U0ALICE", "prod-db-admin 1h while you were out")
	g.message("C0DBA", "while you were out")
	g.stop()
	g.clock.Advance(2 * time.Hour)
	g.start() // the sweep at start catches up
	g.message("C0DBA", "while you were out", "*Expired*")
	g.dm("U0ALICE", "*Expired*")
}

func TestRevokeByEachAllowedActor(t *testing.T) {
	g := startGatehouse(t)
	for i, tt := range []struct{ who, as string }{{"U0ALICE", "holder"}, {"U0BOB", "approver"}, {"U0DAVE", "approver via group"}, {"U0SECOPS", "admin"}} {
		t.Run(tt.as, func(t *testing.T) {
			grantID := g.grantFor("U0ALICE", "prod-db-admin", "1h", "U0BOB", "C0DBA")
			g.command("U0MALLORY", "revoke "+grantID+" because I can")
			g.command(tt.who, "revoke "+grantID+" \u202egnp")
			g.ephemeral(tt.who, "invisible or control character")
			g.ephemeralCount("U0MALLORY", i+1)
			if told := g.slack.Ephemerals("U0MALLORY"); !strings.Contains(told[i].AllText(), "only a grant's holder, an approver of its role or a Gatehouse admin can revoke it") ||
				strings.Contains(told[i].AllText(), "extend") {
				t.Errorf("Mallory was told %q", told[i].AllText())
			}

			g.command(tt.who, "revoke "+grantID+" rotation by "+tt.as)
			g.ephemeral(tt.who, "*Revoked*: grant `"+grantID+"`")
			g.message("C0DBA", grantID, "*Revoked* by <@"+tt.who+">: rotation by "+tt.as)
			g.dm("U0ALICE", "*Revoked*", "rotation by "+tt.as)

			g.command(tt.who, "revoke "+grantID+" again")
			g.ephemeral(tt.who, "has ended")
		})
	}
}

func TestExtendWithinAndBeyondLimits(t *testing.T) {
	g := startGatehouse(t)
	ctx := context.Background()
	grantID := g.grantFor("U0ALICE", "prod-db-admin", "1h", "U0BOB", "C0DBA")
	first, _ := g.svc.Store.Grant(ctx, grantID)

	extend := func(duration, reason string) {
		t.Helper()
		dm := g.dm("U0ALICE", "*Approved*", grantID)
		g.click("U0ALICE", dm, "Extend")
		g.view("U0ALICE", "Extend access")
		ack := g.submit("U0ALICE", map[string]string{"Duration": duration, "Reason": reason})
		if ack.ResponseAction != "update" {
			t.Fatalf("extend ack = %+v", ack)
		}
		msg := g.message("C0DBA", "Extension request: prod-db-admin", "Extends grant `"+grantID+"`", reason)
		g.approve("U0BOB", msg, "")
		g.message("C0DBA", reason, "*Approved*")
	}

	extend("2h", "the migration runs long")
	g.dm("U0ALICE", "*Approved*: your request", "to extend *prod-db-admin* by 2h")
	g.svc.App.Wait()
	got, _ := g.svc.Store.Grant(ctx, grantID)
	if want := first.ExpiresAt.Add(2 * time.Hour); !got.ExpiresAt.Equal(want) || got.Extensions != 1 {
		t.Errorf("after one extension the grant ends %s (%d extensions), want %s", got.ExpiresAt, got.Extensions, want)
	}

	// max_duration is 4h from the first approval and the role allows no extra extensions:
	// the next 2h only reach the 4h mark.
	extend("2h", "one more time")
	g.svc.App.Wait()
	got, _ = g.svc.Store.Grant(ctx, grantID)
	if want := first.CreatedAt.Add(4 * time.Hour); !got.ExpiresAt.Equal(want) {
		t.Errorf("capped extension ends %s, want %s", got.ExpiresAt, want)
	}

	// At the cap, asking again is refused in the form and files nothing.
	dm := g.dm("U0ALICE", "*Approved*", grantID)
	g.click("U0ALICE", dm, "Extend")
	g.view("U0ALICE", "Extend access")
	ack := g.submit("U0ALICE", map[string]string{"Duration": "1h", "Reason": "please"})
	if ack.ResponseAction != "errors" || !strings.Contains(ack.Errors["duration"], "already ends at the latest") {
		t.Errorf("extension past the cap: %+v", ack)
	}

	// Only the holder may extend.
	if _, err := g.slack.SendRaw("interactive", map[string]any{"type": "block_actions", "team": map[string]any{"id": "T0FAKE"},
		"user": map[string]any{"id": "U0MALLORY"}, "trigger_id": "", "actions": []any{map[string]any{"action_id": "extend", "value": grantID}}}); err != nil {
		t.Fatal(err)
	}
	g.svc.App.Wait()
	if n := strings.Count(strings.Join(texts(g.slack.Messages("C0DBA")), "\n"), "Extension request"); n != 2 {
		t.Errorf("%d extension requests posted, want 2", n)
	}
}

// remindingRole needs two approvals, reminds after 10 minutes and escalates to U0LEAD after 20.
const remindingRole = `  - name: payments-admin
    description: Admin on the payments service
    approvers: [U0BOB, U0CAROL, U0ALICE, S0DBA]
    approvals_required: 2
    max_duration: 1h
    request_ttl: 1h
    channel: C0PAY
    remind_after: 10m
    escalate_after: 20m
    escalate_to: [U0LEAD]
`

// sweep runs the sweeper as the clock now stands and waits for what it sent.
func (g *gatehouse) sweep() {
	g.t.Helper()
	g.svc.App.Wait() // what was owed before the clock moved lands first (a post starts the request's time)
	if err := g.svc.App.Sweep(context.Background()); err != nil {
		g.t.Fatal(err)
	}
	g.svc.App.Wait()
}

// replies returns the replies in the thread of the message at ts.
func (g *gatehouse) replies(channel, ts string) []slackfake.Message {
	var out []slackfake.Message
	for _, m := range g.slack.Messages(channel) {
		if m.ThreadTS == ts {
			out = append(out, m)
		}
	}
	return out
}

// approvalMessageAt waits until the message at ts contains all of want.
func (g *gatehouse) approvalMessageAt(channel, ts string, want ...string) slackfake.Message {
	g.t.Helper()
	m, err := g.slack.WaitMessage(channel, wait, func(m slackfake.Message) bool { return m.TS == ts && containsAll(m.AllText(), want) })
	if err != nil {
		g.t.Fatalf("approval message does not contain %q: %v", want, err)
	}
	return m
}

func TestReminderAndEscalation(t *testing.T) {
	g := startGatehouse(t, withRoles(remindingRole))
	g.command("U0ALICE", "payments-admin 30m card refunds stuck")
	msg := g.message("C0PAY", "card refunds stuck")
	g.approve("U0BOB", msg, "")
	msg = g.approvalMessageAt("C0PAY", msg.TS, "Approved by <@U0BOB>", "1 / 2")

	g.clock.Advance(10*time.Minute - time.Second)
	g.sweep()
	if r := g.replies("C0PAY", msg.TS); len(r) != 0 {
		t.Fatalf("reminded before remind_after: %q", texts(r))
	}

	g.clock.Advance(time.Second)
	g.sweep()
	r := g.replies("C0PAY", msg.TS)
	if len(r) != 1 {
		t.Fatalf("after remind_after: %d thread replies %q, want one reminder", len(r), texts(r))
	}
	reminder := r[0].AllText()
	for _, want := range []string{"Reminder", "<@U0CAROL>", "<!subteam^S0DBA>", "1 more approval"} {
		if !strings.Contains(reminder, want) {
			t.Errorf("reminder %q does not contain %q", reminder, want)
		}
	}
	for _, notWanted := range []string{"<@U0BOB>", "<@U0ALICE>", "<@U0LEAD>"} { // decided, requester, not escalated yet
		if strings.Contains(reminder, notWanted) {
			t.Errorf("reminder %q mentions %s", reminder, notWanted)
		}
	}
	g.sweep()
	if r := g.replies("C0PAY", msg.TS); len(r) != 1 {
		t.Fatalf("a second sweep reminded again: %q", texts(r))
	}

	g.click("U0LEAD", msg, "Approve")
	g.ephemeral("U0LEAD", "You are not an approver for this role")

	g.clock.Advance(10 * time.Minute)
	g.sweep()
	r = g.replies("C0PAY", msg.TS)
	if len(r) != 2 || !strings.Contains(r[1].AllText(), "Escalated to <@U0LEAD>") || strings.Contains(r[1].AllText(), "<@U0CAROL>") {
		t.Fatalf("after escalate_after: thread %q, want the reminder then the escalation to U0LEAD", texts(r))
	}
	msg = g.approvalMessageAt("C0PAY", msg.TS, "*Escalated* to <@U0LEAD>")
	if b := msg.Buttons(); len(b) != 2 {
		t.Errorf("escalated message buttons = %q, want Approve and Deny", b)
	}

	g.approve("U0LEAD", msg, "covering for the team")
	g.approvalMessageAt("C0PAY", msg.TS, "*Approved* by <@U0BOB>, <@U0LEAD>")
	g.dm("U0ALICE", "*Approved*", "<@U0LEAD>")

	g.clock.Advance(30 * time.Minute)
	g.sweep()
	if r := g.replies("C0PAY", msg.TS); len(r) != 2 {
		t.Errorf("thread after approval: %q, want nothing new", texts(r))
	}
}

func TestDecidedRequestsAreNotReminded(t *testing.T) {
	g := startGatehouse(t, withRoles(remindingRole))
	g.command("U0ALICE", "payments-admin 30m refunds batch")
	denied := g.message("C0PAY", "refunds batch")
	g.click("U0BOB", denied, "Deny")
	g.view("U0BOB", "Deny request")
	g.submit("U0BOB", map[string]string{"Reason": "use the runbook"})
	g.approvalMessageAt("C0PAY", denied.TS, "*Denied*")

	g.command("U0CAROL", "payments-admin 30m chargeback fix")
	approved := g.message("C0PAY", "chargeback fix")
	g.approve("U0BOB", approved, "")
	g.approvalMessageAt("C0PAY", approved.TS, "1 / 2")
	g.approve("U0DAVE", approved, "via the group")
	g.approvalMessageAt("C0PAY", approved.TS, "*Approved*")

	g.command("U0ALICE", "payments-admin 30m nobody answers")
	expired := g.message("C0PAY", "nobody answers")
	g.clock.Advance(2 * time.Hour) // past request_ttl: it expires, it is not reminded
	g.sweep()
	g.approvalMessageAt("C0PAY", expired.TS, "*Expired*")

	for _, m := range []slackfake.Message{denied, approved, expired} {
		if r := g.replies("C0PAY", m.TS); len(r) != 0 {
			t.Errorf("decided request was reminded or escalated: %q", texts(r))
		}
	}
}
