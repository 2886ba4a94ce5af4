package app

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
)

// sweepBatch bounds the requests and grants one sweep ends; the next sweep takes the rest.
const sweepBatch = 100

// Sweep ends pending requests and grants whose time is up: their approval messages are
// redrawn and their requesters told. Then it reminds and escalates the pending requests whose
// role asks for it (see followUp). It reads what expired or fell due from the database
// (indexed by status and time, so its cost follows what expired or is due, not how much is
// stored), so running it at start catches up on whatever happened while Gatehouse was down.
func (s *Service) Sweep(ctx context.Context) error {
	now := s.Now()
	ids, err := s.Store.ExpiredRequests(ctx, now, sweepBatch)
	if err != nil {
		return fmt.Errorf("sweep: %w", err)
	}
	for _, id := range ids {
		s.expireRequest(ctx, id)
	}
	grants, err := s.Grants.ExpiredGrants(ctx, now, sweepBatch)
	if err != nil {
		return fmt.Errorf("sweep: %w", err)
	}
	for _, g := range grants {
		event := AuditEvent{At: now, Actor: SystemActor, Action: ActionGrantExpired, Principal: g.Principal, RequestID: g.RequestID,
			GrantID: g.ID, Reason: "its time was up", Source: SourceSystem}
		err := s.Grants.EndGrant(ctx, g.ID, GrantExpired, event, s.grantEndedDeliveries(g)...)
		if errors.Is(err, ErrNotPending) {
			continue // revoked meanwhile
		}
		if err != nil {
			return fmt.Errorf("sweep: %w", err)
		}
		s.recorded(event)
		s.owed()
	}
	due, err := s.Store.DueRequests(ctx, now, sweepBatch)
	if err != nil {
		return fmt.Errorf("sweep: %w", err)
	}
	for _, id := range due {
		s.followUp(ctx, id)
	}
	return nil
}

// expireRequest ends a pending request whose time is up, with one conditional write that
// owes its message redrawn and its requester told. A request decided meanwhile is left alone.
func (s *Service) expireRequest(ctx context.Context, id string) {
	now := s.Now()
	var change RequestChange
	err := s.Store.UpdateRequest(ctx, id, func(r Request) (RequestChange, error) {
		if r.Status != StatusPending || !r.timeUp(now) {
			return RequestChange{}, ErrNotPending
		}
		r.Status, r.DecidedAt = StatusExpired, now
		change = RequestChange{Request: r, Events: []AuditEvent{{At: now, Actor: SystemActor, Action: ActionRequestExpired,
			Principal: r.Requester, RequestID: r.ID, Reason: "not decided in time", Source: SourceSystem}},
			Deliveries: []Delivery{s.owe(DeliverMessage, r.ID, r.Role, r.Requester), s.owe(DeliverOutcome, r.ID, r.Role, r.Requester)}}
		return change, nil
	})
	if errors.Is(err, ErrNotPending) {
		return
	}
	if err != nil {
		s.Log.Error("expiring request failed", "request_id", id, "err", err)
		return
	}
	s.recorded(change.Events...)
	s.owed()
	s.Log.Info("request expired", "request_id", id)
}

// followUps returns when a request for the role filed at filed is due a reminder and an
// escalation; each is zero when the role asks for none or the request would expire first.
func (r Role) followUps(filed time.Time) (remindAt, escalateAt time.Time) {
	at := func(after time.Duration) time.Time {
		if after <= 0 || after >= r.RequestTTL {
			return time.Time{}
		}
		return filed.Add(after)
	}
	remindAt = at(r.RemindAfter)
	if len(r.EscalateTo) > 0 {
		escalateAt = at(r.EscalateAfter)
	}
	return remindAt, escalateAt
}

// requestApprovers returns who may decide r, each once: the role's approvers and, once r was
// escalated, its escalate_to.
func requestApprovers(r Request, role Role) []string {
	ids := role.Approvers
	if r.Escalated {
		ids = append(slices.Clip(ids), role.EscalateTo...)
	}
	var out []string
	for _, id := range ids {
		if !slices.Contains(out, id) {
			out = append(out, id)
		}
	}
	return out
}

