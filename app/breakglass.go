package app

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// BreakGlassStore records break-glass grants and their reviews.
type BreakGlassStore interface {
	// CreateBreakGlass stores a request that is approved from the start, its grant, their
	// audit events and the deliveries they owe, in one transaction.
	CreateBreakGlass(ctx context.Context, r Request, g Grant, events []AuditEvent, owed ...Delivery) error
	// ReviewGrant marks a grant that needs review as reviewed by e.Actor at e.At and appends
	// e, in one conditional write (only while the grant needs review); a grant that does not
	// need review (any more) is ErrAlreadyReviewed. The deliveries owed are added with it.
	ReviewGrant(ctx context.Context, id string, e AuditEvent, owed ...Delivery) error
}

// Break-glass errors.
var (
	// ErrAlreadyReviewed: the break-glass grant was already reviewed.
	ErrAlreadyReviewed = errors.New("break-glass grant already reviewed")
	// ErrSelfReview: the holder of a break-glass grant tried to review it.
	ErrSelfReview = errors.New("the holder cannot review their own break-glass grant")
	// ErrNotReviewer: the user is not among the approvers of the break-glass grant's role.
	ErrNotReviewer = errors.New("not an approver who may review this break-glass grant")
)

// ActionGrantReviewed is the audit action of an approver acknowledging a break-glass grant.
const ActionGrantReviewed = "grant.reviewed"

// mayBreakGlass reports whether user may take role at once, without approval: the role is
// break-glass and user is in its break_glass_users, directly or through a user group.
func (s *Service) mayBreakGlass(ctx context.Context, role Role, user string) (bool, error) {
	if !role.BreakGlass {
		return false, nil
	}
	return s.isAmong(ctx, role.BreakGlassUsers, user)
}

// breakGlass gives user the role at once for duration: one transaction stores the request,
// approved from the start with no decisions, and its grant, active from now and flagged as
// needing review. The role's channel is owed the break-glass notice (with the Reviewed
// button) and the user a DM. The input was checked by the caller; key is as for RequestAccess.
func (s *Service) breakGlass(ctx context.Context, user string, role Role, duration time.Duration, reason, source, key string) (Request, error) {
	now := s.Now()
	requester := User(user)
	r := Request{
		ID:        requestID(key),
		Requester: requester,
		Role:      role.Name,
		Duration:  duration,
		Reason:    reason,
		Status:    StatusApproved,
		CreatedAt: now,
		ExpiresAt: now, // never pending
		DecidedAt: now,
	}
	g := Grant{
		ID: newID("grt"), RequestID: r.ID, Principal: requester, Role: role.Name, ApprovedBy: []string{},
		CreatedAt: now, ExpiresAt: now.Add(duration), Status: GrantActive, BreakGlass: true, NeedsReview: true,
	}
	r.GrantID = g.ID
	how := "break-glass by " + user
	events := []AuditEvent{
		{At: now, Actor: user, Action: ActionRequestCreated, Principal: requester, RequestID: r.ID, Reason: reason, Source: source},
		{At: now, Actor: user, Action: ActionRequestApproved, Principal: requester, RequestID: r.ID, GrantID: g.ID, Reason: how, Source: source},
		{At: now, Actor: user, Action: ActionGrantCreated, Principal: requester, RequestID: r.ID, GrantID: g.ID,
			Reason: how + "; needs review", Source: source},
	}
	err := s.Grants.CreateBreakGlass(ctx, r, g, events,
		s.owe(DeliverMessage, r.ID, r.Role, r.Requester), s.owe(DeliverOutcome, r.ID, r.Role, r.Requester))
	if taken, ok := s.filedBefore(ctx, err, r); ok {
		return taken, nil
	}
	if err != nil {
		return Request{}, fmt.Errorf("break glass: %w", err)
	}
	s.recorded(events...)
	s.owed()
	s.Log.Warn("break-glass access taken", "request_id", r.ID, "grant_id", g.ID, "role", r.Role, "user", user, "duration", duration)
	return r, nil
}

// ReviewGrant records that user, an approver of the role, reviewed a break-glass grant:
// who and when are kept on the grant, with one conditional write and a grant.reviewed
// event, and the notice is redrawn. The holder never reviews their own use. A grant may be
// reviewed after it ended. Errors: ErrNotFound (no such break-glass grant), ErrSelfReview,
// ErrNotReviewer, ErrUnknownRole, ErrAlreadyReviewed (with the grant as reviewed). Nothing
// changes on error.
func (s *Service) ReviewGrant(ctx context.Context, grantID, user, source string) (Grant, error) {
	g, err := s.Grants.Grant(ctx, grantID)
	if err != nil {
		return Grant{}, err
	}
	if !g.BreakGlass {
		return Grant{}, ErrNotFound
	}
	if err := s.mayReview(ctx, g, user); err != nil {
		return g, err
	}
	if !g.NeedsReview {
		return g, ErrAlreadyReviewed
	}
	now := s.Now()
	event := AuditEvent{At: now, Actor: user, Action: ActionGrantReviewed, Principal: g.Principal, RequestID: g.RequestID,
		GrantID: g.ID, Reason: "break-glass use reviewed", Source: source}
	if err := s.Grants.ReviewGrant(ctx, g.ID, event, s.owe(DeliverMessage, g.RequestID, g.Role, g.Principal)); err != nil {
		if errors.Is(err, ErrAlreadyReviewed) {
			if cur, gErr := s.Grants.Grant(ctx, g.ID); gErr == nil {
				g = cur
			}
		}
		return g, err
	}
	s.recorded(event)
	s.Log.Info("break-glass grant reviewed", "grant_id", g.ID, "by", user)
	g.NeedsReview, g.ReviewedBy, g.ReviewedAt = false, user, now
	s.owed()
	return g, nil
}

// mayReview: an approver of the grant's role, as for deciding a request, but not its holder.
func (s *Service) mayReview(ctx context.Context, g Grant, user string) error {
	if g.Principal == User(user) {
		return ErrSelfReview
	}
	role, ok := s.Policy.Role(g.Role)
	if !ok {
		return ErrUnknownRole
	}
	approver, err := s.isApprover(ctx, role, user)
	if err != nil {
		return err
	}
	if !approver {
		return ErrNotReviewer
	}
	return nil
}
