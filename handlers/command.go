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

// IDs of the request modal.
const (
	callbackRequest = "request"
	blockRole       = "role"
	blockDuration   = "duration"
	blockReason     = "reason"
	actionRole      = "role"
)

// helpText answers /access help.
const helpText = "*Gatehouse: just-in-time access, approved by people*\n" +
	"• `/access` opens a form to ask for a role.\n" +
	"• `/access <role> <duration> <reason…>` asks straight away, e.g. `/access prod-db-admin 2h incident 4123`. " +
	"Durations use Go syntax: `30m`, `2h`, `1h30m`. Leave out the duration or the reason and the form opens with what you typed.\n" +
	"• Break-glass roles: if you are on the role's break-glass list, asking gives you the access at once; the approvers are alerted and review it afterwards.\n" +
	"• `/access login CODE` confirms a sign-in your client (for example `gatehouse token`) started; it shows the code.\n" +
	"• `/access revoke GRANT_ID [reason]` ends a grant early, and every token that carries it.\n" +
	"• `/access list` shows your grants, your pending requests and the requests waiting on you (also in the Home tab).\n" +
	"• `/access help` shows this.\n" +
	"Approvers get Approve and Deny buttons in the approvals channel; you get a DM with the outcome."

// onCommand answers one /access invocation, after its (empty) ack: answers go to the
// response URL and forms are opened with the trigger. An answer that waits (for the filed
// request to be posted) is returned, to be given without holding a handler slot.
func (b *Bot) onCommand(ctx context.Context, cmd slack.SlashCommand) (then func(context.Context)) {
	if !b.sameTeam(cmd.TeamID) {
		b.reply(ctx, cmd.ResponseURL, "This Gatehouse serves another workspace. Nothing was changed.")
		return nil
	}
	text := strings.TrimSpace(unescape(cmd.Text))
	word, rest := cutWord(text)
	switch strings.ToLower(word) {
	case "":
		b.openRequestModal(ctx, cmd, app.RequestInput{})
	case "help":
		b.reply(ctx, cmd.ResponseURL, helpText)
	case "login":
		b.onLogin(ctx, cmd, rest)
	case "revoke":
		b.onRevoke(ctx, cmd, rest)
	case "list":
		b.onList(ctx, cmd)
	default:
		duration, reason := cutWord(rest)
		return b.requestFromText(ctx, cmd, app.RequestInput{Role: word, Duration: duration, Reason: reason})
	}
	return nil
}

// requestFromText files a request typed in full; a missing reason opens the form prefilled,
// anything invalid gets an answer saying what and files nothing. The confirmation of a filed
// request is returned: it waits for the request to be posted, to say where it waits.
func (b *Bot) requestFromText(ctx context.Context, cmd slack.SlashCommand, in app.RequestInput) (then func(context.Context)) {
	if err := b.svc.CheckRequest(in); err != nil {
		var input *app.InputError
		if !errors.As(err, &input) {
			b.reply(ctx, cmd.ResponseURL, userMessage(err))
			return nil
		}
		missingReasonOnly := in.Reason == "" && len(input.Problems) == 1 && input.Problems[0].Field == app.FieldReason
		if missingReasonOnly {
			b.openRequestModal(ctx, cmd, in)
			return nil
		}
		b.reply(ctx, cmd.ResponseURL, userMessage(err)+" Nothing was requested. Try `/access help`.")
		return nil
	}
	in.Key = cmd.TriggerID // a command finished again after a restart files nothing new
	r, err := b.svc.RequestAccess(ctx, app.User(cmd.UserID), in, app.SourceSlack)
	if err != nil {
		if !isRefusal(err) {
			b.log.Error("filing request failed", "user", cmd.UserID, "err", err)
		}
		b.reply(ctx, cmd.ResponseURL, userMessage(err))
		return nil
	}
	return func(ctx context.Context) { b.reply(ctx, cmd.ResponseURL, b.filedText(ctx, r, postWaitCommand)) }
}

// cutWord splits off the first word of s; the rest keeps its inner spacing.
func cutWord(s string) (word, rest string) {
	s = strings.TrimSpace(s)
	i := strings.IndexFunc(s, func(r rune) bool { return r == ' ' || r == '\t' || r == '\n' || r == '\u00a0' })
	if i < 0 {
		return s, ""
	}
	return s[:i], strings.TrimSpace(s[i:])
}

