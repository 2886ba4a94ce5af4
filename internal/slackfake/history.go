package slackfake

import (
	"bytes"
	"encoding/json"
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

// conversationsHistory lists a channel's messages, newest first, without
// thread replies, in pages of limit (default 100) with a cursor. Metadata
// is included only with include_all_metadata, as in Slack.
func (s *Server) conversationsHistory(p *params) (map[string]any, *apiError) {
	limit := 100
	if n, err := strconv.Atoi(p.str("limit")); err == nil && n > 0 {
		limit = min(n, historyPage)
	}
	offset := 0
	if c := p.str("cursor"); c != "" {
		n, err := strconv.Atoi(strings.TrimPrefix(c, "offset:"))
		if err != nil || n < 0 {
			return nil, errorf("invalid_cursor")
		}
		offset = n
	}
	withMetadata := p.str("include_all_metadata") == "1" || p.str("include_all_metadata") == "true"
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
	messages := []any{}
	for i := offset; i < len(top) && i < offset+limit; i++ {
		m := top[i].payload()
		if !withMetadata {
			delete(m, "metadata")
		}
		messages = append(messages, m)
	}
	next := ""
	if offset+limit < len(top) {
		next = "offset:" + strconv.Itoa(offset+limit)
	}
	return map[string]any{
		"messages": messages, "has_more": next != "",
		"response_metadata": map[string]any{"next_cursor": next},
	}, nil
}
