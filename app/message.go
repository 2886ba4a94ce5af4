package app

import (
	"context"
	"errors"
	"time"
)

// drawMessage brings a request's approval message (or break-glass notice) to the request's
// current state: it posts the message if none is known, adopting one that reached Slack on
// an earlier attempt whose answer was lost, and otherwise redraws it in place.
func (s *Service) drawMessage(ctx context.Context, dl Delivery) error {
	unlock := s.delivery.lockDrawing(dl.RequestID)
	defer unlock()
	r, err := s.Store.Request(ctx, dl.RequestID)
	if err != nil {
		return err
	}
	var g *Grant
	if r.GrantID != "" {
		found, err := s.Grants.Grant(ctx, r.GrantID)
		if err != nil {
			return err
		}
		g = &found
	}
	target := dl.Target
	now := s.Now()
	if r.Message.TS != "" {
		err := s.Notifier.UpdateRequest(ctx, r, g)
		s.delivery.noteLimit(target, now, err)
		if err == nil {
			s.refreshHomes(ctx, r)
		}
		return err
	}
	if r.Status == StatusCancelled {
		return errMoot // never shown to anyone: nothing to take back
	}
	return s.postMessage(ctx, dl, r, g, target)
}

// postMessage posts a request's first message and records where. A request's time to be
// decided (request_ttl) and its reminders count from this moment: approvers cannot decide
// what they have not seen.
func (s *Service) postMessage(ctx context.Context, dl Delivery, r Request, g *Grant, target string) error {
	var ref MessageRef
	if dl.mayHaveLanded() {
		found, err := s.Notifier.FindRequestMessage(ctx, r)
		switch {
		case err == nil:
			ref = found
			s.Log.Info("adopting an approval message posted before", "request_id", r.ID, "ts", found.TS)
		case !errors.Is(err, ErrNotFound):
			return err
		}
	}
	postedAt := s.Now()
	role, _ := s.Policy.Role(r.Role)
	if r.Status == StatusPending {
		r.ExpiresAt = postedAt.Add(role.RequestTTL)
		r.RemindAt, r.EscalateAt = role.followUps(postedAt)
	}
	adopted := ref.TS != ""
	if !adopted {
		var err error
		ref, err = s.Notifier.PostRequest(ctx, r, g)
		s.delivery.noteLimit(target, postedAt, err)
		if err != nil {
			return err
		}
	}
	err := s.Store.UpdateRequest(ctx, r.ID, func(cur Request) (RequestChange, error) {
		cur.Message = ref
		if cur.Status == StatusPending {
			cur.ExpiresAt, cur.RemindAt, cur.EscalateAt = r.ExpiresAt, r.RemindAt, r.EscalateAt
		}
		change := RequestChange{Request: cur}
		if cur.NotifyWhenPosted {
			cur.NotifyWhenPosted = false
			change.Request = cur
			change.Deliveries = append(change.Deliveries, s.owe(DeliverPosted, cur.ID, cur.Role, cur.Requester))
		}
		if adopted { // it shows what was true when it was posted
			change.Deliveries = append(change.Deliveries, s.owe(DeliverMessage, cur.ID, cur.Role, cur.Requester))
		}
		return change, nil
	})
	if err != nil {
		// Slack has the message; the next attempt finds it by its request ID.
		return err
	}
	s.delivery.announcePosted(r.ID)
	s.Log.Info("request posted", "request_id", r.ID, "channel", ref.Channel, "ts", ref.TS)
	s.refreshHomes(ctx, r)
	return nil
}

// errPosted: the request was posted before the requester had to be told it was saved.
var errPosted = errors.New("posted")

// AwaitPosted waits up to wait for request id's approval message to be posted and reports
// whether it is. If not, the requester is owed a DM once it is — recorded with one
// conditional write, so whoever is told "saved, will be posted" hears when it is.
func (s *Service) AwaitPosted(ctx context.Context, id string, wait time.Duration) (bool, error) {
	signal := s.delivery.postedSignal(id)
	defer s.delivery.forgetPosted(id)
	r, err := s.Store.Request(ctx, id)
	if err != nil {
		return false, err
	}
	if r.Message.TS != "" || r.Status == StatusCancelled {
		return r.Message.TS != "", nil
	}
	timer := time.NewTimer(wait)
	defer timer.Stop()
	select {
	case <-signal:
		return true, nil
	case <-timer.C: // posted by another process meanwhile, the write below finds out
	case <-ctx.Done():
	}
	err = s.Store.UpdateRequest(ctx, id, func(cur Request) (RequestChange, error) {
		if cur.Message.TS != "" {
			return RequestChange{}, errPosted
		}
		cur.NotifyWhenPosted = true
		return RequestChange{Request: cur}, nil
	})
	if errors.Is(err, errPosted) {
		return true, nil
	}
	return false, err
}
