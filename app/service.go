package app

import (
	"context"
	"crypto/rand"
	"encoding/base32"
	"log/slog"
	"time"
)

// RequestStore keeps requests, their decisions, the grants they become and the audit trail.
type RequestStore interface {
	// CreateRequest stores a new request, its creation event and the deliveries it owes.
	CreateRequest(ctx context.Context, r Request, e AuditEvent, owed ...Delivery) error
	// Request returns the request with its decisions, or ErrNotFound.
	Request(ctx context.Context, id string) (Request, error)
	// UpdateRequest reads the request, lets update decide the change, and writes it with one
	// conditional write: if the request changed in between, update runs again on the new
	// state. An error from update is returned as is and nothing is written.
	UpdateRequest(ctx context.Context, id string, update func(Request) (RequestChange, error)) error
	// ExpiredRequests returns the IDs of up to limit pending requests whose time is up at now.
	ExpiredRequests(ctx context.Context, now time.Time, limit int) ([]string, error)
	// PendingRequests returns up to limit pending requests, newest first.
	PendingRequests(ctx context.Context, limit int) ([]Request, error)
	// DueRequests returns the IDs of up to limit pending requests whose reminder or escalation
	// is due at now (RemindAt or EscalateAt set and not after now), read through an index so
	// the cost follows what is due.
	DueRequests(ctx context.Context, now time.Time, limit int) ([]string, error)
}

// RequestChange is what UpdateRequest writes atomically.
type RequestChange struct {
	Request    Request         // the request's new state
	Decision   *Decision       // a decision to add, if any
	Grant      *Grant          // a grant to create, if any
	Extension  *GrantExtension // an extension to apply to an active grant, if any
	Events     []AuditEvent    // audit events to append
	Deliveries []Delivery      // Slack effects the change owes, kept until delivered
}

// GrantExtension moves an active grant's end out. It applies only if the grant is still
// active and has had exactly Extensions extensions (the conditional write); otherwise the
// change is ErrNotPending.
type GrantExtension struct {
	GrantID    string
	Extensions int
	ExpiresAt  time.Time
}

// GroupResolver lists the members of a Slack user group.
type GroupResolver interface {
	// GroupMembers returns the group's members. When Slack does not answer, it returns the
	// error with the members it last knew, if any: whether they may stand in is the
	// Service's decision (see standsIn). After a refusal for good (a missing scope, a
	// revoked token, a group that is gone) what Slack said before is no evidence: none are
	// known any more.
	GroupMembers(ctx context.Context, groupID string) (Members, error)
}

// Members are a user group's members as Slack said at AsOf (zero: never).
type Members struct {
	IDs  []string
	AsOf time.Time
}

// Notifier tells people about requests. Slack is one implementation. Its errors are
// *DeliveryError where it can tell transient from permanent.
type Notifier interface {
	// PostRequest shows a new request to its approvers and says where, tagging the message
	// with the request ID; with a break-glass grant, it is the loud notice that r's
	// requester took it, with a way to review it.
	PostRequest(ctx context.Context, r Request, grant *Grant) (MessageRef, error)
	// FindRequestMessage finds the message PostRequest posted for r by its tag, or ErrNotFound.
	FindRequestMessage(ctx context.Context, r Request) (MessageRef, error)
	// UpdateRequest redraws the request's approval message from its current state and, once
	// approved, its grant's.
	UpdateRequest(ctx context.Context, r Request, grant *Grant) error
	// NotifyRequester tells the requester how their request ended (grant is nil unless
	// approved) or, when the grant is no longer active, how the grant ended. The direct
	// messages are tagged with tag (see DMSent).
	NotifyRequester(ctx context.Context, r Request, grant *Grant, tag string) error
	// NotifyPosted tells a requester who was told their request was saved that it is posted.
	NotifyPosted(ctx context.Context, r Request, tag string) error
	// NotifyStuck tells the requester their saved request cannot be posted, and why.
	NotifyStuck(ctx context.Context, r Request, problem, tag string) error
	// Sent reports whether a message tagged tag already reached where: the thread of the
	// message where names or, with where.TS empty, the direct messages with the user
	// where.Channel names.
	Sent(ctx context.Context, where MessageRef, tag string) (bool, error)
	// RefreshHomes redraws the App Home of those users who look at it, with their overview.
	RefreshHomes(ctx context.Context, users []string, overview func(user string) (Overview, error)) error
	// RemindApprovers reminds the approvers (user and user-group IDs) who have not decided the
	// pending request r, in the thread of its approval message, tagged with tag (see Sent).
	RemindApprovers(ctx context.Context, r Request, approvers []string, tag string) error
	// AnnounceEscalation tells the approvers (user and user-group IDs) that r was escalated to,
	// in the thread of its approval message, that they may now decide it; tagged with tag.
	AnnounceEscalation(ctx context.Context, r Request, approvers []string, tag string) error
}

// Deps are what a Service needs.
type Deps struct {
	Policy   Policy
	Store    RequestStore
	Grants   GrantStore
	Logins   LoginStore
	Outbox   Outbox
	Notifier Notifier
	Groups   GroupResolver
	Metrics  Metrics          // optional; may also implement DeliveryMetrics
	Now      func() time.Time // defaults to time.Now
	Log      *slog.Logger     // defaults to slog.Default()
	Delivery DeliveryOptions
}

// Metrics counts what happened, from the audit events each state change records.
type Metrics interface {
	EventsRecorded(events []AuditEvent)
}

// recorded reports committed audit events to the metrics, if any.
func (s *Service) recorded(events ...AuditEvent) {
	if s.Metrics != nil {
		s.Metrics.EventsRecorded(events)
	}
}

// Service carries out the use cases: filing requests and deciding them. Every policy
// decision is made here; adapters only translate.
type Service struct {
	Deps
	delivery *deliverer
}

// NewService returns a Service using d.
func NewService(d Deps) *Service {
	if d.Now == nil {
		d.Now = time.Now
	}
	if d.Log == nil {
		d.Log = slog.Default()
	}
	return &Service{Deps: d, delivery: newDeliverer(d.Delivery)}
}

// owed tells the delivery loop that a committed change owes Slack something.
func (s *Service) owed() { s.delivery.kick() }

var idEncoding = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

// newID returns a random identifier with a readable prefix, such as req_5k2m….
func newID(prefix string) string {
	b := make([]byte, 10)
	rand.Read(b)
	return prefix + "_" + idEncoding.EncodeToString(b)
}
