package handlers

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/slack-go/slack"

	"github.com/gatehouse/gatehouse/app"
)

// GroupCache resolves Slack user groups to their members with usergroups.users.list,
// remembering each answer for a short while: approvers click often, groups change rarely,
// and the method is rate limited to about 20 calls a minute.
type GroupCache struct {
	api *slack.Client
	ttl time.Duration
	now func() time.Time

	mu      sync.Mutex
	entries map[string]groupEntry
}

type groupEntry struct {
	members []string
	fetched time.Time
}

var _ app.GroupResolver = (*GroupCache)(nil)

// NewGroupCache returns a cache that keeps each group's members for ttl.
func NewGroupCache(api *slack.Client, ttl time.Duration, now func() time.Time) *GroupCache {
	return &GroupCache{api: api, ttl: ttl, now: now, entries: map[string]groupEntry{}}
}

// GroupMembers returns the user IDs in the group.
func (c *GroupCache) GroupMembers(ctx context.Context, groupID string) ([]string, error) {
	c.mu.Lock()
	e, ok := c.entries[groupID]
	c.mu.Unlock()
	if ok && c.now().Sub(e.fetched) < c.ttl {
		return e.members, nil
	}
	var members []string
	err := retry(ctx, func() (err error) {
		members, err = c.api.GetUserGroupMembersContext(ctx, groupID)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("slack: members of %s: %w", groupID, err)
	}
	c.mu.Lock()
	c.entries[groupID] = groupEntry{members: members, fetched: c.now()}
	c.mu.Unlock()
	return members, nil
}
