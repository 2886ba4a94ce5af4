package handlers

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/slack-go/slack"

	"github.com/gatehouse/gatehouse/app"
)

// Action and callback IDs of the approval surface.
const (
	actionApprove   = "approve"
	actionDeny      = "deny"
	callbackApprove = "approve"
	callbackDeny    = "deny"
	blockComment    = "comment"
	blockDenyReason = "reason"
)

// approvalMessage renders a request as its approvers see it in the channel: who asks for
// what and why, the decisions so far, whom it was escalated to, and while pending the
// Approve and Deny buttons. A break-glass grant's request is drawn as its notice instead.
func approvalMessage(r app.Request, role app.Role, g *app.Grant) (text string, blocks []slack.Block) {
	if g != nil && g.BreakGlass {
		return breakGlassMessage(r, role, *g)
	}
	outcome := outcomeLine(r, g)
	text = fmt.Sprintf("Access request %s: %s asks for %s for %s. %s", r.ID, principalName(r.Requester), r.Role,
		app.FormatDuration(r.Duration), outcome)
	header := "Access request: " + r.Role
	if r.ExtendsGrantID != "" {
		header = "Extension request: " + r.Role
	}
	blocks = []slack.Block{
		slack.NewHeaderBlock(plain(clipText(header, 150))),
		slack.NewSectionBlock(nil, []*slack.TextBlockObject{
			markdown("*Requester*\n" + principalName(r.Requester)),
			markdown("*Role*\n" + r.Role + "\n" + clipText(escape(role.Description), 500)),
			markdown("*Duration*\n" + app.FormatDuration(r.Duration)),
			markdown(fmt.Sprintf("*Approvals*\n%d / %d", len(r.Approvers()), r.ApprovalsRequired)),
			markdown("*Request ID*\n`" + r.ID + "`"),
		}, nil),
		slack.NewSectionBlock(markdown("*Reason*\n"+quote(r.Reason)), nil, nil),
	}
	if r.ExtendsGrantID != "" {
		blocks = append(blocks, slack.NewContextBlock("", markdown(fmt.Sprintf(
			"Extends grant `%s`: approving moves its end out by %s.", r.ExtendsGrantID, app.FormatDuration(r.Duration)))))
	}
	for _, d := range r.Decisions {
		blocks = append(blocks, slack.NewContextBlock("", markdown(decisionLine(d))))
	}
	if r.Escalated {
		blocks = append(blocks, slack.NewContextBlock("", markdown(escalationLine(role))))
	}
	blocks = append(blocks, slack.NewSectionBlock(markdown(outcome), nil, nil))
	if r.Status == app.StatusPending {
		approve := slack.NewButtonBlockElement(actionApprove, r.ID, plain("Approve")).WithStyle(slack.StylePrimary)
		deny := slack.NewButtonBlockElement(actionDeny, r.ID, plain("Deny")).WithStyle(slack.StyleDanger)
		blocks = append(blocks, slack.NewActionBlock("decide", approve, deny))
	}
	return clipText(text, maxMessageText), blocks
}

// decisionLine renders one decision, its comment clipped so any quorum fits Slack's limits.
func decisionLine(d app.Decision) string {
	verb := ":white_check_mark: Approved by "
	if !d.Approve {
		verb = ":no_entry: Denied by "
	}
	line := verb + mention(d.Approver)
	if d.Comment != "" {
		line += ": " + escape(d.Comment)
	}
	return clipText(line, maxSectionText)
}

// escalationLine says that a request was escalated, and to whom its role escalates.
func escalationLine(role app.Role) string {
	if len(role.EscalateTo) == 0 {
		return ":arrow_double_up: *Escalated*: it was not decided in time."
	}
	return clipText(":arrow_double_up: *Escalated* to "+mentions(role.EscalateTo)+": not decided in time, so they may decide it too.", maxSectionText)
}

// reminderMessage is the thread reply reminding approvers who have not decided a request.
func reminderMessage(r app.Request, approvers []string) string {
	return clipText(fmt.Sprintf("Reminder: %s — this request is still waiting for %s. Open until %s.",
		mentions(approvers), approvalsToGo(r), slackDate(r.ExpiresAt)), maxMessageText)
}

