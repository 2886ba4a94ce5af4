package slackfake

import (
	"encoding/json"
	"strings"
	"testing"
)

// validMessage is a chat.postMessage body using every supported block and
// element within limits.
func validMessage() map[string]any {
	return map[string]any{
		"channel": "C0TEST",
		"text":    "fallback",
		"blocks": []any{
			map[string]any{"type": "header", "text": plain("Access request")},
			map[string]any{
				"type": "section", "block_id": "summary", "text": mrkdwn("*Rita* wants _prod-db-admin_"),
				"fields":    []any{mrkdwn("*Role*"), plain("prod-db-admin")},
				"accessory": buttonEl("Details", "details"),
			},
			map[string]any{"type": "divider"},
			map[string]any{"type": "context", "elements": []any{
				mrkdwn("Requested <!date^1700000000^{date}|today>"),
				map[string]any{"type": "image", "image_url": "https://example.com/a.png", "alt_text": "avatar"},
			}},
			map[string]any{"type": "actions", "block_id": "decide", "elements": []any{
				func() map[string]any {
					b := buttonEl("Approve", "approve")
					b["style"] = "primary"
					b["confirm"] = map[string]any{
						"title": plain("Sure?"), "text": mrkdwn("Approve *prod-db-admin*?"),
						"confirm": plain("Yes"), "deny": plain("No"),
					}
					return b
				}(),
				map[string]any{
					"type": "static_select", "action_id": "pick", "placeholder": plain("Duration"),
					"options":        []any{option("1 hour", "1h"), option("2 hours", "2h")},
					"initial_option": option("1 hour", "1h"),
				},
				map[string]any{"type": "overflow", "action_id": "more", "options": []any{option("Cancel", "cancel")}},
				map[string]any{"type": "datepicker", "action_id": "when", "initial_date": "2024-01-31"},
			}},
			map[string]any{"type": "image", "image_url": "https://example.com/b.png", "alt_text": "graph", "title": plain("Load")},
		},
	}
}

// validModal is a views.open view within limits.
func validModal() map[string]any {
	return map[string]any{
		"type": "modal", "title": plain("Request access"), "submit": plain("Request"), "close": plain("Cancel"),
		"callback_id": "request", "private_metadata": "req_1", "external_id": "ext-1",
		"blocks": []any{
			map[string]any{"type": "input", "block_id": "role", "label": plain("Role"), "element": map[string]any{
				"type": "static_select", "action_id": "role_select",
				"option_groups": []any{map[string]any{"label": plain("Databases"), "options": []any{option("prod-db-admin", "prod-db-admin")}}},
			}},
			map[string]any{"type": "input", "block_id": "reason", "label": plain("Reason"), "hint": plain("Ticket number"),
				"element": map[string]any{"type": "plain_text_input", "action_id": "reason_input", "max_length": 500, "min_length": 3, "multiline": true, "placeholder": plain("Why?")}},
			map[string]any{"type": "section", "text": mrkdwn("Approvers: *DBA*")},
		},
	}
}

// at walks a JSON tree by keys and list indexes: at(m, "blocks", 1, "text").
func at(x any, path ...any) map[string]any {
	for _, p := range path {
		switch k := p.(type) {
		case string:
			x = x.(map[string]any)[k]
		case int:
			x = x.([]any)[k]
		}
	}
	return x.(map[string]any)
}

func blocksOf(n int, block func(i int) any) []any {
	out := make([]any, n)
	for i := range out {
		out[i] = block(i)
	}
	return out
}

