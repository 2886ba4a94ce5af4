package slackfake

import (
	"bytes"
	"encoding/json"
	"math"
	"strconv"
	"strings"

	"github.com/slack-go/slack"
)

// parseMetadata reads chat.postMessage's metadata argument: an object with
// an event_type and an event_payload object, as Slack requires.
func (s *Server) parseMetadata(p *params) (*slack.SlackMetadata, *apiError) {
	raw, ok := p.json("metadata")
	if !ok || len(bytes.TrimSpace(raw)) == 0 || string(bytes.TrimSpace(raw)) == "null" {
		return nil, nil
	}
	var m struct {
		EventType    string          `json:"event_type"`
		EventPayload json.RawMessage `json:"event_payload"`
	}
	var payload map[string]any
	if json.Unmarshal(raw, &m) != nil || m.EventType == "" || json.Unmarshal(m.EventPayload, &payload) != nil || payload == nil {
		s.fail("chat.postMessage: invalid_metadata_format: metadata needs an event_type and an event_payload object, got %s", show(string(raw)))
		return nil, errorf("invalid_metadata_format")
	}
	return &slack.SlackMetadata{EventType: m.EventType, EventPayload: payload}, nil
}

// historyPage bounds conversations.history's limit, as Slack does.
const historyPage = 999

// repliesPage is conversations.replies' default and largest limit, as Slack documents.
const repliesPage = 1000

// page picks the part of n items a call asks for: limit items (def when not given, at most
// most) from its cursor on, and the cursor of the next page, empty after the last.
func page(p *params, n, def, most int) (from, to int, next string, err *apiError) {
	limit := def
	if l, err := strconv.Atoi(p.str("limit")); err == nil && l > 0 {
		limit = min(l, most)
	}
	if c := p.str("cursor"); c != "" {
		o, err := strconv.Atoi(strings.TrimPrefix(c, "offset:"))
		if err != nil || o < 0 || !strings.HasPrefix(c, "offset:") {
			return 0, 0, "", errorf("invalid_cursor")
		}
		from = min(o, n)
	}
	to = min(from+limit, n)
	if to < n {
		next = "offset:" + strconv.Itoa(to)
	}
	return from, to, next, nil
}

// listed is a page of messages as conversations.history and conversations.replies answer
// it; metadata is included only with include_all_metadata, as in Slack.
func listed(p *params, ms []*storedMessage, next string) map[string]any {
	withMetadata := p.str("include_all_metadata") == "1" || p.str("include_all_metadata") == "true"
	messages := []any{}
	for _, m := range ms {
		out := m.payload()
		if !withMetadata {
			delete(out, "metadata")
		}
		messages = append(messages, out)
	}
	return map[string]any{
		"messages": messages, "has_more": next != "",
		"response_metadata": map[string]any{"next_cursor": next},
	}
}

// conversationsHistory lists a channel's messages, newest first, without
// thread replies, in pages of limit (default 100) with a cursor.
func (s *Server) conversationsHistory(p *params) (map[string]any, *apiError) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ch := p.str("channel")
	if !channelID.MatchString(ch) && s.userByDM[ch] == "" {
		s.fail("conversations.history: channel_not_found: %q", ch)
		return nil, errorf("channel_not_found")
	}
	var top []*storedMessage
	list := s.channels[ch]
	for i := len(list) - 1; i >= 0; i-- {
		if list[i].threadTS == "" || list[i].threadTS == list[i].ts {
			top = append(top, list[i])
		}
	}
	from, to, next, err := page(p, len(top), 100, historyPage)
	if err != nil {
		return nil, err
	}
	return listed(p, top[from:to], next), nil
}

// conversationsReplies lists a thread: the parent message, then its replies, oldest first,
// in pages of limit (default and at most 1000) with a cursor. ts may name the parent or any
// reply; a message without replies is a thread of one. oldest and latest bound the
// timestamps listed (exclusive unless inclusive is set), as in Slack.
func (s *Server) conversationsReplies(p *params) (map[string]any, *apiError) {
	oldest, latest := int64(0), int64(math.MaxInt64)
	inclusive := p.str("inclusive") == "1" || p.str("inclusive") == "true"
	for _, bound := range []struct {
		name string
		to   *int64
	}{{"oldest", &oldest}, {"latest", &latest}} {
		if v := p.str(bound.name); v != "" {
			t, ok := tsValue(v)
			if !ok {
				return nil, errorf("invalid_ts_" + bound.name)
			}
			*bound.to = t
		}
	}
	if !inclusive || (oldest == 0 && latest == math.MaxInt64) {
		oldest, latest = oldest+1, latest-1
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	ch := p.str("channel")
	if !channelID.MatchString(ch) && s.userByDM[ch] == "" {
		s.fail("conversations.replies: channel_not_found: %q", ch)
		return nil, errorf("channel_not_found")
	}
	if p.str("ts") == "" {
		s.fail("conversations.replies: invalid_arguments: ts is required")
		return nil, errorf("invalid_arguments")
	}
	m := s.findMessage(ch, p.str("ts"))
	if m == nil {
		return nil, errorf("thread_not_found") // never posted, or deleted since
	}
	root := m.ts
	if m.threadTS != "" {
		root = m.threadTS
	}
	var thread []*storedMessage
	for _, m := range s.channels[ch] {
		t, _ := tsValue(m.ts)
		if (m.ts == root || m.threadTS == root) && t >= oldest && t <= latest {
			thread = append(thread, m)
		}
	}
	from, to, next, err := page(p, len(thread), repliesPage, repliesPage)
	if err != nil {
		return nil, err
	}
	return listed(p, thread[from:to], next), nil
}

// tsValue reads a Slack timestamp ("1700000000.000100", or whole seconds) as microseconds,
// exactly (a float64 would round).
func tsValue(ts string) (int64, bool) {
	secs, frac, _ := strings.Cut(ts, ".")
	if len(frac) > 6 {
		return 0, false
	}
	s, err := strconv.ParseInt(secs, 10, 64)
	if err != nil || s < 0 || s > math.MaxInt64/1_000_000-1 {
		return 0, false
	}
	us := int64(0)
	if frac != "" {
		if us, err = strconv.ParseInt(frac+strings.Repeat("0", 6-len(frac)), 10, 64); err != nil || us < 0 {
			return 0, false
		}
	}
	return s*1e6 + us, true
}
