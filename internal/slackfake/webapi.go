package slackfake

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"mime"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// apiMethod is one Web API method the fake implements.
type apiMethod struct {
	token  string // the token type it needs: BotToken or AppToken
	handle func(s *Server, p *params) (map[string]any, *apiError)
}

// methods is the Web API the fake implements.
var methods = map[string]apiMethod{
	"auth.test":             {BotToken, (*Server).authTest},
	"apps.connections.open": {AppToken, (*Server).appsConnectionsOpen},
	"chat.postMessage":      {BotToken, (*Server).chatPostMessage},
	"chat.update":           {BotToken, (*Server).chatUpdate},
	"chat.postEphemeral":    {BotToken, (*Server).chatPostEphemeral},
	"chat.delete":           {BotToken, (*Server).chatDelete},
	"conversations.history": {BotToken, (*Server).conversationsHistory},
	"conversations.open":    {BotToken, (*Server).conversationsOpen},
	"conversations.replies": {BotToken, (*Server).conversationsReplies},
	"views.open":            {BotToken, (*Server).viewsOpen},
	"views.push":            {BotToken, (*Server).viewsPush},
	"views.update":          {BotToken, (*Server).viewsUpdate},
	"views.publish":         {BotToken, (*Server).viewsPublish},
	"usergroups.users.list": {BotToken, (*Server).usergroupsUsersList},
	"users.info":            {BotToken, (*Server).usersInfo},
	"users.lookupByEmail":   {BotToken, (*Server).usersLookupByEmail},
}

// apiError is a Slack error answer: HTTP 200, {"ok":false,"error":code}.
type apiError struct {
	code     string
	messages []string // response_metadata.messages
}

func errorf(code string) *apiError { return &apiError{code: code} }

// rejected turns validator findings into Slack's answer, failing the test
// for each; it returns nil when Slack would accept the payload.
func (s *Server) rejected(method string, vs []Violation) *apiError {
	if len(vs) == 0 {
		return nil
	}
	code := rejection(vs)
	if code == "" {
		s.fail("%s: %s", method, describe(vs))
		return nil
	}
	s.fail("%s rejected with %s: %s", method, code, describe(vs))
	e := &apiError{code: code}
	for _, v := range vs {
		e.messages = append(e.messages, fmt.Sprintf("[ERROR] %s [json-pointer:%s]", v.Problem, v.Pointer))
	}
	return e
}

// params are a Web API call's arguments, from a form or a JSON body.
type params struct {
	form url.Values
	body map[string]json.RawMessage
}

// str returns an argument as a string.
func (p *params) str(name string) string {
	if raw, ok := p.body[name]; ok {
		var s string
		if json.Unmarshal(raw, &s) == nil {
			return s
		}
		if string(raw) == "null" {
			return ""
		}
		return string(raw)
	}
	return p.form.Get(name)
}

// has reports whether an argument was given.
func (p *params) has(name string) bool {
	if _, ok := p.body[name]; ok {
		return true
	}
	_, ok := p.form[name]
	return ok
}

// json returns an argument holding JSON: a JSON value in a JSON body, or a
// JSON-encoded string (a form field, or a string in a JSON body).
func (p *params) json(name string) (json.RawMessage, bool) {
	if raw, ok := p.body[name]; ok {
		var s string
		if json.Unmarshal(raw, &s) == nil {
			return json.RawMessage(s), true
		}
		return raw, true
	}
	if vs, ok := p.form[name]; ok && len(vs) > 0 {
		return json.RawMessage(vs[0]), true
	}
	return nil, false
}

