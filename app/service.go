package app

import (
	"context"
	"crypto/rand"
	"encoding/base32"
	"fmt"
	"hash/fnv"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"
)

// RequestStore keeps requests, their decisions, the grants they become and the audit trail.
type RequestStore interface {
	// CreateRequest stores a new request and its creation event.
	CreateRequest(ctx context.Context, r Request, e AuditEvent) error
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
	Request   Request         // the request's new state
	Decision  *Decision       // a decision to add, if any
	Grant     *Grant          // a grant to create, if any
	Extension *GrantExtension // an extension to apply to an active grant, if any
	Events    []AuditEvent    // audit events to append
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
	GroupMembers(ctx context.Context, groupID string) ([]string, error)
}

// Notifier tells people about requests. Slack is one implementation.
type Notifier interface {
	// PostRequest shows a new request to its approvers and says where; with a break-glass
	// grant, it is the loud notice that r's requester took it, with a way to review it.
	PostRequest(ctx context.Context, r Request, grant *Grant) (MessageRef, error)
	// UpdateRequest redraws the request's approval message from its current state and, once
	// approved, its grant's.
	UpdateRequest(ctx context.Context, r Request, grant *Grant) error
	// NotifyRequester tells the requester how their request ended (grant is nil unless
	// approved) or, when the grant is no longer active, how the grant ended.
	NotifyRequester(ctx context.Context, r Request, grant *Grant) error
	// RefreshHomes redraws the App Home of those users who look at it, with their overview.
	RefreshHomes(ctx context.Context, users []string, overview func(user string) (Overview, error)) error
	// RemindApprovers reminds the approvers (user and user-group IDs) who have not decided the
	// pending request r, in the thread of its approval message.
	RemindApprovers(ctx context.Context, r Request, approvers []string) error
	// AnnounceEscalation tells the approvers (user and user-group IDs) that r was escalated to,
	// in the thread of its approval message, that they may now decide it.
	AnnounceEscalation(ctx context.Context, r Request, approvers []string) error
}

// Deps are what a Service needs.
type Deps struct {
	Policy   Policy
	Store    RequestStore
	Grants   GrantStore
	Logins   LoginStore
	Notifier Notifier
	Groups   GroupResolver
	Metrics  Metrics          // optional
	Now      func() time.Time // defaults to time.Now
	Log      *slog.Logger     // defaults to slog.Default()
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
	background sync.WaitGroup
	stopped    context.Context // cancelled by Shutdown once its grace period is over
	stop       context.CancelFunc
	refreshing [64]sync.Mutex // serialises redraws of one request's message, striped by ID
	guesses    codeGuesses
}

// NewService returns a Service using d.
func NewService(d Deps) *Service {
	if d.Now == nil {
		d.Now = time.Now
	}
	if d.Log == nil {
		d.Log = slog.Default()
	}
	stopped, stop := context.WithCancel(context.Background())
	return &Service{Deps: d, guesses: codeGuesses{attempts: map[string][]time.Time{}}, stopped: stopped, stop: stop}
}

// Wait blocks until the notifications the service sent in the background are done.
func (s *Service) Wait() { s.background.Wait() }

// Shutdown waits up to grace for the background notifications, then cancels those still
// running (a Slack retry, say) and waits for them to return.
func (s *Service) Shutdown(grace time.Duration) {
	done := make(chan struct{})
	go func() { s.background.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(grace):
		s.Log.Warn("cancelling notifications still running at shutdown")
		s.stop()
		<-done
	}
}

// CheckRequest says whether in is a valid request, without filing anything.
// The error is an *InputError.
func (s *Service) CheckRequest(in RequestInput) error {
	_, _, _, err := s.Policy.checkRequest(in)
	return err
}

// RequestAccess files a request for requester and shows it to the approvers in the
// background. For a break-glass role, a user in its break_glass_users gets the grant at
// once instead: the request comes back approved, with its GrantID (see breakGlass); anyone
// else files a normal request. Invalid input returns an *InputError and files nothing.
func (s *Service) RequestAccess(ctx context.Context, requester Principal, in RequestInput, source string) (Request, error) {
	role, duration, reason, err := s.Policy.checkRequest(in)
	if err != nil {
		return Request{}, err
	}
	if requester.Kind == PrincipalUser && s.mayBreakGlass(ctx, role, requester.ID) {
		return s.breakGlass(ctx, requester.ID, role, duration, reason, source)
	}
	return s.file(ctx, s.newRequest(requester, role, duration, reason), role, source)
}