func TestLimits(t *testing.T) {
	divider := func(int) any { return map[string]any{"type": "divider"} }
	type limitCase struct {
		name   string
		view   bool // views.open with validModal, else chat.postMessage with validMessage
		mutate func(p map[string]any)
		code   string // Slack's error; "" when Slack accepts the payload
		want   string // part of the test failure; "" when there must be none
	}
	cases := []limitCase{
		{name: "valid message", mutate: func(map[string]any) {}},
		{name: "valid modal", view: true, mutate: func(map[string]any) {}},

		// message surface
		{name: "51 blocks in a message", code: "invalid_blocks", want: "51 blocks, limit 50 per message",
			mutate: func(m map[string]any) { m["blocks"] = blocksOf(51, divider) }},
		{name: "50 blocks in a message", mutate: func(m map[string]any) { m["blocks"] = blocksOf(50, divider) }},
		{name: "message text over 4000", code: "msg_too_long", want: "message text is 4001 chars, limit 4000",
			mutate: func(m map[string]any) { m["text"] = chars(4001) }},
		{name: "blocks without text fallback", want: "no text fallback",
			mutate: func(m map[string]any) { delete(m, "text") }},
		{name: "neither text nor blocks", code: "no_text", want: "no_text",
			mutate: func(m map[string]any) { delete(m, "text"); delete(m, "blocks") }},
		{name: "unknown block type", code: "invalid_blocks", want: `unsupported block type "rich_text"`,
			mutate: func(m map[string]any) { at(m, "blocks", 2)["type"] = "rich_text" }},
		{name: "unsupported element", code: "invalid_blocks", want: `element type "checkboxes" is not supported as actions element`,
			mutate: func(m map[string]any) { at(m, "blocks", 4, "elements", 1)["type"] = "checkboxes" }},

		// text objects
		{name: "empty text object", code: "invalid_blocks", want: "section text is empty",
			mutate: func(m map[string]any) { at(m, "blocks", 1, "text")["text"] = "" }},
		{name: "text object over 3000", code: "invalid_blocks", want: "section text is 3001 chars, limit 3000",
			mutate: func(m map[string]any) { at(m, "blocks", 1, "text")["text"] = chars(3001) }},
		{name: "text object of unknown type", code: "invalid_blocks", want: `section text type must be plain_text or mrkdwn, got "markdown"`,
			mutate: func(m map[string]any) { at(m, "blocks", 1, "text")["type"] = "markdown" }},
		{name: "text given as a string", code: "invalid_blocks", want: "section text must be a text object",
			mutate: func(m map[string]any) { at(m, "blocks", 1)["text"] = "plain string" }},

		// section, header, context, actions
		{name: "11 section fields", code: "invalid_blocks", want: "section fields has 11 items, limit 10",
			mutate: func(m map[string]any) {
				at(m, "blocks", 1)["fields"] = blocksOf(11, func(int) any { return mrkdwn("f") })
			}},
		{name: "section field over 2000", code: "invalid_blocks", want: "section field is 2001 chars, limit 2000",
			mutate: func(m map[string]any) { at(m, "blocks", 1, "fields", 0)["text"] = chars(2001) }},
		{name: "section without text or fields", code: "invalid_blocks", want: "section needs text or fields",
			mutate: func(m map[string]any) { delete(at(m, "blocks", 1), "text"); delete(at(m, "blocks", 1), "fields") }},
		{name: "header over 150", code: "invalid_blocks", want: "header text is 151 chars, limit 150",
			mutate: func(m map[string]any) { at(m, "blocks", 0, "text")["text"] = chars(151) }},
		{name: "header in mrkdwn", code: "invalid_blocks", want: "header text must be plain_text",
			mutate: func(m map[string]any) { at(m, "blocks", 0)["text"] = mrkdwn("*Access*") }},
		{name: "11 context elements", code: "invalid_blocks", want: "context elements has 11 items, limit 10",
			mutate: func(m map[string]any) {
				at(m, "blocks", 3)["elements"] = blocksOf(11, func(int) any { return plain("c") })
			}},
		{name: "26 actions elements", code: "invalid_blocks", want: "actions elements has 26 items, limit 25",
			mutate: func(m map[string]any) {
				at(m, "blocks", 4)["elements"] = blocksOf(26, func(i int) any { return buttonEl("b", "b"+string(rune('a'+i))) })
			}},
		{name: "empty actions block", code: "invalid_blocks", want: "actions elements has 0 items, minimum 1",
			mutate: func(m map[string]any) { at(m, "blocks", 4)["elements"] = []any{} }},

		// IDs
		{name: "block_id over 255", code: "invalid_blocks", want: "block_id is 256 chars, limit 255",
			mutate: func(m map[string]any) { at(m, "blocks", 1)["block_id"] = chars(256) }},
		{name: "action_id over 255", code: "invalid_blocks", want: "button action_id has 256 chars, limit 255",
			mutate: func(m map[string]any) { at(m, "blocks", 4, "elements", 0)["action_id"] = chars(256) }},
		{name: "duplicate block_id", code: "invalid_blocks", want: `duplicate block_id "summary"`,
			mutate: func(m map[string]any) { at(m, "blocks", 4)["block_id"] = "summary" }},
		{name: "duplicate action_id in a block", code: "invalid_blocks", want: `duplicate action_id "approve" in one block`,
			mutate: func(m map[string]any) { at(m, "blocks", 4, "elements", 1)["action_id"] = "approve" }},

		// buttons and confirm dialogs
		{name: "button text over 75", code: "invalid_blocks", want: "button text is 76 chars, limit 75",
			mutate: func(m map[string]any) { at(m, "blocks", 4, "elements", 0, "text")["text"] = chars(76) }},
		{name: "button text in mrkdwn", code: "invalid_blocks", want: "button text must be plain_text",
			mutate: func(m map[string]any) { at(m, "blocks", 4, "elements", 0)["text"] = mrkdwn("*Go*") }},
		{name: "button value over 2000", code: "invalid_blocks", want: "button value has 2001 chars, limit 2000",
			mutate: func(m map[string]any) { at(m, "blocks", 4, "elements", 0)["value"] = chars(2001) }},
		{name: "button url over 3000", code: "invalid_blocks", want: "button url has 3001 chars, limit 3000",
			mutate: func(m map[string]any) { at(m, "blocks", 4, "elements", 0)["url"] = "https://x/" + chars(2991) }},
		{name: "button style unknown", code: "invalid_blocks", want: `button style must be "primary" or "danger"`,
			mutate: func(m map[string]any) { at(m, "blocks", 4, "elements", 0)["style"] = "green" }},
		{name: "confirm title over 100", code: "invalid_blocks", want: "confirm title is 101 chars, limit 100",
			mutate: func(m map[string]any) { at(m, "blocks", 4, "elements", 0, "confirm", "title")["text"] = chars(101) }},
		{name: "confirm text over 300", code: "invalid_blocks", want: "confirm text is 301 chars, limit 300",
			mutate: func(m map[string]any) { at(m, "blocks", 4, "elements", 0, "confirm", "text")["text"] = chars(301) }},
		{name: "confirm button over 30", code: "invalid_blocks", want: "confirm confirm is 31 chars, limit 30",
			mutate: func(m map[string]any) { at(m, "blocks", 4, "elements", 0, "confirm", "confirm")["text"] = chars(31) }},
		{name: "deny button over 30", code: "invalid_blocks", want: "confirm deny is 31 chars, limit 30",
			mutate: func(m map[string]any) { at(m, "blocks", 4, "elements", 0, "confirm", "deny")["text"] = chars(31) }},

		// static_select, options, overflow, datepicker
		{name: "101 options", code: "invalid_blocks", want: "static_select options has 101 items, limit 100",
			mutate: func(m map[string]any) {
				at(m, "blocks", 4, "elements", 1)["options"] = blocksOf(101, func(int) any { return option("o", "1h") })
			}},
		{name: "101 option groups", code: "invalid_arguments", want: "static_select option_groups has 101 items, limit 100", view: true,
			mutate: func(m map[string]any) {
				el := at(m, "blocks", 0, "element")
				el["option_groups"] = blocksOf(101, func(int) any { return map[string]any{"label": plain("g"), "options": []any{option("o", "o")}} })
			}},
		{name: "option text over 75", code: "invalid_blocks", want: "option text is 76 chars, limit 75",
			mutate: func(m map[string]any) { at(m, "blocks", 4, "elements", 1, "options", 1, "text")["text"] = chars(76) }},
		{name: "option text in mrkdwn", code: "invalid_blocks", want: "option text must be plain_text",
			mutate: func(m map[string]any) { at(m, "blocks", 4, "elements", 1, "options", 1)["text"] = mrkdwn("*2h*") }},
		{name: "option value over 75", code: "invalid_blocks", want: "option value has 76 chars, limit 75",
			mutate: func(m map[string]any) { at(m, "blocks", 4, "elements", 1, "options", 1)["value"] = chars(76) }},
		{name: "option description over 75", code: "invalid_blocks", want: "option description is 76 chars, limit 75",
			mutate: func(m map[string]any) {
				at(m, "blocks", 4, "elements", 1, "options", 1)["description"] = plain(chars(76))
			}},
		{name: "placeholder over 150", code: "invalid_blocks", want: "static_select placeholder is 151 chars, limit 150",
			mutate: func(m map[string]any) { at(m, "blocks", 4, "elements", 1, "placeholder")["text"] = chars(151) }},
		{name: "placeholder in mrkdwn", code: "invalid_blocks", want: "static_select placeholder must be plain_text",
			mutate: func(m map[string]any) { at(m, "blocks", 4, "elements", 1)["placeholder"] = mrkdwn("pick") }},
		{name: "initial_option not an option", code: "invalid_blocks", want: `initial_option value "3h" is not one of the options`,
			mutate: func(m map[string]any) { at(m, "blocks", 4, "elements", 1)["initial_option"] = option("3 hours", "3h") }},
		{name: "select with options and groups", code: "invalid_blocks", want: "exactly one of options or option_groups",
			mutate: func(m map[string]any) {
				at(m, "blocks", 4, "elements", 1)["option_groups"] = []any{map[string]any{"label": plain("g"), "options": []any{option("o", "o")}}}
			}},
		{name: "6 overflow options", code: "invalid_blocks", want: "overflow options has 6 items, limit 5",
			mutate: func(m map[string]any) {
				at(m, "blocks", 4, "elements", 2)["options"] = blocksOf(6, func(int) any { return option("o", "o") })
			}},
		{name: "bad initial_date", code: "invalid_blocks", want: "initial_date must be YYYY-MM-DD",
			mutate: func(m map[string]any) { at(m, "blocks", 4, "elements", 3)["initial_date"] = "31/01/2024" }},
		{name: "image without alt_text", code: "invalid_blocks", want: "image alt_text is required",
			mutate: func(m map[string]any) { delete(at(m, "blocks", 5), "alt_text") }},

		// modals
		{name: "101 blocks in a modal", view: true, code: "invalid_arguments", want: "101 blocks, limit 100 per modal",
			mutate: func(m map[string]any) { m["blocks"] = blocksOf(101, divider) }},
		{name: "100 blocks in a modal", view: true, mutate: func(m map[string]any) { m["blocks"] = blocksOf(100, divider) }},
		{name: "view over 250 kB", view: true, code: "view_too_large", want: "limit 250000 (250 kB)",
			mutate: func(m map[string]any) {
				m["blocks"] = blocksOf(90, func(int) any { return map[string]any{"type": "section", "text": plain(chars(2900))} })
			}},
		{name: "modal title over 24", view: true, code: "invalid_arguments", want: "modal title is 25 chars, limit 24",
			mutate: func(m map[string]any) { m["title"] = plain(chars(25)) }},
		{name: "modal title in mrkdwn", view: true, code: "invalid_arguments", want: "modal title must be plain_text",
			mutate: func(m map[string]any) { m["title"] = mrkdwn("Request") }},
		{name: "modal without title", view: true, code: "invalid_arguments", want: "modal title is required",
			mutate: func(m map[string]any) { delete(m, "title") }},
		{name: "modal submit over 24", view: true, code: "invalid_arguments", want: "modal submit is 25 chars, limit 24",
			mutate: func(m map[string]any) { m["submit"] = plain(chars(25)) }},
		{name: "modal close over 24", view: true, code: "invalid_arguments", want: "modal close is 25 chars, limit 24",
			mutate: func(m map[string]any) { m["close"] = plain(chars(25)) }},
		{name: "inputs without submit", view: true, code: "invalid_arguments", want: "submit is required when the modal has an input block",
			mutate: func(m map[string]any) { delete(m, "submit") }},
		{name: "private_metadata over 3000", view: true, code: "invalid_arguments", want: "modal private_metadata has 3001 chars, limit 3000",
			mutate: func(m map[string]any) { m["private_metadata"] = chars(3001) }},
		{name: "callback_id over 255", view: true, code: "invalid_arguments", want: "modal callback_id has 256 chars, limit 255",
			mutate: func(m map[string]any) { m["callback_id"] = chars(256) }},
		{name: "external_id over 255", view: true, code: "invalid_arguments", want: "modal external_id has 256 chars, limit 255",
			mutate: func(m map[string]any) { m["external_id"] = chars(256) }},
		{name: "not a modal", view: true, code: "invalid_arguments", want: `view type must be "modal" or "home"`,
			mutate: func(m map[string]any) { m["type"] = "dialog" }},

		// inputs
		{name: "input label over 2000", view: true, code: "invalid_arguments", want: "input label is 2001 chars, limit 2000",
			mutate: func(m map[string]any) { at(m, "blocks", 1, "label")["text"] = chars(2001) }},
		{name: "input label in mrkdwn", view: true, code: "invalid_arguments", want: "input label must be plain_text",
			mutate: func(m map[string]any) { at(m, "blocks", 1)["label"] = mrkdwn("*Reason*") }},
		{name: "input hint over 2000", view: true, code: "invalid_arguments", want: "input hint is 2001 chars, limit 2000",
			mutate: func(m map[string]any) { at(m, "blocks", 1, "hint")["text"] = chars(2001) }},
		{name: "max_length 0", view: true, code: "invalid_arguments", want: "plain_text_input max_length is 0, must be 1–3000",
			mutate: func(m map[string]any) { at(m, "blocks", 1, "element")["max_length"] = 0 }},
		{name: "max_length over 3000", view: true, code: "invalid_arguments", want: "plain_text_input max_length is 3001, must be 1–3000",
			mutate: func(m map[string]any) { at(m, "blocks", 1, "element")["max_length"] = 3001 }},
		{name: "min_length above max_length", view: true, code: "invalid_arguments", want: "min_length 600 is greater than max_length 500",
			mutate: func(m map[string]any) { at(m, "blocks", 1, "element")["min_length"] = 600 }},
		{name: "input without element", view: true, code: "invalid_arguments", want: "input block needs an element",
			mutate: func(m map[string]any) { delete(at(m, "blocks", 1), "element") }},
		{name: "button as input element", view: true, code: "invalid_arguments", want: `element type "button" is not supported as input element`,
			mutate: func(m map[string]any) { at(m, "blocks", 1)["element"] = buttonEl("x", "x") }},
		{name: "duplicate input block_id", view: true, code: "invalid_arguments", want: `duplicate block_id "role"`,
			mutate: func(m map[string]any) { at(m, "blocks", 1)["block_id"] = "role" }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			fake, rec := newRecorded(t)
			var method string
			var body map[string]any
			if tc.view {
				view := validModal()
				tc.mutate(view)
				method, body = "views.open", map[string]any{"trigger_id": issueTrigger(fake, "U0T"), "view": view}
			} else {
				body = validMessage()
				tc.mutate(body)
				method = "chat.postMessage"
			}
			_, resp := callAPI(t, fake, method, BotToken, body)
			if got, _ := resp["error"].(string); got != tc.code {
				t.Errorf("%s answered error %q, want %q (answer %v)", method, got, tc.code, resp)
			}
			failures := rec.failures()
			switch {
			case tc.want == "" && len(failures) > 0:
				t.Errorf("valid payload failed the test: %q", failures)
			case tc.want != "" && !rec.has(tc.want):
				t.Errorf("test failure should mention %q; got %q", tc.want, failures)
			}
		})
	}
}

func TestValidateFunctionsAreUsableDirectly(t *testing.T) {
	m := validMessage()
	blocks, _ := json.Marshal(m["blocks"])
	if vs := ValidateMessage("fallback", blocks); len(vs) != 0 {
		t.Errorf("valid message: %v", vs)
	}
	at(m, "blocks", 0, "text")["text"] = chars(151)
	blocks, _ = json.Marshal(m["blocks"])
	vs := ValidateMessage("fallback", blocks)
	if len(vs) != 1 || vs[0].Pointer != "/blocks/0/text/text" || vs[0].Code != "invalid_blocks" {
		t.Errorf("violations = %v", vs)
	}
	view, _ := json.Marshal(validModal())
	if vs := ValidateView(view); len(vs) != 0 {
		t.Errorf("valid modal: %v", vs)
	}
	if vs := ValidateView([]byte(`{"type":"modal","title":{"type":"plain_text","text":"` + chars(30) + `"}}`)); len(vs) != 1 || !strings.Contains(vs[0].String(), "/view/title/text: modal title is 30 chars") {
		t.Errorf("violations = %v", vs)
	}
}
