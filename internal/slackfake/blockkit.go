package slackfake

import (
	"encoding/json"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"unicode/utf8"
)

// Slack's documented limits on surfaces (Block Kit reference; the team's
// summary is slack-platform.md).
const (
	maxMessageBlocks = 50
	maxModalBlocks   = 100
	maxHomeBlocks    = 100
	maxViewBytes     = 250_000
	maxTextObject    = 3000
	maxMessageText   = 4000
	maxModalStack    = 3
	maxBlockIDLen    = 255
)

// Slack error codes the validator answers with.
const (
	errInvalidBlocks    = "invalid_blocks"
	errInvalidArguments = "invalid_arguments"
	errViewTooLarge     = "view_too_large"
	errMsgTooLong       = "msg_too_long"
	errNoText           = "no_text"
)

// Violation is one reason Slack would refuse a payload (or, when Code is
// empty, a mistake Slack tolerates but the fake still fails the test for).
type Violation struct {
	// Pointer is a JSON pointer to the offending value, e.g. "/blocks/3/text/text".
	Pointer string
	// Problem names the limit and the offending value.
	Problem string
	// Code is the error Slack answers with: invalid_blocks, invalid_arguments,
	// view_too_large, msg_too_long, no_text; "" if Slack accepts the payload.
	Code string
}

// String formats the violation as "pointer: problem".
func (v Violation) String() string { return v.Pointer + ": " + v.Problem }

// ruleKind says what kind of value a rule constrains.
type ruleKind int

const (
	textField   ruleKind = iota // a text object {type, text}
	stringField                 // a plain string
	listField                   // an array
	numberField                 // a number
)

// rule is one documented limit on a field of a Block Kit object.
type rule struct {
	field     string
	kind      ruleKind
	min, max  int  // length (text, string, list) or value (number) bounds
	plainOnly bool // text objects: plain_text only, no mrkdwn
	required  bool
}

// limits lists, per object kind, Slack's documented limits on its fields.
// Structure (which children an object has) is checked by the functions in
// blockKinds and elementKinds; the numbers live here.
var limits = map[string][]rule{
	// blocks
	"section": {
		{field: "text", kind: textField, max: 3000},
		{field: "fields", kind: listField, min: 1, max: 10},
	},
	"header": {{field: "text", kind: textField, max: 150, plainOnly: true, required: true}},
	"context": {
		{field: "elements", kind: listField, min: 1, max: 10, required: true},
	},
	"actions": {
		{field: "elements", kind: listField, min: 1, max: 25, required: true},
	},
	"input": {
		{field: "label", kind: textField, max: 2000, plainOnly: true, required: true},
		{field: "hint", kind: textField, max: 2000, plainOnly: true},
	},
	"image": {
		{field: "image_url", kind: stringField, min: 1, max: 3000, required: true},
		{field: "alt_text", kind: stringField, min: 1, max: 2000, required: true},
		{field: "title", kind: textField, max: 2000, plainOnly: true},
	},
	// elements
	"button": {
		{field: "text", kind: textField, max: 75, plainOnly: true, required: true},
		{field: "action_id", kind: stringField, max: 255},
		{field: "value", kind: stringField, max: 2000},
		{field: "url", kind: stringField, max: 3000},
	},
	"static_select": {
		{field: "action_id", kind: stringField, max: 255},
		{field: "placeholder", kind: textField, max: 150, plainOnly: true},
		{field: "options", kind: listField, min: 1, max: 100},
		{field: "option_groups", kind: listField, min: 1, max: 100},
	},
	"overflow": {
		{field: "action_id", kind: stringField, max: 255},
		{field: "options", kind: listField, min: 1, max: 5, required: true},
	},
	"plain_text_input": {
		{field: "action_id", kind: stringField, max: 255},
		{field: "placeholder", kind: textField, max: 150, plainOnly: true},
		{field: "initial_value", kind: stringField, max: 3000},
		{field: "max_length", kind: numberField, min: 1, max: 3000},
		{field: "min_length", kind: numberField, min: 0, max: 3000},
	},
	"datepicker": {
		{field: "action_id", kind: stringField, max: 255},
		{field: "placeholder", kind: textField, max: 150, plainOnly: true},
	},
	"image element": {
		{field: "image_url", kind: stringField, min: 1, max: 3000, required: true},
		{field: "alt_text", kind: stringField, min: 1, max: 2000, required: true},
	},
	// composition objects
	"option": {
		{field: "text", kind: textField, max: 75, plainOnly: true, required: true},
		{field: "value", kind: stringField, min: 1, max: 75, required: true},
		{field: "description", kind: textField, max: 75, plainOnly: true},
		{field: "url", kind: stringField, max: 3000},
	},
	"option_group": {
		{field: "label", kind: textField, max: 75, plainOnly: true, required: true},
		{field: "options", kind: listField, min: 1, max: 100, required: true},
	},
	"confirm": {
		{field: "title", kind: textField, max: 100, plainOnly: true, required: true},
		{field: "text", kind: textField, max: 300, required: true},
		{field: "confirm", kind: textField, max: 30, plainOnly: true, required: true},
		{field: "deny", kind: textField, max: 30, plainOnly: true, required: true},
	},
	// surfaces
	"modal": {
		{field: "title", kind: textField, max: 24, plainOnly: true, required: true},
		{field: "submit", kind: textField, max: 24, plainOnly: true},
		{field: "close", kind: textField, max: 24, plainOnly: true},
		{field: "callback_id", kind: stringField, max: 255},
		{field: "external_id", kind: stringField, max: 255},
		{field: "private_metadata", kind: stringField, max: 3000},
	},
	"home": {
		{field: "callback_id", kind: stringField, max: 255},
		{field: "external_id", kind: stringField, max: 255},
		{field: "private_metadata", kind: stringField, max: 3000},
	},
}

