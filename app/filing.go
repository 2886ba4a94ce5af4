package app

import (
	"context"
	"fmt"
	"time"
)

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
