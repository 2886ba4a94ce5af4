// Package metrics exposes what Gatehouse counts to Prometheus.
package metrics

import (
	"context"
	"net/http"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/gatehouse/gatehouse/app"
)

// Metrics is the Prometheus side of every package's Metrics interface.
type Metrics struct {
	registry   *prometheus.Registry
	requests   *prometheus.CounterVec
	decisions  *prometheus.CounterVec
	tokens     *prometheus.CounterVec
	slackErrs  *prometheus.CounterVec
	slackRetry *prometheus.CounterVec
	ackLatency prometheus.Histogram
	deliveries *prometheus.CounterVec
}

// New registers Gatehouse's metrics and the Go and process collectors.
func New() *Metrics {
	m := &Metrics{
		registry: prometheus.NewRegistry(),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "gatehouse_requests_total",
			Help: "Access requests by outcome: created, approved, denied, expired, cancelled."}, []string{"outcome"}),
		decisions: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "gatehouse_decisions_total",
			Help: "Approver decisions by outcome: approve, deny."}, []string{"outcome"}),
		tokens: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "gatehouse_tokens_issued_total",
			Help: "Token responses issued, by grant type."}, []string{"grant_type"}),
		slackErrs: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "gatehouse_slack_api_errors_total",
			Help: "Slack Web API calls that failed, by method and error."}, []string{"method", "error"}),
		slackRetry: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "gatehouse_slack_api_retries_total",
			Help: "Slack Web API calls rate limited and retried, by method."}, []string{"method"}),
		deliveries: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "gatehouse_deliveries_total",
			Help: "Attempts to deliver what a state change owes Slack, by kind, outcome (delivered, moot, retry, failed) and error."},
			[]string{"kind", "outcome", "error"}),
		ackLatency: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "gatehouse_envelope_ack_seconds",
			Help: "Time from receiving a Socket Mode envelope to acknowledging it.", Buckets: prometheus.ExponentialBuckets(0.0005, 2, 14)}),
	}
	m.registry.MustRegister(m.requests, m.decisions, m.tokens, m.slackErrs, m.slackRetry, m.ackLatency, m.deliveries,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// Handler serves the metrics in Prometheus' text format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.registry, promhttp.HandlerOpts{})
}

// EventsRecorded counts requests and decisions from their audit events.
func (m *Metrics) EventsRecorded(events []app.AuditEvent) {
	for _, e := range events {
		switch e.Action {
		case app.ActionRequestCreated, app.ActionRequestApproved, app.ActionRequestDenied, app.ActionRequestExpired, app.ActionRequestCancelled:
			m.requests.WithLabelValues(strings.TrimPrefix(e.Action, "request.")).Inc()
		case app.ActionDecisionApprove, app.ActionDecisionDeny:
			m.decisions.WithLabelValues(strings.TrimPrefix(e.Action, "decision.")).Inc()
		}
	}
}

// WatchOutbox exports the outbox's depth and the age of its oldest delivery, read at each
// scrape from state.
func (m *Metrics) WatchOutbox(state func(context.Context) (int, time.Time, error)) {
	read := func() (int, time.Time) {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		depth, oldest, err := state(ctx)
		if err != nil {
			return -1, time.Time{}
		}
		return depth, oldest
	}
	m.registry.MustRegister(
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "gatehouse_outbox_depth",
			Help: "Slack effects owed and not yet delivered (-1: the database did not answer)."},
			func() float64 { depth, _ := read(); return float64(depth) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "gatehouse_outbox_oldest_age_seconds",
			Help: "How long the oldest Slack effect still owed has waited (0 when none)."},
			func() float64 {
				if _, oldest := read(); !oldest.IsZero() {
					return time.Since(oldest).Seconds()
				}
				return 0
			}))
}

// Delivered counts one delivery attempt (app.DeliveryMetrics).
func (m *Metrics) Delivered(kind app.DeliveryKind, outcome, code string) {
	m.deliveries.WithLabelValues(string(kind), outcome, code).Inc()
}

// TokenIssued, EnvelopeAcked, SlackAPIError and SlackAPIRetry count what their names say.
func (m *Metrics) TokenIssued(grantType string)        { m.tokens.WithLabelValues(grantType).Inc() }
func (m *Metrics) EnvelopeAcked(latency time.Duration) { m.ackLatency.Observe(latency.Seconds()) }
func (m *Metrics) SlackAPIError(method, code string)   { m.slackErrs.WithLabelValues(method, code).Inc() }
func (m *Metrics) SlackAPIRetry(method string)         { m.slackRetry.WithLabelValues(method).Inc() }