// serveAPI answers POST /api/<method>.
func (s *Server) serveAPI(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("method")
	p, perr := parseParams(r)
	s.mu.Lock()
	s.calls[name]++
	var fault *Fault
	if perr == nil {
		fault = s.takeFault(name, p.str("channel"))
	}
	retry := 0
	if fault == nil {
		retry = s.rateLimited(name)
	}
	s.mu.Unlock()

	if !fault.before(w, r) {
		return
	}
	if retry > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(retry))
		writeJSON(w, http.StatusTooManyRequests, map[string]any{"ok": false, "error": "ratelimited"})
		return
	}
	m, ok := methods[name]
	if !ok {
		s.fail("unknown Web API method %q (real Slack may have it, but the fake does not implement it)", name)
		writeAPIError(w, errorf("unknown_method"))
		return
	}
	if perr != nil {
		writeAPIError(w, perr)
		return
	}
	if err := checkToken(r, p, m.token); err != nil {
		writeAPIError(w, err)
		return
	}
	out, apiErr := m.handle(s, p)
	if fault != nil && fault.refuses() { // applied: done, but the app hears of a failure
		fault.write(w)
		return
	}
	if apiErr != nil {
		writeAPIError(w, apiErr)
		return
	}
	if out == nil {
		out = map[string]any{}
	}
	out["ok"] = true
	writeJSON(w, http.StatusOK, out)
}

func parseParams(r *http.Request) (*params, *apiError) {
	body, err := io.ReadAll(io.LimitReader(r.Body, 4<<20))
	if err != nil {
		return nil, errorf("invalid_request")
	}
	p := &params{form: r.URL.Query()}
	ctype, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	switch {
	case ctype == "application/json":
		if len(bytes.TrimSpace(body)) > 0 {
			if err := json.Unmarshal(body, &p.body); err != nil {
				return nil, errorf("invalid_json")
			}
		}
	case len(body) > 0:
		form, err := url.ParseQuery(string(body))
		if err != nil {
			return nil, errorf("invalid_form_data")
		}
		for k, vs := range form {
			p.form[k] = append(p.form[k], vs...)
		}
	}
	return p, nil
}

// checkToken checks the caller's token (Authorization: Bearer, or the token
// argument) against the type the method needs.
func checkToken(r *http.Request, p *params, want string) *apiError {
	token := p.str("token")
	if auth := r.Header.Get("Authorization"); auth != "" {
		token = strings.TrimPrefix(auth, "Bearer ")
	}
	switch token {
	case "":
		return errorf("not_authed")
	case want:
		return nil
	case BotToken, AppToken:
		return errorf("not_allowed_token_type")
	default:
		return errorf("invalid_auth")
	}
}

func writeAPIError(w http.ResponseWriter, e *apiError) {
	out := map[string]any{"ok": false, "error": e.code}
	if len(e.messages) > 0 {
		out["response_metadata"] = map[string]any{"messages": e.messages}
	}
	writeJSON(w, http.StatusOK, out)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// --- rate limits ---

// rateWindow is a rolling one-minute window of calls to one method.
type rateWindow struct {
	perMinute int
	calls     []time.Time
}

// SetRateLimit limits a Web API method to perMinute calls in any rolling
// minute; further calls get HTTP 429, a Retry-After header and
// {"ok":false,"error":"ratelimited"}. perMinute <= 0 removes the limit.
// Methods are unlimited by default.
func (s *Server) SetRateLimit(method string, perMinute int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if perMinute <= 0 {
		delete(s.rates, method)
		return
	}
	s.rates[method] = &rateWindow{perMinute: perMinute}
}

// rateLimited records a call and returns the Retry-After seconds if it is
// over the limit, else 0; the caller holds s.mu.
func (s *Server) rateLimited(method string) int {
	w := s.rates[method]
	if w == nil {
		return 0
	}
	now := time.Now()
	for len(w.calls) > 0 && now.Sub(w.calls[0]) >= time.Minute {
		w.calls = w.calls[1:]
	}
	if len(w.calls) >= w.perMinute {
		wait := w.calls[0].Add(time.Minute).Sub(now)
		return max(1, int(math.Ceil(wait.Seconds())))
	}
	w.calls = append(w.calls, now)
	return 0
}

// --- methods ---

func (s *Server) authTest(*params) (map[string]any, *apiError) {
	return map[string]any{
		"url": "https://" + TeamDomain + ".slack.com/", "team": "Fake", "user": BotName,
		"team_id": TeamID, "user_id": BotUserID, "bot_id": BotID, "is_enterprise_install": false,
	}, nil
}

func (s *Server) appsConnectionsOpen(*params) (map[string]any, *apiError) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.activeConns() >= MaxConnections {
		return nil, errorf("too_many_websockets")
	}
	ticket := randomHex(16)
	s.tickets[ticket] = true
	return map[string]any{"url": "ws" + strings.TrimPrefix(s.base, "http") + "/socket?ticket=" + ticket}, nil
}