// newRequest is a pending request filed now.
func (s *Service) newRequest(requester Principal, role Role, duration time.Duration, reason string) Request {
	now := s.Now()
	return Request{
		ID:                newID("req"),
		Requester:         requester,
		Role:              role.Name,
		Duration:          duration,
		Reason:            reason,
		Status:            StatusPending,
		ApprovalsRequired: role.ApprovalsRequired,
		CreatedAt:         now,
		ExpiresAt:         now.Add(role.RequestTTL),
	}
}

// file stores a new request and shows it to its approvers in the background.
func (s *Service) file(ctx context.Context, r Request, role Role, source string) (Request, error) {
	r.RemindAt, r.EscalateAt = role.followUps(r.CreatedAt)
	event := AuditEvent{At: r.CreatedAt, Actor: r.Requester.ID, Action: ActionRequestCreated, Principal: r.Requester,
		RequestID: r.ID, GrantID: r.ExtendsGrantID, Reason: r.Reason, Source: source}
	if err := s.Store.CreateRequest(ctx, r, event); err != nil {
		return Request{}, fmt.Errorf("file request: %w", err)
	}
	s.recorded(event)
	s.Log.Info("request filed", "request_id", r.ID, "role", r.Role, "requester", r.Requester.ID, "duration", r.Duration,
		"extends", r.ExtendsGrantID)
	s.inBackground(func(ctx context.Context) { s.post(ctx, r) })
	return r, nil
}

// post shows a new request to its approvers and remembers where; if that fails, the request
// is cancelled and the requester told why, so nobody waits on a message no one can see.
func (s *Service) post(ctx context.Context, r Request) {
	ref, err := s.Notifier.PostRequest(ctx, r, nil)
	if err == nil {
		var moved bool
		err = s.Store.UpdateRequest(ctx, r.ID, func(cur Request) (RequestChange, error) {
			// Someone may have decided from the Home tab before the message existed.
			moved = len(cur.Decisions) > 0 || cur.Status != StatusPending
			cur.Message = ref
			return RequestChange{Request: cur}, nil
		})
		if err == nil {
			if moved {
				s.refresh(ctx, r.ID)
			} else {
				s.refreshHomes(ctx, r)
			}
			return
		}
	}
	s.Log.Error("posting request to approvers failed; cancelling it", "request_id", r.ID, "err", err)
	cancelled, err := s.cancelRequest(ctx, r.ID, "it could not be posted to the approvers")
	if err != nil {
		s.Log.Error("cancelling unposted request failed", "request_id", r.ID, "err", err)
		return
	}
	if ref.TS != "" { // posted, but where could not be stored: take its buttons away
		cancelled.Message = ref
		if err := s.Notifier.UpdateRequest(ctx, cancelled, nil); err != nil {
			s.Log.Error("updating approval message failed", "request_id", r.ID, "err", err)
		}
	}
	if err := s.Notifier.NotifyRequester(ctx, cancelled, nil); err != nil {
		s.Log.Error("telling requester failed", "request_id", r.ID, "err", err)
	}
}

// cancelRequest ends a pending request without a decision, with one conditional write and
// its audit event; a request no longer pending is ErrNotPending.
func (s *Service) cancelRequest(ctx context.Context, id, reason string) (Request, error) {
	now := s.Now()
	var cancelled RequestChange
	err := s.Store.UpdateRequest(ctx, id, func(cur Request) (RequestChange, error) {
		if cur.Status != StatusPending {
			return RequestChange{}, ErrNotPending
		}
		cur.Status, cur.DecidedAt = StatusCancelled, now
		cancelled = RequestChange{Request: cur, Events: []AuditEvent{{At: now, Actor: SystemActor, Action: ActionRequestCancelled,
			Principal: cur.Requester, RequestID: cur.ID, Reason: reason, Source: SourceSystem}}}
		return cancelled, nil
	})
	if err != nil {
		return Request{}, err
	}
	s.recorded(cancelled.Events...)
	return cancelled.Request, nil
}

// DecisionInput is an approver's approve or deny as submitted.
type DecisionInput struct {
	RequestID string
	Approver  string // Slack user ID of whoever submitted it
	Approve   bool
	Comment   string // required when denying
	Source    string
}

// CheckApprover returns the request if user may decide it now: it is pending, user is one of
// its approvers (the role's, and its escalate_to once escalated), and not its requester. Use it before showing a decision form;
// Decide checks again.
func (s *Service) CheckApprover(ctx context.Context, requestID, user string) (Request, error) {
	r, err := s.Store.Request(ctx, requestID)
	if err != nil {
		return Request{}, err
	}
	if err := s.mayDecide(ctx, r, user); err != nil {
		return r, err
	}
	if r.Status != StatusPending || !s.Now().Before(r.ExpiresAt) {
		return r, ErrNotPending
	}
	if r.decidedBy(user) {
		return r, ErrAlreadyDecided
	}
	return r, nil
}

