package e2e

import (
	"context"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/slack-go/slack"

	"github.com/gatehouse/gatehouse/app"
	"github.com/gatehouse/gatehouse/internal/slackfake"
)

var requestIDRe = regexp.MustCompile(`req_[a-z2-7]{16}`)

// requestID finds the request ID in what a person was shown.
func requestID(t *testing.T, text string) string {
	t.Helper()
	id := requestIDRe.FindString(text)
	if id == "" {
		t.Fatalf("no request ID in %q", text)
	}
	return id
}

func TestRequestByModalApprovedByQuorum(t *testing.T) {
	g := startGatehouse(t)
	g.command("U0ALICE", "")
	form := g.view("U0ALICE", "Request access")
	if got := form.Labels(); !slices.Equal(got, []string{"Role", "Duration", "Reason"}) {
		t.Fatalf("request form labels = %q", got)
	}
	if got := optionDescriptions(form); !slices.Contains(got, "kubectl exec into production pods") {
		t.Errorf("role options do not show descriptions: %q", got)
	}
	// Picking the role redraws the form with that role's durations.
	if _, err := g.slack.SelectOption("U0ALICE", "Role", "k8s-prod-exec"); err != nil {
		t.Fatal(err)
	}
	g.slack.WaitView("U0ALICE", wait, func(v slackfake.View) bool { return strings.Contains(v.AllText(), "At most 2h for k8s-prod-exec") })
	ack := g.submit("U0ALICE", map[string]string{"Role": "k8s-prod-exec", "Duration": "1h", "Reason": "deploy hotfix 77"})
	if ack.ResponseAction != "update" {
		t.Fatalf("submit ack = %+v, want the confirmation view", ack)
	}
	confirmation := g.view("U0ALICE", "Access requested")
	id := requestID(t, confirmation.AllText())

	msg := g.message("C0APPROVALS", id, "<@U0ALICE>", "k8s-prod-exec", "1h", "deploy hotfix 77", "0 / 2")
	if !slices.Equal(msg.Buttons(), []string{"Approve", "Deny"}) {
		t.Fatalf("buttons = %q, want Approve and Deny", msg.Buttons())
	}
	approveForm := func() {
		g.click("U0BOB", msg, "Approve")
		v := g.view("U0BOB", "Approve request")
		if !slices.Equal(v.Labels(), []string{"Comment"}) {
			t.Errorf("approve form labels = %q, want Comment", v.Labels())
		}
	}
	approveForm()
	if ack := g.submit("U0BOB", map[string]string{"Comment": "looks fine"}); ack.ResponseAction != "" {
		t.Fatalf("approve ack = %+v, want the modal closed", ack)
	}
	msg = g.message("C0APPROVALS", id, "1 / 2", "Approved by <@U0BOB>: looks fine")
	if len(msg.Buttons()) != 2 {
		t.Errorf("after one of two approvals the buttons are %q", msg.Buttons())
	}

	g.clock.Advance(2 * time.Minute) // the grant counts from approval, not from the request
	approvedAt := g.clock.Now()
	g.approve("U0CAROL", msg, "")
	final := g.message("C0APPROVALS", id, "*Approved* by <@U0BOB>, <@U0CAROL>", "2 / 2")
	if len(final.Buttons()) != 0 {
		t.Errorf("approved message still has buttons %q", final.Buttons())
	}
	if final.TS != msg.TS || len(g.slack.Messages("C0APPROVALS")) != 1 {
		t.Errorf("the message was not updated in place")
	}
	dm := g.dm("U0ALICE", "*Approved*", id, "<@U0BOB>, <@U0CAROL>")

	grants, err := g.svc.Store.GrantsOf(context.Background(), app.User("U0ALICE"))
	if err != nil || len(grants) != 1 {
		t.Fatalf("grants = %+v, %v; want one", grants, err)
	}
	grant := grants[0]
	if grant.Role != "k8s-prod-exec" || !slices.Equal(grant.ApprovedBy, []string{"U0BOB", "U0CAROL"}) || grant.Status != app.GrantActive {
		t.Errorf("grant = %+v", grant)
	}
	if d := grant.ExpiresAt.Sub(approvedAt); d < time.Hour-time.Second || d > time.Hour+time.Second {
		t.Errorf("grant lasts %s from approval, want 1h", d)
	}
	if !strings.Contains(dm.AllText(), grant.ID) || !strings.Contains(final.AllText(), grant.ID) {
		t.Errorf("grant ID %s not shown to people", grant.ID)
	}
}

