package handlers

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"slices"

	"github.com/slack-go/slack"

	"github.com/gatehouse/gatehouse/app"
)

// transientCodes are ok:false errors that go away by themselves: retry with backoff.
var transientCodes = []string{"ratelimited", "internal_error", "fatal_error", "service_unavailable", "request_timeout"}

// permanentFixes are ok:false errors that retrying will not cure, with what an admin should do.
var permanentFixes = map[string]string{
	"channel_not_found":       "check the channel ID in the config (approvals_channel or the role's channel)",
	"not_in_channel":          "invite the Gatehouse bot to the channel (/invite @gatehouse)",
	"is_archived":             "unarchive the channel or point the config at another one",
	"invalid_blocks":          "Gatehouse drew a message Slack refuses: report this log line as a bug",
	"invalid_blocks_format":   "Gatehouse drew a message Slack refuses: report this log line as a bug",
	"invalid_metadata_format": "Gatehouse drew a message Slack refuses: report this log line as a bug",
	"msg_too_long":            "Gatehouse drew a message Slack refuses: report this log line as a bug",
	"missing_scope":           "add the scope named in the error to the Slack app (see manifest.yaml) and reinstall it",
	"invalid_auth":            "check SLACK_BOT_TOKEN: Slack does not accept it",
	"not_authed":              "set SLACK_BOT_TOKEN",
	"token_revoked":           "the bot token was revoked: reinstall the app and update SLACK_BOT_TOKEN",
	"account_inactive":        "the bot's account or the user is deactivated",
	"user_not_found":          "the user is no longer in the workspace",
	"no_permission":           "give the bot the permission the workspace's settings require",
	"restricted_action":       "the workspace's settings forbid the bot to post there",
	"no_such_subteam":         "a user group in the policy (approvers, break_glass_users) no longer exists: update the config",
	"message_not_found":       "the approval message was deleted in Slack",
	"thread_not_found":        "the approval message was deleted in Slack",
	"cant_update_message":     "the approval message can no longer be changed",
}

// classify turns a Slack call's error into an *app.DeliveryError saying whether to retry.
// Errors it cannot place are treated as transient: retrying costs little, giving up loses
// what was owed.
func classify(method string, err error) error {
	if err == nil {
		return nil
	}
	de := &app.DeliveryError{Method: method, Code: "error", Err: err}
	var limited *slack.RateLimitedError
	var status slack.StatusCodeError
	var answer slack.SlackErrorResponse
	var netErr net.Error
	switch {
	case errors.Is(err, app.ErrUnknownRole):
		de.Code, de.Permanent, de.Fix = "unknown_role", true, "the request's role is no longer in the policy"
	case errors.As(err, &limited):
		de.Code, de.RetryAfter = "ratelimited", max(limited.RetryAfter, 0)
	case errors.As(err, &status):
		de.Code = fmt.Sprintf("http_%d", status.Code)
		de.Permanent = status.Code < 500 && status.Code != http.StatusTooManyRequests && status.Code != http.StatusRequestTimeout
		if de.Permanent {
			de.Fix = "Slack refused the call itself; check SLACK_API_URL"
		}
	case errors.As(err, &answer):
		de.Code = answer.Err
		if fix, ok := permanentFixes[answer.Err]; ok {
			de.Permanent, de.Fix = true, fix
		}
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &netErr) && netErr.Timeout():
		de.Code = "timeout"
	case errors.As(err, new(*url.Error)), errors.As(err, new(*net.OpError)):
		de.Code = "connection"
	case !slices.Contains(transientCodes, err.Error()) && permanentFixes[err.Error()] != "":
		de.Code, de.Permanent, de.Fix = err.Error(), true, permanentFixes[err.Error()]
	}
	return de
}

// slackDown reports whether err means Slack is not answering (as opposed to refusing).
func slackDown(err error) bool {
	var de *app.DeliveryError
	if !errors.As(classify("", err), &de) {
		return false
	}
	return !de.Permanent && de.Code != "error"
}
