package slackfake

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/gorilla/websocket"
)

// Ack is the app's acknowledgement of an envelope.
type Ack struct {
	// Payload is the ack's "payload", nil if it had none.
	Payload json.RawMessage
	// Latency is the time from sending the envelope to receiving the ack.
	Latency time.Duration
	// ResponseAction is, for a view_submission ack, "errors", "update",
	// "push", "clear" or "" (close the view).
	ResponseAction string
	// Errors are the messages of response_action "errors", keyed by the
	// block_id of an input block.
	Errors map[string]string
}

// envelope is a Socket Mode message from Slack to the app.
type envelope struct {
	EnvelopeID             string          `json:"envelope_id"`
	Type                   string          `json:"type"`
	Payload                json.RawMessage `json:"payload"`
	AcceptsResponsePayload bool            `json:"accepts_response_payload"`
	RetryAttempt           int             `json:"retry_attempt"`
	RetryReason            string          `json:"retry_reason"`
}

// maxRemembered bounds how many envelopes Redeliver can reach back.
const maxRemembered = 100

// ackFrame is an ack as it arrived.
type ackFrame struct {
	payload json.RawMessage
	at      time.Time
}

// socketConn is one Socket Mode WebSocket connection.
type socketConn struct {
	ws       *websocket.Conn
	wmu      sync.Mutex // gorilla allows one writer at a time
	done     chan struct{}
	once     sync.Once
	ready    bool // hello sent; guarded by Server.mu
	draining bool // disconnect sent, no new envelopes; guarded by Server.mu
}

func (c *socketConn) write(v any) error {
	data, err := json.Marshal(v)
	if err != nil {
		return err
	}
	c.wmu.Lock()
	defer c.wmu.Unlock()
	_ = c.ws.SetWriteDeadline(time.Now().Add(5 * time.Second))
	return c.ws.WriteMessage(websocket.TextMessage, data)
}

func (c *socketConn) ping() error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	return c.ws.WriteControl(websocket.PingMessage, []byte("ping"), time.Now().Add(5*time.Second))
}

func (c *socketConn) close() {
	c.once.Do(func() {
		close(c.done)
		_ = c.ws.Close()
	})
}

var upgrader = websocket.Upgrader{CheckOrigin: func(*http.Request) bool { return true }}

// serveSocket accepts a Socket Mode connection with a one-time ticket from
// apps.connections.open, says hello, pings it and reads its acks.
func (s *Server) serveSocket(w http.ResponseWriter, r *http.Request) {
	ticket := r.URL.Query().Get("ticket")
	s.mu.Lock()
	valid := s.tickets[ticket]
	delete(s.tickets, ticket)
	full := s.activeConns() >= MaxConnections
	s.mu.Unlock()
	switch {
	case !valid:
		http.Error(w, "invalid or already used ticket; call apps.connections.open", http.StatusUnauthorized)
		return
	case full:
		http.Error(w, "too_many_websockets", http.StatusTooManyRequests)
		return
	}
	ws, err := upgrader.Upgrade(w, r, nil)
	if err != nil {
		return
	}
	c := &socketConn{ws: ws, done: make(chan struct{})}
	s.mu.Lock()
	if s.closed.Load() {
		s.mu.Unlock()
		_ = ws.Close()
		return
	}
	s.conns = append(s.conns, c)
	s.wg.Add(2) // this reader and the pinger
	interval := s.PingInterval
	n := s.activeConns()
	s.mu.Unlock()

	go s.pingLoop(c, interval)
	defer s.wg.Done()
	defer s.dropConn(c)

	hello := map[string]any{
		"type": "hello", "num_connections": n,
		"debug_info":      map[string]any{"host": "fake", "build_number": 1, "approximate_connection_time": 18060},
		"connection_info": map[string]any{"app_id": AppID},
	}
	// Counted as the hello goes out (a client that has read it must find itself counted),
	// and no envelope can be written before it: the hello holds the writer's lock.
	data, _ := json.Marshal(hello)
	c.wmu.Lock()
	s.mu.Lock()
	c.ready = true
	s.notify()
	s.mu.Unlock()
	_ = c.ws.SetWriteDeadline(time.Now().Add(5 * time.Second))
	err = c.ws.WriteMessage(websocket.TextMessage, data)
	c.wmu.Unlock()
	if err != nil {
		return
	}

	for {
		_, data, err := ws.ReadMessage()
		if err != nil {
			return
		}
		var ack struct {
			EnvelopeID string          `json:"envelope_id"`
			Payload    json.RawMessage `json:"payload"`
		}
		if json.Unmarshal(data, &ack) != nil || ack.EnvelopeID == "" {
			s.fail("Socket Mode client sent a frame that is not an ack {\"envelope_id\":…}: %s", show(string(data)))
			continue
		}
		s.mu.Lock()
		ch := s.pending[ack.EnvelopeID]
		delete(s.pending, ack.EnvelopeID)
		s.mu.Unlock()
		if ch != nil { // else a late or repeated ack: Slack ignores those
			ch <- ackFrame{payload: ack.Payload, at: time.Now()}
		}
	}
}

// pingLoop sends WebSocket pings; slack-go reconnects without them.
func (s *Server) pingLoop(c *socketConn, interval time.Duration) {
	defer s.wg.Done()
	ticker := time.NewTicker(interval)
	defer ticker.Stop()
	for {
		select {
		case <-c.done:
			return
		case <-ticker.C:
			if c.ping() != nil {
				c.close()
				return
			}
		}
	}
}

