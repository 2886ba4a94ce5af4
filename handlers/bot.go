// Package handlers is Gatehouse's Slack surface: the Socket Mode loop, the /access command,
// the request and decision modals, approval messages and DMs. It translates between Slack
// payloads and app use cases; every decision about who may do what is made in app.
package handlers

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/slack-go/slack"
	"github.com/slack-go/slack/slackevents"
	"github.com/slack-go/slack/socketmode"

	"github.com/gatehouse/gatehouse/app"
)

// Service is what the Slack surface needs from the app.
type Service interface {
	CheckRequest(in app.RequestInput) error
	RequestAccess(ctx context.Context, requester app.Principal, in app.RequestInput, source string) (app.Request, error)
	CheckApprover(ctx context.Context, requestID, user string) (app.Request, error)
	Decide(ctx context.Context, in app.DecisionInput) (app.Request, error)
	FindLogin(ctx context.Context, user, code string) (app.PendingLogin, error)
	ConfirmLogin(ctx context.Context, in app.LoginConfirmation) (app.Login, []app.Request, error)
	RevokeGrant(ctx context.Context, grantID, user, reason, source string) (app.Grant, error)
	ReviewGrant(ctx context.Context, grantID, user, source string) (app.Grant, error)
	Overview(ctx context.Context, user string) (app.Overview, error)
	CheckExtend(ctx context.Context, grantID, user string) (app.Grant, app.Role, error)
	ExtendGrant(ctx context.Context, grantID, user string, in app.RequestInput, source string) (app.Request, error)
	AwaitPosted(ctx context.Context, requestID string, wait time.Duration) (bool, error)
}

// Bot runs the Socket Mode connection and answers every envelope.
type Bot struct {
	api       *slack.Client
	socket    *socketmode.Client
	metrics   Metrics
	homes     *Homes
	svc       Service
	policy    app.Policy
	log       *slog.Logger
	teamID    string // the workspace this Gatehouse serves, from auth.test
	connected atomic.Bool
	seen      *recentKeys
	actions   Actions // nil: commands are not kept before their ack
	owner     string  // who this process is, for the leases on commands it keeps
	commands  chan commandEnvelope
	finished  chan string  // keys of commands carried out
	carrying  atomic.Int64 // commands kept by this process and being carried out
	handling  sync.WaitGroup
	workers   chan struct{} // bounds the handlers running at once
	forms     chan struct{} // bounds the commands opening a form at once (see carryOut): few, as each slot more crowds the acks
}

// maxConcurrentHandlers bounds the envelopes handled at once. A burst beyond it queues
// (parked, costing nothing) instead of crowding out the loop that acks envelopes: on two
// cores a burst of 200 commands is acked with p99 21 ms at 8 handlers, 76 ms at 32, and
// 285 ms unbounded (BenchmarkSlashCommandBurst).
var maxConcurrentHandlers = 4 * runtime.GOMAXPROCS(0)

// NewBot returns a bot using api, which must carry the app-level token, keeping the slash
// commands it acknowledges in actions.
func NewBot(api *slack.Client, svc Service, policy app.Policy, homes *Homes, metrics Metrics, actions Actions, log *slog.Logger) *Bot {
	return &Bot{
		actions:  actions,
		commands: make(chan commandEnvelope, 4096),
		finished: make(chan string, 4096),
		owner:    fmt.Sprintf("bot-%d-%x", os.Getpid(), time.Now().UnixNano()),
		api:      api,
		homes:    homes,
		metrics:  metrics,
		socket:   socketmode.New(api),
		svc:      bounded{svc},
		policy:   policy,
		log:      log,
		seen:     newRecentKeys(4096),
		workers:  make(chan struct{}, maxConcurrentHandlers),
		forms:    make(chan struct{}, max(2, maxConcurrentHandlers/4)),
	}
}

// Connected reports whether the Socket Mode connection is up.
func (b *Bot) Connected() bool { return b.connected.Load() }

