package app

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"math/rand/v2"
	"strconv"
	"sync"
	"time"
)

// deliverer is the Service's delivery state: what this process has claimed and is carrying
// out, and which Slack targets asked it to slow down.
type deliverer struct {
	opts DeliveryOptions
	wake chan struct{} // a delivery was owed or finished: look again

	claiming sync.Mutex // held while claiming and registering what was claimed
	mu       sync.Mutex
	waiting  int                      // Wait calls in progress: the loop leaves claiming to them
	inflight map[int64]string         // delivery ID → its target
	paused   map[string]time.Time     // Slack target → rate limited until
	posted   map[string]chan struct{} // request ID → closed once this process posts its message
	drawing  [64]sync.Mutex           // serialises the drawing of one request's message, striped by ID
}

func newDeliverer(opts DeliveryOptions) *deliverer {
	return &deliverer{opts: opts.withDefaults(), wake: make(chan struct{}, 1), inflight: map[int64]string{},
		paused: map[string]time.Time{}, posted: map[string]chan struct{}{}}
}

// kick tells the delivery loop to look for work now.
func (d *deliverer) kick() {
	select {
	case d.wake <- struct{}{}:
	default:
	}
}

// Deliver carries out the deliveries owed, at start and continuously, until ctx ends; then
// it waits for the attempts in flight. Several processes may run it on one database.
func (s *Service) Deliver(ctx context.Context) {
	d := s.delivery
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		d.claiming.Lock()
		if free := d.freeWorkers(); free > 0 {
			s.claimLocked(ctx, free)
		}
		d.claiming.Unlock()
		timer.Reset(d.opts.Poll)
		select {
		case <-ctx.Done():
			d.waitIdle(time.Now().Add(2 * d.opts.Attempt))
			return
		case <-d.wake:
		case <-timer.C:
		}
	}
}

// Wait carries out every delivery due now, waiting for those in flight, and returns when
// none is left that is due (a delivery put off by backoff is not waited for). Tests use it.
// While it runs, the delivery loop claims nothing, so nothing is left half-done by the
// loop when Wait returns.
func (s *Service) Wait() {
	d := s.delivery
	d.mu.Lock()
	d.waiting++
	d.mu.Unlock()
	defer func() {
		d.mu.Lock()
		d.waiting--
		d.mu.Unlock()
		d.kick()
	}()
	d.claiming.Lock() // a claim of the loop's that began before is registered by now
	d.claiming.Unlock()
	deadline := time.Now().Add(time.Minute)
	for time.Now().Before(deadline) {
		d.waitIdle(deadline)
		if s.claimAndStart(context.Background(), d.opts.Workers) == 0 {
			d.waitIdle(deadline)
			return
		}
	}
}

// Shutdown waits up to grace for the deliveries in flight; those still running go on until
// their attempt times out. What is not done stays owed in the database.
func (s *Service) Shutdown(grace time.Duration) {
	if !s.delivery.waitIdle(time.Now().Add(grace)) {
		s.Log.Warn("deliveries still running at shutdown; they stay owed")
	}
}

// waitIdle waits until no delivery is in flight here, or deadline; it reports which.
func (d *deliverer) waitIdle(deadline time.Time) bool {
	for d.inflightCount() > 0 {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(2 * time.Millisecond)
	}
	return true
}

func (d *deliverer) inflightCount() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return len(d.inflight)
}

// freeWorkers is how many deliveries the loop may start now: none while a Wait drains the
// outbox itself.
func (d *deliverer) freeWorkers() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.waiting > 0 {
		return 0
	}
	return d.opts.Workers - len(d.inflight)
}

// claimAndStart claims up to n deliveries due, one per target that is neither busy here nor
// rate limited, and starts carrying each out; it returns how many it started.
func (s *Service) claimAndStart(ctx context.Context, n int) int {
	s.delivery.claiming.Lock()
	defer s.delivery.claiming.Unlock()
	return s.claimLocked(ctx, n)
}

// claimLocked is claimAndStart for a caller holding the claiming lock.
func (s *Service) claimLocked(ctx context.Context, n int) int {
	d := s.delivery
	now := s.Now()
	// A database that stops answering must not hold the loop for good.
	claimCtx, cancel := context.WithTimeout(ctx, d.opts.Attempt)
	defer cancel()
	claimed, err := s.Outbox.ClaimDeliveries(claimCtx, d.opts.Owner, now, now.Add(d.opts.Lease), n, d.busyTargets(now))
	if err != nil {
		if ctx.Err() == nil {
			s.Log.Error("claiming deliveries failed", "err", err)
		}
		return 0
	}
	for _, dl := range claimed {
		d.mu.Lock()
		d.inflight[dl.ID] = dl.Target
		d.mu.Unlock()
		go func() {
			s.attempt(dl)
			d.mu.Lock()
			delete(d.inflight, dl.ID)
			d.mu.Unlock()
			d.kick()
		}()
	}
	return len(claimed)
}

