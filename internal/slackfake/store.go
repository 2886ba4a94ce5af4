package slackfake

import (
	"encoding/json"
	"fmt"
	"maps"
	"strings"
	"time"

	"github.com/slack-go/slack"
)

// Message is a message as users see it now (after any updates).
type Message struct {
	// Channel is where the message is: C…/G… or the D… of a DM.
	Channel string
	// TS is its timestamp (its ID within the channel).
	TS string
	// ThreadTS is the parent's timestamp for a reply in a thread.
	ThreadTS string
	// User is, for an ephemeral message, the only user who sees it; for
	// other messages it is the bot user who posted it.
	User string
	// Text is the message's top-level text field (the fallback).
	Text string
	// Blocks is the message's Block Kit content.
	Blocks slack.Blocks
	// Updated counts how many times chat.update or a response_url with
	// replace_original changed the message.
	Updated int
	// Ephemeral is true for a message only User sees.
	Ephemeral bool
	// Metadata is the app metadata the message was posted with, if any.
	Metadata *slack.SlackMetadata
	// PostedAt is when the fake took the message.
	PostedAt time.Time
}

// AllText returns what a person reads in the message: its text and every
// text, field, context, header, input label and button text of its blocks,
// joined by "\n".
func (m Message) AllText() string {
	return joinText([]string{m.Text}, readableText(blocksJSON(m.Blocks)))
}

// Buttons returns the labels of the message's buttons, in order (actions
// blocks and section accessories).
func (m Message) Buttons() []string {
	var out []string
	for _, b := range findButtons(blocksJSON(m.Blocks)) {
		out = append(out, b.label)
	}
	return out
}

// View is a modal (or App Home) as its user sees it now.
type View struct {
	// ID is the view's ID (V…); Hash changes on every update.
	ID, Hash string
	// CallbackID, PrivateMetadata and ExternalID are as the app set them.
	CallbackID, PrivateMetadata, ExternalID string
	// Title, Submit and Close are the texts of those buttons ("" if absent).
	Title, Submit, Close string
	// Blocks is the view's Block Kit content.
	Blocks slack.Blocks
	// Errors are the messages the app last showed under inputs with
	// response_action "errors", keyed by block_id.
	Errors map[string]string
	// Values holds the inputs' current values keyed by input label: the text
	// of a plain_text_input, the option text of a static_select, the date of
	// a datepicker. Empty inputs are absent.
	Values map[string]string
}

// AllText returns what a person reads in the view: its title and every
// text of its blocks, joined by "\n".
func (v View) AllText() string {
	return joinText([]string{v.Title}, readableText(blocksJSON(v.Blocks)))
}

// Labels returns the labels of the view's input blocks, in order.
func (v View) Labels() []string {
	var out []string
	for _, b := range listOf(blocksJSON(v.Blocks)) {
		if m, _ := b.(map[string]any); m["type"] == "input" {
			out = append(out, textOf(m["label"]))
		}
	}
	return out
}

// Buttons returns the labels of the view's buttons, in order.
func (v View) Buttons() []string {
	var out []string
	for _, b := range findButtons(blocksJSON(v.Blocks)) {
		out = append(out, b.label)
	}
	return out
}

// storedMessage is the fake's record of one message.
type storedMessage struct {
	channel, ts, threadTS string
	user                  string // ephemeral recipient, else the bot
	ephemeral             bool
	text                  string
	blocks                []any // normalized Block Kit JSON
	updated               int
	metadata              *slack.SlackMetadata
	postedAt              time.Time
}

func (m *storedMessage) public() Message {
	return Message{
		Channel: m.channel, TS: m.ts, ThreadTS: m.threadTS, User: m.user,
		Text: m.text, Blocks: decodeBlocks(m.blocks), Updated: m.updated, Ephemeral: m.ephemeral, Metadata: m.metadata,
		PostedAt: m.postedAt,
	}
}

// payload is the message object Slack puts in API answers and in
// block_actions payloads.
func (m *storedMessage) payload() map[string]any {
	out := map[string]any{
		"type": "message", "user": BotUserID, "bot_id": BotID, "app_id": AppID,
		"team": TeamID, "ts": m.ts, "text": m.text, "blocks": nonNil(m.blocks),
	}
	if m.threadTS != "" {
		out["thread_ts"] = m.threadTS
	}
	if m.updated > 0 {
		out["edited"] = map[string]any{"user": BotUserID, "ts": m.ts}
	}
	if m.metadata != nil {
		out["metadata"] = map[string]any{"event_type": m.metadata.EventType, "event_payload": m.metadata.EventPayload}
	}
	return out
}

