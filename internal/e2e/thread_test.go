package e2e

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/internal/slackfake"
)

// outboxEmpty reports whether nothing is owed any more.
func (g *gatehouse) outboxEmpty() bool {
	depth, _, err := g.svc.Store.OutboxState(context.Background())
	return err == nil && depth == 0
}

// A reminder or an escalation notice whose answer was lost after Slack took it used to be
// posted again in the thread. Now the retry finds it there by its tag and posts nothing.
func TestLostAnswerThreadReplyIsPostedOnce(t *testing.T) {
	g := startGatehouse(t, withRoles(remindingRole))
	g.command("U0ALICE", "payments-admin 30m ledger replay")
	msg := g.message("C0PAY", "ledger replay")
	g.approve("U0BOB", msg, "")
	g.approvalMessageAt("C0PAY", msg.TS, "1 / 2")

	for i, step := range []struct{ after, want string }{{"remind_after", "Reminder"}, {"escalate_after", "Escalated to <@U0LEAD>"}} {
		g.svc.App.Wait()
		g.slack.Fail("chat.postMessage", slackfake.Fault{Status: 500, Applied: true, Channel: "C0PAY", Calls: 1})
		looked := g.slack.Calls("conversations.replies")
		g.clock.Advance(10 * time.Minute)
		g.sweep()
		g.until(step.after+": the reply's delivery settled", time.Second, g.outboxEmpty)
		r := g.replies("C0PAY", msg.TS)
		if len(r) != i+1 || !strings.Contains(r[i].AllText(), step.want) {
			t.Fatalf("after %s with its answer lost: thread %q, want %d replies, the last %q", step.after, texts(r), i+1, step.want)
		}
		if g.slack.Calls("conversations.replies") == looked {
			t.Errorf("after %s: the retry did not look in the thread first", step.after)
		}
	}
	g.approve("U0LEAD", msg, "")
	g.approvalMessageAt("C0PAY", msg.TS, "*Approved*")
	if r := g.replies("C0PAY", msg.TS); len(r) != 2 {
		t.Errorf("thread after approval: %q, want the reminder and the escalation once each", texts(r))
	}
}
