package handlers

import (
	"context"
	"errors"
	"fmt"

	"github.com/slack-go/slack"

	"github.com/gatehouse/gatehouse/app"
)

// IDs of the Extend surface.
const (
	actionExtend   = "extend"
	callbackExtend = "extend"
)

// extendButton offers to extend a grant; its value is only the grant ID.
func extendButton(grantID string) *slack.ButtonBlockElement {
	return slack.NewButtonBlockElement(actionExtend, grantID, plain("Extend"))
}

// maxExtendButtons bounds the grants offered with an Extend button in one message or tab.
const maxExtendButtons = 10

// extendBlocks is one Extend button per grant, as a block each so they can be told apart.
func extendBlocks(grants []app.Grant) []slack.Block {
	var blocks []slack.Block
	for i, g := range grants {
		if i == maxExtendButtons {
			break
		}
		blocks = append(blocks, slack.NewActionBlock("extend_"+g.ID, extendButton(g.ID)))
	}
	return blocks
}

// onExtendButton opens the Extend form for the grant's holder; anyone else is refused.
func (b *Bot) onExtendButton(ctx context.Context, cb slack.InteractionCallback, action *slack.BlockAction) {
	if !b.sameTeam(cb.Team.ID) {
		b.refuse(ctx, cb, "This Gatehouse serves another workspace. Nothing was changed.")
		return
	}
	g, role, err := b.svc.CheckExtend(ctx, action.Value, cb.User.ID)
	if err != nil {
		b.refuse(ctx, cb, userMessage(err))
		return
	}
	view := extendModal(g, role)
	if err := retry(ctx, func() error { _, err := b.api.OpenViewContext(ctx, cb.TriggerID, view); return err }); err != nil {
		b.log.Error("slack: opening extend modal failed", "grant_id", g.ID, "err", err)
	}
}

// extendModal asks how much longer and why; its private_metadata is only the grant ID.
func extendModal(g app.Grant, role app.Role) slack.ModalViewRequest {
	summary := slack.NewSectionBlock(markdown(fmt.Sprintf("Extend *%s* (grant `%s`, now until %s). The approvers of %s decide, as for any request.",
		g.Role, g.ID, slackDate(g.ExpiresAt), g.Role)), nil, nil)
	return slack.ModalViewRequest{
		Type: slack.VTModal, CallbackID: callbackExtend, PrivateMetadata: g.ID,
		Title: plain("Extend access"), Submit: plain("Request"), Close: plain("Cancel"),
		Blocks: slack.Blocks{BlockSet: []slack.Block{summary, durationInput(role.DurationChoices(), role.DefaultDuration), reasonInput("")}},
	}
}

// onExtendSubmit files the extension request.
func (b *Bot) onExtendSubmit(ctx context.Context, cb slack.InteractionCallback) any {
	if !b.sameTeam(cb.Team.ID) {
		return outcomeView("Extend access", "This Gatehouse serves another workspace. Nothing was changed.")
	}
	r, err := b.svc.ExtendGrant(ctx, cb.View.PrivateMetadata, cb.User.ID, app.RequestInput{
		Duration: inputValue(cb.View.State, blockDuration),
		Reason:   inputValue(cb.View.State, blockReason),
		Key:      cb.View.ID,
	}, app.SourceSlack)
	var input *app.InputError
	if errors.As(err, &input) {
		return fieldErrors(input)
	}
	if err != nil {
		if !isRefusal(err) {
			b.log.Error("filing extension failed", "grant_id", cb.View.PrivateMetadata, "err", err)
		}
		return outcomeView("Extend access", userMessage(err))
	}
	return outcomeView("Extension requested", b.filedText(ctx, r, postWaitSubmission))
}
