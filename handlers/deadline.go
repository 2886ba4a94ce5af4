package handlers

import (
	"context"
	"time"

	"github.com/gatehouse/gatehouse/app"
)

// interactiveWait bounds each use case a person waits on (a command, a click, a form):
// Slack shows nothing after 3 s, so a database that does not answer — a host dropping
// packets holds a connection for minutes — gets the words saying so within that time,
// instead of holding a handler for handlerTimeout.
const interactiveWait = 2 * time.Second

// bounded is a Service whose every use case that reaches the database ends by
// interactiveWait, or the caller's own deadline if that is sooner.
type bounded struct{ Service }

func within(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, interactiveWait)
}

func (s bounded) RequestAccess(ctx context.Context, requester app.Principal, in app.RequestInput, source string) (app.Request, error) {
	ctx, cancel := within(ctx)
	defer cancel()
	return s.Service.RequestAccess(ctx, requester, in, source)
}

func (s bounded) CheckApprover(ctx context.Context, requestID, user string) (app.Request, error) {
	ctx, cancel := within(ctx)
	defer cancel()
	return s.Service.CheckApprover(ctx, requestID, user)
}

func (s bounded) Decide(ctx context.Context, in app.DecisionInput) (app.Request, error) {
	ctx, cancel := within(ctx)
	defer cancel()
	return s.Service.Decide(ctx, in)
}

func (s bounded) FindLogin(ctx context.Context, user, code string) (app.PendingLogin, error) {
	ctx, cancel := within(ctx)
	defer cancel()
	return s.Service.FindLogin(ctx, user, code)
}

func (s bounded) ConfirmLogin(ctx context.Context, in app.LoginConfirmation) (app.Login, []app.Request, error) {
	ctx, cancel := within(ctx)
	defer cancel()
	return s.Service.ConfirmLogin(ctx, in)
}

func (s bounded) RevokeGrant(ctx context.Context, grantID, user, reason, source string) (app.Grant, error) {
	ctx, cancel := within(ctx)
	defer cancel()
	return s.Service.RevokeGrant(ctx, grantID, user, reason, source)
}

func (s bounded) ReviewGrant(ctx context.Context, grantID, user, source string) (app.Grant, error) {
	ctx, cancel := within(ctx)
	defer cancel()
	return s.Service.ReviewGrant(ctx, grantID, user, source)
}

func (s bounded) Overview(ctx context.Context, user string) (app.Overview, error) {
	ctx, cancel := within(ctx)
	defer cancel()
	return s.Service.Overview(ctx, user)
}

func (s bounded) CheckExtend(ctx context.Context, grantID, user string) (app.Grant, app.Role, error) {
	ctx, cancel := within(ctx)
	defer cancel()
	return s.Service.CheckExtend(ctx, grantID, user)
}

func (s bounded) ExtendGrant(ctx context.Context, grantID, user string, in app.RequestInput, source string) (app.Request, error) {
	ctx, cancel := within(ctx)
	defer cancel()
	return s.Service.ExtendGrant(ctx, grantID, user, in, source)
}

var _ Service = bounded{}