func TestRequestByTextAndDeny(t *testing.T) {
	g := startGatehouse(t)
	g.command("U0ALICE", "prod-db-admin 2h incident 4123")
	id := requestID(t, g.ephemeral("U0ALICE", "waiting for approval").AllText())
	msg := g.message("C0DBA", id, "incident 4123", "2h", "0 / 1")

	g.click("U0BOB", msg, "Deny")
	v := g.view("U0BOB", "Deny request")
	if !slices.Equal(v.Labels(), []string{"Reason"}) {
		t.Errorf("deny form labels = %q, want Reason", v.Labels())
	}
	if _, err := g.slack.Submit("U0BOB", map[string]string{"Reason": ""}); err == nil {
		t.Error("Slack's client let a deny without reason through: the input is not required")
	}
	g.submit("U0BOB", map[string]string{"Reason": "use the read replica"})
	final := g.message("C0DBA", id, "*Denied* by <@U0BOB>: use the read replica")
	if len(final.Buttons()) != 0 {
		t.Errorf("denied message still has buttons %q", final.Buttons())
	}
	g.dm("U0ALICE", "*Denied*", id, "use the read replica")
	if grants, _ := g.svc.Store.GrantsOf(context.Background(), app.User("U0ALICE")); len(grants) != 0 {
		t.Errorf("a denied request left grants %+v", grants)
	}
	// A late approval of the denied request, from a form opened before, changes nothing.
	ack, err := g.slack.SendRaw("interactive", forgedDecision(id, "U0DAVE", "approve"))
	if err != nil || !strings.Contains(ack.Errors["comment"], "already been decided") {
		t.Errorf("late approval ack = %+v, %v", ack, err)
	}
}

func TestUserGroupApprover(t *testing.T) {
	g := startGatehouse(t)
	g.command("U0ALICE", "prod-db-admin 1h rotate keys")
	id := requestID(t, g.ephemeral("U0ALICE", "waiting").AllText())
	msg := g.message("C0DBA", id)
	g.approve("U0DAVE", msg, "as DBA on call") // U0DAVE is in S0DBA
	g.message("C0DBA", id, "*Approved* by <@U0DAVE>")
	g.dm("U0ALICE", "*Approved*")
}

func TestRefusalsChangeNothing(t *testing.T) {
	g := startGatehouse(t)
	g.command("U0ALICE", "k8s-prod-exec 30m debug pod")
	id := requestID(t, g.ephemeral("U0ALICE", "waiting").AllText())
	msg := g.message("C0APPROVALS", id, "0 / 2")

	t.Run("requester listed as approver", func(t *testing.T) {
		g.click("U0ALICE", msg, "Approve")
		g.ephemeral("U0ALICE", "can't approve or deny your own request")
	})
	t.Run("not an approver", func(t *testing.T) {
		g.click("U0MALLORY", msg, "Deny")
		g.ephemeral("U0MALLORY", "not an approver for this role")
		if v, open := g.slack.OpenView("U0MALLORY"); open {
			t.Errorf("a non-approver got the %q modal", v.Title)
		}
	})
	t.Run("same approver twice counts once", func(t *testing.T) {
		g.click("U0BOB", msg, "Approve")
		g.view("U0BOB", "Approve request")
		// Bob opens the form twice, e.g. in two windows, and submits both.
		g.click("U0BOB", msg, "Approve")
		g.submit("U0BOB", map[string]string{"Comment": "first"})
		g.message("C0APPROVALS", id, "1 / 2")
		g.click("U0BOB", msg, "Approve")
		g.ephemeral("U0BOB", "already decided")
	})
	t.Run("a submit from a modal opened before losing the right is checked again", func(t *testing.T) {
		// Mallory forges a submission for the request (private_metadata is only an ID).
		ack, err := g.slack.SendRaw("interactive", forgedDecision(id, "U0MALLORY", "approve"))
		if err != nil {
			t.Fatal(err)
		}
		if ack.ResponseAction != "errors" || !strings.Contains(ack.Errors["comment"], "not an approver") {
			t.Errorf("forged approval ack = %+v", ack)
		}
	})
	g.svc.App.Wait()
	r, _ := g.svc.Store.Request(context.Background(), id)
	if r.Status != app.StatusPending || len(r.Decisions) != 1 {
		t.Errorf("request after refusals = %s with %d decisions, want pending with 1", r.Status, len(r.Decisions))
	}
}

// forgedDecision is a view_submission a client could send for any request ID.
func forgedDecision(requestID, user, callback string) map[string]any {
	block := "comment"
	if callback == "deny" {
		block = "reason"
	}
	return map[string]any{
		"type": "view_submission",
		"team": map[string]any{"id": "T0FAKE"},
		"user": map[string]any{"id": user, "team_id": "T0FAKE"},
		"view": map[string]any{
			"id": "V0FORGED", "type": "modal", "callback_id": callback, "private_metadata": requestID,
			"state": map[string]any{"values": map[string]any{block: map[string]any{"text": map[string]any{"type": "plain_text_input", "value": "ok"}}}},
		},
	}
}

