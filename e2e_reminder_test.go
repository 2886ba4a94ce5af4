package main

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/internal/slackfake"
)

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
