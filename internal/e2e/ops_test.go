package e2e

import (
	"net/http"
	"strings"
	"testing"
)

func TestHealthReadinessAndMetrics(t *testing.T) {
	g := startGatehouse(t)
	get := func(path string) (int, string) {
		req, _ := http.NewRequest("GET", g.issuer()+path, nil)
		status, body := g.do(req)
		return status, string(body)
	}
	if status, _ := get("/healthz"); status != http.StatusOK {
		t.Errorf("/healthz = %d", status)
	}
	if status, body := get("/readyz"); status != http.StatusOK {
		t.Errorf("/readyz with the database and Slack up = %d %s", status, body)
	}

	g.command("U0ALICE", "prod-db-admin 1h metrics please")
	g.approve("U0BOB", g.message("C0DBA", "metrics please"), "")
	g.message("C0DBA", "metrics please", "*Approved*")
	g.svc.App.Wait()
	_, metrics := get("/metrics")
	for _, want := range []string{
		`gatehouse_requests_total{outcome="created"} 1`,
		`gatehouse_requests_total{outcome="approved"} 1`,
		`gatehouse_decisions_total{outcome="approve"} 1`,
		`gatehouse_envelope_ack_seconds_count`,
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
}