// blockKinds are the block types the fake supports, with their structural
// checks beyond the limits table.
var blockKinds = map[string]func(v *validator, ptr string, b map[string]any){
	"section": (*validator).section,
	"divider": func(*validator, string, map[string]any) {},
	"header":  func(*validator, string, map[string]any) {},
	"context": (*validator).context,
	"actions": (*validator).actions,
	"input":   (*validator).input,
	"image":   func(*validator, string, map[string]any) {},
}

// elementKinds are the block elements the fake supports.
var elementKinds = map[string]func(v *validator, ptr string, e map[string]any){
	"button":           (*validator).button,
	"static_select":    (*validator).staticSelect,
	"overflow":         (*validator).overflow,
	"plain_text_input": (*validator).plainTextInput,
	"datepicker":       (*validator).datepicker,
	"image":            func(v *validator, ptr string, e map[string]any) { v.applyLimits(ptr, "image element", e) },
}

// Where each element may appear.
var (
	sectionAccessories = []string{"button", "static_select", "overflow", "datepicker", "image"}
	actionsElements    = []string{"button", "static_select", "overflow", "datepicker"}
	inputElements      = []string{"plain_text_input", "static_select", "datepicker"}
)

// validator collects violations while walking one payload.
type validator struct {
	code     string // error for block problems on this surface
	out      []Violation
	blockIDs map[string]string // block_id → pointer of its first use
}

func (v *validator) report(ptr, format string, args ...any) {
	v.out = append(v.out, Violation{Pointer: ptr, Problem: fmt.Sprintf(format, args...), Code: v.code})
}

// ValidateMessage checks a message's text and blocks (a JSON array, or nil)
// against Slack's limits, as chat.postMessage, chat.update,
// chat.postEphemeral and response_url do.
func ValidateMessage(text string, blocks json.RawMessage) []Violation {
	var parsed any
	if len(blocks) > 0 {
		if err := json.Unmarshal(blocks, &parsed); err != nil {
			return []Violation{{Pointer: "/blocks", Problem: "blocks is not valid JSON: " + err.Error(), Code: errInvalidBlocks}}
		}
	}
	return validateMessage(text, parsed)
}

