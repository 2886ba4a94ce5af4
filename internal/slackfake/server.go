// Package slackfake is a fake Slack workspace for tests.
//
// It speaks the real Slack Web API over HTTP and Socket Mode over a WebSocket,
// so the unmodified github.com/slack-go/slack client and its socketmode client
// work against it through slack.OptionAPIURL(fake.APIURL()).
//
// The fake enforces Slack's documented limits (Block Kit sizes, trigger and
// response_url lifetimes, the modal stack, ack deadlines). A payload that real
// Slack would reject fails the test with t.Errorf, naming the limit and the
// offending value, and is answered with the error real Slack returns
// ({"ok":false,"error":"invalid_blocks"} and so on).
//
// A test acts as Slack users through the Server: it runs slash commands,
// clicks buttons, selects options, submits modals, and reads what users see
// (channel messages, DMs, ephemeral replies, open modals):
//
//	fake := slackfake.New(t)
//	api := slack.New(slackfake.BotToken, slack.OptionAPIURL(fake.APIURL()),
//		slack.OptionAppLevelToken(slackfake.AppToken))
//	go app.Run(ctx, socketmode.New(api)) // the code under test
//	if err := fake.Connected(5 * time.Second); err != nil { t.Fatal(err) }
//	fake.SlashCommand("U0ALICE", "C0GENERAL", "/access", "prod-db-admin 2h incident")
//	msg, err := fake.WaitMessage("C0APPROVALS", time.Second, func(m slackfake.Message) bool {
//		return slices.Contains(m.Buttons(), "Approve")
//	})
//	fake.ClickButton("U0BOB", msg, "Approve")
//	fake.WaitView("U0BOB", time.Second, nil)
//	ack, err := fake.Submit("U0BOB", map[string]string{"Comment": "ok"})
//
// Which answers fail the test: every payload Slack would refuse
// (Block Kit and text limits, a missing text fallback, invalid, reused or
// expired trigger_ids, a fourth stacked modal, a response_url used a sixth
// time, response_action errors naming a non-input block, an unacked
// envelope, a channel or message that does not exist, an unknown method).
// Answers a correct app must cope with do not: auth errors, rate limits,
// hash_conflict, not_found for a closed view, user_not_found,
// users_not_found, no_such_subteam, duplicate_external_id.
package slackfake

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Identities of the fake workspace and its app.
const (
	// BotToken is the only bot token (xoxb-) the fake accepts.
	BotToken = "xoxb-fake"
	// AppToken is the only app-level token (xapp-) the fake accepts; it is
	// needed for apps.connections.open.
	AppToken = "xapp-fake"
	// TeamID is the workspace ID.
	TeamID = "T0FAKE"
	// TeamDomain is the workspace's domain.
	TeamDomain = "fake"
	// AppID is the app's ID, sent in payloads and in the Socket Mode hello.
	AppID = "A0FAKE"
	// BotUserID is the bot user's ID; messages the app posts come from it.
	BotUserID = "U0BOT"
	// BotID is the bot's ID.
	BotID = "B0BOT"
	// BotName is the bot user's name, as auth.test reports it.
	BotName = "gatehouse"
)

// Slack's timing and connection limits.
const (
	// DefaultAckTimeout is how long Slack waits for an envelope's ack.
	DefaultAckTimeout = 3 * time.Second
	// DefaultTriggerTTL is how long a trigger_id can be exchanged.
	DefaultTriggerTTL = 3 * time.Second
	// DefaultPingInterval is how often the fake pings each Socket Mode
	// connection (slack-go reconnects after 30 s without a ping).
	DefaultPingInterval = 5 * time.Second
	// MaxConnections is how many Socket Mode connections an app may hold.
	MaxConnections = 10
	// responseURLUses and responseURLTTL bound a response_url.
	responseURLUses = 5
	responseURLTTL  = 30 * time.Minute
)

// Server is a fake Slack workspace. Create it with New; it is safe for
// concurrent use.
type Server struct {
	// TriggerTTL is how long a trigger_id stays valid (Slack: 3 s). Tests may
	// lower it to test expiry without sleeping; set it before the app runs.
	TriggerTTL time.Duration
	// AckTimeout is how long a user action waits for the app's ack
	// (Slack: 3 s). Only tests of the fake itself should change it.
	AckTimeout time.Duration
	// PingInterval is how often each Socket Mode connection gets a
	// WebSocket ping. Set it before the app connects.
	PingInterval time.Duration

	t      testing.TB
	srv    *httptest.Server
	base   string // http://127.0.0.1:PORT
	closed atomic.Bool
	seq    atomic.Uint64
	wg     sync.WaitGroup // socket goroutines, waited for on close

	mu      sync.Mutex
	changed chan struct{} // closed and replaced on every state change

	calls   map[string]int
	rates   map[string]*rateWindow
	faults  map[string][]*Fault
	faulted map[string]int

	users  map[string]userRecord
	groups map[string][]string

	dmByUser map[string]string // user ID → D… channel
	userByDM map[string]string // D… channel → user ID

	channels   map[string][]*storedMessage // channel → messages in post order
	ephemerals map[string][]*storedMessage // user → ephemeral messages
	homes      map[string]*storedView      // user → published App Home

	views    map[string]*storedView   // open modals by view ID
	stacks   map[string][]*storedView // user → modal stack, top last
	triggers map[string]*trigger
	replies  map[string]*responseURL // response_url ID → its state

	tickets   map[string]bool // one-time Socket Mode tickets
	conns     []*socketConn
	rr        int
	pending   map[string]chan ackFrame // envelope ID → waiting sender
	sent      []envelope               // recent envelopes, for Redeliver
	latencies []time.Duration
}

