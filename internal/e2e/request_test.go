package e2e

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/gatehouse/gatehouse/internal/slackfake"
)

func TestBadSlashTextGetsClearAnswerAndFilesNothing(t *testing.T) {
	g := startGatehouse(t)
	tests := []struct {
		name, text, want string
	}{
		{"unknown role", "prod-db-root 1h x", `There is no role called "prod-db-root". Roles: prod-db-admin, k8s-prod-exec, deploy, breakglass-db.`},
		{"mention instead of role", "<@U0BOB|bob> 1h x", `There is no role called "<@U0BOB|bob>"`},
		{"zero", "prod-db-admin 0h x", "The duration must be positive."},
		{"negative", "prod-db-admin -1h x", "The duration must be positive."},
		{"huge", "prod-db-admin 99999h x", "99999h is longer than prod-db-admin allows (at most 4h)."},
		{"beyond max", "prod-db-admin 5h x", "at most 4h"},
		{"not a duration", "prod-db-admin soon please", `"soon" is not a duration`},
		{"overflowing duration", "prod-db-admin 9999999999999999h x", "is not a duration"},
		{"long reason", "prod-db-admin 1h " + strings.Repeat("é", 5000), "Keep it to 1000 characters (this is 5000)."},
		{"bidi override", "prod-db-admin 1h approve \u202eevil", "invisible or control character (U+202E)"},
		{"zero-width space", "prod-db-admin 1h a\u200bb", "invisible or control character (U+200B)"},
		{"every problem at once", "prod-db-admin 0h \u202e", "The duration must be positive. The text contains"},
		{"login without a code", "login", "Usage: `/access login CODE`"},
		{"revoke without an ID", "revoke", "Usage: `/access revoke GRANT_ID [reason]`"},
		{"revoke of nothing", "revoke grt_nope", "Nothing with that ID was found"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g.command("U0EVE", tt.text)
			g.ephemeral("U0EVE", tt.want)
		})
	}
	g.svc.App.Wait()
	if n := len(g.slack.Messages("C0DBA")) + len(g.slack.Messages("C0APPROVALS")); n != 0 {
		t.Errorf("bad input posted %d approval messages", n)
	}
}

func TestMissingPartsOpenThePrefilledForm(t *testing.T) {
	g := startGatehouse(t)
	g.command("U0ALICE", "k8s-prod-exec")
	form := g.view("U0ALICE", "Request access")
	if !strings.Contains(form.AllText(), "At most 2h for k8s-prod-exec") {
		t.Errorf("form not prefilled for the role: %s", form.AllText())
	}
	// Slack's client blocks submitting without a reason; a reason makes it go.
	if _, err := g.slack.Submit("U0ALICE", map[string]string{}); err == nil {
		t.Error("the form could be submitted without a reason")
	}
	ack := g.submit("U0ALICE", map[string]string{"Reason": "check pods"})
	if ack.ResponseAction != "update" {
		t.Fatalf("ack = %+v", ack)
	}
	g.message("C0APPROVALS", "k8s-prod-exec", "30m", "check pods")

	g.command("U0ALICE", "prod-db-admin 2h")
	g.view("U0ALICE", "Request access")
	g.submit("U0ALICE", map[string]string{"Reason": "migration"})
	g.message("C0DBA", "prod-db-admin", "2h", "migration")
}