func (b *Bot) openRequestModal(ctx context.Context, cmd slack.SlashCommand, in app.RequestInput) {
	view := requestModal(b.policy, in)
	err := retry(ctx, func() error { _, err := b.api.OpenViewContext(ctx, cmd.TriggerID, view); return err })
	if err != nil {
		b.log.Error("slack: opening request modal failed", "user", cmd.UserID, "err", err)
		b.reply(ctx, cmd.ResponseURL, formProblem(err, "Please run the command again."))
	}
}

// requestModal is the form to ask for a role, prefilled with whatever in holds. The
// Duration choices follow the selected role; picking another role redraws the form.
func requestModal(policy app.Policy, in app.RequestInput) slack.ModalViewRequest {
	role, hasRole := policy.Role(strings.ToLower(in.Role))

	var roleOptions []*slack.OptionBlockObject
	var selectedRole *slack.OptionBlockObject
	for _, r := range policy.Roles {
		opt := slack.NewOptionBlockObject(r.Name, plain(r.Name), plain(clipText(r.Description, maxOptionText)))
		roleOptions = append(roleOptions, opt)
		if hasRole && r.Name == role.Name {
			selectedRole = opt
		}
	}
	roleSelect := slack.NewOptionsSelectBlockElement(slack.OptTypeStatic, plain("Pick a role"), actionRole, roleOptions...)
	roleSelect.InitialOption = selectedRole
	roleInput := slack.NewInputBlock(blockRole, plain("Role"), nil, roleSelect)
	roleInput.DispatchAction = true

	durations := allDurationChoices(policy)
	var initialDuration time.Duration
	if hasRole {
		durations = role.DurationChoices()
		initialDuration = role.DefaultDuration
		if d, err := time.ParseDuration(in.Duration); err == nil && d > 0 && d <= role.MaxDuration {
			initialDuration = d
			if !slices.Contains(durations, d) {
				durations = append(durations, d)
				slices.Sort(durations)
			}
		}
	}
	duration := durationInput(durations, initialDuration)
	duration.Hint = plain("The access starts when the request is approved.")
	if hasRole {
		duration.Hint = plain(fmt.Sprintf("At most %s for %s. The access starts when the request is approved.", app.FormatDuration(role.MaxDuration), role.Name))
	}
	return slack.ModalViewRequest{
		Type:       slack.VTModal,
		CallbackID: callbackRequest,
		Title:      plain("Request access"),
		Submit:     plain("Request"),
		Close:      plain("Cancel"),
		Blocks:     slack.Blocks{BlockSet: []slack.Block{roleInput, duration, reasonInput(in.Reason)}},
	}
}

// durationInput is the Duration select, offering choices with initial preselected.
func durationInput(choices []time.Duration, initial time.Duration) *slack.InputBlock {
	var options []*slack.OptionBlockObject
	var selected *slack.OptionBlockObject
	for _, d := range choices {
		opt := slack.NewOptionBlockObject(app.FormatDuration(d), plain(app.FormatDuration(d)), nil)
		options = append(options, opt)
		if d == initial {
			selected = opt
		}
	}
	sel := slack.NewOptionsSelectBlockElement(slack.OptTypeStatic, plain("How long"), blockDuration, options...)
	sel.InitialOption = selected
	return slack.NewInputBlock(blockDuration, plain("Duration"), nil, sel)
}

// reasonInput is the required Reason input.
func reasonInput(initial string) *slack.InputBlock {
	reason := slack.NewPlainTextInputBlockElement(plain("Why do you need it? e.g. incident 4123"), blockReason)
	reason.Multiline = true
	reason.MaxLength = app.MaxTextLength
	reason.InitialValue = clipText(initial, app.MaxTextLength)
	return slack.NewInputBlock(blockReason, plain("Reason"), nil, reason)
}

// allDurationChoices offers, before a role is picked, every duration some role allows.
func allDurationChoices(policy app.Policy) []time.Duration {
	var all []time.Duration
	for _, r := range policy.Roles {
		all = append(all, r.DurationChoices()...)
	}
	slices.Sort(all)
	all = slices.Compact(all)
	if len(all) > 100 {
		all = all[:100]
	}
	return all
}