var (
	channelID = regexp.MustCompile(`^[CG][A-Z0-9]+$`)
	userID    = regexp.MustCompile(`^[UW][A-Z0-9]+$`)
)

// resolveChannel maps a channel argument to where messages are stored: a
// user ID becomes that user's DM channel. The caller holds s.mu.
func (s *Server) resolveChannel(method, ch string) (string, *apiError) {
	switch {
	case channelID.MatchString(ch):
		return ch, nil
	case userID.MatchString(ch):
		return s.dmChannel(ch), nil
	case s.userByDM[ch] != "":
		return ch, nil
	}
	s.fail("%s: channel_not_found: %q is not a channel ID (C…/G…), a user ID (U…/W…) or a DM opened with conversations.open", method, ch)
	return "", errorf("channel_not_found")
}

// dmChannel returns (creating it if needed) user's DM channel; the caller
// holds s.mu.
func (s *Server) dmChannel(user string) string {
	if d, ok := s.dmByUser[user]; ok {
		return d
	}
	d := "D" + user[1:]
	if s.userByDM[d] != "" {
		d = s.nextID("D")
	}
	s.dmByUser[user] = d
	s.userByDM[d] = user
	return d
}

// parseBlocks reads the blocks argument (a JSON array, or a form field
// holding one); has is false when it is absent or null.
func (s *Server) parseBlocks(method string, p *params) (blocks []any, has bool, err *apiError) {
	raw, ok := p.json("blocks")
	if !ok || len(bytes.TrimSpace(raw)) == 0 || string(bytes.TrimSpace(raw)) == "null" {
		return nil, false, nil
	}
	var parsed any
	if json.Unmarshal(raw, &parsed) != nil {
		s.fail("%s: invalid_blocks_format: blocks is not valid JSON: %s", method, show(string(raw)))
		return nil, false, errorf("invalid_blocks_format")
	}
	if _, isList := parsed.([]any); !isList {
		s.fail("%s: invalid_blocks_format: blocks must be a JSON array, got %s", method, show(parsed))
		return nil, false, errorf("invalid_blocks_format")
	}
	return nonNil(listOf(parsed)), true, nil
}

// checkMessage validates a message as it will be stored and gives its
// blocks their generated IDs.
func (s *Server) checkMessage(method, text string, blocks []any) *apiError {
	if err := s.rejected(method, validateMessage(text, blocks)); err != nil {
		return err
	}
	assignIDs(blocks)
	return nil
}

func (s *Server) chatPostMessage(p *params) (map[string]any, *apiError) {
	text := p.str("text")
	blocks, _, err := s.parseBlocks("chat.postMessage", p)
	if err != nil {
		return nil, err
	}
	if text == "" && len(blocks) == 0 && !p.has("attachments") {
		s.fail("chat.postMessage: no_text: the message has neither text nor blocks")
		return nil, errorf(errNoText)
	}
	if err := s.checkMessage("chat.postMessage", text, blocks); err != nil {
		return nil, err
	}
	metadata, err := s.parseMetadata(p)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	ch, err := s.resolveChannel("chat.postMessage", p.str("channel"))
	if err != nil {
		return nil, err
	}
	m := s.post(ch, p.str("thread_ts"), text, blocks)
	m.metadata = metadata
	return map[string]any{"channel": ch, "ts": m.ts, "message": m.payload()}, nil
}

// chatUpdate replaces a message's text and blocks; an argument left out
// keeps the message's current value, as in Slack.
func (s *Server) chatUpdate(p *params) (map[string]any, *apiError) {
	blocks, hasBlocks, err := s.parseBlocks("chat.update", p)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	ch, err := s.resolveChannel("chat.update", p.str("channel"))
	if err != nil {
		return nil, err
	}
	m := s.findMessage(ch, p.str("ts"))
	if m == nil {
		s.fail("chat.update: message_not_found: no message ts=%q in channel %s", p.str("ts"), ch)
		return nil, errorf("message_not_found")
	}
	text := m.text
	if p.has("text") {
		text = p.str("text")
	}
	if !hasBlocks {
		blocks = m.blocks
	}
	if err := s.checkMessage("chat.update", text, blocks); err != nil {
		return nil, err
	}
	m.text, m.blocks = text, blocks
	m.updated++
	s.notify()
	return map[string]any{"channel": ch, "ts": m.ts, "text": m.text, "message": m.payload()}, nil
}