func validateMessage(text string, blocks any) []Violation {
	v := &validator{code: errInvalidBlocks, blockIDs: map[string]string{}}
	if n := utf8.RuneCountInString(text); n > maxMessageText {
		v.out = append(v.out, Violation{Pointer: "/text", Problem: fmt.Sprintf("message text is %d chars, limit %d", n, maxMessageText), Code: errMsgTooLong})
	}
	v.blocks("/blocks", blocks, maxMessageBlocks, "message")
	if list, _ := blocks.([]any); len(list) > 0 && strings.TrimSpace(text) == "" {
		v.out = append(v.out, Violation{Pointer: "/text", Problem: "message has blocks but no text fallback (Slack uses text in notifications and screen readers)"})
	}
	return v.out
}

// ValidateView checks a view (a modal, or an App Home when its type is
// "home") against Slack's limits, as views.open, views.push, views.update,
// views.publish and response_action update/push do.
func ValidateView(view json.RawMessage) []Violation {
	_, out := parseView(view)
	return out
}

// parseView validates a view and returns it decoded.
func parseView(raw json.RawMessage) (map[string]any, []Violation) {
	if len(raw) > maxViewBytes {
		return nil, []Violation{{Pointer: "/view", Problem: fmt.Sprintf("view is %d bytes, limit %d (250 kB)", len(raw), maxViewBytes), Code: errViewTooLarge}}
	}
	var view map[string]any
	if err := json.Unmarshal(raw, &view); err != nil || view == nil {
		return nil, []Violation{{Pointer: "/view", Problem: "view is not a JSON object", Code: errInvalidArguments}}
	}
	v := &validator{code: errInvalidArguments, blockIDs: map[string]string{}}
	switch kind, _ := view["type"].(string); kind {
	case "modal":
		v.applyLimits("/view", "modal", view)
		v.blocks("/view/blocks", view["blocks"], maxModalBlocks, "modal")
		if view["submit"] == nil && hasInputBlock(view["blocks"]) {
			v.report("/view/submit", "submit is required when the modal has an input block")
		}
	case "home":
		v.applyLimits("/view", "home", view)
		v.blocks("/view/blocks", view["blocks"], maxHomeBlocks, "home tab")
	default:
		v.report("/view/type", "view type must be \"modal\" or \"home\", got %s", show(view["type"]))
	}
	return view, v.out
}

func hasInputBlock(blocks any) bool {
	list, _ := blocks.([]any)
	for _, b := range list {
		if m, ok := b.(map[string]any); ok && m["type"] == "input" {
			return true
		}
	}
	return false
}

func (v *validator) blocks(ptr string, raw any, limit int, surface string) {
	if raw == nil {
		return
	}
	list, ok := raw.([]any)
	if !ok {
		v.report(ptr, "blocks must be an array, got %s", show(raw))
		return
	}
	if len(list) > limit {
		v.report(ptr, "%d blocks, limit %d per %s", len(list), limit, surface)
	}
	for i, b := range list {
		v.block(fmt.Sprintf("%s/%d", ptr, i), b)
	}
}

func (v *validator) block(ptr string, raw any) {
	b, ok := raw.(map[string]any)
	if !ok {
		v.report(ptr, "block must be an object, got %s", show(raw))
		return
	}
	kind, _ := b["type"].(string)
	check, ok := blockKinds[kind]
	if !ok {
		v.report(ptr+"/type", "unsupported block type %s (supported: section, divider, header, context, actions, input, image)", show(b["type"]))
		return
	}
	if id, present := b["block_id"]; present {
		s, ok := id.(string)
		switch {
		case !ok:
			v.report(ptr+"/block_id", "block_id must be a string, got %s", show(id))
		case s == "":
			v.report(ptr+"/block_id", "block_id must not be empty")
		case utf8.RuneCountInString(s) > maxBlockIDLen:
			v.report(ptr+"/block_id", "block_id is %d chars, limit %d", utf8.RuneCountInString(s), maxBlockIDLen)
		case v.blockIDs[s] != "":
			v.report(ptr+"/block_id", "duplicate block_id %q (first used at %s)", s, v.blockIDs[s])
		default:
			v.blockIDs[s] = ptr
		}
	}
	v.applyLimits(ptr, kind, b)
	check(v, ptr, b)
}