func TestBadFormValuesKeepTheFormOpen(t *testing.T) {
	g := startGatehouse(t)
	g.command("U0ALICE", "")
	g.view("U0ALICE", "Request access")
	t.Run("invisible characters in the reason", func(t *testing.T) {
		ack := g.submit("U0ALICE", map[string]string{"Role": "deploy", "Duration": "30m", "Reason": "ok\u202e"})
		if ack.ResponseAction != "errors" || !strings.Contains(ack.Errors["reason"], "invisible") {
			t.Errorf("ack = %+v, want a field error on Reason", ack)
		}
	})
	t.Run("duration beyond the picked role's maximum", func(t *testing.T) {
		// Before a role is picked, the form offers every role's durations.
		ack := g.submit("U0ALICE", map[string]string{"Role": "deploy", "Duration": "4h", "Reason": "ship"})
		if ack.ResponseAction != "errors" || !strings.Contains(ack.Errors["duration"], "at most 1h") {
			t.Errorf("ack = %+v, want a field error on Duration", ack)
		}
	})
	t.Run("forged values", func(t *testing.T) {
		ack, err := g.slack.SendRaw("interactive", map[string]any{
			"type": "view_submission", "team": map[string]any{"id": slackfake.TeamID}, "user": map[string]any{"id": "U0ALICE"},
			"view": map[string]any{"id": "V0X", "type": "modal", "callback_id": "request", "state": map[string]any{"values": map[string]any{
				"role":     map[string]any{"role": map[string]any{"type": "static_select", "selected_option": map[string]any{"value": "root"}}},
				"duration": map[string]any{"duration": map[string]any{"type": "static_select", "selected_option": map[string]any{"value": "-5h"}}},
				"reason":   map[string]any{"reason": map[string]any{"type": "plain_text_input", "value": strings.Repeat("x", 5000)}},
			}}},
		})
		if err != nil {
			t.Fatal(err)
		}
		if ack.ResponseAction != "errors" || ack.Errors["role"] == "" || ack.Errors["reason"] == "" {
			t.Errorf("ack = %+v, want field errors on Role and Reason", ack)
		}
	})
	g.svc.App.Wait()
	if n := len(g.slack.Messages("C0APPROVALS")); n != 0 {
		t.Errorf("bad forms posted %d approval messages", n)
	}
}

// Reasons are shown as typed and never ping or link: mrkdwn control characters are escaped.
func TestReasonCannotPingOrLink(t *testing.T) {
	g := startGatehouse(t)
	g.command("U0ALICE", "prod-db-admin 1h <!channel> see <https://evil.example|docs> & *bold*")
	msg := g.message("C0DBA", "see")
	text := msg.AllText()
	if strings.Contains(text, "<!channel>") || strings.Contains(text, "<https://evil") {
		t.Errorf("the reason reached Slack unescaped: %s", text)
	}
	if !strings.Contains(text, "&lt;!channel&gt; see &lt;https://evil.example|docs&gt; &amp; *bold*") {
		t.Errorf("the reason is not shown as typed: %s", text)
	}
}

func TestHostilePayloadsNeverCrash(t *testing.T) {
	g := startGatehouse(t)
	payloads := []struct {
		kind    string
		payload any
	}{
		{"slash_commands", map[string]any{"command": "/access", "text": "prod-db-admin 1h x", "user_id": "U0EVE", "team_id": "T0EVIL"}},
		{"slash_commands", json.RawMessage(`{"text": 5}`)},
		{"slash_commands", []byte("not json")},
		{"interactive", map[string]any{"type": "block_actions", "team": map[string]any{"id": slackfake.TeamID}, "user": map[string]any{"id": "U0BOB"},
			"actions": []any{map[string]any{"action_id": "approve", "value": "req_doesnotexist"}}}},
		{"interactive", map[string]any{"type": "block_actions", "team": map[string]any{"id": slackfake.TeamID}, "user": map[string]any{"id": "U0BOB"},
			"actions": []any{map[string]any{"action_id": "approve", "value": strings.Repeat("'; DROP TABLE requests; --", 100)}}}},
		{"interactive", map[string]any{"type": "view_submission", "team": map[string]any{"id": slackfake.TeamID}, "user": map[string]any{"id": "U0BOB"}}},
		{"interactive", map[string]any{"type": "view_submission", "team": map[string]any{"id": "T0EVIL"}, "user": map[string]any{"id": "U0BOB"},
			"view": map[string]any{"callback_id": "approve", "private_metadata": "req_x"}}},
		{"interactive", map[string]any{"type": "shortcut"}},
		{"events_api", map[string]any{"type": "event_callback", "event": map[string]any{"type": "app_home_opened", "user": "U0BOB"}}},
		{"nonsense", map[string]any{}},
	}
	for _, p := range payloads {
		if _, err := g.slack.SendRaw(p.kind, p.payload); err != nil {
			t.Errorf("%s %v: %v", p.kind, p.payload, err)
		}
	}
	// Still serving.
	g.command("U0ALICE", "help")
	g.ephemeral("U0ALICE", "Gatehouse")
	if n := len(g.slack.Messages("C0DBA")); n != 0 {
		t.Errorf("hostile payloads posted %d approval messages", n)
	}
}