// onRolePicked redraws the request form for the picked role, keeping the typed reason.
func (b *Bot) onRolePicked(ctx context.Context, cb slack.InteractionCallback, action *slack.BlockAction) {
	in := app.RequestInput{Role: action.SelectedOption.Value, Reason: inputValue(cb.View.State, blockReason)}
	view := requestModal(b.policy, in)
	err := retry(ctx, func() error { _, err := b.api.UpdateViewContext(ctx, view, "", cb.View.Hash, cb.View.ID); return err })
	if err != nil {
		b.log.Info("slack: redrawing request form failed", "user", cb.User.ID, "err", err)
	}
}

// onRequestSubmit files the request from the form. Field problems keep the form open with
// each message next to its input; success replaces the form with the confirmation.
func (b *Bot) onRequestSubmit(ctx context.Context, cb slack.InteractionCallback) any {
	if !b.sameTeam(cb.Team.ID) {
		return slack.NewErrorsViewSubmissionResponse(map[string]string{blockRole: "This Gatehouse serves another workspace. Nothing was changed."})
	}
	in := app.RequestInput{
		Role:     inputValue(cb.View.State, blockRole),
		Duration: inputValue(cb.View.State, blockDuration),
		Reason:   inputValue(cb.View.State, blockReason),
		Key:      cb.View.ID, // one request per form, however often it is submitted
	}
	r, err := b.svc.RequestAccess(ctx, app.User(cb.User.ID), in, app.SourceSlack)
	if err != nil {
		var input *app.InputError
		if !errors.As(err, &input) {
			if !isRefusal(err) {
				b.log.Error("filing request failed", "user", cb.User.ID, "err", err)
			}
			return slack.NewErrorsViewSubmissionResponse(map[string]string{blockReason: userMessage(err)})
		}
		return fieldErrors(input)
	}
	return outcomeView(filedTitle(r), b.filedText(ctx, r, postWaitSubmission))
}

// onInteractionFunc returns the work for a button click, a form change or a submission.
func (b *Bot) onInteractionFunc(cb slack.InteractionCallback) func(context.Context) any {
	return func(ctx context.Context) any {
		switch cb.Type {
		case slack.InteractionTypeViewSubmission:
			switch cb.View.CallbackID {
			case callbackRequest:
				return b.onRequestSubmit(ctx, cb)
			case callbackApprove, callbackDeny:
				return b.onDecisionSubmit(ctx, cb)
			case callbackLogin:
				return b.onLoginSubmit(ctx, cb)
			case callbackExtend:
				return b.onExtendSubmit(ctx, cb)
			}
		case slack.InteractionTypeBlockActions:
			for _, action := range cb.ActionCallback.BlockActions {
				switch action.ActionID {
				case actionApprove, actionDeny:
					b.onDecisionButton(ctx, cb, action)
				case actionReview:
					b.onReviewButton(ctx, cb, action)
				case actionRole:
					b.onRolePicked(ctx, cb, action)
				case actionExtend:
					b.onExtendButton(ctx, cb, action)
				}
			}
		}
		return nil
	}
}

// onRevoke answers /access revoke ID [reason].
func (b *Bot) onRevoke(ctx context.Context, cmd slack.SlashCommand, text string) {
	id, reason := cutWord(text)
	if id == "" {
		b.reply(ctx, cmd.ResponseURL, "Usage: `/access revoke GRANT_ID [reason]`. The grant ID (grt_…) is in the approval message and your DM.")
		return
	}
	if reason == "" {
		reason = "revoked early"
	}
	g, err := b.svc.RevokeGrant(ctx, id, cmd.UserID, reason, app.SourceSlack)
	if errors.Is(err, app.ErrNotAllowed) {
		b.reply(ctx, cmd.ResponseURL, "That is not yours to do: only a grant's holder, an approver of its role or a Gatehouse admin can revoke it. Nothing was changed.")
		return
	}
	if err != nil {
		b.reply(ctx, cmd.ResponseURL, userMessage(err))
		return
	}
	b.reply(ctx, cmd.ResponseURL, fmt.Sprintf("*Revoked*: grant `%s` (%s for %s). Every token that carries it stops working now.",
		g.ID, g.Role, principalName(g.Principal)))
}