// Approvers submitting at the same instant must yield exactly one grant.
func TestSimultaneousApprovalsGrantOnce(t *testing.T) {
	g := startGatehouse(t)
	approvers := []string{"U01", "U02", "U03", "U04", "U05", "U06"}
	for round := range 5 {
		reason := "release " + string(rune('a'+round))
		g.command("U0ALICE", "deploy 30m "+reason)
		msg := g.message("C0APPROVALS", reason)
		id := requestID(t, msg.AllText())
		for _, a := range approvers {
			g.click(a, msg, "Approve")
			g.view(a, "Approve request")
		}
		var wg sync.WaitGroup
		for _, a := range approvers {
			wg.Go(func() { g.slack.Submit(a, map[string]string{"Comment": "go"}) })
		}
		wg.Wait()
		g.message("C0APPROVALS", id, "*Approved*")
		g.svc.App.Wait()
		r, _ := g.svc.Store.Request(context.Background(), id)
		if r.Status != app.StatusApproved || len(r.Decisions) != 1 {
			t.Fatalf("round %d: %s with %d decisions, want approved with exactly 1", round, r.Status, len(r.Decisions))
		}
	}
	grants, _ := g.svc.Store.GrantsOf(context.Background(), app.User("U0ALICE"))
	if len(grants) != 5 {
		t.Errorf("%d grants for 5 requests", len(grants))
	}
	approvedDMs := 0
	for _, m := range g.slack.DMs("U0ALICE") {
		if strings.Contains(m.AllText(), "*Approved*") {
			approvedDMs++
		}
	}
	if approvedDMs != 5 {
		t.Errorf("requester got %d approval DMs for 5 requests", approvedDMs)
	}
}

func TestRedeliveredEnvelopeDoesNothingTwice(t *testing.T) {
	g := startGatehouse(t)
	g.command("U0ALICE", "prod-db-admin 1h once only")
	g.ephemeral("U0ALICE", "waiting")
	if _, err := g.slack.Redeliver(1); err != nil {
		t.Fatal(err)
	}
	msg := g.message("C0DBA", "once only")
	g.click("U0BOB", msg, "Approve")
	g.view("U0BOB", "Approve request")
	g.submit("U0BOB", map[string]string{"Comment": "ok"})
	if _, err := g.slack.Redeliver(1); err != nil { // the submission again
		t.Fatal(err)
	}
	g.message("C0DBA", "*Approved*")
	g.svc.App.Wait()
	if n := len(g.slack.Messages("C0DBA")); n != 1 {
		t.Errorf("%d approval messages for one command", n)
	}
	if n := len(g.slack.DMs("U0ALICE")); n != 1 {
		t.Errorf("%d DMs for one approval", n)
	}
}

func TestPendingRequestSurvivesRestart(t *testing.T) {
	g := startGatehouse(t)
	g.command("U0ALICE", "k8s-prod-exec 1h survive the restart")
	id := requestID(t, g.ephemeral("U0ALICE", "waiting").AllText())
	msg := g.message("C0APPROVALS", id, "0 / 2")
	g.approve("U0BOB", msg, "one")
	g.message("C0APPROVALS", id, "1 / 2")

	g.restart()

	g.approve("U0CAROL", msg, "two")
	final := g.message("C0APPROVALS", id, "*Approved* by <@U0BOB>, <@U0CAROL>")
	if final.TS != msg.TS {
		t.Error("after the restart a new message was posted instead of updating the original")
	}
	g.dm("U0ALICE", "*Approved*", id)
}

func TestReconnectsWhenSlackAsks(t *testing.T) {
	g := startGatehouse(t)
	g.slack.Disconnect("refresh_requested")
	if err := g.waitConnected(); err != nil {
		t.Fatal(err)
	}
	g.command("U0ALICE", "help")
	g.ephemeral("U0ALICE", "/access <role> <duration> <reason…>")
}

// A Gatehouse started while Slack is down (auth.test, or apps.connections.open for the
// Socket Mode URL, answering 503) waits for Slack and connects once it answers, instead of
// exiting.
func TestStartsWhileSlackIsDown(t *testing.T) {
	for _, method := range []string{"auth.test", "apps.connections.open"} {
		t.Run(method, func(t *testing.T) {
			g := startGatehouse(t)
			g.stop()
			g.slack.Fail(method, slackfake.Fault{Status: http.StatusServiceUnavailable, Calls: 2})
			g.start() // fails the test unless the bot connects
			if n := g.slack.Faulted(method); n != 2 {
				t.Errorf("%s faulted %d times, want 2", method, n)
			}
			g.command("U0ALICE", "help")
			g.ephemeral("U0ALICE", "/access <role> <duration> <reason…>")
		})
	}
}

func TestPendingRequestExpiresWhenDecidedLate(t *testing.T) {
	g := startGatehouse(t)
	g.command("U0ALICE", "prod-db-admin 1h too late")
	id := requestID(t, g.ephemeral("U0ALICE", "waiting").AllText())
	msg := g.message("C0DBA", id)
	g.clock.Advance(61 * time.Minute) // past request_ttl
	g.click("U0BOB", msg, "Approve")
	g.ephemeral("U0BOB", "has expired. Nothing was changed.")
}

// optionDescriptions lists the descriptions of the select options in a modal.
func optionDescriptions(v slackfake.View) []string {
	var out []string
	for _, b := range v.Blocks.BlockSet {
		input, ok := b.(*slack.InputBlock)
		if !ok {
			continue
		}
		if sel, ok := input.Element.(*slack.SelectBlockElement); ok {
			for _, o := range sel.Options {
				if o.Description != nil {
					out = append(out, o.Description.Text)
				}
			}
		}
	}
	return out
}
