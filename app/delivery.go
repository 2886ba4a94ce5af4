package app

import (
	"context"
	"errors"
	"slices"
	"time"
)

// DeliveryKind says which Slack effect a delivery owes.
type DeliveryKind string

// What a state change may owe the outside world. The content is drawn from the state at
// the moment of delivery, so a delivery that waited shows what is true by then.
const (
	// DeliverMessage draws the request's approval message (or break-glass notice) as the
	// request stands: posted if it has none yet, redrawn in place otherwise. One per
	// request at a time: asking again while one is owed only asks for another drawing.
	DeliverMessage DeliveryKind = "message"
	// DeliverOutcome DMs the requester how the request ended.
	DeliverOutcome DeliveryKind = "outcome"
	// DeliverGrantEnded DMs the holder that the grant (GrantID) ended, and how.
	DeliverGrantEnded DeliveryKind = "grant_ended"
	// DeliverReminder reminds Approvers in the thread of the approval message.
	DeliverReminder DeliveryKind = "reminder"
	// DeliverEscalation tells Approvers in the thread that the request was escalated to them.
	DeliverEscalation DeliveryKind = "escalation"
	// DeliverPosted DMs a requester who was told their request was saved that it is posted now.
	DeliverPosted DeliveryKind = "posted"
	// DeliverStuck DMs the requester that their saved request cannot be posted, and why (Problem).
	DeliverStuck DeliveryKind = "stuck"
)

// Delivery is one Slack effect owed: written with the state change that owes it, carried
// out by Deliver until it succeeds or no longer matters.
type Delivery struct {
	ID        int64 // set by the outbox
	Kind      DeliveryKind
	RequestID string
	GrantID   string   // DeliverGrantEnded
	Approvers []string // DeliverReminder, DeliverEscalation: user and user-group IDs
	Target    string   // where it goes: a channel, or the user a DM is for (see owe)
	Problem   string   // DeliverStuck: the error code Slack answered
	LastError string   // on a claimed delivery: why its last attempt failed, if it did
	Attempts  int      // how often it was claimed, this time included
	CreatedAt time.Time
}

// Outbox keeps the deliveries owed until they are done. Deliveries are added by the writes
// that owe them (RequestChange.Deliveries and the owed arguments of the store's writes), in
// the same transaction.
type Outbox interface {
	// ClaimDeliveries claims up to limit deliveries due at now that nobody holds a lease on
	// (or whose lease ran out: its holder died), for owner until leaseUntil: the oldest due
	// for each target, oldest first, leaving out the targets in skip (busy or rate limited
	// here). Several processes may claim at once: each delivery goes to one.
	ClaimDeliveries(ctx context.Context, owner string, now, leaseUntil time.Time, limit int, skip []string) ([]Delivery, error)
	// FinishDelivery removes a delivery that is done or moot and reports true, even if
	// owner's lease ran out and another process took it over meanwhile: what was delivered
	// is not delivered again. A message asked for again while it was being drawn is kept,
	// released to be drawn again at now if owner still holds it, and FinishDelivery
	// reports false.
	FinishDelivery(ctx context.Context, owner string, id int64, now time.Time) (bool, error)
	// RetryDelivery releases a delivery owner holds to be tried again at notBefore, noting
	// the problem, and adds the deliveries owed in the same transaction. A claim owner no
	// longer holds (its lease ran out and another process took the delivery over) is left
	// to its holder.
	RetryDelivery(ctx context.Context, owner string, id int64, notBefore time.Time, problem string, owed ...Delivery) error
	// OutboxState says how many deliveries are owed and since when the oldest is.
	OutboxState(ctx context.Context) (depth int, oldest time.Time, err error)
}

