package e2e

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/app"
	"github.com/gatehouse/gatehouse/internal/slackfake"
)

// breakGlass has U0ONCALL break the glass on breakglass-db by text and returns the grant,
// checking it is active at once and flagged for review.
func (g *gatehouse) breakGlass(reason string) app.Grant {
	g.t.Helper()
	g.command("U0ONCALL", "breakglass-db 30m "+reason)
	reply := g.ephemeral("U0ONCALL", "*Break-glass*")
	grants, err := g.svc.Store.GrantsOf(context.Background(), app.User("U0ONCALL"))
	if err != nil || len(grants) != 1 {
		g.t.Fatalf("grants = %+v, %v; want one at once", grants, err)
	}
	grant := grants[0]
	if grant.Role != "breakglass-db" || grant.Status != app.GrantActive || !grant.BreakGlass || !grant.NeedsReview || len(grant.ApprovedBy) != 0 {
		g.t.Fatalf("break-glass grant = %+v", grant)
	}
	if !strings.Contains(reply.AllText(), grant.ID) {
		g.t.Errorf("the reply does not name the grant %s: %s", grant.ID, reply.AllText())
	}
	return grant
}

func TestBreakGlassGrantsAtOnceAndApproverReviews(t *testing.T) {
	g := startGatehouse(t)
	takenAt := g.clock.Now()
	grant := g.breakGlass("db down, paging")
	if d := grant.ExpiresAt.Sub(takenAt); d < 30*time.Minute-time.Second || d > 30*time.Minute+time.Second {
		t.Errorf("grant lasts %s, want 30m from now", d)
	}

	notice := g.message("C0APPROVALS", ":rotating_light: Break-glass: breakglass-db", "<@U0ONCALL>", "db down, paging", "30m", grant.ID,
		"Needs review", "<@U0BOB>")
	if !slices.Equal(notice.Buttons(), []string{"Reviewed"}) {
		t.Fatalf("notice buttons = %q, want Reviewed", notice.Buttons())
	}
	for _, word := range []string{"Approved", "Approve"} {
		if strings.Contains(notice.AllText(), word) {
			t.Errorf("the notice says %q though nobody approved: %s", word, notice.AllText())
		}
	}
	dm := g.dm("U0ONCALL", "*Break-glass*", "breakglass-db", grant.ID)
	if strings.Contains(dm.AllText(), "Approved") {
		t.Errorf("the DM says Approved though nobody approved: %s", dm.AllText())
	}

	t.Run("the user themself can't review", func(t *testing.T) {
		g.click("U0ONCALL", notice, "Reviewed")
		g.ephemeral("U0ONCALL", "can't review your own break-glass access")
	})
	t.Run("a non-approver can't review", func(t *testing.T) {
		g.click("U0MALLORY", notice, "Reviewed")
		g.ephemeral("U0MALLORY", "Only an approver of this role can review")
	})
	g.svc.App.Wait()
	if got, _ := g.svc.Store.Grant(context.Background(), grant.ID); !got.NeedsReview || got.ReviewedBy != "" {
		t.Fatalf("refused reviews changed the grant: %+v", got)
	}
	if n := len(g.slack.Messages("C0APPROVALS")); n != 1 {
		t.Fatalf("%d messages in the channel, want the notice", n)
	}

	g.clock.Advance(5 * time.Minute)
	reviewedAt := g.clock.Now()
	// A double click: both clicks may reach Gatehouse before the button is gone.
	var wg sync.WaitGroup
	for range 2 {
		wg.Go(func() { g.slack.ClickButton("U0BOB", notice, "Reviewed") })
	}
	wg.Wait()
	final := g.message("C0APPROVALS", "Reviewed by <@U0BOB> at <!date^", grant.ID)
	if len(final.Buttons()) != 0 {
		t.Errorf("reviewed notice still has buttons %q", final.Buttons())
	}
	if final.TS != notice.TS || len(g.slack.Messages("C0APPROVALS")) != 1 {
		t.Error("the notice was not updated in place")
	}
	if strings.Contains(final.AllText(), "Needs review") {
		t.Errorf("reviewed notice still says it needs review: %s", final.AllText())
	}
	g.svc.App.Wait()
	reviewed, _ := g.svc.Store.Grant(context.Background(), grant.ID)
	if reviewed.NeedsReview || reviewed.ReviewedBy != "U0BOB" || reviewed.ReviewedAt.Sub(reviewedAt).Abs() > time.Second || reviewed.Status != app.GrantActive {
		t.Errorf("reviewed grant = %+v, want reviewed by U0BOB at %s and still active", reviewed, reviewedAt)
	}

	t.Run("a second click changes nothing", func(t *testing.T) {
		g.clock.Advance(time.Minute)
		// The button is gone; a click from a stale client still arrives.
		if _, err := g.slack.SendRaw("interactive", forgedReview(grant.ID, "U0BOB")); err != nil {
			t.Fatal(err)
		}
		g.svc.App.Wait()
		again, _ := g.svc.Store.Grant(context.Background(), grant.ID)
		if again.ReviewedBy != reviewed.ReviewedBy || !again.ReviewedAt.Equal(reviewed.ReviewedAt) {
			t.Errorf("a second click changed the review: %+v", again)
		}
		events, _ := g.svc.Store.AuditEvents(context.Background(), grant.RequestID)
		var actions []string
		for _, e := range events {
			actions = append(actions, e.Action)
		}
		want := []string{app.ActionRequestCreated, app.ActionRequestApproved, app.ActionGrantCreated, app.ActionGrantReviewed}
		if !slices.Equal(actions, want) {
			t.Errorf("audit trail = %v, want %v", actions, want)
		}
	})

	t.Run("the grant is revoked like any other", func(t *testing.T) {
		g.command("U0BOB", "revoke "+grant.ID+" incident over")
		g.ephemeral("U0BOB", "*Revoked*")
		g.message("C0APPROVALS", "*Revoked* by <@U0BOB>: incident over", "Reviewed by <@U0BOB>")
		g.dm("U0ONCALL", "*Revoked*", grant.ID)
	})
}