// busyTargets are the targets not to claim deliveries for now: one is being delivered to
// here (deliveries to one target go one at a time, in order), or Slack asked us to wait.
func (d *deliverer) busyTargets(now time.Time) []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	var busy []string
	for _, target := range d.inflight {
		busy = append(busy, target)
	}
	for target, until := range d.paused {
		if now.Before(until) {
			busy = append(busy, target)
		} else {
			delete(d.paused, target)
		}
	}
	return busy
}

// attempt carries out one claimed delivery and records what became of it.
func (s *Service) attempt(dl Delivery) {
	ctx, cancel := context.WithTimeout(context.Background(), s.delivery.opts.Attempt)
	defer cancel()
	err := s.carryOut(ctx, dl)
	// The outcome is recorded even if the attempt used up its time.
	rec, cancelRec := context.WithTimeout(context.Background(), s.delivery.opts.Attempt)
	defer cancelRec()
	s.settle(rec, dl, err)
}

// settle records the outcome of an attempt: done and moot deliveries are removed,
// transient failures retried later, permanent ones reported.
func (s *Service) settle(ctx context.Context, dl Delivery, err error) {
	now := s.Now()
	log := s.Log.With("delivery", dl.ID, "kind", dl.Kind, "request_id", dl.RequestID, "attempt", dl.Attempts)
	var de *DeliveryError
	switch {
	case err == nil, errors.Is(err, errMoot), errors.Is(err, ErrNotFound):
		outcome := "delivered"
		if err != nil {
			outcome = "moot"
			log.Info("delivery no longer needed", "why", err)
		}
		s.countDelivery(dl.Kind, outcome, "")
		if _, err := s.Outbox.FinishDelivery(ctx, s.delivery.opts.Owner, dl.ID, now); err != nil {
			log.Error("recording a delivery as done failed; it will be drawn again", "err", err)
		}
		return
	case errors.As(err, &de) && de.Permanent:
		s.countDelivery(dl.Kind, "failed", de.Code)
		log.Error("Slack refused a delivery; retrying will not help", "method", de.Method, "error", de.Code, "fix", de.Fix)
		if dl.Kind != DeliverMessage {
			if _, err := s.Outbox.FinishDelivery(ctx, s.delivery.opts.Owner, dl.ID, now); err != nil {
				log.Error("dropping a failed delivery failed", "err", err)
			}
			return
		}
		// The request stays saved: its post is tried again now and then, in case an admin
		// fixed the problem, and its requester is told once per problem.
		var owed []Delivery
		if dl.LastError != de.Code {
			owed = append(owed, Delivery{Kind: DeliverStuck, RequestID: dl.RequestID, Problem: de.Code})
		}
		if err := s.Outbox.RetryDelivery(ctx, s.delivery.opts.Owner, dl.ID, now.Add(s.delivery.opts.Parked), de.Code, owed...); err != nil {
			log.Error("parking a failed post failed", "err", err)
		}
		s.delivery.kick()
		return
	}
	code, wait := "error", s.backoff(dl.Attempts)
	if errors.As(err, &de) {
		code = de.Code
		if de.RetryAfter > 0 {
			wait = de.RetryAfter
		}
	}
	s.countDelivery(dl.Kind, "retry", code)
	log.Warn("delivery failed; it will be retried", "in", wait.Round(time.Millisecond), "err", err)
	if err := s.Outbox.RetryDelivery(ctx, s.delivery.opts.Owner, dl.ID, now.Add(wait), code); err != nil {
		log.Error("recording a delivery for retry failed; its lease will run out", "err", err)
	}
}

// backoff is the wait before the next try after attempts transient failures: exponential,
// with jitter so that many deliveries failed together do not retry together.
func (s *Service) backoff(attempts int) time.Duration {
	o := s.delivery.opts
	wait := o.Backoff
	for i := 1; i < attempts && wait < o.MaxBackoff; i++ {
		wait *= 2
	}
	wait = min(wait, o.MaxBackoff)
	return wait/2 + rand.N(wait/2+1)
}

