package handlers

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"path"
	"time"
)

// Metrics counts the Slack side: envelope ack latency and Web API errors and retries.
type Metrics interface {
	EnvelopeAcked(latency time.Duration)
	SlackAPIError(method, code string) // an ok:false answer, or "http_<status>"/"transport"
	SlackAPIRetry(method string)       // a rate-limited call that will be retried
}

// NewHTTPClient returns the HTTP client for slack-go, counting every Web API call that
// fails. Slack answers most errors with HTTP 200 and {"ok":false,"error":…}, so the body is
// read (and handed on unchanged) to find them.
func NewHTTPClient(m Metrics) *http.Client {
	return &http.Client{Timeout: 30 * time.Second, Transport: countingTransport{next: http.DefaultTransport, metrics: m}}
}

type countingTransport struct {
	next    http.RoundTripper
	metrics Metrics
}

// maxCountedBody bounds how much of an answer is read to look for ok:false.
const maxCountedBody = 1 << 20

func (t countingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	method := path.Base(r.URL.Path)
	resp, err := t.next.RoundTrip(r)
	switch {
	case err != nil:
		t.metrics.SlackAPIError(method, "transport")
		return resp, err
	case resp.StatusCode == http.StatusTooManyRequests:
		t.metrics.SlackAPIRetry(method)
		return resp, nil
	case resp.StatusCode != http.StatusOK:
		t.metrics.SlackAPIError(method, "http_"+http.StatusText(resp.StatusCode))
		return resp, nil
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxCountedBody))
	resp.Body.Close()
	resp.Body = io.NopCloser(bytes.NewReader(body))
	if err != nil {
		return resp, nil
	}
	var answer struct {
		OK    *bool  `json:"ok"`
		Error string `json:"error"`
	}
	if json.Unmarshal(body, &answer) == nil && answer.OK != nil && !*answer.OK {
		t.metrics.SlackAPIError(method, answer.Error)
	}
	return resp, nil
}