// undecided returns those of ids who could still decide r: users other than its requester who
// have not decided it, and every user group (its other members may still decide).
func undecided(r Request, ids []string) []string {
	var out []string
	for _, id := range ids {
		self := r.Requester.Kind == PrincipalUser && r.Requester.ID == id
		if groupIDPattern.MatchString(id) || (!self && !r.decidedBy(id)) {
			out = append(out, id)
		}
	}
	return out
}

// errNotDue says a request has no reminder or escalation due (any more).
var errNotDue = errors.New("no reminder or escalation due")

// followUp reminds the undecided approvers of a pending request, escalates it, or both, as
// they fall due. One conditional write clears what is done and records it, so two sweepers
// never remind or escalate twice; the same write owes the thread replies (and, on
// escalation, the redraw that names who it was escalated to). A request decided or expired
// meanwhile, or not posted yet, is left alone.
func (s *Service) followUp(ctx context.Context, id string) {
	now := s.Now()
	var (
		reminded   []string // who was reminded
		escalation bool     // whether it was escalated now
		escalated  []string // who of its escalate_to may decide it
		events     []AuditEvent
	)
	err := s.Store.UpdateRequest(ctx, id, func(r Request) (RequestChange, error) {
		reminded, escalation, escalated, events = nil, false, nil, nil
		if r.Status != StatusPending || r.timeUp(now) {
			return RequestChange{}, ErrNotPending
		}
		remind := !r.RemindAt.IsZero() && !now.Before(r.RemindAt)
		escalate := !r.EscalateAt.IsZero() && !now.Before(r.EscalateAt)
		if (!remind && !escalate) || r.Message.TS == "" { // no thread to reply in yet
			return RequestChange{}, errNotDue
		}
		// The policy may have changed since the request was filed: what is due follows it as
		// it is now, and is cleared either way.
		role, ok := s.Policy.Role(r.Role)
		if remind {
			r.RemindAt = time.Time{}
			if ok && role.RemindAfter > 0 {
				reminded = undecided(r, requestApprovers(r, role))
			}
			if len(reminded) > 0 {
				events = append(events, AuditEvent{At: now, Actor: SystemActor, Action: ActionRequestReminded, Principal: r.Requester,
					RequestID: r.ID, Reason: "reminded " + strings.Join(reminded, ", "), Source: SourceSystem})
			}
		}
		if escalate {
			r.EscalateAt = time.Time{}
			if ok && len(role.EscalateTo) > 0 && !r.Escalated {
				r.Escalated, escalation = true, true
				escalated = undecided(r, role.EscalateTo)
				events = append(events, AuditEvent{At: now, Actor: SystemActor, Action: ActionRequestEscalated, Principal: r.Requester,
					RequestID: r.ID, Reason: "escalated to " + strings.Join(role.EscalateTo, ", "), Source: SourceSystem})
			}
		}
		change := RequestChange{Request: r, Events: events}
		if len(reminded) > 0 {
			d := s.owe(DeliverReminder, r.ID, r.Role, r.Requester)
			d.Approvers = reminded
			change.Deliveries = append(change.Deliveries, d)
		}
		if escalation {
			change.Deliveries = append(change.Deliveries, s.owe(DeliverMessage, r.ID, r.Role, r.Requester))
			if len(escalated) > 0 {
				d := s.owe(DeliverEscalation, r.ID, r.Role, r.Requester)
				d.Approvers = escalated
				change.Deliveries = append(change.Deliveries, d)
			}
		}
		return change, nil
	})
	if errors.Is(err, ErrNotPending) || errors.Is(err, errNotDue) {
		return
	}
	if err != nil {
		s.Log.Error("reminding or escalating request failed", "request_id", id, "err", err)
		return
	}
	s.recorded(events...)
	if len(reminded) > 0 {
		s.Log.Info("request reminded", "request_id", id, "approvers", strings.Join(reminded, ","))
	}
	if escalation {
		s.Log.Info("request escalated", "request_id", id, "to", strings.Join(escalated, ","))
	}
	s.owed()
}