func (v *validator) section(ptr string, b map[string]any) {
	if b["text"] == nil && b["fields"] == nil {
		v.report(ptr, "section needs text or fields")
	}
	fields, _ := b["fields"].([]any)
	for i, f := range fields {
		v.text(fmt.Sprintf("%s/fields/%d", ptr, i), "section field", f, 2000, false)
	}
	if acc, ok := b["accessory"]; ok {
		v.element(ptr+"/accessory", acc, "section accessory", sectionAccessories)
	}
}

func (v *validator) context(ptr string, b map[string]any) {
	elements, _ := b["elements"].([]any)
	for i, e := range elements {
		p := fmt.Sprintf("%s/elements/%d", ptr, i)
		m, _ := e.(map[string]any)
		switch m["type"] {
		case "plain_text", "mrkdwn":
			v.text(p, "context text", e, maxTextObject, false)
		default:
			v.element(p, e, "context element", []string{"image"})
		}
	}
}

func (v *validator) actions(ptr string, b map[string]any) {
	elements, _ := b["elements"].([]any)
	seen := map[string]bool{}
	for i, e := range elements {
		p := fmt.Sprintf("%s/elements/%d", ptr, i)
		v.element(p, e, "actions element", actionsElements)
		if m, ok := e.(map[string]any); ok {
			if id, ok := m["action_id"].(string); ok && id != "" {
				if seen[id] {
					v.report(p+"/action_id", "duplicate action_id %q in one block", id)
				}
				seen[id] = true
			}
		}
	}
}

func (v *validator) input(ptr string, b map[string]any) {
	el, ok := b["element"]
	if !ok {
		v.report(ptr+"/element", "input block needs an element")
		return
	}
	v.element(ptr+"/element", el, "input element", inputElements)
	for _, f := range []string{"optional", "dispatch_action"} {
		if x, ok := b[f]; ok {
			if _, isBool := x.(bool); !isBool {
				v.report(ptr+"/"+f, "%s must be a boolean, got %s", f, show(x))
			}
		}
	}
}

// element checks a block element allowed in the given place.
func (v *validator) element(ptr string, raw any, place string, allowed []string) {
	e, ok := raw.(map[string]any)
	if !ok {
		v.report(ptr, "%s must be an object, got %s", place, show(raw))
		return
	}
	kind, _ := e["type"].(string)
	check, known := elementKinds[kind]
	if !known || !slices.Contains(allowed, kind) {
		v.report(ptr+"/type", "element type %s is not supported as %s (supported: %s)", show(e["type"]), place, strings.Join(allowed, ", "))
		return
	}
	check(v, ptr, e)
}

func (v *validator) button(ptr string, e map[string]any) {
	v.applyLimits(ptr, "button", e)
	if style, ok := e["style"]; ok && style != "primary" && style != "danger" {
		v.report(ptr+"/style", "button style must be \"primary\" or \"danger\", got %s", show(style))
	}
	v.confirm(ptr, e)
}