// escalationMessage is the thread reply telling the approvers a request was escalated to.
func escalationMessage(r app.Request, approvers []string) string {
	return clipText(fmt.Sprintf("Escalated to %s: this request was not decided in time and is still waiting for %s. "+
		"You may now approve or deny it with the buttons on the request. Open until %s.",
		mentions(approvers), approvalsToGo(r), slackDate(r.ExpiresAt)), maxMessageText)
}

// approvalsToGo says how many more approvals a pending request needs: "1 more approval".
func approvalsToGo(r app.Request) string {
	n := max(r.ApprovalsRequired-len(r.Approvers()), 1)
	if n == 1 {
		return "1 more approval"
	}
	return fmt.Sprintf("%d more approvals", n)
}

// outcomeLine names where a request (and its grant) stands, in the words people search for.
func outcomeLine(r app.Request, g *app.Grant) string {
	switch r.Status {
	case app.StatusApproved:
		approved := fmt.Sprintf("*Approved* by %s. ", mentions(r.Approvers()))
		if g == nil || g.Status == app.GrantActive {
			return approved + fmt.Sprintf("Grant `%s` is active until %s.", r.GrantID, slackDate(grantEnd(r, g)))
		}
		return approved + grantEndLine(*g)
	case app.StatusDenied:
		d := r.Decisions[len(r.Decisions)-1]
		return fmt.Sprintf("*Denied* by %s: %s", mention(d.Approver), clipText(escape(d.Comment), 1000))
	case app.StatusExpired:
		return "*Expired*: not decided in time."
	case app.StatusCancelled:
		return "*Cancelled*."
	}
	return fmt.Sprintf("Waiting for approval (%d of %d). Open until %s.", len(r.Approvers()), r.ApprovalsRequired, slackDate(r.ExpiresAt))
}

// grantEnd is when an approved request's grant ends: the grant's own end when known (it
// moves with extensions), else the requested duration from approval.
func grantEnd(r app.Request, g *app.Grant) time.Time {
	if g != nil {
		return g.ExpiresAt
	}
	return r.DecidedAt.Add(r.Duration)
}

// grantEndLine says how a grant ended: **Revoked** by whom and why, or **Expired**.
func grantEndLine(g app.Grant) string {
	if g.Status == app.GrantRevoked {
		return fmt.Sprintf("Grant `%s` *Revoked* by %s: %s", g.ID, mention(g.EndedBy), clipText(escape(g.EndReason), 1000))
	}
	return fmt.Sprintf("Grant `%s` *Expired* at %s.", g.ID, slackDate(g.ExpiresAt))
}

// requesterMessage is the DM telling a requester how their request, or its grant, ended.
func requesterMessage(r app.Request, g *app.Grant) string {
	if g != nil && g.BreakGlass && g.Status == app.GrantActive {
		return breakGlassDM(r, *g)
	}
	if g != nil && g.Status != app.GrantActive {
		word := "*Expired*"
		if g.Status == app.GrantRevoked {
			word = "*Revoked*"
		}
		return fmt.Sprintf("%s: your access to *%s* has ended. %s", word, g.Role, grantEndLine(*g))
	}
	what := fmt.Sprintf("your request `%s` for *%s* (%s)", r.ID, r.Role, app.FormatDuration(r.Duration))
	if r.ExtendsGrantID != "" {
		what = fmt.Sprintf("your request `%s` to extend *%s* by %s", r.ID, r.Role, app.FormatDuration(r.Duration))
	}
	switch r.Status {
	case app.StatusApproved:
		return fmt.Sprintf("*Approved*: %s was approved by %s. Grant `%s` is active until %s.", what,
			mentions(r.Approvers()), r.GrantID, slackDate(grantEnd(r, g)))
	case app.StatusDenied:
		d := r.Decisions[len(r.Decisions)-1]
		return fmt.Sprintf("*Denied*: %s was denied by %s: %s", what, mention(d.Approver), clipText(escape(d.Comment), 1000))
	case app.StatusExpired:
		return fmt.Sprintf("*Expired*: %s was not decided in time.", what)
	case app.StatusCancelled:
		return fmt.Sprintf("*Cancelled*: %s was cancelled: the sign-in it was filed for did not go ahead.", what)
	}
	return fmt.Sprintf("%s is waiting for approval.", what)
}

