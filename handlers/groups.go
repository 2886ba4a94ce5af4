package handlers

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/slack-go/slack"

	"github.com/gatehouse/gatehouse/app"
)

// GroupCache resolves Slack user groups to their members with usergroups.users.list
// (rate limited to about 20 calls a minute), remembering each answer for a short while.
type GroupCache struct {
	api   *slack.Client
	cache *lookupCache[[]string]
}

var _ app.GroupResolver = (*GroupCache)(nil)

// NewGroupCache returns a cache that keeps each group's members for ttl.
func NewGroupCache(api *slack.Client, ttl time.Duration, now func() time.Time) *GroupCache {
	return &GroupCache{api: api, cache: newLookupCache[[]string](ttl, now)}
}

// GroupMembers returns the user IDs in the group; when Slack fails, the error (an
// *app.DeliveryError) comes with the members it last said, if any. A refusal for good (a
// missing scope, a revoked token, a group that is gone) forgets them.
func (c *GroupCache) GroupMembers(ctx context.Context, groupID string) (app.Members, error) {
	const method = "usergroups.users.list"
	e, err := c.cache.get(ctx, groupID, func(ctx context.Context) (members []string, err error) {
		err = retry(ctx, func() (err error) {
			members, err = c.api.GetUserGroupMembersContext(ctx, groupID)
			return err
		})
		return members, err
	})
	if err == nil {
		return app.Members{IDs: e.value, AsOf: e.fetched}, nil
	}
	err = classify(method, err)
	var de *app.DeliveryError
	if errors.As(err, &de) && de.Permanent { // what Slack said before is no evidence any more
		c.cache.forget(groupID)
		e = cacheEntry[[]string]{}
	}
	return app.Members{IDs: e.value, AsOf: e.fetched}, fmt.Errorf("slack: members of %s: %w", groupID, err)
}
