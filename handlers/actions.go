package handlers

import (
	"context"
	"encoding/json"
	"strings"
	"time"

	"github.com/slack-go/slack"
	"github.com/slack-go/slack/socketmode"

	"github.com/gatehouse/gatehouse/app"
)

// Actions keeps the slash commands the bot acknowledges before carrying them out, so that
// one acknowledged by a process that died is finished after a restart (see app.Action).
type Actions interface {
	// RecordActions keeps actions in one write, each leased to owner until leaseUntil, and
	// reports for each whether it is new (false: it was kept already, a redelivery).
	RecordActions(ctx context.Context, actions []app.Action, owner string, leaseUntil time.Time) ([]bool, error)
	// FinishActions forgets actions carried out, in one write.
	FinishActions(ctx context.Context, keys []string) error
	// ClaimActions claims up to limit actions whose lease ran out at now.
	ClaimActions(ctx context.Context, owner string, now, leaseUntil time.Time, limit int) ([]app.Action, error)
	// RenewActions extends to leaseUntil the leases of the actions owner holds.
	RenewActions(ctx context.Context, owner string, leaseUntil time.Time) error
}

const (
	// recordTimeout bounds the write that keeps commands before their ack: past it, the ack
	// says Gatehouse is busy, or cannot record anything, instead of promising what a crash
	// could lose.
	recordTimeout = time.Second
	// actionLease is how long a process holds a command it acknowledged unless it renews
	// the lease (it does every actionPoll while it carries the command out, however long
	// that takes); past it, another process (or this one after a restart) finishes it.
	// Filing a request again under the command's trigger ID files nothing new.
	actionLease = 10 * time.Second
	// actionPoll is how often the bot renews its leases and looks for commands left
	// unfinished.
	actionPoll = 2 * time.Second
	// maxBatch bounds the commands kept, or forgotten, in one write.
	maxBatch = 256
)

// commandEnvelope is a slash command waiting to be kept and acknowledged.
type commandEnvelope struct {
	req      socketmode.Request
	key      string
	received time.Time
	cmd      slack.SlashCommand
}

// keepCommands keeps the slash commands that arrive, as many at a time as are waiting (a
// burst costs one write, not one each), acknowledges them, and starts their work, until
// ctx ends.
func (b *Bot) keepCommands(ctx context.Context) {
	for {
		var batch []commandEnvelope
		select {
		case <-ctx.Done():
			return
		case c := <-b.commands:
			batch = append(batch, c)
		}
	more:
		for len(batch) < maxBatch {
			select {
			case c := <-b.commands:
				batch = append(batch, c)
			default:
				break more
			}
		}
		for _, c := range b.record(ctx, batch) {
			b.ack(c.req, nil, c.received)
			b.handling.Go(func() { b.carryOut(ctx, c.cmd, c.key) })
		}
	}
}

// carryOut runs a kept command in a handler slot, gives the answer that waits after
// leaving the slot, and then forgets the command: one killed before it answered is
// carried out again after a restart.
func (b *Bot) carryOut(ctx context.Context, cmd slack.SlashCommand, key string) {
	b.carrying.Add(1)
	defer b.carrying.Add(-1)
	hctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), handlerTimeout)
	defer cancel()
	// A form must open within Slack's 3 s of the trigger, and opening one costs a Slack
	// call, not the database: forms have slots of their own, never behind filings.
	slots := b.workers
	if opensForm(cmd) {
		slots = b.forms
	}
	slots <- struct{}{}
	then := b.onCommand(hctx, cmd)
	<-slots
	if then != nil {
		then(hctx)
	}
	b.finished <- key
}

// opensForm reports whether cmd only opens the request form (a bare /access) or answers
// with help: neither reaches the database.
func opensForm(cmd slack.SlashCommand) bool {
	word, _ := cutWord(unescape(cmd.Text))
	return word == "" || strings.EqualFold(word, "help")
}