func (v *validator) staticSelect(ptr string, e map[string]any) {
	v.applyLimits(ptr, "static_select", e)
	_, hasOptions := e["options"]
	_, hasGroups := e["option_groups"]
	if hasOptions == hasGroups {
		v.report(ptr, "static_select needs exactly one of options or option_groups")
	}
	var values []string
	for i, o := range listOf(e["options"]) {
		values = append(values, v.option(fmt.Sprintf("%s/options/%d", ptr, i), o))
	}
	for i, g := range listOf(e["option_groups"]) {
		gp := fmt.Sprintf("%s/option_groups/%d", ptr, i)
		group, ok := g.(map[string]any)
		if !ok {
			v.report(gp, "option group must be an object, got %s", show(g))
			continue
		}
		v.applyLimits(gp, "option_group", group)
		for j, o := range listOf(group["options"]) {
			values = append(values, v.option(fmt.Sprintf("%s/options/%d", gp, j), o))
		}
	}
	if init, ok := e["initial_option"]; ok {
		value := v.option(ptr+"/initial_option", init)
		if value != "" && !slices.Contains(values, value) {
			v.report(ptr+"/initial_option", "initial_option value %q is not one of the options", value)
		}
	}
	v.confirm(ptr, e)
}

func (v *validator) overflow(ptr string, e map[string]any) {
	v.applyLimits(ptr, "overflow", e)
	for i, o := range listOf(e["options"]) {
		v.option(fmt.Sprintf("%s/options/%d", ptr, i), o)
	}
	v.confirm(ptr, e)
}

func (v *validator) plainTextInput(ptr string, e map[string]any) {
	v.applyLimits(ptr, "plain_text_input", e)
	minLen, hasMin := e["min_length"].(float64)
	maxLen, hasMax := e["max_length"].(float64)
	if hasMin && hasMax && minLen > maxLen {
		v.report(ptr+"/min_length", "min_length %v is greater than max_length %v", minLen, maxLen)
	}
	if init, ok := e["initial_value"].(string); ok && hasMax && float64(utf8.RuneCountInString(init)) > maxLen {
		v.report(ptr+"/initial_value", "initial_value is %d chars, longer than max_length %v", utf8.RuneCountInString(init), maxLen)
	}
	if m, ok := e["multiline"]; ok {
		if _, isBool := m.(bool); !isBool {
			v.report(ptr+"/multiline", "multiline must be a boolean, got %s", show(m))
		}
	}
}

var datePattern = regexp.MustCompile(`^\d{4}-\d{2}-\d{2}$`)

func (v *validator) datepicker(ptr string, e map[string]any) {
	v.applyLimits(ptr, "datepicker", e)
	if d, ok := e["initial_date"]; ok {
		if s, _ := d.(string); !datePattern.MatchString(s) {
			v.report(ptr+"/initial_date", "initial_date must be YYYY-MM-DD, got %s", show(d))
		}
	}
	v.confirm(ptr, e)
}

// option checks an option object and returns its value.
func (v *validator) option(ptr string, raw any) string {
	o, ok := raw.(map[string]any)
	if !ok {
		v.report(ptr, "option must be an object, got %s", show(raw))
		return ""
	}
	v.applyLimits(ptr, "option", o)
	value, _ := o["value"].(string)
	return value
}

func (v *validator) confirm(ptr string, e map[string]any) {
	c, ok := e["confirm"]
	if !ok {
		return
	}
	m, ok := c.(map[string]any)
	if !ok {
		v.report(ptr+"/confirm", "confirm must be an object, got %s", show(c))
		return
	}
	v.applyLimits(ptr+"/confirm", "confirm", m)
}