// onDecisionButton answers a click on Approve or Deny: a refusal for someone who may not
// decide, else the decision modal.
func (b *Bot) onDecisionButton(ctx context.Context, cb slack.InteractionCallback, action *slack.BlockAction) {
	if !b.sameTeam(cb.Team.ID) {
		b.reply(ctx, cb.ResponseURL, "This Gatehouse serves another workspace. Nothing was changed.")
		return
	}
	r, err := b.svc.CheckApprover(ctx, action.Value, cb.User.ID)
	if err != nil {
		b.refuse(ctx, cb, userMessage(err))
		return
	}
	view := decisionModal(r, action.ActionID == actionApprove)
	err = retry(ctx, func() error { _, err := b.api.OpenViewContext(ctx, cb.TriggerID, view); return err })
	if err != nil {
		b.log.Error("slack: opening decision modal failed", "request_id", r.ID, "err", err)
		b.reply(ctx, cb.ResponseURL, formProblem(err, "Please click again."))
	}
}

// refuse answers a click privately: in the channel as an ephemeral message, on the Home
// tab (which has no response URL) in a small modal.
func (b *Bot) refuse(ctx context.Context, cb slack.InteractionCallback, text string) {
	if cb.ResponseURL != "" {
		b.reply(ctx, cb.ResponseURL, text)
		return
	}
	view := outcomeView("Gatehouse", text).View
	if _, err := b.api.OpenViewContext(ctx, cb.TriggerID, *view); err != nil {
		b.log.Error("slack: opening refusal failed", "user", cb.User.ID, "err", err)
	}
}

// decisionModal is the form behind Approve (optional Comment) or Deny (required Reason).
// Its private_metadata is only the request ID; who submits is checked again on submit.
func decisionModal(r app.Request, approve bool) slack.ModalViewRequest {
	summary := slack.NewSectionBlock(markdown(clipText(fmt.Sprintf("%s asks for *%s* for *%s*.\n%s", principalName(r.Requester),
		r.Role, app.FormatDuration(r.Duration), quote(r.Reason)), maxSectionText)), nil, nil)
	input := slack.NewPlainTextInputBlockElement(nil, "text")
	input.Multiline = true
	input.MaxLength = app.MaxTextLength
	view := slack.ModalViewRequest{Type: slack.VTModal, PrivateMetadata: r.ID, Close: plain("Cancel")}
	if approve {
		view.CallbackID, view.Title, view.Submit = callbackApprove, plain("Approve request"), plain("Approve")
		block := slack.NewInputBlock(blockComment, plain("Comment"), nil, input)
		block.Optional = true
		view.Blocks = slack.Blocks{BlockSet: []slack.Block{summary, block}}
	} else {
		view.CallbackID, view.Title, view.Submit = callbackDeny, plain("Deny request"), plain("Deny")
		block := slack.NewInputBlock(blockDenyReason, plain("Reason"), plain("The requester sees this."), input)
		view.Blocks = slack.Blocks{BlockSet: []slack.Block{summary, block}}
	}
	return view
}

// onDecisionSubmit records an approve or deny and answers in the ack: field errors keep the
// modal open with the reason; an empty answer closes it.
func (b *Bot) onDecisionSubmit(ctx context.Context, cb slack.InteractionCallback) any {
	approve := cb.View.CallbackID == callbackApprove
	block := blockDenyReason
	if approve {
		block = blockComment
	}
	if !b.sameTeam(cb.Team.ID) {
		return slack.NewErrorsViewSubmissionResponse(map[string]string{block: "This Gatehouse serves another workspace. Nothing was changed."})
	}
	_, err := b.svc.Decide(ctx, app.DecisionInput{
		RequestID: cb.View.PrivateMetadata,
		Approver:  cb.User.ID,
		Approve:   approve,
		Comment:   inputValue(cb.View.State, block),
		Source:    app.SourceSlack,
	})
	if err != nil {
		if !isRefusal(err) {
			b.log.Error("recording decision failed", "request_id", cb.View.PrivateMetadata, "err", err)
		}
		return slack.NewErrorsViewSubmissionResponse(map[string]string{block: clipText(userMessage(err), 2000)})
	}
	return nil
}

// inputValue returns the typed text or picked option value of an input block, trimmed.
func inputValue(state *slack.ViewState, blockID string) string {
	if state == nil {
		return ""
	}
	for _, action := range state.Values[blockID] {
		if action.SelectedOption.Value != "" {
			return action.SelectedOption.Value
		}
		return strings.TrimSpace(action.Value)
	}
	return ""
}
