package slackfake

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/slack-go/slack"
	"github.com/slack-go/slack/socketmode"
)

func txt(s string) *slack.TextBlockObject {
	return slack.NewTextBlockObject(slack.PlainTextType, s, false, false)
}

func selectEl(actionID string, initial *slack.OptionBlockObject, options ...string) *slack.SelectBlockElement {
	var opts []*slack.OptionBlockObject
	for _, o := range options {
		opts = append(opts, slack.NewOptionBlockObject(o, txt(strings.ReplaceAll(o, "h", " hours")), nil))
	}
	el := slack.NewOptionsSelectBlockElement(slack.OptTypeStatic, nil, actionID, opts...)
	el.InitialOption = initial
	return el
}

// stepOne is the modal /modal opens; extra blocks are appended.
func stepOne(extra ...slack.Block) slack.ModalViewRequest {
	role := slack.NewInputBlock("role", txt("Role"), nil, slack.NewOptionsSelectBlockElement(slack.OptTypeStatic, nil, "role_select",
		slack.NewOptionBlockObject("prod-db-admin", txt("prod-db-admin"), nil)))
	role.DispatchAction = true
	reason := slack.NewPlainTextInputBlockElement(nil, "reason_input")
	reason.InitialValue = "prefill"
	blocks := []slack.Block{
		role,
		slack.NewInputBlock("duration", txt("Duration"), nil, selectEl("duration_select", slack.NewOptionBlockObject("1h", txt("1 hours"), nil), "1h", "2h")),
		slack.NewInputBlock("reason", txt("Reason"), nil, reason),
		slack.NewActionBlock("nav", slack.NewButtonBlockElement("more", "", txt("More"))),
	}
	return slack.ModalViewRequest{
		Type: slack.VTModal, Title: txt("Step 1"), Submit: txt("Send"), CallbackID: "step1",
		ExternalID: "ext-step1", Blocks: slack.Blocks{BlockSet: append(blocks, extra...)},
	}
}

func inputModal(title, callbackID, label string, extra ...slack.Block) *slack.ModalViewRequest {
	blocks := append([]slack.Block{slack.NewInputBlock(strings.ToLower(label), txt(label), nil, slack.NewPlainTextInputBlockElement(nil, "in"))}, extra...)
	return &slack.ModalViewRequest{Type: slack.VTModal, Title: txt(title), Submit: txt("Next"), CallbackID: callbackID, Blocks: slack.Blocks{BlockSet: blocks}}
}