// Run connects and handles envelopes until ctx ends, then waits for handlers in flight.
// It reconnects on its own when Slack asks (disconnect) or the connection drops, and
// returns an error only when it cannot connect at all (for instance a revoked token).
func (b *Bot) Run(ctx context.Context) error {
	auth, err := b.authenticate(ctx)
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return err
	}
	b.teamID = auth.TeamID
	b.log.Info("slack: authenticated", "team_id", auth.TeamID, "bot_user", auth.UserID)

	runErr := make(chan error, 1)
	go func() { runErr <- b.socket.RunContext(ctx) }()
	resumed, kept, forgotten := make(chan struct{}), make(chan struct{}), make(chan struct{})
	go func() { defer close(resumed); b.resume(ctx) }()
	go func() { defer close(kept); b.keepCommands(ctx) }()
	// Commands done while shutting down are forgotten too: stop forgetting only after them.
	forgetCtx, stopForgetting := context.WithCancel(context.WithoutCancel(ctx))
	go func() { defer close(forgotten); b.forgetCommands(forgetCtx) }()
	defer func() { <-forgotten }()
	defer stopForgetting()
	defer b.handling.Wait()
	defer func() { <-resumed; <-kept }()
	for {
		select {
		case <-ctx.Done():
			return nil
		case err := <-runErr:
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("slack: socket mode: %w", err)
		case evt := <-b.socket.Events:
			b.dispatch(ctx, evt)
		}
	}
}

// authenticate asks Slack who the bot is. Slack being down or asking to slow down is waited
// out (backoff doubling from 1 s to a minute, or Slack's Retry-After), so a replica started
// during a Slack outage connects once Slack is back; a refusal retrying cannot cure (a bad
// or revoked token) is returned at once, saying what to fix.
func (b *Bot) authenticate(ctx context.Context) (*slack.AuthTestResponse, error) {
	wait := time.Second
	for {
		auth, err := b.api.AuthTestContext(ctx)
		if err == nil {
			return auth, nil
		}
		var de *app.DeliveryError
		if errors.As(classify("auth.test", err), &de) && de.Permanent {
			return nil, fmt.Errorf("slack: auth.test: %w (%s)", err, de.Fix)
		}
		if de != nil && de.RetryAfter > 0 {
			wait = de.RetryAfter
		}
		b.log.Warn("slack: auth.test failed; trying again", "err", err, "in", wait)
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(wait):
		}
		wait = min(2*wait, time.Minute)
	}
}

// handlerTimeout bounds the work for one envelope after its ack; submissionTimeout the work
// for a view submission, which is answered in its ack.
const (
	handlerTimeout    = time.Minute
	submissionTimeout = 2500 * time.Millisecond
)

// dispatch acknowledges envelopes that need no answer at once and hands the work to a
// goroutine, so one slow handler never delays another envelope's ack.
func (b *Bot) dispatch(ctx context.Context, evt socketmode.Event) {
	switch evt.Type {
	case socketmode.EventTypeConnected:
		b.connected.Store(true)
		b.log.Info("slack: connected")
		return
	case socketmode.EventTypeConnecting, socketmode.EventTypeDisconnect, socketmode.EventTypeConnectionError:
		b.connected.Store(false)
		b.log.Info("slack: connection state", "event", evt.Type)
		return
	case socketmode.EventTypeErrorBadMessage:
		b.ackUnreadable(evt)
		return
	case socketmode.EventTypeSlashCommand, socketmode.EventTypeInteractive, socketmode.EventTypeEventsAPI:
	default:
		return
	}
	if evt.Request == nil {
		return
	}
	req := *evt.Request
	received := time.Now()
	work := func(ctx context.Context) any { return nil }
	ackFirst := true
	switch data := evt.Data.(type) {
	case slack.InteractionCallback:
		if data.Type == slack.InteractionTypeViewSubmission {
			// The answer to a submission travels in the ack (field errors, the next view).
			ackFirst = false
		}
		work = b.onInteractionFunc(data)
	case slackevents.EventsAPIEvent:
		if opened, ok := data.InnerEvent.Data.(*slackevents.AppHomeOpenedEvent); ok {
			work = func(ctx context.Context) any { b.onHomeOpened(ctx, data.TeamID, opened); return nil }
		}
	}
	key := dedupeKey(req, evt.Data)
	if cmd, ok := evt.Data.(slack.SlashCommand); ok {
		b.commands <- commandEnvelope{req: req, key: key, received: received, cmd: cmd}
		return
	}
	if ackFirst {
		b.ack(req, nil, received)
	}
	if !b.seen.add(key) {
		b.log.Info("slack: ignoring redelivered envelope", "envelope_id", req.EnvelopeID, "retry_attempt", req.RetryAttempt)
		if !ackFirst {
			b.ack(req, nil, received)
		}
		return
	}
	b.handling.Go(func() {
		timeout := handlerTimeout
		if ackFirst {
			b.workers <- struct{}{}
			defer func() { <-b.workers }()
		} else {
			// A submission's answer is its ack: it skips the queue behind commands and must
			// be done well within Slack's 3 s.
			timeout = submissionTimeout
		}
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), timeout)
		defer cancel()
		answer := work(ctx)
		if !ackFirst {
			b.ack(req, answer, received)
		}
	})
}

