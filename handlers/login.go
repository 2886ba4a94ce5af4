package handlers

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/slack-go/slack"

	"github.com/gatehouse/gatehouse/app"
)

// IDs of the login confirmation modal.
const callbackLogin = "login"

// onLogin answers /access login CODE: the confirmation modal, always, even when no
// approval is needed, so nobody is signed in without seeing who asks.
func (b *Bot) onLogin(ctx context.Context, cmd slack.SlashCommand, code string) {
	if strings.TrimSpace(code) == "" {
		b.reply(ctx, cmd.ResponseURL, "Usage: `/access login CODE`, with the code your client shows (for example `/access login BCDF-GHJK`).")
		return
	}
	pending, err := b.svc.FindLogin(ctx, cmd.UserID, code)
	if err != nil {
		b.reply(ctx, cmd.ResponseURL, userMessage(err))
		return
	}
	view := loginModal(pending)
	err = retry(ctx, func() error { _, err := b.api.OpenViewContext(ctx, cmd.TriggerID, view); return err })
	if err != nil {
		b.log.Error("slack: opening login modal failed", "user", cmd.UserID, "err", err)
		b.reply(ctx, cmd.ResponseURL, formProblem(err, "Please run the command again."))
	}
}

// loginModal shows which client asks for which roles and, for roles without an active
// grant, asks Duration and Reason for the requests confirming will file.
func loginModal(p app.PendingLogin) slack.ModalViewRequest {
	roles := "no elevated role (sign-in only)"
	if len(p.Roles) > 0 {
		roles = "*" + strings.Join(p.Roles, "*, *") + "*"
	}
	blocks := []slack.Block{
		slack.NewSectionBlock(markdown(clipText(fmt.Sprintf("Client `%s` asks to sign you in, with %s.", escape(p.ClientID), roles), maxSectionText)), nil, nil),
		slack.NewContextBlock("", markdown(":warning: Confirm only a sign-in you started yourself, with the code your own client shows. "+
			"Someone who sends you a code is asking for your access.")),
	}
	var asked, taken []string
	for _, r := range p.Missing {
		if slices.ContainsFunc(p.BreakGlass, func(b app.Role) bool { return b.Name == r.Name }) {
			taken = append(taken, r.Name)
		} else {
			asked = append(asked, r.Name)
		}
	}
	if len(asked) > 0 {
		blocks = append(blocks, slack.NewSectionBlock(markdown(clipText(fmt.Sprintf(
			"You hold no active grant for *%s*. Confirming asks the approvers; your client gets its token once approved.",
			strings.Join(asked, "*, *")), maxSectionText)), nil, nil))
	}
	if len(taken) > 0 {
		blocks = append(blocks, slack.NewSectionBlock(markdown(clipText(fmt.Sprintf(
			":rotating_light: Confirming takes *%s* at once (break-glass): the approvers are told and review it afterwards.",
			strings.Join(taken, "*, *")), maxSectionText)), nil, nil))
	}
	if len(p.Missing) > 0 {
		blocks = append(blocks, durationInput(app.CommonDurations(p.Missing)), reasonInput(""))
	}
	return slack.ModalViewRequest{
		Type: slack.VTModal, CallbackID: callbackLogin, PrivateMetadata: p.ID,
		Title: plain("Confirm sign-in"), Submit: plain("Confirm"), Close: plain("Cancel"),
		Blocks: slack.Blocks{BlockSet: blocks},
	}
}

// onLoginSubmit binds the login to whoever submits. Field problems keep the form open;
// anything else replaces it with the outcome.
func (b *Bot) onLoginSubmit(ctx context.Context, cb slack.InteractionCallback) any {
	if !b.sameTeam(cb.Team.ID) {
		return outcomeView("Sign-in", "This Gatehouse serves another workspace. Nothing was changed.")
	}
	l, filed, err := b.svc.ConfirmLogin(ctx, app.LoginConfirmation{
		LoginID:  cb.View.PrivateMetadata,
		User:     cb.User.ID,
		Duration: inputValue(cb.View.State, blockDuration),
		Reason:   inputValue(cb.View.State, blockReason),
		Source:   app.SourceSlack,
	})
	var input *app.InputError
	if errors.As(err, &input) && cb.View.State != nil && len(cb.View.State.Values) > 0 {
		return fieldErrors(input)
	}
	if err != nil {
		if !isRefusal(err) {
			b.log.Error("confirming login failed", "login_id", cb.View.PrivateMetadata, "err", err)
		}
		return outcomeView("Sign-in", userMessage(err))
	}
	if len(filed) == 0 {
		return outcomeView("Signed in", fmt.Sprintf("You are signed in to `%s`. Your client gets its token now.", escape(l.ClientID)))
	}
	lines := make([]string, len(filed))
	waiting := false
	for i, r := range filed {
		if r.Status == app.StatusApproved { // break-glass: granted at once
			lines[i] = fmt.Sprintf("You have *%s* now (break-glass, grant `%s`); its approvers are told and review it.", r.Role, r.GrantID)
			continue
		}
		lines[i], waiting = b.filedText(ctx, r, postWaitSubmission/time.Duration(len(filed))), true
	}
	if !waiting {
		return outcomeView("Signed in", strings.Join(lines, "\n")+"\nYour client gets its token now.")
	}
	return outcomeView("Access requested", strings.Join(lines, "\n")+"\nYour client gets its token once approved.")
}

// outcomeView replaces a submitted form with a message.
func outcomeView(title, text string) *slack.ViewSubmissionResponse {
	return slack.NewUpdateViewSubmissionResponse(&slack.ModalViewRequest{
		Type:   slack.VTModal,
		Title:  plain(title),
		Close:  plain("Done"),
		Blocks: slack.Blocks{BlockSet: []slack.Block{slack.NewSectionBlock(markdown(clipText(text, maxSectionText)), nil, nil)}},
	})
}

// fieldErrors shows each problem next to its input; form fields and blocks share names.
func fieldErrors(input *app.InputError) *slack.ViewSubmissionResponse {
	errs := map[string]string{}
	for _, p := range input.Problems {
		errs[p.Field] = clipText(p.Message, 2000)
	}
	return slack.NewErrorsViewSubmissionResponse(errs)
}