// applyLimits checks obj's fields against the limits table for kind.
func (v *validator) applyLimits(ptr, kind string, obj map[string]any) {
	for _, r := range limits[kind] {
		p := ptr + "/" + r.field
		what := kind + " " + r.field
		val, present := obj[r.field]
		if !present || val == nil {
			if r.required {
				v.report(p, "%s is required", what)
			}
			continue
		}
		switch r.kind {
		case textField:
			v.text(p, what, val, r.max, r.plainOnly)
		case stringField:
			s, ok := val.(string)
			if !ok {
				v.report(p, "%s must be a string, got %s", what, show(val))
				continue
			}
			v.length(p, what, utf8.RuneCountInString(s), r.min, r.max, "chars")
		case listField:
			list, ok := val.([]any)
			if !ok {
				v.report(p, "%s must be an array, got %s", what, show(val))
				continue
			}
			v.length(p, what, len(list), r.min, r.max, "items")
		case numberField:
			n, ok := val.(float64)
			if !ok || n != float64(int(n)) {
				v.report(p, "%s must be an integer, got %s", what, show(val))
				continue
			}
			if int(n) < r.min || int(n) > r.max {
				v.report(p, "%s is %d, must be %d–%d", what, int(n), r.min, r.max)
			}
		}
	}
}

func (v *validator) length(ptr, what string, n, lo, hi int, unit string) {
	switch {
	case n > hi:
		v.report(ptr, "%s has %d %s, limit %d", what, n, unit, hi)
	case n < lo:
		v.report(ptr, "%s has %d %s, minimum %d", what, n, unit, lo)
	}
}

// text checks a text object: type plain_text or mrkdwn, 1..max chars.
func (v *validator) text(ptr, what string, raw any, limit int, plainOnly bool) {
	t, ok := raw.(map[string]any)
	if !ok {
		v.report(ptr, "%s must be a text object {\"type\":…,\"text\":…}, got %s", what, show(raw))
		return
	}
	switch t["type"] {
	case "plain_text":
	case "mrkdwn":
		if plainOnly {
			v.report(ptr+"/type", "%s must be plain_text, got mrkdwn", what)
		}
	default:
		v.report(ptr+"/type", "%s type must be plain_text or mrkdwn, got %s", what, show(t["type"]))
	}
	s, ok := t["text"].(string)
	if !ok {
		v.report(ptr+"/text", "%s has no text string, got %s", what, show(t["text"]))
		return
	}
	n := utf8.RuneCountInString(s)
	switch {
	case n == 0:
		v.report(ptr+"/text", "%s is empty; text objects need 1–%d chars", what, limit)
	case n > limit:
		v.report(ptr+"/text", "%s is %d chars, limit %d: %s", what, n, limit, show(s))
	}
}

func listOf(x any) []any {
	l, _ := x.([]any)
	return l
}

// show renders an offending value briefly for messages.
func show(x any) string {
	if x == nil {
		return "nothing"
	}
	b, _ := json.Marshal(x)
	s := string(b)
	if utf8.RuneCountInString(s) > 60 {
		r := []rune(s)
		s = string(r[:40]) + "…" + string(r[len(r)-10:])
	}
	return s
}

// assignIDs gives blocks and interactive elements the random block_id and
// action_id Slack generates when the app sets none, so that payloads and
// view state carry the IDs the app will see.
func assignIDs(blocks any) {
	for _, b := range listOf(blocks) {
		block, ok := b.(map[string]any)
		if !ok {
			continue
		}
		if _, ok := block["block_id"]; !ok {
			block["block_id"] = randomID()
		}
		var elements []any
		switch block["type"] {
		case "actions":
			elements = listOf(block["elements"])
		case "section":
			elements = []any{block["accessory"]}
		case "input":
			elements = []any{block["element"]}
		}
		for _, e := range elements {
			el, ok := e.(map[string]any)
			if !ok || el["type"] == "image" {
				continue
			}
			if _, ok := el["action_id"]; !ok {
				el["action_id"] = randomID()
			}
		}
	}
}

// rejection picks the error Slack answers with for a list of violations;
// "" means Slack accepts the payload.
func rejection(vs []Violation) string {
	for _, v := range vs {
		if v.Code != "" {
			return v.Code
		}
	}
	return ""
}

// describe joins violations for a test failure message.
func describe(vs []Violation) string {
	parts := make([]string, len(vs))
	for i, v := range vs {
		parts[i] = v.String()
	}
	return strings.Join(parts, "; ")
}
