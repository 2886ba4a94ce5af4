package handlers

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/slack-go/slack"

	"github.com/gatehouse/gatehouse/app"
)

// Notifier is the Slack implementation of app.Notifier: approval messages in channels and
// DMs to requesters. It makes one attempt per call and says in an *app.DeliveryError whether
// another may help; app's delivery loop does the retrying.
type Notifier struct {
	*Homes
	api    *slack.Client
	policy app.Policy
	log    *slog.Logger
}

var _ app.Notifier = (*Notifier)(nil)

// NewNotifier returns a Notifier posting with api and redrawing App Homes with homes.
func NewNotifier(api *slack.Client, policy app.Policy, homes *Homes, log *slog.Logger) *Notifier {
	return &Notifier{Homes: homes, api: api, policy: policy, log: log}
}

// requestEvent is the metadata event type that tags an approval message with its request.
const requestEvent = "gatehouse_request"

// historyPages bounds the channel history searched for a request's message (200 each).
const historyPages = 5

// PostRequest posts the approval message (for a break-glass grant, its notice) to the role's
// channel, tagged with the request ID in its metadata.
func (n *Notifier) PostRequest(ctx context.Context, r app.Request, g *app.Grant) (app.MessageRef, error) {
	role, ok := n.policy.Role(r.Role)
	if !ok {
		return app.MessageRef{}, classify("chat.postMessage", app.ErrUnknownRole)
	}
	text, blocks := approvalMessage(r, role, g)
	channel, ts, err := n.api.PostMessageContext(ctx, n.policy.ChannelFor(role), slack.MsgOptionText(text, false),
		slack.MsgOptionBlocks(blocks...), slack.MsgOptionMetadata(slack.SlackMetadata{
			EventType: requestEvent, EventPayload: map[string]any{"request_id": r.ID}}))
	if err != nil {
		return app.MessageRef{}, fmt.Errorf("slack: post request %s: %w", r.ID, classify("chat.postMessage", err))
	}
	return app.MessageRef{Channel: channel, TS: ts}, nil
}

// FindRequestMessage looks through the recent history of the role's channel for the message
// tagged with r's ID.
func (n *Notifier) FindRequestMessage(ctx context.Context, r app.Request) (app.MessageRef, error) {
	role, ok := n.policy.Role(r.Role)
	if !ok {
		return app.MessageRef{}, classify("conversations.history", app.ErrUnknownRole)
	}
	params := &slack.GetConversationHistoryParameters{ChannelID: n.policy.ChannelFor(role), Limit: 200, IncludeAllMetadata: true}
	for range historyPages {
		page, err := n.api.GetConversationHistoryContext(ctx, params)
		if err != nil {
			return app.MessageRef{}, fmt.Errorf("slack: find message of %s: %w", r.ID, classify("conversations.history", err))
		}
		for _, m := range page.Messages {
			if m.Metadata.EventType == requestEvent && m.Metadata.EventPayload["request_id"] == r.ID {
				return app.MessageRef{Channel: params.ChannelID, TS: m.Timestamp}, nil
			}
		}
		if !page.HasMore {
			break
		}
		params.Cursor = page.ResponseMetaData.NextCursor
	}
	return app.MessageRef{}, app.ErrNotFound
}

// UpdateRequest redraws the approval message in place.
func (n *Notifier) UpdateRequest(ctx context.Context, r app.Request, g *app.Grant) error {
	role, _ := n.policy.Role(r.Role)
	text, blocks := approvalMessage(r, role, g)
	_, _, _, err := n.api.UpdateMessageContext(ctx, r.Message.Channel, r.Message.TS, slack.MsgOptionText(text, false), slack.MsgOptionBlocks(blocks...))
	if err != nil {
		return fmt.Errorf("slack: update request %s: %w", r.ID, classify("chat.update", err))
	}
	return nil
}

// NotifyRequester DMs a person how their request, or later its grant, ended.
func (n *Notifier) NotifyRequester(ctx context.Context, r app.Request, g *app.Grant, tag string) error {
	text := requesterMessage(r, g)
	opts := []slack.MsgOption{slack.MsgOptionText(text, false)}
	if g != nil && g.Status == app.GrantActive && !g.BreakGlass {
		opts = append(opts, slack.MsgOptionBlocks(append([]slack.Block{slack.NewSectionBlock(markdown(text), nil, nil)}, extendBlocks([]app.Grant{*g})...)...))
	}
	return n.dm(ctx, r, tag, opts...)
}

// NotifyPosted DMs a requester who was told their request was saved that it is posted now.
func (n *Notifier) NotifyPosted(ctx context.Context, r app.Request, tag string) error {
	return n.dm(ctx, r, tag, slack.MsgOptionText(postedText(r, r.Message.Channel), false))
}

