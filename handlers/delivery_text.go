package handlers

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/slack-go/slack"

	"github.com/gatehouse/gatehouse/app"
)

// Words for what delivery faults mean to people.
const (
	busyText        = "Gatehouse is busy; nothing was changed, try again."
	unavailableText = "Gatehouse can't record anything right now; nothing was changed."
	membershipText  = "Slack could not confirm your user-group membership; nothing was changed, try again in a minute."
)

// waitingText confirms a request its approvers can see.
func waitingText(r app.Request, channel string) string {
	return fmt.Sprintf("Request `%s` for *%s* (%s) is waiting for approval in <#%s>. You'll get a DM when it is decided.",
		r.ID, r.Role, app.FormatDuration(r.Duration), channel)
}

// savedText confirms a request whose message Slack has not taken yet.
func savedText(r app.Request, channel string, followUp bool) string {
	text := fmt.Sprintf("Request `%s` for *%s* (%s) saved; it will be posted to <#%s> as soon as Slack answers.",
		r.ID, r.Role, app.FormatDuration(r.Duration), channel)
	if followUp {
		text += " You'll get a DM when it is posted, and another when it is decided."
	}
	return text
}

// postedText is the follow-up DM once a saved request is posted.
func postedText(r app.Request, channel string) string {
	return fmt.Sprintf("Your request `%s` for *%s* (%s) is posted in <#%s> now and waiting for approval. You'll get a DM when it is decided.",
		r.ID, r.Role, app.FormatDuration(r.Duration), channel)
}

// stuckText tells a requester why Slack will not take their request's message.
func stuckText(r app.Request, channel, problem string) string {
	var why string
	switch problem {
	case "not_in_channel":
		why = fmt.Sprintf("the bot is not in <#%s>; ask an admin to invite it", channel)
	case "channel_not_found", "is_archived":
		why = fmt.Sprintf("Slack says the channel <#%s> does not exist or is archived; ask an admin to fix Gatehouse's config", channel)
	case "missing_scope", "invalid_auth", "token_revoked", "not_authed", "account_inactive":
		why = "Slack does not let the bot post (" + problem + "); ask an admin to fix the Slack app"
	default:
		why = "Slack refused the message (" + problem + "); tell your Gatehouse admins"
	}
	return fmt.Sprintf("Your request `%s` for *%s* could not be posted to the approvers: %s — your request `%s` is saved and will be posted once that is fixed.",
		r.ID, r.Role, why, r.ID)
}

// postWait bounds how long a command's answer waits for the request's message to be posted,
// so that it can say where the request waits instead of that it was saved.
const (
	postWaitCommand    = 2 * time.Second
	postWaitSubmission = time.Second
)

// filedText confirms a filed request to its requester: waiting for approval once the
// approvers can see it, saved (with a DM to follow) while Slack has not taken it.
func (b *Bot) filedText(ctx context.Context, r app.Request, wait time.Duration) string {
	role, _ := b.policy.Role(r.Role)
	channel := b.policy.ChannelFor(role)
	if role.BreakGlass && r.Status == app.StatusApproved {
		return breakGlassFiledText(r, channel, "")
	}
	text := waitingText(r, channel)
	if posted, err := b.svc.AwaitPosted(ctx, r.ID, wait); !posted {
		text = savedText(r, channel, err == nil)
	}
	if role.BreakGlass {
		return breakGlassFiledText(r, channel, text)
	}
	return text
}

// formProblem says why a form did not open: it expired, Slack is down, or Gatehouse is busy.
func formProblem(err error, again string) string {
	var answer slack.SlackErrorResponse
	switch {
	case errors.As(err, &answer) && (answer.Err == "expired_trigger_id" || answer.Err == "exchanged_trigger_id" || answer.Err == "invalid_trigger_id"):
		return "The form expired before Slack let me open it (Slack allows 3 seconds). " + again
	case errors.Is(err, app.ErrUnavailable), errors.Is(err, app.ErrBusy):
		return userMessage(err)
	case slackDown(err):
		return "Slack did not answer, so the form could not open. Nothing was changed. " + again
	}
	return "Slack did not let me open the form. Nothing was changed. " + again
}