// post stores a new message; the caller holds s.mu.
func (s *Server) post(channel, threadTS, text string, blocks []any) *storedMessage {
	m := &storedMessage{channel: channel, ts: s.nextTS(), threadTS: threadTS, user: BotUserID, text: text, blocks: blocks, postedAt: time.Now()}
	s.channels[channel] = append(s.channels[channel], m)
	s.notify()
	return m
}

// postEphemeral stores a message only user sees; the caller holds s.mu.
func (s *Server) postEphemeral(channel, user, text string, blocks []any) *storedMessage {
	m := &storedMessage{channel: channel, ts: s.nextTS(), user: user, ephemeral: true, text: text, blocks: blocks}
	s.ephemerals[user] = append(s.ephemerals[user], m)
	s.notify()
	return m
}

// findMessage finds a channel message; the caller holds s.mu.
func (s *Server) findMessage(channel, ts string) *storedMessage {
	for _, m := range s.channels[channel] {
		if m.ts == ts {
			return m
		}
	}
	return nil
}

// remove deletes a message (channel or ephemeral); the caller holds s.mu.
func (s *Server) remove(m *storedMessage) {
	drop := func(list []*storedMessage) []*storedMessage {
		out := list[:0:0]
		for _, x := range list {
			if x != m {
				out = append(out, x)
			}
		}
		return out
	}
	if m.ephemeral {
		s.ephemerals[m.user] = drop(s.ephemerals[m.user])
	} else {
		s.channels[m.channel] = drop(s.channels[m.channel])
	}
	s.notify()
}

// Messages returns the messages of a channel (C…, G… or D…) in post order,
// as they are now.
func (s *Server) Messages(channel string) []Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	return publicMessages(s.channels[channel])
}

// WaitMessage waits until a message in channel matches, and returns it.
func (s *Server) WaitMessage(channel string, timeout time.Duration, match func(Message) bool) (Message, error) {
	return s.waitMessage(timeout, match, "channel "+channel, func() []*storedMessage { return s.channels[channel] })
}

// DMs returns the direct messages the app sent to user, whether posted to
// the user ID or to the D… channel from conversations.open.
func (s *Server) DMs(user string) []Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	return publicMessages(s.channels[s.dmByUser[user]])
}

// WaitDM waits until a DM to user matches, and returns it.
func (s *Server) WaitDM(user string, timeout time.Duration, match func(Message) bool) (Message, error) {
	return s.waitMessage(timeout, match, "DMs to "+user, func() []*storedMessage { return s.channels[s.dmByUser[user]] })
}

// Ephemerals returns the ephemeral messages user sees: chat.postEphemeral to
// that user, ephemeral slash command acks, and ephemeral response_url posts
// for interactions the user triggered.
func (s *Server) Ephemerals(user string) []Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	return publicMessages(s.ephemerals[user])
}

// WaitEphemeral waits until an ephemeral message to user matches, and
// returns it.
func (s *Server) WaitEphemeral(user string, timeout time.Duration, match func(Message) bool) (Message, error) {
	return s.waitMessage(timeout, match, "ephemerals to "+user, func() []*storedMessage { return s.ephemerals[user] })
}

func (s *Server) waitMessage(timeout time.Duration, match func(Message) bool, where string, list func() []*storedMessage) (Message, error) {
	var found Message
	var seen []*storedMessage
	ok := s.waitFor(timeout, func() bool {
		seen = list()
		for _, m := range seen {
			if p := m.public(); match == nil || match(p) {
				found = p
				return true
			}
		}
		return false
	})
	if ok {
		return found, nil
	}
	var texts []string
	for _, m := range publicMessages(seen) {
		texts = append(texts, fmt.Sprintf("%q", m.AllText()))
	}
	return Message{}, fmt.Errorf("slackfake: no matching message in %s after %v; have %d: %s", where, timeout, len(texts), strings.Join(texts, ", "))
}

func publicMessages(list []*storedMessage) []Message {
	out := make([]Message, 0, len(list))
	for _, m := range list {
		out = append(out, m.public())
	}
	return out
}

// storedView is the fake's record of one open view.
type storedView struct {
	id, hash, user string
	rootID, prevID string
	def            map[string]any // normalized view definition as the app sent it
	state          map[string]map[string]*inputState
	errors         map[string]string
}