// Decide records an approver's decision. A deny ends the request; the approval that reaches
// the quorum approves it and creates the grant, active from now for the requested duration
// (or, for an extension, moves the grant's end out). It returns the request as it is
// afterwards. Errors: *InputError (a deny without reason, a bad comment), ErrNotFound,
// ErrSelfApproval, ErrNotApprover, ErrAlreadyDecided, ErrNotPending (with the request's
// current state; a request whose time is up is expired on the way). Otherwise nothing
// changes on error.
func (s *Service) Decide(ctx context.Context, in DecisionInput) (Request, error) {
	comment, problem := checkText(in.Comment, !in.Approve)
	if problem != "" {
		field := FieldComment
		if !in.Approve {
			field = FieldReason
		}
		return Request{}, &InputError{Problems: []FieldProblem{{Field: field, Message: problem}}}
	}
	r, err := s.Store.Request(ctx, in.RequestID)
	if err != nil {
		return Request{}, err
	}
	// Who may decide a request only grows (escalation adds approvers, never removes any), so it
	// is checked before the write, keeping group look-ups out of the database transaction.
	if err := s.mayDecide(ctx, r, in.Approver); err != nil {
		return r, err
	}
	var extended Grant
	if r.ExtendsGrantID != "" {
		if extended, err = s.Grants.Grant(ctx, r.ExtendsGrantID); err != nil {
			return r, err
		}
	}
	now := s.Now()
	if r.Status == StatusPending && !now.Before(r.ExpiresAt) {
		s.expireRequest(ctx, r.ID)
		expired, _ := s.Store.Request(ctx, r.ID)
		return expired, ErrNotPending
	}
	var (
		after  Request
		grant  *Grant
		events []AuditEvent
	)
	err = s.Store.UpdateRequest(ctx, in.RequestID, func(r Request) (RequestChange, error) {
		after, grant, events = r, nil, nil
		if r.Status != StatusPending || !now.Before(r.ExpiresAt) {
			return RequestChange{}, ErrNotPending
		}
		if r.decidedBy(in.Approver) {
			return RequestChange{}, ErrAlreadyDecided
		}
		d := Decision{Approver: in.Approver, Approve: in.Approve, Comment: comment, At: now}
		r.Decisions = append(r.Decisions, d)
		change := RequestChange{Decision: &d}
		action := ActionDecisionDeny
		if in.Approve {
			action = ActionDecisionApprove
		}
		change.Events = append(change.Events, AuditEvent{At: now, Actor: in.Approver, Action: action,
			Principal: r.Requester, RequestID: r.ID, Reason: comment, Source: in.Source})
		switch {
		case !in.Approve:
			r.Status, r.DecidedAt = StatusDenied, now
			change.Events = append(change.Events, AuditEvent{At: now, Actor: in.Approver, Action: ActionRequestDenied,
				Principal: r.Requester, RequestID: r.ID, Reason: comment, Source: in.Source})
		case len(r.Approvers()) >= r.ApprovalsRequired && r.ExtendsGrantID != "":
			role, _ := s.Policy.Role(r.Role)
			g := extended
			g.ExpiresAt, g.Extensions = role.extensionEnd(extended, r.Duration), extended.Extensions+1
			grant = &g
			r.Status, r.DecidedAt, r.GrantID = StatusApproved, now, g.ID
			change.Extension = &GrantExtension{GrantID: g.ID, Extensions: extended.Extensions, ExpiresAt: g.ExpiresAt}
			change.Events = append(change.Events,
				AuditEvent{At: now, Actor: in.Approver, Action: ActionRequestApproved, Principal: r.Requester,
					RequestID: r.ID, GrantID: g.ID, Source: in.Source},
				AuditEvent{At: now, Actor: in.Approver, Action: ActionGrantExtended, Principal: r.Requester,
					RequestID: r.ID, GrantID: g.ID, Reason: "until " + g.ExpiresAt.UTC().Format(time.RFC3339), Source: in.Source})
		case len(r.Approvers()) >= r.ApprovalsRequired:
			grant = &Grant{
				ID: newID("grt"), RequestID: r.ID, Principal: r.Requester, Role: r.Role,
				ApprovedBy: r.Approvers(), CreatedAt: now, ExpiresAt: now.Add(r.Duration), Status: GrantActive,
			}
			r.Status, r.DecidedAt, r.GrantID = StatusApproved, now, grant.ID
			change.Grant = grant
			change.Events = append(change.Events,
				AuditEvent{At: now, Actor: in.Approver, Action: ActionRequestApproved, Principal: r.Requester,
					RequestID: r.ID, GrantID: grant.ID, Source: in.Source},
				AuditEvent{At: now, Actor: in.Approver, Action: ActionGrantCreated, Principal: r.Requester,
					RequestID: r.ID, GrantID: grant.ID, Reason: "approved by " + strings.Join(grant.ApprovedBy, ", "), Source: in.Source})
		}
		change.Request = r
		after, events = r, change.Events
		return change, nil
	})
	if err != nil {
		return after, err
	}
	s.recorded(events...)
	s.Log.Info("decision recorded", "request_id", after.ID, "approver", in.Approver, "approve", in.Approve, "status", after.Status)
	s.inBackground(func(ctx context.Context) {
		s.refresh(ctx, after.ID)
		if after.ExtendsGrantID != "" && grant != nil {
			s.refresh(ctx, grant.RequestID) // the extended grant's own message shows its new end
		}
		if after.Status != StatusPending {
			if err := s.Notifier.NotifyRequester(ctx, after, grant); err != nil {
				s.Log.Error("telling requester failed", "request_id", after.ID, "err", err)
			}
		}
	})
	return after, nil
}