// userRecord is what AddUser knows about a user.
type userRecord struct {
	realName, email string
}

// New starts a fake Slack on a loopback httptest server and closes it when
// the test ends.
func New(t testing.TB) *Server {
	t.Helper()
	s := &Server{
		TriggerTTL:   DefaultTriggerTTL,
		AckTimeout:   DefaultAckTimeout,
		PingInterval: DefaultPingInterval,
		t:            t,
		changed:      make(chan struct{}),
		calls:        map[string]int{},
		rates:        map[string]*rateWindow{},
		faults:       map[string][]*Fault{},
		faulted:      map[string]int{},
		users:        map[string]userRecord{},
		groups:       map[string][]string{},
		dmByUser:     map[string]string{},
		userByDM:     map[string]string{},
		channels:     map[string][]*storedMessage{},
		ephemerals:   map[string][]*storedMessage{},
		homes:        map[string]*storedView{},
		views:        map[string]*storedView{},
		stacks:       map[string][]*storedView{},
		triggers:     map[string]*trigger{},
		replies:      map[string]*responseURL{},
		tickets:      map[string]bool{},
		pending:      map[string]chan ackFrame{},
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/api/{method}", s.serveAPI)
	mux.HandleFunc("/socket", s.serveSocket)
	mux.HandleFunc("/response/{id}", s.serveResponseURL)
	s.srv = httptest.NewServer(mux)
	s.base = s.srv.URL
	t.Cleanup(s.close)
	return s
}

// close shuts the fake down: Socket Mode connections first (they are
// hijacked, so httptest does not track them), then the HTTP server.
func (s *Server) close() {
	s.mu.Lock()
	s.closed.Store(true)
	conns := append([]*socketConn(nil), s.conns...)
	s.mu.Unlock()
	for _, c := range conns {
		c.close()
	}
	s.wg.Wait()
	s.srv.Close()
}

// APIURL is the Web API base URL, ending in "/api/", for slack.OptionAPIURL.
func (s *Server) APIURL() string { return s.base + "/api/" }

// AddUser registers a user for users.info and users.lookupByEmail.
func (s *Server) AddUser(id, realName, email string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.users[id] = userRecord{realName: realName, email: email}
}

// AddUserGroup registers a user group (S…) and its members for
// usergroups.users.list.
func (s *Server) AddUserGroup(id string, members ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.groups[id] = append([]string(nil), members...)
}

// Calls reports how many times a Web API method was called, including calls
// that were rejected or rate limited.
func (s *Server) Calls(method string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.calls[method]
}

// fail reports a problem that real Slack would reject, unless the test is
// already over (a late call from an app goroutine must not panic the test).
func (s *Server) fail(format string, args ...any) {
	if s.closed.Load() {
		return
	}
	s.t.Errorf("slackfake: "+format, args...)
}

// notify wakes every Wait… call; the caller holds s.mu.
func (s *Server) notify() {
	close(s.changed)
	s.changed = make(chan struct{})
}

// waitFor polls check (called with s.mu held) until it returns true or the
// timeout passes, waking on every state change.
func (s *Server) waitFor(timeout time.Duration, check func() bool) bool {
	deadline := time.Now().Add(timeout)
	for {
		s.mu.Lock()
		ok := check()
		changed := s.changed
		s.mu.Unlock()
		if ok {
			return true
		}
		left := time.Until(deadline)
		if left <= 0 {
			return false
		}
		timer := time.NewTimer(left)
		select {
		case <-changed:
			timer.Stop()
		case <-timer.C:
		}
	}
}

// randomHex returns n random bytes in hex.
func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// randomID returns an ID like Slack's generated block and action IDs.
func randomID() string {
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
	b := make([]byte, 5)
	_, _ = rand.Read(b)
	for i := range b {
		b[i] = alphabet[int(b[i])%len(alphabet)]
	}
	return string(b)
}

// nextTS returns a message timestamp, unique and increasing, like
// "1700000000.000100".
func (s *Server) nextTS() string {
	n := s.seq.Add(1)
	return fmt.Sprintf("%d.%06d", 1700000000+n/10000, (n%10000)*100)
}

// nextID returns a Slack-looking ID with the given prefix (V for views…).
func (s *Server) nextID(prefix string) string {
	return fmt.Sprintf("%s0%08X", prefix, s.seq.Add(1))
}

// userName is the handle payloads carry for a user.
func (s *Server) userName(id string) string {
	if u, ok := s.users[id]; ok && u.email != "" {
		return strings.SplitN(u.email, "@", 2)[0]
	}
	return strings.ToLower(id)
}

// channelName is the name payloads carry for a channel.
func channelName(id string) string {
	if strings.HasPrefix(id, "D") {
		return "directmessage"
	}
	return strings.ToLower(id)
}
