package handlers

import (
	"context"
	"fmt"
	"time"

	"github.com/slack-go/slack"

	"github.com/gatehouse/gatehouse/app"
)

// People looks up Slack profiles (name, email) for ID tokens with users.info, keeping
// each for a while: tokens are minted often, profiles change rarely.
type People struct {
	api   *slack.Client
	cache *lookupCache[app.Profile]
}

// NewPeople returns a profile cache that keeps each profile for ttl.
func NewPeople(api *slack.Client, ttl time.Duration, now func() time.Time) *People {
	return &People{api: api, cache: newLookupCache[app.Profile](ttl, now)}
}

// Profile returns the user's display name and email. While Slack fails, the last profile it
// gave stands in, however old: a name in a token decides nothing.
func (p *People) Profile(ctx context.Context, userID string) (app.Profile, error) {
	e, err := p.cache.get(ctx, userID, func(ctx context.Context) (app.Profile, error) {
		var user *slack.User
		err := retry(ctx, func() (err error) {
			user, err = p.api.GetUserInfoContext(ctx, userID)
			return err
		})
		if err != nil {
			return app.Profile{}, fmt.Errorf("slack: users.info %s: %w", userID, err)
		}
		profile := app.Profile{Name: user.Profile.RealName, Email: user.Profile.Email}
		if profile.Name == "" {
			profile.Name = user.RealName
		}
		return profile, nil
	})
	if err != nil && e.fetched.IsZero() {
		return app.Profile{}, err
	}
	return e.value, nil
}
