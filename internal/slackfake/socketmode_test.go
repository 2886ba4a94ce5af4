package slackfake

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/slack-go/slack"
	"github.com/slack-go/slack/socketmode"
)

const approvals = "C0APPROVALS"

// approvalApp is a small approval bot: /access posts a request with
// Approve/Deny buttons; a button opens a modal; a submit updates the message,
// DMs the requester and answers the approver through the response_url.
func approvalApp(t *testing.T, fake *Server, seen chan<- slack.SlashCommand) *testApp {
	var mu sync.Mutex
	responseURL := map[string]string{} // approver → response_url of their click
	return startApp(t, fake, func(app *testApp, evt socketmode.Event) {
		switch evt.Type {
		case socketmode.EventTypeSlashCommand:
			cmd := evt.Data.(slack.SlashCommand)
			_ = app.client.Ack(*evt.Request)
			if seen != nil {
				seen <- cmd
			}
			go func() {
				_, _, err := app.api.PostMessage(approvals,
					slack.MsgOptionText("Access request from "+cmd.UserID, false),
					slack.MsgOptionBlocks(
						slack.NewSectionBlock(slack.NewTextBlockObject(slack.MarkdownType, "*"+cmd.UserID+"* asks: "+cmd.Text, false, false), nil, nil),
						slack.NewActionBlock("decide",
							slack.NewButtonBlockElement("approve", cmd.UserID, slack.NewTextBlockObject(slack.PlainTextType, "Approve", false, false)).WithStyle(slack.StylePrimary),
							slack.NewButtonBlockElement("deny", cmd.UserID, slack.NewTextBlockObject(slack.PlainTextType, "Deny", false, false)).WithStyle(slack.StyleDanger),
						),
					))
				if err != nil {
					t.Errorf("PostMessage: %v", err)
				}
			}()
		case socketmode.EventTypeInteractive:
			cb := evt.Data.(slack.InteractionCallback)
			switch cb.Type {
			case slack.InteractionTypeBlockActions:
				_ = app.client.Ack(*evt.Request)
				mu.Lock()
				responseURL[cb.User.ID] = cb.ResponseURL
				mu.Unlock()
				requester := cb.ActionCallback.BlockActions[0].Value
				comment := slack.NewPlainTextInputBlockElement(nil, "comment_input")
				comment.MaxLength = 20
				reason := slack.NewPlainTextInputBlockElement(slack.NewTextBlockObject(slack.PlainTextType, "Why?", false, false), "reason_input")
				view := slack.ModalViewRequest{
					Type:            slack.VTModal,
					Title:           slack.NewTextBlockObject(slack.PlainTextType, "Approve request", false, false),
					Submit:          slack.NewTextBlockObject(slack.PlainTextType, "Approve", false, false),
					Close:           slack.NewTextBlockObject(slack.PlainTextType, "Cancel", false, false),
					CallbackID:      "approve",
					PrivateMetadata: cb.Channel.ID + "|" + cb.Message.Timestamp + "|" + requester,
					Blocks: slack.Blocks{BlockSet: []slack.Block{
						slack.NewInputBlock("comment", slack.NewTextBlockObject(slack.PlainTextType, "Comment", false, false), nil, comment).WithOptional(true),
						slack.NewInputBlock("reason", slack.NewTextBlockObject(slack.PlainTextType, "Reason", false, false), nil, reason),
					}},
				}
				if _, err := app.api.OpenView(cb.TriggerID, view); err != nil {
					t.Errorf("OpenView: %v", err)
				}
			case slack.InteractionTypeViewSubmission:
				reason := cb.View.State.Values["reason"]["reason_input"].Value
				if len(reason) < 5 {
					_ = app.client.Ack(*evt.Request, slack.NewErrorsViewSubmissionResponse(map[string]string{"reason": "Too short"}))
					return
				}
				_ = app.client.Ack(*evt.Request)
				parts := strings.Split(cb.View.PrivateMetadata, "|")
				approver := cb.User.ID
				mu.Lock()
				url := responseURL[approver]
				mu.Unlock()
				go func() {
					outcome := fmt.Sprintf("Approved by %s: %s", approver, reason)
					if _, _, _, err := app.api.UpdateMessage(parts[0], parts[1],
						slack.MsgOptionText(outcome, false),
						slack.MsgOptionBlocks(slack.NewSectionBlock(slack.NewTextBlockObject(slack.MarkdownType, outcome, false, false), nil, nil)),
					); err != nil {
						t.Errorf("UpdateMessage: %v", err)
					}
					if _, _, err := app.api.PostMessage(parts[2], slack.MsgOptionText("Your request was Approved", false)); err != nil {
						t.Errorf("PostMessage DM: %v", err)
					}
					if _, _, err := app.api.PostMessage("", slack.MsgOptionResponseURL(url, slack.ResponseTypeEphemeral), slack.MsgOptionText("Thanks, recorded", false)); err != nil {
						t.Errorf("response_url: %v", err)
					}
				}()
			default:
				_ = app.client.Ack(*evt.Request)
			}
		}
	})
}

