package app

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"
)

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
	if r.Status != StatusPending || r.timeUp(s.Now()) {
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
	if r.Status == StatusPending && r.timeUp(now) {
		s.expireRequest(ctx, r.ID)
		expired, _ := s.Store.Request(ctx, r.ID)
		return expired, ErrNotPending
	}
	var (
		after  Request
		events []AuditEvent
	)
	err = s.Store.UpdateRequest(ctx, in.RequestID, func(r Request) (RequestChange, error) {
		after = r // on a refusal, the request as it is
		change, err := s.applyDecision(r, in, comment, extended, now)
		if err != nil {
			return RequestChange{}, err
		}
		after, events = change.Request, change.Events
		return change, nil
	})
	if err != nil {
		return after, err
	}
	s.recorded(events...)
	s.owed()
	s.Log.Info("decision recorded", "request_id", after.ID, "approver", in.Approver, "approve", in.Approve, "status", after.Status)
	return after, nil
}

// applyDecision is in's effect on r, as of now: the decision, and the outcome it brings
// (denied; approved with a new grant; approved extending extended), and the Slack effects
// it owes. It returns the change to write.
func (s *Service) applyDecision(r Request, in DecisionInput, comment string, extended Grant, now time.Time) (RequestChange, error) {
	var grant *Grant
	if r.Status != StatusPending || r.timeUp(now) {
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
	change.Deliveries = []Delivery{s.owe(DeliverMessage, r.ID, r.Role, r.Requester)}
	if change.Extension != nil { // the extended grant's own message shows its new end
		change.Deliveries = append(change.Deliveries, s.owe(DeliverMessage, grant.RequestID, r.Role, r.Requester))
	}
	if r.Status != StatusPending {
		change.Deliveries = append(change.Deliveries, s.owe(DeliverOutcome, r.ID, r.Role, r.Requester))
	}
	return change, nil
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
	among, err := s.isAmong(ctx, requestApprovers(r, role), user)
	if err != nil {
		return err
	}
	if !among {
		return ErrNotApprover
	}
	return nil
}

// isApprover reports whether user is one of the role's approvers, directly or through a
// user group (see isAmong).
func (s *Service) isApprover(ctx context.Context, role Role, user string) (bool, error) {
	return s.isAmong(ctx, role.Approvers, user)
}

// isAmong reports whether user is one of ids (user and user-group IDs), directly or through a
// user group. A failed group look-up is no answer: if no other group contains the user and
// the group's last known members may not stand in (see standsIn), it is ErrMembershipUnknown.
func (s *Service) isAmong(ctx context.Context, ids []string, user string) (bool, error) {
	if slices.Contains(ids, user) {
		return true, nil
	}
	var failed error
	for _, id := range ids {
		if !groupIDPattern.MatchString(id) {
			continue
		}
		members, err := s.Groups.GroupMembers(ctx, id)
		if err != nil {
			if !s.standsIn(members) {
				s.Log.Warn("looking up user group failed", "group", id, "known_since", members.AsOf, "err", err)
				failed = err
				continue
			}
			s.Log.Warn("looking up user group failed; its last known members stand in", "group", id, "known_since", members.AsOf, "err", err)
		}
		if slices.Contains(members.IDs, user) {
			return true, nil
		}
	}
	if failed != nil {
		return false, fmt.Errorf("%w: %w", ErrMembershipUnknown, failed)
	}
	return false, nil
}

// staleMembershipLimit bounds how old a user group's last known members may be to stand in
// for Slack: long enough to ride out a rate limit or a short outage, short enough that
// someone removed from an approver group does not keep deciding through a long one.
const staleMembershipLimit = time.Hour

// standsIn reports whether members, returned with a failed look-up, may answer for Slack:
// only when they are known (after a refusal for good none are, see GroupResolver) and less
// than staleMembershipLimit old.
func (s *Service) standsIn(members Members) bool {
	return !members.AsOf.IsZero() && s.Now().Sub(members.AsOf) < staleMembershipLimit
}
