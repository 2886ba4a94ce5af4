package handlers

import (
	"context"
	"fmt"

	"github.com/slack-go/slack"

	"github.com/gatehouse/gatehouse/app"
)

// actionReview is the Reviewed button of a break-glass notice; its value is the grant ID.
const actionReview = "review"

// breakGlassMessage renders the notice of a break-glass use as the role's approvers see it:
// loud, who took what, why and for how long, where the grant stands, and while it needs
// review the Reviewed button.
func breakGlassMessage(r app.Request, role app.Role, g app.Grant) (text string, blocks []slack.Block) {
	status := fmt.Sprintf("Grant `%s` is active until %s.", g.ID, slackDate(g.ExpiresAt))
	if g.Status != app.GrantActive {
		status = grantEndLine(g)
	}
	review := fmt.Sprintf(":white_check_mark: Reviewed by %s at %s.", mention(g.ReviewedBy), slackDate(g.ReviewedAt))
	if g.NeedsReview {
		review = ":warning: *Needs review* by an approver of " + r.Role
		if len(role.Approvers) > 0 {
			review += ": " + mentions(role.Approvers)
		}
		review += "."
	}
	text = fmt.Sprintf(":rotating_light: Break-glass: %s took %s for %s without approval. %s %s", principalName(r.Requester), r.Role,
		app.FormatDuration(r.Duration), status, review)
	blocks = []slack.Block{
		slack.NewHeaderBlock(slack.NewTextBlockObject(slack.PlainTextType, clipText(":rotating_light: Break-glass: "+r.Role, 150), true, false)),
		slack.NewSectionBlock(nil, []*slack.TextBlockObject{
			markdown("*Who*\n" + principalName(r.Requester)),
			markdown("*Role*\n" + r.Role + "\n" + clipText(escape(role.Description), 500)),
			markdown("*Duration*\n" + app.FormatDuration(r.Duration)),
			markdown("*Grant ID*\n`" + g.ID + "`"),
			markdown("*Request ID*\n`" + r.ID + "`"),
		}, nil),
		slack.NewSectionBlock(markdown(clipText("*Reason*\n"+quote(r.Reason), maxSectionText)), nil, nil),
		slack.NewSectionBlock(markdown(status), nil, nil),
		slack.NewSectionBlock(markdown(clipText(review, maxSectionText)), nil, nil),
	}
	if g.NeedsReview {
		reviewed := slack.NewButtonBlockElement(actionReview, g.ID, plain("Reviewed")).WithStyle(slack.StylePrimary)
		blocks = append(blocks, slack.NewActionBlock("review", reviewed))
	}
	return clipText(text, maxMessageText), blocks
}

// breakGlassDM tells the user who broke the glass that the access is theirs now.
func breakGlassDM(r app.Request, g app.Grant) string {
	return fmt.Sprintf(":rotating_light: *Break-glass*: you have *%s* now, without approval, for %s. Grant `%s` (request `%s`) is active until %s. "+
		"The approvers were alerted and will review this use.", r.Role, app.FormatDuration(r.Duration), g.ID, r.ID, slackDate(g.ExpiresAt))
}

// breakGlassFiledText answers whoever asked for a break-glass role: the grant they took, or,
// for someone not on its break-glass list, that their request (described by filed) waits
// for approval like any other.
func breakGlassFiledText(r app.Request, channel, filed string) string {
	if r.Status != app.StatusApproved {
		return fmt.Sprintf("You are not on the break-glass list for *%s*, so this is a normal request. %s", r.Role, filed)
	}
	return fmt.Sprintf(":rotating_light: *Break-glass*: grant `%s` gives you *%s* now, without approval, until %s (%s). "+
		"The approvers were alerted in <#%s> and will review this use. Request `%s`.",
		r.GrantID, r.Role, slackDate(r.DecidedAt.Add(r.Duration)), app.FormatDuration(r.Duration), channel, r.ID)
}

// filedTitle titles the form's confirmation: break-glass access is granted, not requested.
func filedTitle(r app.Request) string {
	if r.Status == app.StatusApproved {
		return "Break-glass access"
	}
	return "Access requested"
}

// onReviewButton records a review of a break-glass grant by whoever clicked; the notice is
// redrawn by the app. Someone who may not review is told why, privately.
func (b *Bot) onReviewButton(ctx context.Context, cb slack.InteractionCallback, action *slack.BlockAction) {
	if !b.sameTeam(cb.Team.ID) {
		b.reply(ctx, cb.ResponseURL, "This Gatehouse serves another workspace. Nothing was changed.")
		return
	}
	_, err := b.svc.ReviewGrant(ctx, action.Value, cb.User.ID, app.SourceSlack)
	if err == nil {
		return
	}
	if !isRefusal(err) {
		b.log.Error("recording review failed", "grant_id", action.Value, "user", cb.User.ID, "err", err)
	}
	b.reply(ctx, cb.ResponseURL, userMessage(err))
}
