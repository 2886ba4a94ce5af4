package e2e

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/app"
	"github.com/gatehouse/gatehouse/internal/slackfake"
)

// fiveChannels are roles posting to five channels of their own, C0R0…C0R4.
func fiveChannels() string {
	var roles string
	for i := range 5 {
		roles += fmt.Sprintf(`  - name: role%d
    description: Role %d
    approvers: [U0BOB]
    max_duration: 1h
    channel: C0R%d
`, i, i, i)
	}
	return roles
}

// postedTimes returns when each request tagged in channels was posted.
func (g *gatehouse) postedTimes(channels ...string) map[string]time.Time {
	at := map[string]time.Time{}
	for _, ch := range channels {
		for _, m := range g.slack.Messages(ch) {
			if id := taggedRequest(m); id != "" {
				at[id] = m.PostedAt
			}
		}
	}
	return at
}

// BenchmarkCommitToSlack files requests one every 5 ms with Slack healthy and reports the
// time from each request's commit to its chat.postMessage reaching Slack.
func BenchmarkCommitToSlack(b *testing.B) {
	const requests = 200
	g := startGatehouse(b)
	g.quiet()
	var latencies []time.Duration
	for i := 0; b.Loop(); i++ {
		committed := map[string]time.Time{}
		for j := range requests {
			r, err := g.svc.App.RequestAccess(context.Background(), app.User(fmt.Sprintf("U%d", 300000+j)),
				app.RequestInput{Role: "deploy", Duration: "30m", Reason: fmt.Sprintf("latency %d-%d", i, j)}, app.SourceSlack)
			if err != nil {
				b.Fatal(err)
			}
			committed[r.ID] = time.Now()
			time.Sleep(5 * time.Millisecond)
		}
		g.svc.App.Wait()
		posted := g.postedTimes("C0APPROVALS")
		for id, at := range committed {
			p, ok := posted[id]
			if !ok {
				b.Fatalf("request %s never posted", id)
			}
			latencies = append(latencies, p.Sub(at))
		}
	}
	reportLatencies(b, latencies, "-ms")
}

// BenchmarkOutboxDrain owes 1,000 approval messages across five channels while Slack
// refuses them, then lets Slack answer at once (no delay, no rate limit) and reports how
// fast the outbox drains into it.
func BenchmarkOutboxDrain(b *testing.B) {
	backlog := 1000
	if testing.Short() {
		backlog = 50
	}
	g := startGatehouse(b, withRoles(fiveChannels()))
	g.quiet()
	for i := 0; b.Loop(); i++ {
		b.StopTimer()
		g.slack.Fail("chat.postMessage", slackfake.Fault{Status: 503})
		for j := range backlog {
			_, err := g.svc.App.RequestAccess(context.Background(), app.User(fmt.Sprintf("U%d", 400000+j)),
				app.RequestInput{Role: fmt.Sprintf("role%d", j%5), Duration: "30m", Reason: fmt.Sprintf("backlog %d-%d", i, j)}, app.SourceSlack)
			if err != nil {
				b.Fatal(err)
			}
		}
		posts := func() int { return g.slack.Calls("chat.postMessage") - g.slack.Faulted("chat.postMessage") }
		before := posts()
		b.StartTimer()
		start := time.Now()
		g.slack.ClearFaults()
		g.clock.Advance(time.Hour) // past every backoff
		for posts() < before+backlog {
			time.Sleep(5 * time.Millisecond)
		}
		elapsed := time.Since(start)
		b.ReportMetric(float64(backlog)/elapsed.Seconds(), "msgs/s")
	}
}