func (s *Server) chatPostEphemeral(p *params) (map[string]any, *apiError) {
	text := p.str("text")
	blocks, _, err := s.parseBlocks("chat.postEphemeral", p)
	if err != nil {
		return nil, err
	}
	if text == "" && len(blocks) == 0 && !p.has("attachments") {
		s.fail("chat.postEphemeral: no_text: the message has neither text nor blocks")
		return nil, errorf(errNoText)
	}
	if err := s.checkMessage("chat.postEphemeral", text, blocks); err != nil {
		return nil, err
	}
	user := p.str("user")
	if !userID.MatchString(user) {
		s.fail("chat.postEphemeral: user_not_found: %q is not a user ID", user)
		return nil, errorf("user_not_found")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	ch, err := s.resolveChannel("chat.postEphemeral", p.str("channel"))
	if err != nil {
		return nil, err
	}
	m := s.postEphemeral(ch, user, text, blocks)
	return map[string]any{"message_ts": m.ts}, nil
}

func (s *Server) chatDelete(p *params) (map[string]any, *apiError) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ch, err := s.resolveChannel("chat.delete", p.str("channel"))
	if err != nil {
		return nil, err
	}
	m := s.findMessage(ch, p.str("ts"))
	if m == nil {
		return nil, errorf("message_not_found")
	}
	s.remove(m)
	return map[string]any{"channel": ch, "ts": m.ts}, nil
}

func (s *Server) conversationsOpen(p *params) (map[string]any, *apiError) {
	users := strings.Split(p.str("users"), ",")
	if p.str("channel") != "" {
		users = nil
	}
	if len(users) != 1 || !userID.MatchString(users[0]) {
		s.fail("conversations.open: the fake supports users=<one user ID> only, got users=%q channel=%q", p.str("users"), p.str("channel"))
		return nil, errorf("user_not_found")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	_, already := s.dmByUser[users[0]]
	d := s.dmChannel(users[0])
	return map[string]any{
		"no_op": already, "already_open": already,
		"channel": map[string]any{"id": d, "is_im": true, "user": users[0]},
	}, nil
}

func (s *Server) usergroupsUsersList(p *params) (map[string]any, *apiError) {
	s.mu.Lock()
	defer s.mu.Unlock()
	members, ok := s.groups[p.str("usergroup")]
	if !ok {
		return nil, errorf("no_such_subteam")
	}
	return map[string]any{"users": append([]string{}, members...)}, nil
}

// userJSON is the user object users.info returns; the caller holds s.mu.
func (s *Server) userJSON(id string) map[string]any {
	u := s.users[id]
	name := s.userName(id)
	return map[string]any{
		"id": id, "team_id": TeamID, "name": name, "real_name": u.realName,
		"deleted": false, "is_bot": false, "tz": "Etc/UTC",
		"profile": map[string]any{
			"real_name": u.realName, "real_name_normalized": u.realName,
			"display_name": name, "email": u.email, "team": TeamID,
		},
	}
}

func (s *Server) usersInfo(p *params) (map[string]any, *apiError) {
	s.mu.Lock()
	defer s.mu.Unlock()
	id := p.str("user")
	if _, ok := s.users[id]; !ok {
		return nil, errorf("user_not_found")
	}
	return map[string]any{"user": s.userJSON(id)}, nil
}

func (s *Server) usersLookupByEmail(p *params) (map[string]any, *apiError) {
	s.mu.Lock()
	defer s.mu.Unlock()
	email := p.str("email")
	for id, u := range s.users {
		if email != "" && strings.EqualFold(u.email, email) {
			return map[string]any{"user": s.userJSON(id)}, nil
		}
	}
	return nil, errorf("users_not_found")
}