func (s *Service) countDelivery(kind DeliveryKind, outcome, code string) {
	if m, ok := s.Metrics.(DeliveryMetrics); ok {
		m.Delivered(kind, outcome, code)
	}
}

// carryOut makes one attempt at a delivery, drawing what it says from the current state.
func (s *Service) carryOut(ctx context.Context, dl Delivery) error {
	if dl.Kind == DeliverMessage {
		return s.drawMessage(ctx, dl)
	}
	var r Request
	var g *Grant
	var err error
	if dl.Kind == DeliverGrantEnded {
		found, err := s.Grants.Grant(ctx, dl.GrantID)
		if err != nil {
			return err
		}
		g, dl.RequestID = &found, found.RequestID
	}
	if r, err = s.Store.Request(ctx, dl.RequestID); err != nil {
		return err
	}
	if r.Requester.Kind != PrincipalUser && dl.Kind != DeliverReminder && dl.Kind != DeliverEscalation {
		return errMoot // services learn of their requests from the token endpoint
	}
	err = s.notify(ctx, dl, r, g)
	s.delivery.noteLimit(dl.Target, s.Now(), err)
	return err
}

// notify makes the Notifier call a delivery other than a message owes. A direct message or
// thread reply tried before may have reached Slack without its answer reaching us: it is
// looked for first, by its tag.
func (s *Service) notify(ctx context.Context, dl Delivery, r Request, g *Grant) error {
	tag := strconv.FormatInt(dl.ID, 10)
	where := MessageRef{Channel: r.Requester.ID} // a DM
	if dl.Kind == DeliverReminder || dl.Kind == DeliverEscalation {
		if r.Status != StatusPending || r.Message.TS == "" {
			return errMoot
		}
		where = r.Message // a reply in its thread
	}
	if dl.mayHaveLanded() {
		sent, err := s.Notifier.Sent(ctx, where, tag)
		if err != nil {
			return err
		}
		if sent {
			return fmt.Errorf("%w: sent before", errMoot)
		}
	}
	switch dl.Kind {
	case DeliverOutcome:
		if r.GrantID != "" {
			found, err := s.Grants.Grant(ctx, r.GrantID)
			if err != nil {
				return err
			}
			found.Status = GrantActive // the outcome as it was: its end has a DM of its own
			g = &found
		}
		return s.Notifier.NotifyRequester(ctx, r, g, tag)
	case DeliverGrantEnded:
		return s.Notifier.NotifyRequester(ctx, r, g, tag)
	case DeliverReminder:
		return s.Notifier.RemindApprovers(ctx, r, dl.Approvers, tag)
	case DeliverEscalation:
		return s.Notifier.AnnounceEscalation(ctx, r, dl.Approvers, tag)
	case DeliverPosted:
		return s.Notifier.NotifyPosted(ctx, r, tag)
	case DeliverStuck:
		if r.Message.TS != "" {
			return errMoot // posted after all
		}
		return s.Notifier.NotifyStuck(ctx, r, dl.Problem, tag)
	}
	return errMoot // a kind this version does not know
}

// noteLimit remembers that Slack rate limited target, so other deliveries to it wait too.
func (d *deliverer) noteLimit(target string, now time.Time, err error) {
	var de *DeliveryError
	if errors.As(err, &de) && de.RetryAfter > 0 && target != "" {
		d.mu.Lock()
		d.paused[target] = now.Add(de.RetryAfter)
		d.mu.Unlock()
	}
}

// lockDrawing serialises the drawing of one request's message, so that an older drawing
// never lands after a newer one.
func (d *deliverer) lockDrawing(id string) func() {
	h := fnv.New32a()
	h.Write([]byte(id))
	mu := &d.drawing[h.Sum32()%uint32(len(d.drawing))]
	mu.Lock()
	return mu.Unlock
}

// announcePosted wakes those waiting for request id to be posted.
func (d *deliverer) announcePosted(id string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if ch, ok := d.posted[id]; ok {
		close(ch)
		delete(d.posted, id)
	}
}

// postedSignal returns a channel closed once this process posts request id's message.
func (d *deliverer) postedSignal(id string) <-chan struct{} {
	d.mu.Lock()
	defer d.mu.Unlock()
	ch, ok := d.posted[id]
	if !ok {
		ch = make(chan struct{})
		d.posted[id] = ch
	}
	return ch
}

// forgetPosted stops waiting for request id.
func (d *deliverer) forgetPosted(id string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	delete(d.posted, id)
}