func TestModalStack(t *testing.T) {
	fake, rec := newRecorded(t)
	apiErrs := make(chan string, 10)
	report := func(what string, err error) {
		if err != nil {
			apiErrs <- what + ": " + err.Error()
		} else {
			apiErrs <- what + ": ok"
		}
	}
	startApp(t, fake, func(app *testApp, evt socketmode.Event) {
		if evt.Type == socketmode.EventTypeSlashCommand {
			_ = app.client.Ack(*evt.Request)
			_, err := app.api.OpenView(evt.Data.(slack.SlashCommand).TriggerID, stepOne())
			report("open", err)
			return
		}
		cb := evt.Data.(slack.InteractionCallback)
		switch cb.Type {
		case slack.InteractionTypeBlockActions:
			_ = app.client.Ack(*evt.Request)
			action := cb.ActionCallback.BlockActions[0]
			switch action.ActionID {
			case "role_select":
				chosen := cb.View.State.Values["role"]["role_select"].SelectedOption.Value
				if action.SelectedOption.Value != chosen || cb.Container.ViewID != cb.View.ID {
					t.Errorf("select payload: action %+v, state %q", action, chosen)
				}
				_, err := app.api.UpdateView(stepOne(slack.NewSectionBlock(txt("Selected "+chosen), nil, nil)), "", cb.View.Hash, cb.View.ID)
				report("update", err)
				_, err = app.api.UpdateView(stepOne(), "", cb.View.Hash, cb.View.ID) // the hash is stale now
				report("stale update", err)
			case "more":
				_, err := app.api.PushView(cb.TriggerID, *inputModal("Step 2", "step2", "Note"))
				report("push", err)
				_, err = app.api.PushView(cb.TriggerID, *inputModal("Step 2", "step2", "Note"))
				report("push again", err)
			case "push_more":
				_, err := app.api.PushView(cb.TriggerID, *inputModal("Step 4", "step4", "Note"))
				report("fourth", err)
			}
		case slack.InteractionTypeViewSubmission:
			value := func(block string) string { return cb.View.State.Values[block]["in"].Value }
			switch cb.View.CallbackID {
			case "step1":
				_ = app.client.Ack(*evt.Request)
			case "step2":
				if value("note") == "pop" {
					_ = app.client.Ack(*evt.Request)
					return
				}
				_ = app.client.Ack(*evt.Request, slack.NewPushViewSubmissionResponse(inputModal("Step 3", "step3", "Final",
					slack.NewActionBlock("nav3", slack.NewButtonBlockElement("push_more", "", txt("Push more"))))))
			case "step3":
				_ = app.client.Ack(*evt.Request, slack.NewUpdateViewSubmissionResponse(inputModal("Step 3 done", "step3done", "Final")))
			case "step3done":
				if value("final") == "clear" {
					_ = app.client.Ack(*evt.Request, slack.NewClearViewSubmissionResponse())
					return
				}
				_ = app.client.Ack(*evt.Request, slack.NewErrorsViewSubmissionResponse(map[string]string{"nope": "x"}))
			}
		}
	})
	expect := func(want string) {
		t.Helper()
		select {
		case got := <-apiErrs:
			if got != want {
				t.Errorf("app saw %q, want %q", got, want)
			}
		case <-time.After(2 * time.Second):
			t.Fatalf("app did not report %q", want)
		}
	}

	if _, err := fake.SlashCommand("U1", "C1", "/modal", ""); err != nil {
		t.Fatal(err)
	}
	expect("open: ok")
	v, _ := fake.OpenView("U1")
	if v.Values["Duration"] != "1 hours" || v.Values["Reason"] != "prefill" || v.ExternalID != "ext-step1" {
		t.Errorf("initial values = %v", v.Values)
	}

	// A select without dispatch_action only changes the state.
	if ack, err := fake.SelectOption("U1", "Duration", "2h"); err != nil || ack.Latency != 0 {
		t.Errorf("SelectOption without dispatch: %+v %v", ack, err)
	}
	if _, err := fake.SelectOption("U1", "Duration", "3h"); err == nil {
		t.Error("selecting a missing option succeeded")
	}
	// With dispatch_action, the app gets block_actions and updates the view.
	if _, err := fake.SelectOption("U1", "Role", "prod-db-admin"); err != nil {
		t.Fatal(err)
	}
	expect("update: ok")
	expect("stale update: hash_conflict")
	v, _ = fake.OpenView("U1")
	if !strings.Contains(v.AllText(), "Selected prod-db-admin") || v.Values["Role"] != "prod-db-admin" || v.Values["Duration"] != "2 hours" {
		t.Errorf("after update: %q %v", v.AllText(), v.Values)
	}

	// A button in the modal pushes a view; its trigger works once.
	if _, err := fake.ClickViewButton("U1", "More"); err != nil {
		t.Fatal(err)
	}
	expect("push: ok")
	expect("push again: exchanged_trigger_id")
	if views := fake.Views("U1"); len(views) != 2 || views[1].Title != "Step 2" {
		t.Fatalf("stack = %+v", views)
	}

	// response_action push, then the stack is full.
	ack, err := fake.Submit("U1", map[string]string{"Note": "n"})
	if err != nil || ack.ResponseAction != "push" {
		t.Fatalf("submit step 2: %+v %v", ack, err)
	}
	if _, err := fake.ClickViewButton("U1", "Push more"); err != nil {
		t.Fatal(err)
	}
	expect("fourth: push_limit_reached")

	// response_action update keeps the view's ID.
	top, _ := fake.OpenView("U1")
	if ack, err := fake.Submit("U1", map[string]string{"Final": "x"}); err != nil || ack.ResponseAction != "update" {
		t.Fatalf("submit step 3: %+v %v", ack, err)
	}
	if v, _ := fake.OpenView("U1"); v.Title != "Step 3 done" || v.ID != top.ID || v.Hash == top.Hash || len(fake.Views("U1")) != 3 {
		t.Errorf("after update: %+v (was %+v)", v, top)
	}

	// errors must name input blocks.
	if ack, err := fake.Submit("U1", map[string]string{"Final": "bad"}); err != nil || ack.ResponseAction != "errors" {
		t.Fatalf("submit errors: %+v %v", ack, err)
	}
	// clear closes everything.
	if ack, err := fake.Submit("U1", map[string]string{"Final": "clear"}); err != nil || ack.ResponseAction != "clear" || len(fake.Views("U1")) != 0 {
		t.Fatalf("submit clear: %+v %v, stack %d", ack, err, len(fake.Views("U1")))
	}

	// An empty ack on a pushed view goes back to the previous one.
	if _, err := fake.SlashCommand("U1", "C1", "/modal", ""); err != nil {
		t.Fatal(err)
	}
	expect("open: ok")
	if _, err := fake.ClickViewButton("U1", "More"); err != nil {
		t.Fatal(err)
	}
	expect("push: ok")
	expect("push again: exchanged_trigger_id")
	if _, err := fake.Submit("U1", map[string]string{"Note": "pop"}); err != nil {
		t.Fatal(err)
	}
	if views := fake.Views("U1"); len(views) != 1 || views[0].Title != "Step 1" {
		t.Errorf("after popping: %+v", views)
	}
	if _, err := fake.Submit("U1", map[string]string{"Role": "prod-db-admin"}); err != nil {
		t.Fatal(err)
	}
	if _, open := fake.OpenView("U1"); open {
		t.Error("modal still open")
	}

	wantFailures := []string{"exchanged_trigger_id", "push_limit_reached", `key "nope" is not the block_id of an input block`}
	got := rec.failures()
	if len(got) != len(wantFailures)+1 { // exchanged_trigger_id twice
		t.Errorf("failures = %q", got)
	}
	for _, w := range wantFailures {
		if !rec.has(w) {
			t.Errorf("no failure mentions %q; got %q", w, got)
		}
	}
}