func (b *Bot) ack(req socketmode.Request, payload any, received time.Time) {
	defer func() { b.metrics.EnvelopeAcked(time.Since(received)) }()
	var err error
	if payload == nil {
		err = b.socket.Ack(req)
	} else {
		err = b.socket.Ack(req, payload)
	}
	if err != nil {
		b.log.Error("slack: ack failed", "envelope_id", req.EnvelopeID, "err", err)
	}
}

// ackUnreadable acknowledges an envelope whose payload could not be decoded, so Slack
// does not redeliver it forever; there is nothing else to do with it.
func (b *Bot) ackUnreadable(evt socketmode.Event) {
	bad, ok := evt.Data.(*socketmode.ErrorBadMessage)
	if !ok {
		return
	}
	var envelope struct {
		EnvelopeID string `json:"envelope_id"`
	}
	b.log.Warn("slack: unreadable envelope", "err", bad.Cause)
	if json.Unmarshal(bad.Message, &envelope) == nil && envelope.EnvelopeID != "" {
		b.ack(socketmode.Request{EnvelopeID: envelope.EnvelopeID}, nil, time.Now())
	}
}

// dedupeKey identifies the user action behind an envelope: Slack redelivers the same
// action in a new envelope, but its trigger ID stays the same.
func dedupeKey(req socketmode.Request, data any) string {
	switch d := data.(type) {
	case slack.SlashCommand:
		if d.TriggerID != "" {
			return "trigger:" + d.TriggerID
		}
	case slack.InteractionCallback:
		if d.TriggerID != "" {
			return "trigger:" + d.TriggerID
		}
	}
	return "envelope:" + req.EnvelopeID
}

// recentKeys remembers the last n keys it was given.
type recentKeys struct {
	mu   sync.Mutex
	set  map[string]bool
	ring []string
	next int
}

func newRecentKeys(n int) *recentKeys {
	return &recentKeys{set: make(map[string]bool, n), ring: make([]string, n)}
}

// add records key and reports whether it was new.
func (r *recentKeys) add(key string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.set[key] {
		return false
	}
	delete(r.set, r.ring[r.next])
	r.ring[r.next] = key
	r.next = (r.next + 1) % len(r.ring)
	r.set[key] = true
	return true
}

// sameTeam reports whether a payload comes from the workspace this Gatehouse serves.
func (b *Bot) sameTeam(teamID string) bool { return teamID != "" && teamID == b.teamID }

// maxRetries bounds how often a Slack call is retried after a rate limit.
const maxRetries = 3

// retry runs call again after Slack's Retry-After while it is rate limited.
func retry(ctx context.Context, call func() error) error {
	for attempt := 0; ; attempt++ {
		err := call()
		var limited *slack.RateLimitedError
		if !errors.As(err, &limited) || attempt == maxRetries {
			return err
		}
		if deadline, ok := ctx.Deadline(); ok && time.Until(deadline) < limited.RetryAfter {
			return err // no time left to wait for Slack
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(limited.RetryAfter):
		}
	}
}

// reply answers the person who used a slash command or clicked a message button, privately.
func (b *Bot) reply(ctx context.Context, responseURL, text string) {
	b.replyBlocks(ctx, responseURL, text, nil)
}

// replyBlocks is reply with blocks (buttons); text is the fallback.
func (b *Bot) replyBlocks(ctx context.Context, responseURL, text string, blocks []slack.Block) {
	if responseURL == "" {
		return
	}
	msg := &slack.WebhookMessage{ResponseType: slack.ResponseTypeEphemeral, Text: clipText(text, maxMessageText)}
	if len(blocks) > 0 {
		msg.Blocks = &slack.Blocks{BlockSet: blocks}
	}
	err := retry(ctx, func() error { return slack.PostWebhookContext(ctx, responseURL, msg) })
	var urlErr *url.Error
	if errors.As(err, &urlErr) {
		err = urlErr.Err // the response URL itself lets anyone post for 30 minutes: keep it out of logs
	}
	if err != nil {
		b.log.Error("slack: reply failed", "err", err)
	}
}
