package slackfake

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/gorilla/websocket"
	"github.com/slack-go/slack"
	"github.com/slack-go/slack/socketmode"
)

// recorder is a testing.TB that records Errorf instead of failing, so tests
// can observe the failures the fake reports.
type recorder struct {
	testing.TB
	mu   sync.Mutex
	errs []string
}

func (r *recorder) Errorf(format string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.errs = append(r.errs, fmt.Sprintf(format, args...))
}

func (r *recorder) Error(args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.errs = append(r.errs, fmt.Sprint(args...))
}

func (r *recorder) failures() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.errs...)
}

// has reports whether some recorded failure contains want.
func (r *recorder) has(want string) bool {
	for _, e := range r.failures() {
		if strings.Contains(e, want) {
			return true
		}
	}
	return false
}

// newRecorded starts a fake whose test failures are recorded, not reported.
func newRecorded(t *testing.T) (*Server, *recorder) {
	rec := &recorder{TB: t}
	return New(rec), rec
}

// callAPI POSTs a JSON body to a Web API method and decodes the answer.
func callAPI(t *testing.T, s *Server, method, token string, body any) (int, map[string]any) {
	t.Helper()
	raw, err := json.Marshal(body)
	if err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest(http.MethodPost, s.APIURL()+method, bytes.NewReader(raw))
	req.Header.Set("Content-Type", "application/json; charset=utf-8")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	var out map[string]any
	if err := json.Unmarshal(data, &out); err != nil {
		t.Fatalf("%s: answer is not JSON: %s", method, data)
	}
	return resp.StatusCode, out
}

// issueTrigger hands out a trigger_id as if user had interacted.
func issueTrigger(s *Server, user string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.newTrigger(user)
}

// testApp is a minimal Socket Mode app built on the real slack-go clients.
type testApp struct {
	api    *slack.Client
	client *socketmode.Client
}

// startApp connects a real socketmode.Client to the fake and hands every
// Slack request to handle (on one goroutine, as a simple app would).
func startApp(t *testing.T, s *Server, handle func(app *testApp, evt socketmode.Event)) *testApp {
	t.Helper()
	api := slack.New(BotToken, slack.OptionAPIURL(s.APIURL()), slack.OptionAppLevelToken(AppToken))
	app := &testApp{api: api, client: socketmode.New(api, socketmode.OptionLog(log.New(io.Discard, "", 0)))}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = app.client.RunContext(ctx) }()
	go func() {
		defer close(done)
		for {
			select {
			case <-ctx.Done():
				return
			case evt := <-app.client.Events:
				if evt.Request != nil && evt.Type != socketmode.EventTypeHello {
					handle(app, evt)
				}
			}
		}
	}()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	return app
}

// Block Kit builders for tests.

func plain(s string) map[string]any  { return map[string]any{"type": "plain_text", "text": s} }
func mrkdwn(s string) map[string]any { return map[string]any{"type": "mrkdwn", "text": s} }
func chars(n int) string             { return strings.Repeat("x", n) }

func option(text, value string) map[string]any {
	return map[string]any{"text": plain(text), "value": value}
}

func buttonEl(label, actionID string) map[string]any {
	return map[string]any{"type": "button", "text": plain(label), "action_id": actionID, "value": "v-" + actionID}
}

// websocketDial connects to a Socket Mode URL like a bare client would.
func websocketDial(url string) (*websocket.Conn, *http.Response, error) {
	return websocket.DefaultDialer.Dial(url, nil)
}