func TestViewsAPIErrors(t *testing.T) {
	fake, rec := newRecorded(t)
	api := slack.New(BotToken, slack.OptionAPIURL(fake.APIURL()))
	modal := *inputModal("Hello", "cb", "Name")
	modal.ExternalID = "ext"

	if _, err := api.OpenView("1.2.bogus", modal); err == nil || err.Error() != "invalid_trigger_id" {
		t.Errorf("bogus trigger: %v", err)
	}
	resp, err := api.OpenView(issueTrigger(fake, "U1"), modal)
	if err != nil || resp.View.ID == "" || resp.View.Hash == "" || resp.View.ExternalID != "ext" || resp.View.State == nil {
		t.Fatalf("views.open = %+v, %v", resp, err)
	}
	// By external_id, with the right hash.
	modal.Title = txt("Hello again")
	if _, err := api.UpdateView(modal, "ext", resp.View.Hash, ""); err != nil {
		t.Fatal(err)
	}
	if v, _ := fake.OpenView("U1"); v.Title != "Hello again" {
		t.Errorf("view = %+v", v)
	}
	if _, err := api.UpdateView(modal, "", "", "V0NOPE"); err == nil || err.Error() != "not_found" {
		t.Errorf("unknown view: %v", err)
	}
	if _, err := api.OpenView(issueTrigger(fake, "U2"), modal); err == nil || err.Error() != "duplicate_external_id" {
		t.Errorf("duplicate external_id: %v", err)
	}

	// App Home.
	home := slack.HomeTabViewRequest{Type: slack.VTHomeTab, Blocks: slack.Blocks{BlockSet: []slack.Block{
		slack.NewSectionBlock(slack.NewTextBlockObject(slack.MarkdownType, "Your grants: none", false, false), nil, nil),
	}}}
	if _, err := api.PublishView("U1", home, ""); err != nil {
		t.Fatal(err)
	}
	if h, ok := fake.Home("U1"); !ok || !strings.Contains(h.AllText(), "Your grants") {
		t.Errorf("home = %+v", h)
	}
	got := rec.failures()
	if len(got) != 1 || !rec.has("invalid_trigger_id") {
		t.Errorf("failures = %q", got)
	}
	if !slices.Equal(fake.Views("U1")[0].Labels(), []string{"Name"}) {
		t.Errorf("labels = %q", fake.Views("U1")[0].Labels())
	}
}
