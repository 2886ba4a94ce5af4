package slackfake

import (
	"net/http"
	"strconv"
	"time"
)

// Fault is a misbehaviour the fake shows on purpose, the way real Slack does
// when it is busy or down. Schedule one with Fail.
type Fault struct {
	// Status is the HTTP status to answer with: 429 (with RetryAfter), 500,
	// 503. Zero means HTTP 200.
	Status int
	// RetryAfter is the Retry-After header of a 429, in seconds.
	RetryAfter int
	// Error is the ok:false error code of an HTTP 200 answer
	// ("ratelimited", "internal_error", "channel_not_found", …).
	Error string
	// Delay is added before the answer. A fault with only a Delay slows the
	// call down and then answers it normally.
	Delay time.Duration
	// Applied makes the call take effect before the fault is answered: the
	// message is posted, but the app sees the error (as when Slack's answer
	// is lost on the way back).
	Applied bool
	// Channel, if set, limits the fault to calls whose channel argument is
	// this (a channel ID, or the user ID a DM is sent to).
	Channel string
	// Calls is how many calls the fault affects; 0 means every call until
	// Until passes or ClearFaults.
	Calls int
	// Until ends the fault at that time; zero means no time limit.
	Until time.Time
}

// ResponseURLs is the method name under which Fail schedules faults for
// response_url posts.
const ResponseURLs = "response_url"

// AnyMethod is the method name under which Fail schedules a fault for every
// Web API method (not for response URLs).
const AnyMethod = "*"

// Fail schedules a fault for a Web API method (or AnyMethod, or
// ResponseURLs). Faults of one method apply in the order they were
// scheduled; a method's own faults come before AnyMethod's. Faulted calls
// never fail the test: a correct app copes with them.
func (s *Server) Fail(method string, f Fault) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults[method] = append(s.faults[method], &f)
}

// ClearFaults ends every scheduled fault.
func (s *Server) ClearFaults() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults = map[string][]*Fault{}
}

// Faulted reports how many calls a fault answered, by method.
func (s *Server) Faulted(method string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.faulted[method]
}

// takeFault returns the fault that applies to this call of method (with
// its channel argument), if any, counting it; the caller holds s.mu.
func (s *Server) takeFault(method, channel string) *Fault {
	now := time.Now()
	keys := []string{method}
	if method != ResponseURLs {
		keys = append(keys, AnyMethod)
	}
	for _, key := range keys {
		var live []*Fault
		for _, f := range s.faults[key] {
			if f.Until.IsZero() || now.Before(f.Until) {
				live = append(live, f)
			}
		}
		s.faults[key] = live
		for i, f := range live {
			if f.Channel != "" && f.Channel != channel {
				continue
			}
			taken := *f
			if f.Calls > 0 {
				if f.Calls--; f.Calls == 0 {
					s.faults[key] = append(live[:i:i], live[i+1:]...)
				}
			}
			s.faulted[method]++
			return &taken
		}
	}
	return nil
}

// refuses reports whether the fault answers instead of the method.
func (f *Fault) refuses() bool { return f.Status != 0 || f.Error != "" }

// write answers a faulted call.
func (f *Fault) write(w http.ResponseWriter) {
	status := f.Status
	if status == 0 {
		status = http.StatusOK
	}
	code := f.Error
	if code == "" {
		switch status {
		case http.StatusTooManyRequests:
			code = "ratelimited"
		default:
			code = "service_unavailable"
		}
	}
	if status == http.StatusTooManyRequests {
		w.Header().Set("Retry-After", strconv.Itoa(max(f.RetryAfter, 0)))
	}
	if status >= 500 {
		http.Error(w, "<html><body>Slack is having trouble</body></html>", status)
		return
	}
	writeJSON(w, status, map[string]any{"ok": false, "error": code})
}

// before does what f does before a call takes effect: its delay, then its refusal, unless
// the call is to take effect first. It reports whether the call goes on; a nil f lets it.
func (f *Fault) before(w http.ResponseWriter, r *http.Request) bool {
	if f == nil {
		return true
	}
	if f.Delay > 0 {
		select {
		case <-time.After(f.Delay):
		case <-r.Context().Done():
			return false
		}
	}
	if f.refuses() && !f.Applied {
		f.write(w)
		return false
	}
	return true
}