// inputState is the current value of one interactive element in a view.
type inputState struct {
	kind   string         // plain_text_input, static_select, datepicker
	value  *string        // plain_text_input text or datepicker date
	option map[string]any // static_select selected option
}

func (st *inputState) json() map[string]any {
	out := map[string]any{"type": st.kind}
	switch st.kind {
	case "plain_text_input":
		out["value"] = st.value
	case "datepicker":
		out["selected_date"] = st.value
	case "static_select":
		if st.option == nil {
			out["selected_option"] = nil
		} else {
			out["selected_option"] = st.option
		}
	}
	return out
}

// display is the value as the user sees it ("" when empty).
func (st *inputState) display() string {
	if st.option != nil {
		return textOf(st.option["text"])
	}
	if st.value != nil {
		return *st.value
	}
	return ""
}

// json is the view object Slack returns and puts in payloads.
func (v *storedView) json() map[string]any {
	out := map[string]any{
		"private_metadata": "", "callback_id": "", "external_id": "",
		"clear_on_close": false, "notify_on_close": false, "submit": nil, "close": nil,
	}
	maps.Copy(out, v.def)
	values := map[string]any{}
	for block, actions := range v.state {
		m := map[string]any{}
		for action, st := range actions {
			m[action] = st.json()
		}
		values[block] = m
	}
	var prev any
	if v.prevID != "" {
		prev = v.prevID
	}
	maps.Copy(out, map[string]any{
		"id": v.id, "team_id": TeamID, "hash": v.hash, "app_id": AppID, "bot_id": BotID,
		"app_installed_team_id": TeamID, "root_view_id": v.rootID, "previous_view_id": prev,
		"state": map[string]any{"values": values}, "blocks": nonNil(listOf(v.def["blocks"])),
	})
	return out
}

func (v *storedView) public() View {
	str := func(k string) string { s, _ := v.def[k].(string); return s }
	values := map[string]string{}
	for _, b := range listOf(v.def["blocks"]) {
		block, _ := b.(map[string]any)
		if block["type"] != "input" {
			continue
		}
		if st := v.inputAt(block); st != nil && st.display() != "" {
			values[textOf(block["label"])] = st.display()
		}
	}
	return View{
		ID: v.id, Hash: v.hash, CallbackID: str("callback_id"), PrivateMetadata: str("private_metadata"),
		ExternalID: str("external_id"), Title: textOf(v.def["title"]), Submit: textOf(v.def["submit"]),
		Close: textOf(v.def["close"]), Blocks: decodeBlocks(listOf(v.def["blocks"])),
		Errors: maps.Clone(v.errors), Values: values,
	}
}

// inputAt returns the state of an input block's element.
func (v *storedView) inputAt(block map[string]any) *inputState {
	el, _ := block["element"].(map[string]any)
	blockID, _ := block["block_id"].(string)
	actionID, _ := el["action_id"].(string)
	return v.state[blockID][actionID]
}

// resetState sets the view's state from its elements' initial values,
// keeping what the user entered in elements whose block_id, action_id and
// type did not change (as Slack does on views.update).
func (v *storedView) resetState() {
	old := v.state
	v.state = map[string]map[string]*inputState{}
	for _, b := range listOf(v.def["blocks"]) {
		block, _ := b.(map[string]any)
		blockID, _ := block["block_id"].(string)
		var elements []any
		switch block["type"] {
		case "input":
			elements = []any{block["element"]}
		case "actions":
			elements = listOf(block["elements"])
		case "section":
			elements = []any{block["accessory"]}
		}
		for _, e := range elements {
			el, _ := e.(map[string]any)
			kind, _ := el["type"].(string)
			actionID, _ := el["action_id"].(string)
			st := &inputState{kind: kind}
			switch kind {
			case "plain_text_input":
				if s, ok := el["initial_value"].(string); ok {
					st.value = &s
				}
			case "datepicker":
				if s, ok := el["initial_date"].(string); ok {
					st.value = &s
				}
			case "static_select":
				st.option, _ = el["initial_option"].(map[string]any)
			default:
				continue
			}
			if prev := old[blockID][actionID]; prev != nil && prev.kind == kind {
				st = prev
			}
			if v.state[blockID] == nil {
				v.state[blockID] = map[string]*inputState{}
			}
			v.state[blockID][actionID] = st
		}
	}
}

