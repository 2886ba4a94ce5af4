package app

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"time"
)

// CheckRequest says whether in is a valid request, without filing anything.
// The error is an *InputError.
func (s *Service) CheckRequest(in RequestInput) error {
	_, _, _, err := s.Policy.checkRequest(in)
	return err
}

// RequestAccess files a request for requester; its approval message is owed to the
// approvers with the same write and posted by Deliver. For a break-glass role, a user in its
// break_glass_users gets the grant at once instead: the request comes back approved, with
// its GrantID (see breakGlass); anyone else files a normal request. Invalid input returns an
// *InputError and files nothing. Filing again with the same in.Key returns the request
// filed the first time.
func (s *Service) RequestAccess(ctx context.Context, requester Principal, in RequestInput, source string) (Request, error) {
	role, duration, reason, err := s.Policy.checkRequest(in)
	if err != nil {
		return Request{}, err
	}
	if requester.Kind == PrincipalUser {
		may, err := s.mayBreakGlass(ctx, role, requester.ID)
		if err != nil {
			return Request{}, err
		}
		if may {
			return s.breakGlass(ctx, requester.ID, role, duration, reason, source, in.Key)
		}
	}
	return s.file(ctx, s.newRequest(requester, role, duration, reason, in.Key), source)
}

// newRequest is a pending request filed now. Its time to be decided is counted again from
// the moment it is posted (see postMessage).
func (s *Service) newRequest(requester Principal, role Role, duration time.Duration, reason, key string) Request {
	now := s.Now()
	return Request{
		ID:                requestID(key),
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

// requestID is a new request ID, or, for an action with an idempotency key, the one ID that
// action files under however often it is retried.
func requestID(key string) string {
	if key == "" {
		return newID("req")
	}
	sum := sha256.Sum256([]byte("gatehouse request\x00" + key))
	return "req_" + idEncoding.EncodeToString(sum[:10])
}

// filedBefore returns the request r was already filed as, when storing it met ErrConflict
// because the same action came again (a redelivery, or a command finished after a
// restart: its idempotency key gives it the same ID) from the same requester.
func (s *Service) filedBefore(ctx context.Context, err error, r Request) (Request, bool) {
	if !errors.Is(err, ErrConflict) {
		return Request{}, false
	}
	filed, findErr := s.Store.Request(ctx, r.ID)
	return filed, findErr == nil && filed.Requester == r.Requester
}

// file stores a new request with its approval message owed. Its reminder and escalation
// are set when the message is posted (see postMessage): they are replies in its thread.
func (s *Service) file(ctx context.Context, r Request, source string) (Request, error) {
	event := AuditEvent{At: r.CreatedAt, Actor: r.Requester.ID, Action: ActionRequestCreated, Principal: r.Requester,
		RequestID: r.ID, GrantID: r.ExtendsGrantID, Reason: r.Reason, Source: source}
	err := s.Store.CreateRequest(ctx, r, event, s.owe(DeliverMessage, r.ID, r.Role, r.Requester))
	if filed, ok := s.filedBefore(ctx, err, r); ok {
		return filed, nil
	}
	if err != nil {
		return Request{}, fmt.Errorf("file request: %w", err)
	}
	s.recorded(event)
	s.owed()
	s.Log.Info("request filed", "request_id", r.ID, "role", r.Role, "requester", r.Requester.ID, "duration", r.Duration,
		"extends", r.ExtendsGrantID)
	return r, nil
}

// cancelRequest ends a pending request without a decision, with one conditional write and
// its audit event (its message, if posted, is redrawn); a request no longer pending is
// ErrNotPending.
func (s *Service) cancelRequest(ctx context.Context, id, reason string) (Request, error) {
	now := s.Now()
	var cancelled RequestChange
	err := s.Store.UpdateRequest(ctx, id, func(cur Request) (RequestChange, error) {
		if cur.Status != StatusPending {
			return RequestChange{}, ErrNotPending
		}
		cur.Status, cur.DecidedAt = StatusCancelled, now
		cancelled = RequestChange{Request: cur, Events: []AuditEvent{{At: now, Actor: SystemActor, Action: ActionRequestCancelled,
			Principal: cur.Requester, RequestID: cur.ID, Reason: reason, Source: SourceSystem}},
			Deliveries: []Delivery{s.owe(DeliverMessage, cur.ID, cur.Role, cur.Requester)}}
		return cancelled, nil
	})
	if err != nil {
		return Request{}, err
	}
	s.recorded(cancelled.Events...)
	s.owed()
	return cancelled.Request, nil
}