// record keeps a batch of commands and returns those to carry out: a command Slack
// delivered again is acknowledged and dropped; if the batch cannot be kept, each is
// acknowledged with words saying so.
func (b *Bot) record(ctx context.Context, batch []commandEnvelope) []commandEnvelope {
	var fresh []commandEnvelope
	for _, c := range batch {
		if b.seen.add(c.key) {
			fresh = append(fresh, c)
			continue
		}
		b.log.Info("slack: ignoring redelivered envelope", "envelope_id", c.req.EnvelopeID, "retry_attempt", c.req.RetryAttempt)
		b.ack(c.req, nil, c.received)
	}
	if b.actions == nil || len(fresh) == 0 {
		return fresh
	}
	actions := make([]app.Action, len(fresh))
	for i, c := range fresh {
		actions[i] = app.Action{Key: c.key, Kind: string(c.req.Type), Payload: c.req.Payload, ReceivedAt: c.received}
	}
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), recordTimeout)
	defer cancel()
	isNew, err := b.actions.RecordActions(rctx, actions, b.owner, time.Now().Add(actionLease))
	if err != nil {
		b.log.Error("keeping commands before their ack failed", "commands", len(fresh), "err", err)
		for _, c := range fresh {
			b.ack(c.req, map[string]any{"response_type": "ephemeral", "text": userMessage(err)}, c.received)
		}
		return nil
	}
	var kept []commandEnvelope
	for i, c := range fresh {
		if !isNew[i] {
			b.log.Info("slack: ignoring redelivered command", "envelope_id", c.req.EnvelopeID)
			b.ack(c.req, nil, c.received)
			continue
		}
		kept = append(kept, c)
	}
	return kept
}

// forgetCommands forgets the commands carried out, as many at a time as are done, until
// ctx ends; then it forgets those done meanwhile.
func (b *Bot) forgetCommands(ctx context.Context) {
	forget := func(keys []string) {
		if b.actions == nil || len(keys) == 0 {
			return
		}
		fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), recordTimeout)
		defer cancel()
		if err := b.actions.FinishActions(fctx, keys); err != nil {
			b.log.Error("forgetting finished commands failed; they may be answered twice", "err", err)
		}
	}
	for {
		var keys []string
		select {
		case <-ctx.Done():
		case key := <-b.finished:
			keys = append(keys, key)
		}
	more:
		for len(keys) < maxBatch {
			select {
			case key := <-b.finished:
				keys = append(keys, key)
			default:
				break more
			}
		}
		forget(keys)
		if ctx.Err() != nil && len(keys) == 0 {
			return
		}
	}
}

// resume keeps, every actionPoll, the leases on the commands this process is carrying out,
// and finishes, at start and then every actionPoll, the commands acknowledged by a process
// that died before carrying them out.
func (b *Bot) resume(ctx context.Context) {
	if b.actions == nil {
		return
	}
	ticker := time.NewTicker(actionPoll)
	defer ticker.Stop()
	for {
		now := time.Now()
		cctx, cancel := context.WithTimeout(ctx, recordTimeout) // a database that stops answering must not hold the loop
		if b.carrying.Load() > 0 {
			if err := b.actions.RenewActions(cctx, b.owner, now.Add(actionLease)); err != nil && ctx.Err() == nil {
				b.log.Error("keeping the leases on commands under way failed; another process may carry them out again", "err", err)
			}
		}
		left, err := b.actions.ClaimActions(cctx, b.owner, now, now.Add(actionLease), maxConcurrentHandlers)
		cancel()
		if err != nil && ctx.Err() == nil {
			b.log.Error("claiming unfinished commands failed", "err", err)
		}
		for _, a := range left {
			var cmd slack.SlashCommand
			if err := json.Unmarshal(a.Payload, &cmd); err != nil {
				b.log.Error("an unfinished command cannot be read; dropping it", "err", err)
				b.finished <- a.Key
				continue
			}
			b.log.Info("finishing a command acknowledged before a restart", "user", cmd.UserID, "received", a.ReceivedAt)
			b.handling.Go(func() { b.carryOut(ctx, cmd, a.Key) })
		}
		select {
		case <-ctx.Done():
			return
		case <-ticker.C:
		}
	}
}
