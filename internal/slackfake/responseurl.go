package slackfake

import (
	"encoding/json"
	"io"
	"net/http"
	"time"
)

// responseURL is a response_url handed out with a slash command or a
// message interaction.
type responseURL struct {
	user, channel string
	original      *storedMessage // the message whose button was clicked; nil for slash commands
	uses          int
	created       time.Time
}

// newResponseURL issues a response_url; the caller holds s.mu.
func (s *Server) newResponseURL(user, channel string, original *storedMessage) string {
	id := randomHex(12)
	s.replies[id] = &responseURL{user: user, channel: channel, original: original, created: time.Now()}
	return s.base + "/response/" + id
}

// responseMessage is what an app POSTs to a response_url (and what a slash
// command ack payload may carry).
type responseMessage struct {
	Text            string          `json:"text"`
	Blocks          json.RawMessage `json:"blocks"`
	ResponseType    string          `json:"response_type"`
	ThreadTS        string          `json:"thread_ts"`
	ReplaceOriginal flexBool        `json:"replace_original"`
	DeleteOriginal  flexBool        `json:"delete_original"`
}

// flexBool accepts true, "true", false and "false", as Slack does.
type flexBool bool

// UnmarshalJSON implements json.Unmarshaler.
func (b *flexBool) UnmarshalJSON(data []byte) error {
	switch string(data) {
	case "true", `"true"`:
		*b = true
	default:
		*b = false
	}
	return nil
}

// serveResponseURL answers POST /response/<id>: at most 5 uses within 30
// minutes, then 404 (and a test failure).
func (s *Server) serveResponseURL(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(io.LimitReader(r.Body, 4<<20))
	var msg responseMessage
	if r.Method != http.MethodPost || json.Unmarshal(body, &msg) != nil {
		s.fail("response_url: expected a POST with a JSON message, got %s %s", r.Method, show(string(body)))
		writeJSON(w, http.StatusBadRequest, map[string]any{"ok": false, "error": "invalid_payload"})
		return
	}

	s.mu.Lock()
	fault := s.takeFault(ResponseURLs, "")
	s.mu.Unlock()
	if !fault.before(w, r) {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	ru := s.replies[r.PathValue("id")]
	switch {
	case ru == nil:
		s.fail("response_url: %s was never issued", r.URL.Path)
		http.Error(w, "no such response_url", http.StatusNotFound)
		return
	case ru.uses >= responseURLUses:
		s.fail("response_url used %d times; Slack allows %d uses", ru.uses+1, responseURLUses)
		http.Error(w, "used_url", http.StatusNotFound)
		return
	case time.Since(ru.created) > responseURLTTL:
		s.fail("response_url used %v after it was issued; Slack allows %v", time.Since(ru.created).Round(time.Second), responseURLTTL)
		http.Error(w, "expired_url", http.StatusNotFound)
		return
	}
	ru.uses++

	if err := s.applyResponse("response_url", ru.user, ru.channel, ru.original, msg); err != nil {
		writeAPIError(w, err)
		return
	}
	if fault != nil && fault.refuses() {
		fault.write(w)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"ok": true})
}

// applyResponse posts, replaces or deletes a message as a response_url (or
// a slash command ack) asks; the caller holds s.mu.
func (s *Server) applyResponse(source, user, channel string, original *storedMessage, msg responseMessage) *apiError {
	if msg.DeleteOriginal {
		if original != nil {
			s.remove(original)
		}
		return nil
	}
	var blocks []any
	hasBlocks := len(msg.Blocks) > 0 && string(msg.Blocks) != "null"
	if hasBlocks {
		var parsed any
		if json.Unmarshal(msg.Blocks, &parsed) != nil {
			s.fail("%s: blocks is not valid JSON", source)
			return errorf("invalid_blocks_format")
		}
		if _, ok := parsed.([]any); !ok {
			s.fail("%s: blocks must be a JSON array, got %s", source, show(parsed))
			return errorf("invalid_blocks_format")
		}
		blocks = nonNil(listOf(parsed))
	}
	if msg.Text == "" && len(blocks) == 0 {
		s.fail("%s: no_text: the message has neither text nor blocks", source)
		return errorf(errNoText)
	}
	if err := s.checkMessage(source, msg.Text, blocks); err != nil {
		return err
	}
	switch {
	case bool(msg.ReplaceOriginal) && original != nil:
		original.text = msg.Text
		if hasBlocks {
			original.blocks = blocks
		} else {
			original.blocks = nil
		}
		original.updated++
		s.notify()
	case msg.ResponseType == "in_channel":
		s.post(channel, msg.ThreadTS, msg.Text, blocks)
	default:
		s.postEphemeral(channel, user, msg.Text, blocks)
	}
	return nil
}
