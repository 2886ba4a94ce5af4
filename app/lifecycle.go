package app

import (
	"context"
	"errors"
	"fmt"
)

// sweepBatch bounds the requests and grants one sweep ends; the next sweep takes the rest.
const sweepBatch = 100

// Sweep ends pending requests and grants whose time is up: their approval messages are
// redrawn and their requesters told. It reads what expired from the database (indexed by
// status and expiry, so its cost follows what expired, not how much is stored), so running
// it at start catches up on whatever expired while Gatehouse was down.
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
		err := s.Grants.EndGrant(ctx, g.ID, GrantExpired, event)
		if errors.Is(err, ErrNotPending) {
			continue // revoked meanwhile
		}
		if err != nil {
			return fmt.Errorf("sweep: %w", err)
		}
		s.recorded(event)
		g.Status, g.EndedBy, g.EndReason = GrantExpired, SystemActor, event.Reason
		s.inBackground(func(ctx context.Context) { s.grantEnded(ctx, g) })
	}
	return nil
}

// expireRequest ends a pending request whose time is up, with one conditional write, then
// redraws its message and tells the requester. A request decided meanwhile is left alone.
func (s *Service) expireRequest(ctx context.Context, id string) {
	now := s.Now()
	var change RequestChange
	err := s.Store.UpdateRequest(ctx, id, func(r Request) (RequestChange, error) {
		if r.Status != StatusPending || now.Before(r.ExpiresAt) {
			return RequestChange{}, ErrNotPending
		}
		r.Status, r.DecidedAt = StatusExpired, now
		change = RequestChange{Request: r, Events: []AuditEvent{{At: now, Actor: SystemActor, Action: ActionRequestExpired,
			Principal: r.Requester, RequestID: r.ID, Reason: "not decided in time", Source: SourceSystem}}}
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
	s.Log.Info("request expired", "request_id", id)
	s.inBackground(func(ctx context.Context) {
		s.refresh(ctx, id)
		if err := s.Notifier.NotifyRequester(ctx, change.Request, nil); err != nil {
			s.Log.Error("telling requester failed", "request_id", id, "err", err)
		}
	})
}
