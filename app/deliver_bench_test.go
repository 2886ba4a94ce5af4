package app_test

import (
	"context"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/app"
	"github.com/gatehouse/gatehouse/store"
)

// channelLimited is a Notifier that lets one message a second into each channel, as Slack's
// chat.postMessage does, on the injected clock; past it, it answers ratelimited with a
// whole-second Retry-After.
type channelLimited struct {
	recorder
	now    func() time.Time
	mu     sync.Mutex
	last   map[string]time.Time
	posted int
}

func (c *channelLimited) PostRequest(_ context.Context, r app.Request, _ *app.Grant) (app.MessageRef, error) {
	channel := "C" + r.Role
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.now()
	if last, ok := c.last[channel]; ok && now.Sub(last) < time.Second {
		return app.MessageRef{}, &app.DeliveryError{Method: "chat.postMessage", Code: "ratelimited", RetryAfter: time.Second}
	}
	c.last[channel] = now
	c.posted++
	return app.MessageRef{Channel: channel, TS: fmt.Sprint(c.posted)}, nil
}

// BenchmarkBacklogDrain drains a backlog of 1,000 owed approval messages across 5 channels
// when Slack takes 1 message a second per channel. Time is simulated (the injected clock
// moves 100 ms whenever nothing is due), so sim-seconds is how long the drain takes at
// Slack's real limit; the ideal is 200 s.
func BenchmarkBacklogDrain(b *testing.B) {
	const backlog, channels = 1000, 5
	for b.Loop() {
		b.StopTimer()
		db, err := store.Open(filepath.Join(b.TempDir(), "gatehouse.db"))
		if err != nil {
			b.Fatal(err)
		}
		var roles []app.Role
		for i := range channels {
			r := validRole()
			r.Name = fmt.Sprintf("role%d", i)
			r.Channel = "C" + r.Name
			roles = append(roles, r)
		}
		clock := newClock(time.Date(2026, 11, 30, 9, 0, 0, 0, time.UTC))
		slack := &channelLimited{now: clock.Now, last: map[string]time.Time{}}
		svc := app.NewService(app.Deps{
			Policy: app.Policy{ApprovalsChannel: "C0APPROVALS", Roles: roles}.WithDefaults(),
			Store:  db, Grants: db, Logins: db, Outbox: db, Notifier: slack, Groups: groups{}, Now: clock.Now,
		})
		for i := range backlog {
			in := app.RequestInput{Role: roles[i%channels].Name, Reason: "backlog"}
			if _, err := svc.RequestAccess(context.Background(), alice(), in, app.SourceSlack); err != nil {
				b.Fatal(err)
			}
		}
		start, began := clock.Now(), time.Now()
		b.StartTimer()
		for slack.posted < backlog {
			svc.Wait()
			clock.Advance(100 * time.Millisecond)
		}
		b.StopTimer()
		b.ReportMetric(clock.Now().Sub(start).Seconds(), "sim-seconds")
		b.ReportMetric(time.Since(began).Seconds(), "real-seconds")
		db.Close()
		b.StartTimer()
	}
}
