package handlers

import (
	"context"
	"encoding/json"
	"time"

	"github.com/slack-go/slack"
	"github.com/slack-go/slack/socketmode"

	"github.com/gatehouse/gatehouse/app"
)

// Actions keeps the slash commands the bot acknowledges before carrying them out, so that
// one acknowledged by a process that died is finished after a restart (see app.Action).
type Actions interface {
	// RecordAction keeps a, leased to owner until leaseUntil; false means it was kept already.
	RecordAction(ctx context.Context, a app.Action, owner string, leaseUntil time.Time) (bool, error)
	// FinishAction forgets an action carried out.
	FinishAction(ctx context.Context, key string) error
	// ClaimActions claims up to limit actions whose lease ran out at now.
	ClaimActions(ctx context.Context, owner string, now, leaseUntil time.Time, limit int) ([]app.Action, error)
}

const (
	// recordTimeout bounds the write that keeps a command before its ack: past it, the ack
	// says Gatehouse is busy instead of promising what a crash could lose.
	recordTimeout = time.Second
	// actionLease is how long a process holds a command it acknowledged; past it, another
	// process (or this one after a restart) finishes it. Filing a request again under the
	// command's trigger ID files nothing new.
	actionLease = 10 * time.Second
	// actionPoll is how often the bot looks for commands left unfinished.
	actionPoll = 2 * time.Second
)

// record keeps a slash command before it is acknowledged. It reports whether to go on:
// false when it was kept already (a redelivery) or could not be kept (the ack said so).
func (b *Bot) record(ctx context.Context, req socketmode.Request, key string, received time.Time) bool {
	if b.actions == nil {
		return true
	}
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), recordTimeout)
	defer cancel()
	fresh, err := b.actions.RecordAction(rctx, app.Action{Key: key, Kind: string(req.Type), Payload: req.Payload, ReceivedAt: received},
		b.owner, time.Now().Add(actionLease))
	if err != nil {
		b.log.Error("keeping a command before its ack failed", "envelope_id", req.EnvelopeID, "err", err)
		b.ack(req, map[string]any{"response_type": "ephemeral", "text": busyText}, received)
		return false
	}
	if !fresh {
		b.ack(req, nil, received)
		b.log.Info("slack: ignoring redelivered command", "envelope_id", req.EnvelopeID)
	}
	return fresh
}

// command keeps a slash command, acknowledges it, then carries it out and forgets it. A
// command Slack delivered again is only acknowledged.
func (b *Bot) command(ctx context.Context, req socketmode.Request, key string, received time.Time, cmd slack.SlashCommand) {
	if !b.seen.add(key) {
		b.log.Info("slack: ignoring redelivered envelope", "envelope_id", req.EnvelopeID, "retry_attempt", req.RetryAttempt)
		b.ack(req, nil, received)
		return
	}
	if !b.record(ctx, req, key, received) {
		return
	}
	b.ack(req, nil, received)
	b.workers <- struct{}{}
	defer func() { <-b.workers }()
	hctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), handlerTimeout)
	defer cancel()
	b.onCommand(hctx, cmd)
	b.finish(key)
}

// finish forgets a command carried out.
func (b *Bot) finish(key string) {
	if b.actions == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), recordTimeout)
	defer cancel()
	if err := b.actions.FinishAction(ctx, key); err != nil {
		b.log.Error("forgetting a finished command failed; it may be answered twice", "err", err)
	}
}

// resume finishes, at start and then every actionPoll, the commands acknowledged by a
// process that died before carrying them out.
func (b *Bot) resume(ctx context.Context) {
	if b.actions == nil {
		return
	}
	ticker := time.NewTicker(actionPoll)
	defer ticker.Stop()
	for {
		now := time.Now()
		left, err := b.actions.ClaimActions(ctx, b.owner, now, now.Add(actionLease), maxConcurrentHandlers)
		if err != nil && ctx.Err() == nil {
			b.log.Error("claiming unfinished commands failed", "err", err)
		}
		for _, a := range left {
			var cmd slack.SlashCommand
			if err := json.Unmarshal(a.Payload, &cmd); err != nil {
				b.log.Error("an unfinished command cannot be read; dropping it", "err", err)
				b.finish(a.Key)
				continue
			}
			b.log.Info("finishing a command acknowledged before a restart", "user", cmd.UserID, "received", a.ReceivedAt)
			b.handling.Go(func() {
				b.workers <- struct{}{}
				defer func() { <-b.workers }()
				hctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), handlerTimeout)
				defer cancel()
				b.onCommand(hctx, cmd)
				b.finish(a.Key)
			})
		}
		select {
		case <-ctx.Done():
			return
		case <-ticker.C:
		}
	}
}