// dropConn forgets a connection and closes it.
func (s *Server) dropConn(c *socketConn) {
	c.close()
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, x := range s.conns {
		if x == c {
			s.conns = append(s.conns[:i:i], s.conns[i+1:]...)
			break
		}
	}
	s.notify()
}

// activeConns counts connections that take envelopes; the caller holds s.mu.
func (s *Server) activeConns() int {
	n := 0
	for _, c := range s.conns {
		if !c.draining {
			n++
		}
	}
	return n
}

// pickConn chooses the next ready connection, round-robin; the caller
// holds s.mu.
func (s *Server) pickConn() *socketConn {
	var ready []*socketConn
	for _, c := range s.conns {
		if c.ready && !c.draining {
			ready = append(ready, c)
		}
	}
	if len(ready) == 0 {
		return nil
	}
	s.rr++
	return ready[s.rr%len(ready)]
}

// Connections reports how many Socket Mode connections are open and taking
// envelopes (connections told to disconnect do not count).
func (s *Server) Connections() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, c := range s.conns {
		if c.ready && !c.draining {
			n++
		}
	}
	return n
}

// Connected waits until at least one Socket Mode client has received hello
// (and has not been told to disconnect).
func (s *Server) Connected(timeout time.Duration) error {
	if s.waitFor(timeout, s.hasReadyConn) {
		return nil
	}
	return fmt.Errorf("slackfake: no Socket Mode client connected within %v", timeout)
}

// hasReadyConn reports whether a connection takes envelopes; the caller
// holds s.mu.
func (s *Server) hasReadyConn() bool {
	for _, c := range s.conns {
		if c.ready && !c.draining {
			return true
		}
	}
	return false
}

// disconnectGrace is how long a connection told to disconnect stays open.
const disconnectGrace = 500 * time.Millisecond

// Disconnect sends {"type":"disconnect","reason":reason} to every
// connection, as Slack does before refreshing connections
// ("refresh_requested", "warning", "link_disabled"), and closes them
// shortly after. slack-go reconnects through apps.connections.open.
func (s *Server) Disconnect(reason string) {
	s.mu.Lock()
	var conns []*socketConn
	for _, c := range s.conns {
		if !c.draining {
			c.draining = true
			conns = append(conns, c)
		}
	}
	s.notify()
	s.mu.Unlock()
	msg := map[string]any{"type": "disconnect", "reason": reason, "debug_info": map[string]any{"host": "fake"}}
	for _, c := range conns {
		_ = c.write(msg)
		time.AfterFunc(disconnectGrace, c.close)
	}
}

// AckLatencies returns the latency of every ack received so far, in order.
func (s *Server) AckLatencies() []time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]time.Duration(nil), s.latencies...)
}

// errNotAcked is wrapped by the error of an envelope the app did not ack.
var errNotAcked = errors.New("envelope not acknowledged")

// deliver sends an envelope to one connection and waits for its ack.
func (s *Server) deliver(env envelope) (Ack, error) {
	env.EnvelopeID = randomHex(4) + "-" + randomHex(2) + "-" + randomHex(2) + "-" + randomHex(2) + "-" + randomHex(6)
	ch := make(chan ackFrame, 1)
	s.mu.Lock()
	s.pending[env.EnvelopeID] = ch
	s.sent = append(s.sent, env)
	if len(s.sent) > maxRemembered {
		s.sent = s.sent[len(s.sent)-maxRemembered:]
	}
	timeout := s.AckTimeout
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.pending, env.EnvelopeID)
		s.mu.Unlock()
	}()

	sentAt, err := s.send(env, time.Now().Add(timeout))
	if err != nil {
		s.fail("%s envelope not delivered: %v", env.Type, err)
		return Ack{}, err
	}
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	select {
	case a := <-ch:
		latency := a.at.Sub(sentAt)
		s.mu.Lock()
		s.latencies = append(s.latencies, latency)
		s.mu.Unlock()
		return parseAck(a.payload, latency), nil
	case <-timer.C:
		s.fail("envelope not acknowledged within %v: %s envelope %s (Slack shows the user an error)", timeout, env.Type, env.EnvelopeID)
		return Ack{}, fmt.Errorf("slackfake: %s %w within %v", env.Type, errNotAcked, timeout)
	}
}

// send writes env to a ready connection, waiting until deadline for one.
func (s *Server) send(env envelope, deadline time.Time) (time.Time, error) {
	for {
		var c *socketConn
		s.waitFor(time.Until(deadline), func() bool {
			c = s.pickConn()
			return c != nil
		})
		if c == nil {
			return time.Time{}, errors.New("no Socket Mode connection (is the app running and connected?)")
		}
		at := time.Now()
		if err := c.write(env); err != nil {
			s.dropConn(c)
			continue
		}
		return at, nil
	}
}

func parseAck(payload json.RawMessage, latency time.Duration) Ack {
	a := Ack{Latency: latency}
	if len(payload) == 0 || string(payload) == "null" {
		return a
	}
	a.Payload = payload
	var ra struct {
		ResponseAction string            `json:"response_action"`
		Errors         map[string]string `json:"errors"`
	}
	if json.Unmarshal(payload, &ra) == nil {
		a.ResponseAction, a.Errors = ra.ResponseAction, ra.Errors
	}
	return a
}
