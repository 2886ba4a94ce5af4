package e2e

import (
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/internal/slackfake"
)

// BenchmarkSlashCommandBurst sends bursts of 200 concurrent /access commands through the
// fake Slack: half open the request form, half file a request from text. It reports the
// ack latency percentiles; the fake itself fails the run if any envelope waits more than
// 3 s for its ack or any form is opened with an expired trigger.
func BenchmarkSlashCommandBurst(b *testing.B) {
	const burst = 200
	g := startGatehouse(b)
	g.quiet()
	var latencies []time.Duration
	for i := 0; b.Loop(); i++ {
		var mu sync.Mutex
		var wg sync.WaitGroup
		for u := range burst {
			user := fmt.Sprintf("U%d", 100000+u)
			text := ""
			if u%2 == 1 {
				text = fmt.Sprintf("deploy 30m burst %d-%d", i, u)
			}
			wg.Go(func() {
				ack, err := g.slack.SlashCommand(user, "C0GENERAL", "/access", text)
				if err != nil {
					b.Error(err)
					return
				}
				mu.Lock()
				latencies = append(latencies, ack.Latency)
				mu.Unlock()
			})
		}
		wg.Wait()
		for u := 0; u < burst; u += 2 {
			if _, err := g.slack.WaitView(fmt.Sprintf("U%d", 100000+u), wait, func(v slackfake.View) bool { return v.Title == "Request access" }); err != nil {
				b.Fatalf("form for user %d never opened: %v", u, err)
			}
		}
		g.svc.App.Wait()
	}
	reportLatencies(b, latencies, "-ack-ms")
	b.ReportMetric(float64(burst), "commands/op")
}

// reportLatencies reports the p50, p99 and largest of latencies, in milliseconds, as
// metrics named p50<unit>, p99<unit> and max<unit>.
func reportLatencies(b *testing.B, latencies []time.Duration, unit string) {
	slices.Sort(latencies)
	pct := func(p float64) float64 {
		return float64(latencies[int(p*float64(len(latencies)-1))].Microseconds()) / 1000
	}
	b.ReportMetric(pct(0.50), "p50"+unit)
	b.ReportMetric(pct(0.99), "p99"+unit)
	b.ReportMetric(pct(1), "max"+unit)
}