// NotifyStuck DMs the requester that their saved request cannot be posted, and why.
func (n *Notifier) NotifyStuck(ctx context.Context, r app.Request, problem, tag string) error {
	role, _ := n.policy.Role(r.Role)
	return n.dm(ctx, r, tag, slack.MsgOptionText(stuckText(r, n.policy.ChannelFor(role), problem), false))
}

// deliveryEvent is the metadata event type that tags a direct message or thread reply with
// the delivery that owed it.
const deliveryEvent = "gatehouse_delivery"

// dm posts a direct message to a request's requester, tagged.
func (n *Notifier) dm(ctx context.Context, r app.Request, tag string, opts ...slack.MsgOption) error {
	opts = append(opts, slack.MsgOptionMetadata(slack.SlackMetadata{EventType: deliveryEvent, EventPayload: map[string]any{"delivery": tag}}))
	if _, _, err := n.api.PostMessageContext(ctx, r.Requester.ID, opts...); err != nil {
		return fmt.Errorf("slack: DM %s about %s: %w", r.Requester.ID, r.ID, classify("chat.postMessage", err))
	}
	return nil
}

// Sent looks for a message tagged tag: among the replies in the thread of the message where
// names or, with where.TS empty, among the latest direct messages to the user where.Channel.
func (n *Notifier) Sent(ctx context.Context, where app.MessageRef, tag string) (bool, error) {
	if where.TS != "" {
		return n.replySent(ctx, where, tag)
	}
	user := where.Channel
	ch, _, _, err := n.api.OpenConversationContext(ctx, &slack.OpenConversationParameters{Users: []string{user}})
	if err != nil {
		return false, fmt.Errorf("slack: open DM with %s: %w", user, classify("conversations.open", err))
	}
	page, err := n.api.GetConversationHistoryContext(ctx, &slack.GetConversationHistoryParameters{ChannelID: ch.ID, Limit: 100, IncludeAllMetadata: true})
	if err != nil {
		return false, fmt.Errorf("slack: DMs to %s: %w", user, classify("conversations.history", err))
	}
	return tagged(page.Messages, tag), nil
}

// replySent looks through the thread of the message at thread for a reply tagged tag.
func (n *Notifier) replySent(ctx context.Context, thread app.MessageRef, tag string) (bool, error) {
	params := &slack.GetConversationRepliesParameters{ChannelID: thread.Channel, Timestamp: thread.TS, Limit: 200, IncludeAllMetadata: true}
	for range historyPages {
		replies, more, next, err := n.api.GetConversationRepliesContext(ctx, params)
		if err != nil {
			return false, fmt.Errorf("slack: replies to %s in %s: %w", thread.TS, thread.Channel, classify("conversations.replies", err))
		}
		if tagged(replies, tag) {
			return true, nil
		}
		if !more {
			break
		}
		params.Cursor = next
	}
	return false, nil
}

// tagged reports whether one of messages is tagged with delivery tag.
func tagged(messages []slack.Message, tag string) bool {
	for _, m := range messages {
		if m.Metadata.EventType == deliveryEvent && m.Metadata.EventPayload["delivery"] == tag {
			return true
		}
	}
	return false
}

// RemindApprovers replies in the approval message's thread, mentioning the approvers who
// have not decided yet.
func (n *Notifier) RemindApprovers(ctx context.Context, r app.Request, approvers []string, tag string) error {
	if err := n.replyInThread(ctx, r, reminderMessage(r, approvers), tag); err != nil {
		return fmt.Errorf("slack: remind approvers of %s: %w", r.ID, err)
	}
	return nil
}

// AnnounceEscalation replies in the approval message's thread, mentioning the approvers the
// request was escalated to.
func (n *Notifier) AnnounceEscalation(ctx context.Context, r app.Request, approvers []string, tag string) error {
	if err := n.replyInThread(ctx, r, escalationMessage(r, approvers), tag); err != nil {
		return fmt.Errorf("slack: announce escalation of %s: %w", r.ID, err)
	}
	return nil
}

// replyInThread posts text as a reply to the request's approval message, tagged with the
// delivery that owes it.
func (n *Notifier) replyInThread(ctx context.Context, r app.Request, text, tag string) error {
	_, _, err := n.api.PostMessageContext(ctx, r.Message.Channel, slack.MsgOptionText(text, false), slack.MsgOptionTS(r.Message.TS),
		slack.MsgOptionMetadata(slack.SlackMetadata{EventType: deliveryEvent, EventPayload: map[string]any{"delivery": tag}}))
	return classify("chat.postMessage", err)
}