func TestBreakGlassRefusedToUnlistedUser(t *testing.T) {
	g := startGatehouse(t)
	g.command("U0ALICE", "breakglass-db 30m curious")
	reply := g.ephemeral("U0ALICE", "not on the break-glass list for *breakglass-db*")
	id := requestID(t, reply.AllText())
	if !strings.Contains(reply.AllText(), "waiting for approval") {
		t.Errorf("the reply does not say the request waits for approval: %s", reply.AllText())
	}
	msg := g.message("C0APPROVALS", id, "curious")
	if !slices.Equal(msg.Buttons(), []string{"Approve", "Deny"}) || strings.Contains(msg.AllText(), "Break-glass") {
		t.Errorf("an unlisted user's request is not a normal one: %s %q", msg.AllText(), msg.Buttons())
	}
	g.svc.App.Wait()
	if grants, _ := g.svc.Store.GrantsOf(context.Background(), app.User("U0ALICE")); len(grants) != 0 {
		t.Errorf("an unlisted user got grants %+v", grants)
	}
}

func TestBreakGlassByModal(t *testing.T) {
	g := startGatehouse(t)
	g.command("U0ONCALL", "")
	g.view("U0ONCALL", "Request access")
	if ack := g.submit("U0ONCALL", map[string]string{"Role": "breakglass-db", "Duration": "1h", "Reason": "replication broken"}); ack.ResponseAction != "update" {
		t.Fatalf("submit ack = %+v", ack)
	}
	done := g.view("U0ONCALL", "Break-glass access")
	grants, _ := g.svc.Store.GrantsOf(context.Background(), app.User("U0ONCALL"))
	if len(grants) != 1 || grants[0].Status != app.GrantActive || !strings.Contains(done.AllText(), grants[0].ID) {
		t.Fatalf("grants = %+v; confirmation %q", grants, done.AllText())
	}
	g.message("C0APPROVALS", "Break-glass: breakglass-db", "replication broken", "1h", "Needs review")
	g.dm("U0ONCALL", "*Break-glass*", grants[0].ID)

	t.Run("without a reason nothing is granted", func(t *testing.T) {
		g.command("U0ONCALL", "breakglass-db 30m")
		g.view("U0ONCALL", "Request access") // the form opens prefilled to ask for the reason
		g.command("U0ONCALL", "breakglass-db 2h too long")
		g.ephemeral("U0ONCALL", "at most 1h")
		g.svc.App.Wait()
		if grants, _ := g.svc.Store.GrantsOf(context.Background(), app.User("U0ONCALL")); len(grants) != 1 {
			t.Errorf("bad input changed the grants: %+v", grants)
		}
	})
}

