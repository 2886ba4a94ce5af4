package handlers

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/slack-go/slack"

	"github.com/gatehouse/gatehouse/app"
)

// Slack's limits that shape what we write (see shared/slack-platform.md).
const (
	maxMessageText = 3000 // we stay under the 4000 of a message's text: it is also a section text
	maxSectionText = 3000
	maxOptionText  = 75
)

// userMessage is the one place that turns an error into words for the person who caused
// it: what they did that Gatehouse refused, or that it failed on its own side.
func userMessage(err error) string {
	if msg, ok := refusal(err); ok {
		return msg
	}
	switch {
	case errors.Is(err, app.ErrMembershipUnknown):
		return membershipText
	case errors.Is(err, app.ErrUnavailable):
		return unavailableText
	case errors.Is(err, app.ErrBusy), errors.Is(err, context.DeadlineExceeded):
		return busyText
	}
	return "Something went wrong on Gatehouse's side and nothing was changed. Please try again; if it keeps happening, tell your Gatehouse admins."
}

// isRefusal reports whether err is the person's doing (bad input, no right, too late)
// rather than Gatehouse's failing: only the latter is worth an error in the log.
func isRefusal(err error) bool {
	_, ok := refusal(err)
	return ok
}

// refusal returns the words for an error that is the person's doing, and whether it is one.
func refusal(err error) (string, bool) {
	var input *app.InputError
	switch {
	case errors.As(err, &input):
		msgs := make([]string, len(input.Problems))
		for i, p := range input.Problems {
			msgs[i] = p.Message
		}
		return strings.Join(msgs, " "), true
	case errors.Is(err, app.ErrSelfApproval):
		return "You can't approve or deny your own request. Nothing was changed.", true
	case errors.Is(err, app.ErrNotApprover):
		return "You are not an approver for this role, so you can't approve or deny this request. Nothing was changed.", true
	case errors.Is(err, app.ErrAlreadyDecided):
		return "You have already decided this request; each approver counts once. Nothing was changed.", true
	case errors.Is(err, app.ErrNotPending):
		return "This has already been decided, has ended or has expired. Nothing was changed.", true
	case errors.Is(err, app.ErrNotFound):
		return "Nothing with that ID was found. Nothing was changed.", true
	case errors.Is(err, app.ErrNotAllowed):
		return "That is not yours to do: only a grant's holder can extend it. Nothing was changed.", true
	case errors.Is(err, app.ErrSelfReview):
		return "You can't review your own break-glass access; another approver of the role must. Nothing was changed.", true
	case errors.Is(err, app.ErrNotReviewer):
		return "Only an approver of this role can review a break-glass use. Nothing was changed.", true
	case errors.Is(err, app.ErrAlreadyReviewed):
		return "This break-glass use has already been reviewed. Nothing was changed.", true
	case errors.Is(err, app.ErrBadUserCode):
		return "That sign-in code is unknown, has expired or was already used. Check the code your client shows, or start the sign-in again.", true
	case errors.Is(err, app.ErrTooManyAttempts):
		return "Too many wrong codes. Wait a few minutes, then type the code your client shows.", true
	case errors.Is(err, app.ErrLoginExpired):
		return "That sign-in code has expired. Start the sign-in again in your client.", true
	case errors.Is(err, app.ErrLoginUsed):
		return "That sign-in code was already used. Start the sign-in again in your client.", true
	case errors.Is(err, app.ErrUnknownRole):
		return "This request's role is no longer in the policy, so it can't be decided. Nothing was changed.", true
	}
	return "", false
}

// escape makes user-typed text safe inside mrkdwn: no mentions, links or @channel pings.
func escape(s string) string {
	return strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;").Replace(s)
}

// unescape undoes the HTML escaping Slack applies to slash command text.
func unescape(s string) string {
	return strings.NewReplacer("&lt;", "<", "&gt;", ">", "&amp;", "&").Replace(s)
}

// quote renders a multi-line text as a mrkdwn block quote.
func quote(s string) string {
	return "> " + strings.ReplaceAll(escape(s), "\n", "\n> ")
}

// clipText shortens s to at most n characters.
func clipText(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	return string([]rune(s)[:n-1]) + "…"
}

// mention renders a Slack user or group ID the way Slack shows it.
func mention(id string) string {
	if strings.HasPrefix(id, "S") {
		return "<!subteam^" + id + ">"
	}
	return "<@" + id + ">"
}

// mentions renders a list of IDs as mentions joined by commas.
func mentions(ids []string) string {
	out := make([]string, len(ids))
	for i, id := range ids {
		out[i] = mention(id)
	}
	return strings.Join(out, ", ")
}

// principalName renders who a request is for.
func principalName(p app.Principal) string {
	if p.Kind == app.PrincipalService {
		return "service `" + escape(p.ID) + "`"
	}
	return mention(p.ID)
}

// slackDate renders t in each reader's own time zone, with a UTC fallback.
func slackDate(t time.Time) string {
	return fmt.Sprintf("<!date^%d^{date_short_pretty} {time}|%s>", t.Unix(), t.UTC().Format("2006-01-02 15:04 UTC"))
}

// plain returns a plain_text object (the only kind Slack allows in labels, buttons and titles).
func plain(s string) *slack.TextBlockObject {
	return slack.NewTextBlockObject(slack.PlainTextType, s, false, false)
}

// markdown returns a mrkdwn text object.
func markdown(s string) *slack.TextBlockObject {
	return slack.NewTextBlockObject(slack.MarkdownType, s, false, false)
}