func TestSocketModeApprovalFlow(t *testing.T) {
	fake := New(t)
	fake.AddUser("U0REQ", "Rita Requester", "rita@example.com")
	seen := make(chan slack.SlashCommand, 1)
	approvalApp(t, fake, seen)
	if err := fake.Connected(5 * time.Second); err != nil {
		t.Fatal(err)
	}

	// Slash command, with Slack's escaping of & < >.
	ack, err := fake.SlashCommand("U0REQ", "C0GENERAL", "/access", "prod-db <2h> & reason")
	if err != nil {
		t.Fatal(err)
	}
	if ack.Latency <= 0 || ack.Payload != nil {
		t.Errorf("ack = %+v, want a positive latency and no payload", ack)
	}
	cmd := <-seen
	if cmd.Text != "prod-db &lt;2h&gt; &amp; reason" || cmd.Command != "/access" || cmd.TeamID != TeamID ||
		cmd.UserName != "rita" || cmd.TriggerID == "" || !strings.HasPrefix(cmd.ResponseURL, "http://127.0.0.1:") {
		t.Errorf("slash command payload = %+v", cmd)
	}

	// The request message, and a click on Approve.
	msg, err := fake.WaitMessage(approvals, 2*time.Second, func(m Message) bool { return slices.Contains(m.Buttons(), "Approve") })
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(msg.AllText(), "asks: prod-db") || msg.Text != "Access request from U0REQ" {
		t.Errorf("message text = %q", msg.AllText())
	}
	if _, err := fake.ClickButton("U0BOB", msg, "Maybe"); err == nil {
		t.Error("clicking a button that does not exist succeeded")
	}
	if _, err := fake.ClickButton("U0BOB", msg, "Approve"); err != nil {
		t.Fatal(err)
	}
	view, err := fake.WaitView("U0BOB", 2*time.Second, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(view.Labels(), []string{"Comment", "Reason"}) || view.Title != "Approve request" || view.CallbackID != "approve" {
		t.Errorf("modal = %+v labels %q", view, view.Labels())
	}

	// Slack's client refuses a comment over max_length and an empty required input.
	_, err = fake.Submit("U0BOB", map[string]string{"Comment": chars(21), "Reason": "long enough"})
	var cve *ClientValidationError
	if !errors.As(err, &cve) || cve.Problems["Comment"] == "" {
		t.Errorf("over-long comment: err = %v, want a ClientValidationError for Comment", err)
	}
	_, err = fake.Submit("U0BOB", map[string]string{"Comment": "", "Reason": ""})
	if !errors.As(err, &cve) || cve.Problems["Reason"] == "" || cve.Problems["Comment"] != "" {
		t.Errorf("empty reason: err = %v, want a ClientValidationError for Reason only", err)
	}
	if _, err := fake.Submit("U0BOB", map[string]string{"Nope": "x"}); err == nil {
		t.Error("Submit with an unknown label succeeded")
	}

	// The app answers errors: the modal stays open with the message.
	ack, err = fake.Submit("U0BOB", map[string]string{"Reason": "meh"})
	if err != nil {
		t.Fatal(err)
	}
	if ack.ResponseAction != "errors" || ack.Errors["reason"] != "Too short" {
		t.Errorf("ack = %+v, want errors on reason", ack)
	}
	if v, ok := fake.OpenView("U0BOB"); !ok || v.Errors["reason"] != "Too short" || v.Values["Reason"] != "meh" {
		t.Errorf("after errors: open=%v view=%+v", ok, v)
	}

	// A good submit closes the modal and the app reacts.
	ack, err = fake.Submit("U0BOB", map[string]string{"Reason": "incident 4123", "Comment": "ok"})
	if err != nil || ack.ResponseAction != "" {
		t.Fatalf("submit: ack=%+v err=%v", ack, err)
	}
	if _, open := fake.OpenView("U0BOB"); open {
		t.Error("modal still open after an empty ack")
	}
	updated, err := fake.WaitMessage(approvals, 2*time.Second, func(m Message) bool { return m.Updated > 0 })
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(updated.AllText(), "Approved by U0BOB: incident 4123") || len(updated.Buttons()) != 0 || updated.TS != msg.TS {
		t.Errorf("updated message = %q buttons %q", updated.AllText(), updated.Buttons())
	}
	if _, err := fake.WaitDM("U0REQ", 2*time.Second, func(m Message) bool { return strings.Contains(m.Text, "Approved") }); err != nil {
		t.Error(err)
	}
	if _, err := fake.WaitEphemeral("U0BOB", 2*time.Second, func(m Message) bool { return m.Text == "Thanks, recorded" }); err != nil {
		t.Error(err)
	}

	// Slack refreshes the connection: the client reconnects and keeps working.
	fake.Disconnect("refresh_requested")
	if err := fake.Connected(5 * time.Second); err != nil {
		t.Fatal(err)
	}
	if n := fake.Calls("apps.connections.open"); n != 2 {
		t.Errorf("apps.connections.open called %d times, want 2", n)
	}
	if _, err := fake.SlashCommand("U0REQ", "C0GENERAL", "/access", "again"); err != nil {
		t.Fatal(err)
	}
	<-seen
	if _, err := fake.WaitMessage(approvals, 2*time.Second, func(m Message) bool { return strings.Contains(m.AllText(), "asks: again") }); err != nil {
		t.Error(err)
	}
}

func TestExpiredTriggerFailsTheTest(t *testing.T) {
	fake, rec := newRecorded(t)
	fake.TriggerTTL = 20 * time.Millisecond
	openErr := make(chan error, 1)
	startApp(t, fake, func(app *testApp, evt socketmode.Event) {
		cmd := evt.Data.(slack.SlashCommand)
		_ = app.client.Ack(*evt.Request)
		go func() {
			time.Sleep(60 * time.Millisecond) // too slow: the trigger is gone
			_, err := app.api.OpenView(cmd.TriggerID, slack.ModalViewRequest{
				Type: slack.VTModal, Title: slack.NewTextBlockObject(slack.PlainTextType, "Late", false, false),
			})
			openErr <- err
		}()
	})
	if _, err := fake.SlashCommand("U0REQ", "C0GENERAL", "/access", ""); err != nil {
		t.Fatal(err)
	}
	if err := <-openErr; err == nil || err.Error() != "expired_trigger_id" {
		t.Errorf("views.open with an old trigger: err = %v, want expired_trigger_id", err)
	}
	if !rec.has("expired_trigger_id") {
		t.Errorf("the fake did not fail the test; failures: %q", rec.failures())
	}
}

func TestUnackedEnvelopeFailsTheTest(t *testing.T) {
	fake, rec := newRecorded(t)
	fake.AckTimeout = 100 * time.Millisecond
	startApp(t, fake, func(*testApp, socketmode.Event) {}) // never acks
	_, err := fake.SlashCommand("U0REQ", "C0GENERAL", "/access", "")
	if !errors.Is(err, errNotAcked) {
		t.Errorf("err = %v, want not acknowledged", err)
	}
	if !rec.has("envelope not acknowledged within 100ms") {
		t.Errorf("failures = %q", rec.failures())
	}
}

func TestConcurrentSlashCommandsOverTwoConnections(t *testing.T) {
	fake := New(t)
	answer := func(app *testApp, evt socketmode.Event) {
		cmd := evt.Data.(slack.SlashCommand)
		_ = app.client.Ack(*evt.Request, map[string]any{"text": "hello " + cmd.UserID})
	}
	startApp(t, fake, answer)
	startApp(t, fake, answer)
	if !fake.waitFor(5*time.Second, func() bool { return len(fake.conns) == 2 && fake.hasReadyConn() }) {
		t.Fatalf("connections = %d, want 2", fake.Connections())
	}

	const n = 200
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			user := fmt.Sprintf("U%04d", i)
			if _, err := fake.SlashCommand(user, "C0GENERAL", "/access", "list"); err != nil {
				t.Error(err)
				return
			}
			if got := fake.Ephemerals(user); len(got) != 1 || got[0].Text != "hello "+user {
				t.Errorf("%s sees %+v", user, got)
			}
		})
	}
	wg.Wait()
	if got := len(fake.AckLatencies()); got != n {
		t.Errorf("%d acks recorded, want %d", got, n)
	}
}

func TestRedeliverAndSendRaw(t *testing.T) {
	fake := New(t)
	retries := make(chan *socketmode.Request, 4)
	startApp(t, fake, func(app *testApp, evt socketmode.Event) {
		retries <- evt.Request
		_ = app.client.Ack(*evt.Request)
	})
	if _, err := fake.SlashCommand("U0REQ", "C0GENERAL", "/access", "x"); err != nil {
		t.Fatal(err)
	}
	first := <-retries
	if _, err := fake.Redeliver(1); err != nil {
		t.Fatal(err)
	}
	again := <-retries
	if again.RetryAttempt != 1 || again.RetryReason != "timeout" || again.EnvelopeID == first.EnvelopeID || string(again.Payload) != string(first.Payload) {
		t.Errorf("redelivered %+v after %+v", again, first)
	}

	ack, err := fake.SendRaw("interactive", map[string]any{"type": "block_actions", "user": map[string]any{"id": "U0EVIL"}, "actions": []any{}})
	if err != nil || ack.Latency <= 0 {
		t.Fatalf("SendRaw: %+v %v", ack, err)
	}
	if got := <-retries; got.Type != "interactive" {
		t.Errorf("raw envelope type %q", got.Type)
	}
}