// mayDecide checks that user may approve or deny r under the current policy: the role's
// approvers, and its escalate_to once r was escalated.
func (s *Service) mayDecide(ctx context.Context, r Request, user string) error {
	if r.Requester.Kind == PrincipalUser && r.Requester.ID == user {
		return ErrSelfApproval
	}
	role, ok := s.Policy.Role(r.Role)
	if !ok {
		return ErrUnknownRole
	}
	if !s.isAmong(ctx, requestApprovers(r, role), user) {
		return ErrNotApprover
	}
	return nil
}

// isApprover reports whether user is one of the role's approvers, directly or through a
// user group. A group that cannot be looked up counts as not containing the user.
func (s *Service) isApprover(ctx context.Context, role Role, user string) bool {
	return s.isAmong(ctx, role.Approvers, user)
}

// isAmong reports whether user is one of ids (user and user-group IDs), directly or through a
// user group. A group that cannot be looked up counts as not containing the user.
func (s *Service) isAmong(ctx context.Context, ids []string, user string) bool {
	if slices.Contains(ids, user) {
		return true
	}
	for _, id := range ids {
		if !groupIDPattern.MatchString(id) {
			continue
		}
		members, err := s.Groups.GroupMembers(ctx, id)
		if err != nil {
			s.Log.Error("looking up user group failed", "group", id, "err", err)
			continue
		}
		if slices.Contains(members, user) {
			return true
		}
	}
	return false
}

// refresh redraws a request's message from its stored state. Redraws of one request are
// serialised and always read the latest state, so an older redraw never lands last.
func (s *Service) refresh(ctx context.Context, id string) {
	h := fnv.New32a()
	h.Write([]byte(id))
	mu := &s.refreshing[h.Sum32()%uint32(len(s.refreshing))]
	mu.Lock()
	defer mu.Unlock()
	r, err := s.Store.Request(ctx, id)
	if err == nil && r.Message.TS != "" {
		var g *Grant
		if r.GrantID != "" {
			found, gErr := s.Grants.Grant(ctx, r.GrantID)
			if gErr != nil {
				err = gErr
			}
			g = &found
		}
		if err == nil {
			err = s.Notifier.UpdateRequest(ctx, r, g)
		}
	}
	if err != nil {
		s.Log.Error("updating approval message failed", "request_id", id, "err", err)
	}
	if r.ID != "" {
		s.refreshHomes(ctx, r)
	}
}

// backgroundTimeout bounds one background notification, Slack retries included.
const backgroundTimeout = 2 * time.Minute

// inBackground runs f after the caller has answered, so Slack round trips never delay an ack.
func (s *Service) inBackground(f func(ctx context.Context)) {
	s.background.Go(func() {
		ctx, cancel := context.WithTimeout(s.stopped, backgroundTimeout)
		defer cancel()
		f(ctx)
	})
}

var idEncoding = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

// newID returns a random identifier with a readable prefix, such as req_5k2m….
func newID(prefix string) string {
	b := make([]byte, 10)
	rand.Read(b)
	return prefix + "_" + idEncoding.EncodeToString(b)
}