func TestBreakGlassTokenAtOnce(t *testing.T) {
	g := startGatehouse(t)
	g.slack.AddUser("U0ONCALL", "Olive On-Call", "oncall@example.com") // ID tokens carry the profile
	grant := g.breakGlass("need a token")

	rp := g.client("gatehouse-cli", "openid", "role:breakglass-db")
	da := rp.start()
	waiting := rp.wait(da)
	form := g.loginInSlackForm("U0ONCALL", da.UserCode)
	if len(form.Labels()) != 0 {
		t.Errorf("with the break-glass grant the sign-in form asks %q", form.Labels())
	}
	g.submit("U0ONCALL", nil)
	g.view("U0ONCALL", "Signed in")
	got := g.receive(waiting)
	if got.err != nil {
		t.Fatalf("token: %v", got.err)
	}
	claims := rp.verifyAccess(got.tok.AccessToken, "gatehouse-cli")
	if claims.Subject != "U0ONCALL" || !slices.Equal(claims.Roles, []string{"breakglass-db"}) || len(claims.Grants) != 1 ||
		claims.Grants[0].ID != grant.ID || len(claims.Grants[0].ApprovedBy) != 0 || claims.Expiry > claims.Grants[0].ExpiresAt {
		t.Errorf("access token claims = %+v", claims)
	}
	var raw struct {
		Grants []struct {
			BreakGlass bool `json:"break_glass"`
		} `json:"grants"`
	}
	payload, err := base64.RawURLEncoding.DecodeString(strings.Split(got.tok.AccessToken, ".")[1])
	if err != nil || json.Unmarshal(payload, &raw) != nil || len(raw.Grants) != 1 || !raw.Grants[0].BreakGlass {
		t.Errorf("the token does not mark the grant as break-glass: %s", payload)
	}
}

// loginInSlackForm runs /access login CODE as user and returns the confirmation form.
func (g *gatehouse) loginInSlackForm(user, code string) slackfake.View {
	g.t.Helper()
	g.command(user, "login "+code)
	return g.view(user, "Confirm sign-in")
}

// forgedReview is a click on Reviewed that a stale or hostile client could send for any grant.
func forgedReview(grantID, user string) map[string]any {
	return map[string]any{
		"type": "block_actions",
		"team": map[string]any{"id": slackfake.TeamID},
		"user": map[string]any{"id": user, "team_id": slackfake.TeamID},
		"actions": []any{map[string]any{"type": "button", "block_id": "review", "action_id": "review", "value": grantID,
			"action_ts": "1.000001"}},
	}
}

// A listed user signing in for a break-glass role they do not hold yet is told they take
// it at once, and their client gets its token right away.
func TestBreakGlassThroughSignIn(t *testing.T) {
	g := startGatehouse(t)
	g.slack.AddUser("U0ONCALL", "Olive On-Call", "oncall@example.com")
	rp := g.client("gatehouse-cli", "openid", "role:breakglass-db")
	da := rp.start()
	waiting := rp.wait(da)
	form := g.loginInSlackForm("U0ONCALL", da.UserCode)
	if !strings.Contains(form.AllText(), "takes *breakglass-db* at once (break-glass)") || strings.Contains(form.AllText(), "asks the approvers") {
		t.Errorf("sign-in form for a break-glass role: %s", form.AllText())
	}
	g.submit("U0ONCALL", map[string]string{"Reason": "primary down"})
	done := g.view("U0ONCALL", "Signed in")
	if !strings.Contains(done.AllText(), "You have *breakglass-db* now (break-glass") {
		t.Errorf("outcome: %s", done.AllText())
	}
	if got := g.receive(waiting); got.err != nil {
		t.Fatalf("token: %v", got.err)
	}
}
