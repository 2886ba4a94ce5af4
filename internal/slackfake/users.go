package slackfake

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"unicode/utf8"
)

// ClientValidationError is returned by Submit when Slack's own client would
// not send the form: a required input is empty, or a text is shorter than
// min_length or longer than max_length. Nothing reaches the app.
type ClientValidationError struct {
	// Problems maps each offending input's label to what Slack shows under it.
	Problems map[string]string
}

// Error lists the problems.
func (e *ClientValidationError) Error() string {
	labels := make([]string, 0, len(e.Problems))
	for l := range e.Problems {
		labels = append(labels, l)
	}
	slices.Sort(labels)
	parts := make([]string, len(labels))
	for i, l := range labels {
		parts[i] = fmt.Sprintf("%q: %s", l, e.Problems[l])
	}
	return "slackfake: Slack's client blocks the submit: " + strings.Join(parts, "; ")
}

// slackEscaper escapes slash command text as Slack does.
var slackEscaper = strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;")

// payloadUser is the user object of interaction payloads; the caller holds s.mu.
func (s *Server) payloadUser(user string) map[string]any {
	name := s.userName(user)
	return map[string]any{"id": user, "username": name, "name": name, "team_id": TeamID}
}

func payloadTeam() map[string]any { return map[string]any{"id": TeamID, "domain": TeamDomain} }

// marshal encodes a payload built from the fake's own decoded JSON, which
// always encodes.
func marshal(v any) json.RawMessage {
	b, _ := json.Marshal(v)
	return b
}

