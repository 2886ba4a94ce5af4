package app

import (
	"context"
	"fmt"
	"time"
)

// extensionEnd is when g ends if an extension by d is approved: d more than its
// current end, but — once the role's max_extensions are used up — never past max_duration
// from the grant's first approval. (A grant that already ended is not extended at all: the
// write that applies an extension requires it to be still running.)
func (r Role) extensionEnd(g Grant, d time.Duration) time.Time {
	end := g.ExpiresAt.Add(d)
	if limit := g.CreatedAt.Add(r.MaxDuration); g.Extensions >= r.MaxExtensions && end.After(limit) {
		end = limit
	}
	return end
}

// CheckExtend returns the grant and its role if user may ask to extend it now: it is
// theirs and still active. Use it before showing the Extend form; ExtendGrant checks again.
func (s *Service) CheckExtend(ctx context.Context, grantID, user string) (Grant, Role, error) {
	g, err := s.Grants.Grant(ctx, grantID)
	if err != nil {
		return Grant{}, Role{}, err
	}
	role, ok := s.Policy.Role(g.Role)
	switch {
	case g.Principal != User(user):
		return g, role, ErrNotAllowed
	case !ok:
		return g, role, ErrUnknownRole
	case g.Status != GrantActive || !s.Now().Before(g.ExpiresAt):
		return g, role, ErrNotPending
	}
	return g, role, nil
}

// ExtendGrant files a request to extend the user's active grant by a duration, with a
// reason; it goes through the same approvals as any request, and on approval the grant's
// end moves out (see Role.extensionEnd). An extension that could not move the end at all
// is an *InputError, as are a bad duration or reason; nothing is filed then.
func (s *Service) ExtendGrant(ctx context.Context, grantID, user string, in RequestInput, source string) (Request, error) {
	g, role, err := s.CheckExtend(ctx, grantID, user)
	if err != nil {
		return Request{}, err
	}
	in.Role = g.Role
	_, duration, reason, err := s.Policy.checkRequest(in)
	if err != nil {
		return Request{}, err
	}
	if !role.extensionEnd(g, duration).After(g.ExpiresAt) {
		return Request{}, &InputError{Problems: []FieldProblem{{Field: FieldDuration, Message: fmt.Sprintf(
			"This grant already ends at the latest %s allows: %s from its first approval.", role.Name, FormatDuration(role.MaxDuration))}}}
	}
	r := s.newRequest(g.Principal, role, duration, reason, in.Key)
	r.ExtendsGrantID = g.ID
	return s.file(ctx, r, source)
}