// OpenView returns the top of user's modal stack.
func (s *Server) OpenView(user string) (View, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if top := s.topView(user); top != nil {
		return top.public(), true
	}
	return View{}, false
}

// Views returns user's modal stack, bottom first.
func (s *Server) Views(user string) []View {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []View
	for _, v := range s.stacks[user] {
		out = append(out, v.public())
	}
	return out
}

// WaitView waits until the top of user's modal stack matches, and returns it.
func (s *Server) WaitView(user string, timeout time.Duration, match func(View) bool) (View, error) {
	var found View
	var top string
	ok := s.waitFor(timeout, func() bool {
		v := s.topView(user)
		if v == nil {
			top = "no open modal"
			return false
		}
		p := v.public()
		top = fmt.Sprintf("top modal %q", p.AllText())
		if match == nil || match(p) {
			found = p
			return true
		}
		return false
	})
	if !ok {
		return View{}, fmt.Errorf("slackfake: no matching modal for %s after %v; %s", user, timeout, top)
	}
	return found, nil
}

// Home returns the App Home view last published for user.
func (s *Server) Home(user string) (View, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if h := s.homes[user]; h != nil {
		return h.public(), true
	}
	return View{}, false
}

// topView returns the top of user's stack; the caller holds s.mu.
func (s *Server) topView(user string) *storedView {
	stack := s.stacks[user]
	if len(stack) == 0 {
		return nil
	}
	return stack[len(stack)-1]
}

// --- reading Block Kit JSON ---

// blocksJSON turns slack.Blocks back into generic JSON for walking.
func blocksJSON(b slack.Blocks) []any {
	raw, err := json.Marshal(b)
	if err != nil {
		return nil
	}
	var out []any
	_ = json.Unmarshal(raw, &out)
	return out
}

// decodeBlocks turns normalized Block Kit JSON into slack.Blocks.
func decodeBlocks(blocks []any) slack.Blocks {
	var out slack.Blocks
	if len(blocks) == 0 {
		return out
	}
	raw, err := json.Marshal(blocks)
	if err == nil {
		_ = json.Unmarshal(raw, &out)
	}
	return out
}

// textOf returns a text object's text.
func textOf(x any) string {
	m, _ := x.(map[string]any)
	s, _ := m["text"].(string)
	return s
}

// readableText lists the texts a person reads in blocks, in order.
func readableText(blocks []any) []string {
	var out []string
	add := func(x any) {
		if s := textOf(x); s != "" {
			out = append(out, s)
		}
	}
	for _, b := range blocks {
		block, _ := b.(map[string]any)
		switch block["type"] {
		case "section":
			add(block["text"])
			for _, f := range listOf(block["fields"]) {
				add(f)
			}
			if acc, _ := block["accessory"].(map[string]any); acc["type"] == "button" {
				add(acc["text"])
			}
		case "header":
			add(block["text"])
		case "context":
			for _, e := range listOf(block["elements"]) {
				add(e)
			}
		case "actions":
			for _, e := range listOf(block["elements"]) {
				if el, _ := e.(map[string]any); el["type"] == "button" {
					add(el["text"])
				}
			}
		case "input":
			add(block["label"])
			add(block["hint"])
		case "image":
			add(block["title"])
		}
	}
	return out
}

func joinText(head, rest []string) string {
	var parts []string
	for _, s := range append(head, rest...) {
		if s != "" {
			parts = append(parts, s)
		}
	}
	return strings.Join(parts, "\n")
}

// button is a button found in blocks.
type button struct {
	label   string
	blockID string
	element map[string]any
}

// findButtons lists the buttons in actions blocks and section accessories.
func findButtons(blocks []any) []button {
	var out []button
	for _, b := range blocks {
		block, _ := b.(map[string]any)
		blockID, _ := block["block_id"].(string)
		var elements []any
		switch block["type"] {
		case "actions":
			elements = listOf(block["elements"])
		case "section":
			elements = []any{block["accessory"]}
		}
		for _, e := range elements {
			if el, _ := e.(map[string]any); el["type"] == "button" {
				out = append(out, button{label: textOf(el["text"]), blockID: blockID, element: el})
			}
		}
	}
	return out
}

// nonNil makes a nil block list marshal as [] rather than null.
func nonNil(l []any) []any {
	if l == nil {
		return []any{}
	}
	return l
}