// SlashCommand runs a slash command as user in channel, as if typed
// "command text", and waits for the app's ack. The text is HTML-escaped
// (& < >) as Slack sends it. A message in the ack payload is shown to the
// user (ephemeral, or in the channel with response_type "in_channel").
func (s *Server) SlashCommand(user, channel, command, text string) (Ack, error) {
	s.mu.Lock()
	payload := map[string]any{
		"token": "fake-verification-token", "team_id": TeamID, "team_domain": TeamDomain,
		"channel_id": channel, "channel_name": channelName(channel),
		"user_id": user, "user_name": s.userName(user),
		"command": command, "text": slackEscaper.Replace(text),
		"api_app_id": AppID, "is_enterprise_install": false,
		"response_url": s.newResponseURL(user, channel, nil),
		"trigger_id":   s.newTrigger(user),
	}
	raw := marshal(payload)
	s.mu.Unlock()

	ack, err := s.deliver(envelope{Type: "slash_commands", Payload: raw, AcceptsResponsePayload: true})
	if err != nil || ack.Payload == nil {
		return ack, err
	}
	var msg responseMessage
	if json.Unmarshal(ack.Payload, &msg) != nil {
		s.fail("slash command ack payload is not a message: %s", show(string(ack.Payload)))
		return ack, nil
	}
	if msg.Text == "" && (len(msg.Blocks) == 0 || string(msg.Blocks) == "null") {
		return ack, nil // an empty payload shows nothing
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if apiErr := s.applyResponse("slash command ack", user, channel, nil, msg); apiErr != nil {
		return ack, fmt.Errorf("slackfake: slash command ack rejected: %s", apiErr.code)
	}
	return ack, nil
}

// ClickButton clicks, as user, the button labelled label on msg (a channel
// message, DM or ephemeral message, as returned by Messages, DMs or
// Ephemerals), and waits for the app's ack. The payload is a block_actions
// interaction with a fresh trigger_id and a response_url tied to msg. It
// fails (without failing the test) if the message or the button is gone.
func (s *Server) ClickButton(user string, msg Message, label string) (Ack, error) {
	s.mu.Lock()
	var m *storedMessage
	if msg.Ephemeral {
		for _, e := range s.ephemerals[msg.User] {
			if e.ts == msg.TS {
				m = e
			}
		}
	} else {
		m = s.findMessage(msg.Channel, msg.TS)
	}
	if m == nil {
		s.mu.Unlock()
		return Ack{}, fmt.Errorf("slackfake: ClickButton: message %s in %s no longer exists", msg.TS, msg.Channel)
	}
	b, err := buttonByLabel(m.blocks, label)
	if err != nil {
		s.mu.Unlock()
		return Ack{}, err
	}
	payload := map[string]any{
		"type": "block_actions", "token": "fake-verification-token",
		"user": s.payloadUser(user), "team": payloadTeam(), "api_app_id": AppID,
		"is_enterprise_install": false, "enterprise": nil,
		"trigger_id":   s.newTrigger(user),
		"response_url": s.newResponseURL(user, m.channel, m),
		"container": map[string]any{
			"type": "message", "message_ts": m.ts, "channel_id": m.channel, "is_ephemeral": m.ephemeral,
		},
		"channel": map[string]any{"id": m.channel, "name": channelName(m.channel)},
		"state":   map[string]any{"values": map[string]any{}},
		"actions": []any{buttonAction(b, s.nextTS())},
	}
	if !m.ephemeral { // Slack does not send ephemeral messages back
		payload["message"] = m.payload()
	}
	raw := marshal(payload)
	s.mu.Unlock()
	return s.deliver(envelope{Type: "interactive", Payload: raw})
}

// ClickViewButton clicks, as user, the button labelled label in the user's
// top modal, and waits for the app's ack.
func (s *Server) ClickViewButton(user string, label string) (Ack, error) {
	s.mu.Lock()
	v := s.topView(user)
	if v == nil {
		s.mu.Unlock()
		return Ack{}, fmt.Errorf("slackfake: ClickViewButton: %s has no open modal", user)
	}
	b, err := buttonByLabel(listOf(v.def["blocks"]), label)
	if err != nil {
		s.mu.Unlock()
		return Ack{}, err
	}
	payload := s.viewAction(user, v, buttonAction(b, s.nextTS()))
	raw := marshal(payload)
	s.mu.Unlock()
	return s.deliver(envelope{Type: "interactive", Payload: raw})
}

// SelectOption chooses, as user, an option of a static_select in the
// user's top modal. The select is found by its input's label or its block_id;
// the option by its text or value. The choice is kept in the view's state;
// it is sent to the app as a block_actions interaction only when the select
// dispatches actions (dispatch_action on its input, or a select in an
// actions block or section accessory), in which case SelectOption waits for
// the ack. Otherwise it returns a zero Ack.
func (s *Server) SelectOption(user string, label string, option string) (Ack, error) {
	s.mu.Lock()
	v := s.topView(user)
	if v == nil {
		s.mu.Unlock()
		return Ack{}, fmt.Errorf("slackfake: SelectOption: %s has no open modal", user)
	}
	block, el, dispatch := findSelect(v, label)
	if el == nil {
		s.mu.Unlock()
		return Ack{}, fmt.Errorf("slackfake: SelectOption: no static_select labelled %q in modal %q", label, textOf(v.def["title"]))
	}
	opt := findOption(el, option)
	if opt == nil {
		s.mu.Unlock()
		return Ack{}, fmt.Errorf("slackfake: SelectOption: %q has no option %q", label, option)
	}
	blockID, _ := block["block_id"].(string)
	actionID, _ := el["action_id"].(string)
	st := v.state[blockID][actionID]
	if st == nil {
		s.mu.Unlock()
		return Ack{}, fmt.Errorf("slackfake: SelectOption: no state for %q", label)
	}
	st.option = opt
	s.notify()
	if !dispatch {
		s.mu.Unlock()
		return Ack{}, nil
	}
	action := map[string]any{
		"type": "static_select", "action_id": actionID, "block_id": blockID,
		"selected_option": opt, "action_ts": s.nextTS(),
	}
	if ph, ok := el["placeholder"]; ok {
		action["placeholder"] = ph
	}
	payload := s.viewAction(user, v, action)
	raw := marshal(payload)
	s.mu.Unlock()
	return s.deliver(envelope{Type: "interactive", Payload: raw})
}

// viewAction builds a block_actions payload from inside a modal; the caller
// holds s.mu.
func (s *Server) viewAction(user string, v *storedView, action map[string]any) map[string]any {
	return map[string]any{
		"type": "block_actions", "token": "fake-verification-token",
		"user": s.payloadUser(user), "team": payloadTeam(), "api_app_id": AppID,
		"is_enterprise_install": false, "enterprise": nil,
		"trigger_id": s.newTrigger(user),
		"container":  map[string]any{"type": "view", "view_id": v.id},
		"view":       v.json(),
		"actions":    []any{action},
	}
}

// Submit submits, as user, the user's top modal, after filling inputs by
// label (or block_id): plain_text_input takes the text, static_select an
// option's text or value, datepicker a YYYY-MM-DD date. Inputs not given
// keep their current (initial) value. It waits for the app's ack and applies
// it as Slack does: no response_action pops the modal (the previous one in
// the stack, if any, shows again); "errors" keeps it open with the errors
// (each key must be an input block_id); "update" replaces it; "push" stacks
// a new one; "clear" closes them all.
//
// Submit returns an error without failing the test if a label does not
// exist, and a *ClientValidationError, sending nothing, when Slack's client
// would refuse the form (a required input empty, a text out of its
// min_length..max_length).
func (s *Server) Submit(user string, values map[string]string) (Ack, error) {
	s.mu.Lock()
	v := s.topView(user)
	if v == nil {
		s.mu.Unlock()
		return Ack{}, fmt.Errorf("slackfake: Submit: %s has no open modal", user)
	}
	if err := fill(v, values); err != nil {
		s.mu.Unlock()
		return Ack{}, err
	}
	s.notify()
	if err := clientCheck(v); err != nil {
		s.mu.Unlock()
		return Ack{}, err
	}
	view := v.json()
	payload := map[string]any{
		"type": "view_submission", "token": "fake-verification-token",
		"user": s.payloadUser(user), "team": payloadTeam(), "api_app_id": AppID,
		"is_enterprise_install": false, "enterprise": nil,
		"trigger_id": s.newTrigger(user), "view": view, "response_urls": []any{},
	}
	raw := marshal(payload)
	s.mu.Unlock()

	ack, err := s.deliver(envelope{Type: "interactive", Payload: raw, AcceptsResponsePayload: true})
	if err != nil {
		return ack, err
	}
	return ack, s.applySubmitAck(user, v, ack)
}

// applySubmitAck does what Slack does with a view_submission ack.
func (s *Server) applySubmitAck(user string, v *storedView, ack Ack) error {
	var resp struct {
		ResponseAction string          `json:"response_action"`
		View           json.RawMessage `json:"view"`
	}
	if ack.Payload != nil && json.Unmarshal(ack.Payload, &resp) != nil {
		s.fail("view_submission ack payload is not an object: %s", show(string(ack.Payload)))
		return fmt.Errorf("slackfake: bad view_submission ack")
	}
	method := "view_submission ack (response_action " + resp.ResponseAction + ")"
	var def map[string]any
	if resp.ResponseAction == "update" || resp.ResponseAction == "push" {
		if len(resp.View) == 0 {
			s.fail("%s: no view given", method)
			return fmt.Errorf("slackfake: %s without a view", method)
		}
		var err *apiError
		if def, err = s.checkView(method, resp.View, "modal"); err != nil {
			return fmt.Errorf("slackfake: %s rejected: %s", method, err.code)
		}
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	onStack := slices.Contains(s.stacks[user], v)
	if !onStack {
		return nil // the app closed or replaced it meanwhile
	}
	switch resp.ResponseAction {
	case "":
		s.closeViews(user, len(s.stacks[user])-slices.Index(s.stacks[user], v))
	case "clear":
		s.closeViews(user, len(s.stacks[user]))
	case "update":
		s.replaceView(v, def)
	case "push":
		if n := len(s.stacks[user]); n >= maxModalStack {
			s.fail("%s: push_limit_reached: %d modals stacked already, limit %d", method, n, maxModalStack)
			return fmt.Errorf("slackfake: push_limit_reached")
		}
		s.pushView(s.newView(user, def))
	case "errors":
		inputs := map[string]bool{}
		for _, b := range listOf(v.def["blocks"]) {
			if block, _ := b.(map[string]any); block["type"] == "input" {
				id, _ := block["block_id"].(string)
				inputs[id] = true
			}
		}
		if len(ack.Errors) == 0 {
			s.fail("%s: errors is empty", method)
		}
		for key := range ack.Errors {
			if !inputs[key] {
				s.fail("%s: key %q is not the block_id of an input block in the view (inputs: %v); Slack rejects the response and shows the user a generic error", method, key, sortedKeys(inputs))
			}
		}
		v.errors = ack.Errors
		s.notify()
	default:
		s.fail("view_submission ack: unknown response_action %q (want errors, update, push or clear)", resp.ResponseAction)
		return fmt.Errorf("slackfake: unknown response_action %q", resp.ResponseAction)
	}
	return nil
}

// Redeliver re-sends a recent envelope (last = 1 for the most recent, 2 for
// the one before, …) with a new envelope_id, retry_attempt one higher and
// retry_reason "timeout", as Slack does when an ack is late, and waits for
// its ack. The ack is returned as is: it changes no message or modal.
func (s *Server) Redeliver(last int) (Ack, error) {
	s.mu.Lock()
	last = max(last, 1)
	if last > len(s.sent) {
		s.mu.Unlock()
		return Ack{}, fmt.Errorf("slackfake: Redeliver(%d): only %d envelopes sent", last, len(s.sent))
	}
	env := s.sent[len(s.sent)-last]
	s.mu.Unlock()
	env.RetryAttempt++
	env.RetryReason = "timeout"
	return s.deliver(env)
}

// SendRaw sends an envelope of any type ("slash_commands", "interactive",
// "events_api", or nonsense) with an arbitrary payload, for hostile-input
// tests, and waits for the ack. A json.RawMessage or []byte payload is sent
// verbatim (it may even be invalid JSON); anything else is marshalled.
func (s *Server) SendRaw(envelopeType string, payload any) (Ack, error) {
	var raw json.RawMessage
	switch p := payload.(type) {
	case json.RawMessage:
		raw = p
	case []byte:
		raw = p
	default:
		b, err := json.Marshal(payload)
		if err != nil {
			return Ack{}, fmt.Errorf("slackfake: SendRaw: %w", err)
		}
		raw = b
	}
	if !json.Valid(raw) {
		// The envelope must stay valid JSON; send invalid payloads as a string.
		raw = marshal(string(raw))
	}
	return s.deliver(envelope{Type: envelopeType, Payload: raw, AcceptsResponsePayload: envelopeType == "slash_commands"})
}

// --- finding things in views and messages ---

func buttonByLabel(blocks []any, label string) (button, error) {
	buttons := findButtons(blocks)
	var labels []string
	for _, b := range buttons {
		if b.label == label {
			return b, nil
		}
		labels = append(labels, b.label)
	}
	return button{}, fmt.Errorf("slackfake: no button %q (buttons: %q)", label, labels)
}

func buttonAction(b button, ts string) map[string]any {
	action := map[string]any{
		"type": "button", "block_id": b.blockID, "action_id": b.element["action_id"],
		"text": b.element["text"], "action_ts": ts,
	}
	for _, k := range []string{"value", "style"} {
		if x, ok := b.element[k]; ok {
			action[k] = x
		}
	}
	return action
}

// findSelect finds a static_select by its input label or block_id, and
// whether choosing in it dispatches a block_actions payload.
func findSelect(v *storedView, label string) (block, el map[string]any, dispatch bool) {
	for _, b := range listOf(v.def["blocks"]) {
		blk, _ := b.(map[string]any)
		id, _ := blk["block_id"].(string)
		switch blk["type"] {
		case "input":
			e, _ := blk["element"].(map[string]any)
			if e["type"] == "static_select" && (textOf(blk["label"]) == label || id == label) {
				d, _ := blk["dispatch_action"].(bool)
				return blk, e, d
			}
		case "actions", "section":
			if id != label {
				continue
			}
			elements := listOf(blk["elements"])
			if blk["type"] == "section" {
				elements = []any{blk["accessory"]}
			}
			for _, x := range elements {
				if e, _ := x.(map[string]any); e["type"] == "static_select" {
					return blk, e, true
				}
			}
		}
	}
	return nil, nil, false
}

// findOption finds an option of a static_select by text or value.
func findOption(el map[string]any, choice string) map[string]any {
	options := listOf(el["options"])
	for _, g := range listOf(el["option_groups"]) {
		group, _ := g.(map[string]any)
		options = append(options, listOf(group["options"])...)
	}
	for _, o := range options {
		opt, _ := o.(map[string]any)
		if textOf(opt["text"]) == choice || opt["value"] == choice {
			return opt
		}
	}
	return nil
}

// inputBlocks returns the view's input blocks with their elements.
func inputBlocks(v *storedView) []map[string]any {
	var out []map[string]any
	for _, b := range listOf(v.def["blocks"]) {
		if blk, _ := b.(map[string]any); blk["type"] == "input" {
			out = append(out, blk)
		}
	}
	return out
}

// fill enters values (by input label, else block_id) into v's state; the
// caller holds s.mu. Nothing changes if a value does not fit.
func fill(v *storedView, values map[string]string) error {
	type change struct {
		st     *inputState
		value  *string
		option map[string]any
	}
	var changes []change
	for label, value := range values {
		var found map[string]any
		for _, blk := range inputBlocks(v) {
			if textOf(blk["label"]) == label {
				found = blk
				break
			}
		}
		if found == nil {
			for _, blk := range inputBlocks(v) {
				if blk["block_id"] == label {
					found = blk
				}
			}
		}
		if found == nil {
			return fmt.Errorf("slackfake: Submit: no input labelled %q in modal %q (labels: %q)", label, textOf(v.def["title"]), v.public().Labels())
		}
		st := v.inputAt(found)
		if st == nil {
			return fmt.Errorf("slackfake: Submit: input %q has no supported element", label)
		}
		c := change{st: st}
		switch st.kind {
		case "static_select":
			if value != "" {
				el, _ := found["element"].(map[string]any)
				if c.option = findOption(el, value); c.option == nil {
					return fmt.Errorf("slackfake: Submit: %q has no option %q", label, value)
				}
			}
		case "datepicker":
			if value != "" && !datePattern.MatchString(value) {
				return fmt.Errorf("slackfake: Submit: %q takes a YYYY-MM-DD date, got %q", label, value)
			}
			fallthrough
		default:
			if value != "" {
				c.value = &value
			}
		}
		changes = append(changes, c)
	}
	for _, c := range changes {
		c.st.value, c.st.option = c.value, c.option
	}
	return nil
}

// clientCheck does the checks Slack's client makes before it sends a
// view_submission.
func clientCheck(v *storedView) error {
	problems := map[string]string{}
	for _, blk := range inputBlocks(v) {
		label := textOf(blk["label"])
		st := v.inputAt(blk)
		if st == nil {
			continue
		}
		optional, _ := blk["optional"].(bool)
		if st.display() == "" {
			if !optional {
				problems[label] = "Please fill out this field."
			}
			continue
		}
		el, _ := blk["element"].(map[string]any)
		if st.kind != "plain_text_input" {
			continue
		}
		n := utf8.RuneCountInString(*st.value)
		if maxLen, ok := el["max_length"].(float64); ok && float64(n) > maxLen {
			problems[label] = fmt.Sprintf("Must be %v characters or fewer (is %d).", maxLen, n)
		}
		if minLen, ok := el["min_length"].(float64); ok && float64(n) < minLen {
			problems[label] = fmt.Sprintf("Must be at least %v characters (is %d).", minLen, n)
		}
	}
	if len(problems) > 0 {
		return &ClientValidationError{Problems: problems}
	}
	return nil
}

func sortedKeys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// ClickHomeButton clicks, as user, the button with that label in the block with that
// block_id of their App Home tab (block_actions with a view container and no response_url,
// as Slack sends), and waits for the ack.
func (s *Server) ClickHomeButton(user, blockID, label string) (Ack, error) {
	s.mu.Lock()
	h := s.homes[user]
	if h == nil {
		s.mu.Unlock()
		return Ack{}, fmt.Errorf("slackfake: ClickHomeButton: no Home tab published for %s", user)
	}
	var blocks []any
	for _, b := range listOf(h.def["blocks"]) {
		if m, ok := b.(map[string]any); ok && m["block_id"] == blockID {
			blocks = append(blocks, b)
		}
	}
	b, err := buttonByLabel(blocks, label)
	if err != nil {
		s.mu.Unlock()
		return Ack{}, fmt.Errorf("slackfake: ClickHomeButton: block %q: %w", blockID, err)
	}
	raw := marshal(s.viewAction(user, h, buttonAction(b, s.nextTS())))
	s.mu.Unlock()
	return s.deliver(envelope{Type: "interactive", Payload: raw})
}

// OpenHome sends user's app_home_opened event for the Home tab, as Slack does when they
// open the app, and waits for the ack.
func (s *Server) OpenHome(user string) (Ack, error) {
	return s.SendRaw("events_api", map[string]any{
		"token": "fake-verification-token", "team_id": TeamID, "api_app_id": AppID, "type": "event_callback",
		"event_id": "Ev" + randomHex(5), "event_time": 1700000000,
		"event": map[string]any{"type": "app_home_opened", "user": user, "channel": "D" + user[1:], "tab": "home", "event_ts": s.nextTS()},
	})
}
