package app

import (
	"context"
	"slices"
)

// Overview is what a person sees of Gatehouse in /access list and the App Home: their
// active grants, their pending requests, the requests waiting on them and, for admins,
// every other pending request.
type Overview struct {
	User    string
	Grants  []Grant
	Pending []Request
	Waiting []Request // pending requests they may decide and have not decided
	Others  []Request // admins only: every other pending request
}

// overviewLimit bounds the pending requests looked at for one overview.
const overviewLimit = 200

// Overview gathers what user should see.
func (s *Service) Overview(ctx context.Context, user string) (Overview, error) {
	o := Overview{User: user}
	var err error
	if o.Grants, err = s.Grants.ActiveGrants(ctx, User(user), s.Now()); err != nil {
		return Overview{}, err
	}
	pending, err := s.Store.PendingRequests(ctx, overviewLimit)
	if err != nil {
		return Overview{}, err
	}
	admin := slices.Contains(s.Policy.Admins, user)
	now := s.Now()
	for _, r := range pending {
		switch {
		case r.timeUp(now):
			// expired; the sweeper is about to say so
		case r.Requester == User(user):
			o.Pending = append(o.Pending, r)
		case !r.decidedBy(user) && s.mayDecide(ctx, r, user) == nil:
			o.Waiting = append(o.Waiting, r)
		case admin:
			o.Others = append(o.Others, r)
		}
	}
	return o, nil
}

// concerned returns the Slack users whose overview a change to r may change: the requester
// and those who may decide it (group members included).
func (s *Service) concerned(ctx context.Context, r Request) []string {
	var users []string
	if r.Requester.Kind == PrincipalUser {
		users = append(users, r.Requester.ID)
	}
	role, _ := s.Policy.Role(r.Role)
	for _, id := range requestApprovers(r, role) {
		if !groupIDPattern.MatchString(id) {
			users = append(users, id)
			continue
		}
		members, err := s.Groups.GroupMembers(ctx, id)
		if err != nil {
			s.Log.Warn("looking up approver group failed", "group", id, "err", err)
		}
		users = append(users, members.IDs...) // the last known ones, if Slack fails: a redraw decides nothing
	}
	slices.Sort(users)
	return slices.Compact(users)
}

// refreshHomes redraws the App Home of everyone a change to r concerns.
func (s *Service) refreshHomes(ctx context.Context, r Request) {
	err := s.Notifier.RefreshHomes(ctx, s.concerned(ctx, r), func(user string) (Overview, error) { return s.Overview(ctx, user) })
	if err != nil {
		s.Log.Error("refreshing App Homes failed", "request_id", r.ID, "err", err)
	}
}
