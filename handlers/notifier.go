package handlers

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/slack-go/slack"

	"github.com/gatehouse/gatehouse/app"
)

// Notifier is the Slack implementation of app.Notifier: approval messages in channels and
// DMs to requesters.
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

// PostRequest posts the approval message (for a break-glass grant, its notice) to the role's channel.
func (n *Notifier) PostRequest(ctx context.Context, r app.Request, g *app.Grant) (app.MessageRef, error) {
	role, ok := n.policy.Role(r.Role)
	if !ok {
		return app.MessageRef{}, app.ErrUnknownRole
	}
	text, blocks := approvalMessage(r, role, g)
	var channel, ts string
	err := retry(ctx, func() (err error) {
		channel, ts, err = n.api.PostMessageContext(ctx, n.policy.ChannelFor(role), slack.MsgOptionText(text, false), slack.MsgOptionBlocks(blocks...))
		return err
	})
	if err != nil {
		return app.MessageRef{}, fmt.Errorf("slack: post request %s: %w", r.ID, err)
	}
	return app.MessageRef{Channel: channel, TS: ts}, nil
}

// UpdateRequest redraws the approval message in place.
func (n *Notifier) UpdateRequest(ctx context.Context, r app.Request, g *app.Grant) error {
	role, _ := n.policy.Role(r.Role)
	text, blocks := approvalMessage(r, role, g)
	err := retry(ctx, func() error {
		_, _, _, err := n.api.UpdateMessageContext(ctx, r.Message.Channel, r.Message.TS, slack.MsgOptionText(text, false), slack.MsgOptionBlocks(blocks...))
		return err
	})
	if err != nil {
		return fmt.Errorf("slack: update request %s: %w", r.ID, err)
	}
	return nil
}

// NotifyRequester DMs a person how their request, or later its grant, ended. Services
// learn it from the token endpoint.
func (n *Notifier) NotifyRequester(ctx context.Context, r app.Request, g *app.Grant) error {
	if r.Requester.Kind != app.PrincipalUser {
		return nil
	}
	text := requesterMessage(r, g)
	opts := []slack.MsgOption{slack.MsgOptionText(text, false)}
	if g != nil && g.Status == app.GrantActive && !g.BreakGlass {
		opts = append(opts, slack.MsgOptionBlocks(append([]slack.Block{slack.NewSectionBlock(markdown(text), nil, nil)}, extendBlocks([]app.Grant{*g})...)...))
	}
	err := retry(ctx, func() error {
		_, _, err := n.api.PostMessageContext(ctx, r.Requester.ID, opts...)
		return err
	})
	if err != nil {
		return fmt.Errorf("slack: DM %s about %s: %w", r.Requester.ID, r.ID, err)
	}
	return nil
}

// RemindApprovers replies in the approval message's thread, mentioning the approvers who
// have not decided yet.
func (n *Notifier) RemindApprovers(ctx context.Context, r app.Request, approvers []string) error {
	if err := n.replyInThread(ctx, r, reminderMessage(r, approvers)); err != nil {
		return fmt.Errorf("slack: remind approvers of %s: %w", r.ID, err)
	}
	return nil
}

// AnnounceEscalation replies in the approval message's thread, mentioning the approvers the
// request was escalated to.
func (n *Notifier) AnnounceEscalation(ctx context.Context, r app.Request, approvers []string) error {
	if err := n.replyInThread(ctx, r, escalationMessage(r, approvers)); err != nil {
		return fmt.Errorf("slack: announce escalation of %s: %w", r.ID, err)
	}
	return nil
}

// replyInThread posts text as a reply to the request's approval message.
func (n *Notifier) replyInThread(ctx context.Context, r app.Request, text string) error {
	return retry(ctx, func() error {
		_, _, err := n.api.PostMessageContext(ctx, r.Message.Channel, slack.MsgOptionText(text, false), slack.MsgOptionTS(r.Message.TS))
		return err
	})
}