// DeliveryError is how an adapter says a delivery failed, classified: transient errors are
// retried (after RetryAfter when the other side asked for a wait, else with backoff),
// permanent ones are not, and Fix says what would help.
type DeliveryError struct {
	Method     string        // what was called, e.g. chat.postMessage
	Code       string        // what the other side answered: ratelimited, http_503, timeout, channel_not_found…
	Permanent  bool          // retrying will not help
	RetryAfter time.Duration // the other side asked to wait this long
	Fix        string        // for a permanent error: what an admin should do
	Err        error
}

func (e *DeliveryError) Error() string {
	if e.Err != nil {
		return e.Method + ": " + e.Code + ": " + e.Err.Error()
	}
	return e.Method + ": " + e.Code
}

func (e *DeliveryError) Unwrap() error { return e.Err }

// owe is a delivery of kind about request requestID (for role, by requester), addressed:
// messages and thread replies to the role's channel, DMs to the requester.
func (s *Service) owe(kind DeliveryKind, requestID, role string, requester Principal) Delivery {
	d := Delivery{Kind: kind, RequestID: requestID, Target: requester.ID}
	if kind == DeliverMessage || kind == DeliverReminder || kind == DeliverEscalation {
		r, _ := s.Policy.Role(role)
		d.Target = s.Policy.ChannelFor(r)
	}
	return d
}

// refusedCodes are failures after which Slack certainly did not take the message: it
// refused the call before doing anything.
var refusedCodes = []string{"ratelimited", "http_429", "http_503", "service_unavailable"}

// mayHaveLanded reports whether an earlier attempt may have reached Slack without its
// answer reaching us (a timeout, a dropped connection, a crash), so that the message must be
// looked for before it is sent again.
func (d Delivery) mayHaveLanded() bool {
	return d.Attempts > 1 && !slices.Contains(refusedCodes, d.LastError)
}

// errMoot: the delivery no longer matters (the request is gone, or already shows it).
var errMoot = errors.New("no longer needed")

// ErrBusy: the database did not answer in time; nothing was changed.
var ErrBusy = errors.New("gatehouse is busy")

// ErrUnavailable: the database cannot be reached (it refuses or drops connections, or does
// not answer at all); nothing was changed. Unlike ErrBusy, trying again at once will not help.
var ErrUnavailable = errors.New("the database cannot be reached")

// ErrMembershipUnknown: Slack could not say whether the user is in a user group that matters,
// and what it said before may not stand in (see Service.standsIn); nothing was changed.
var ErrMembershipUnknown = errors.New("user-group membership could not be confirmed")

// DeliveryMetrics counts deliveries; Deps.Metrics may implement it.
type DeliveryMetrics interface {
	// Delivered counts a delivery attempt by kind and outcome: delivered, moot, retry,
	// failed (permanent); code is the error code of a retry or failure.
	Delivered(kind DeliveryKind, outcome, code string)
}

// DeliveryOptions tune Deliver; the zero value means the defaults.
type DeliveryOptions struct {
	Owner      string        // who claims deliveries; default a random ID per Service
	Lease      time.Duration // how long a claim holds before another process may take it over; default 10s
	Attempt    time.Duration // bounds one attempt; default 5s
	Backoff    time.Duration // first wait after a transient failure, doubled each time; default 1s
	MaxBackoff time.Duration // default 5m
	Parked     time.Duration // wait before trying again a post that failed permanently; default 10m
	Poll       time.Duration // how often to look for deliveries due; default 1s
	Workers    int           // deliveries carried out at once; default 8
}

func (o DeliveryOptions) withDefaults() DeliveryOptions {
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	if o.Owner == "" {
		o.Owner = newID("dlv")
	}
	def(&o.Lease, 10*time.Second)
	def(&o.Attempt, 5*time.Second)
	def(&o.Backoff, time.Second)
	def(&o.MaxBackoff, 5*time.Minute)
	def(&o.Parked, 10*time.Minute)
	def(&o.Poll, time.Second)
	if o.Workers <= 0 {
		o.Workers = 8
	}
	return o
}
