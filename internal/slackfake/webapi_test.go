package slackfake

import (
	"errors"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/slack-go/slack"
	"github.com/slack-go/slack/socketmode"
)

func TestAuth(t *testing.T) {
	fake, rec := newRecorded(t)
	cases := []struct {
		name, method, token, want string
	}{
		{"bot token", "auth.test", BotToken, ""},
		{"no token", "auth.test", "", "not_authed"},
		{"wrong token", "auth.test", "xoxb-other", "invalid_auth"},
		{"app token on a bot method", "chat.postMessage", AppToken, "not_allowed_token_type"},
		{"bot token on apps.connections.open", "apps.connections.open", BotToken, "not_allowed_token_type"},
		{"app token on apps.connections.open", "apps.connections.open", AppToken, ""},
		{"unknown method", "chat.frobnicate", BotToken, "unknown_method"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			status, resp := callAPI(t, fake, tc.method, tc.token, map[string]any{})
			if got, _ := resp["error"].(string); got != tc.want || status != http.StatusOK {
				t.Errorf("status %d error %q, want 200 %q", status, got, tc.want)
			}
		})
	}
	if !rec.has(`unknown Web API method "chat.frobnicate"`) || len(rec.failures()) != 1 {
		t.Errorf("failures = %q, want only the unknown method", rec.failures())
	}

	// The form token argument works too (slack-go sends auth.test that way).
	resp, err := http.PostForm(fake.APIURL()+"auth.test", url.Values{"token": {BotToken}})
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatal(resp, err)
	}
	resp.Body.Close()
	api := slack.New(BotToken, slack.OptionAPIURL(fake.APIURL()))
	who, err := api.AuthTest()
	if err != nil || who.UserID != BotUserID || who.TeamID != TeamID || who.BotID != BotID || who.User != BotName {
		t.Errorf("auth.test = %+v, %v", who, err)
	}
}

func TestDirectMessagesAndLookups(t *testing.T) {
	fake := New(t)
	fake.AddUser("U0BOB", "Bob Builder", "bob@example.com")
	fake.AddUserGroup("S0DBA", "U0BOB", "U0ANN")
	api := slack.New(BotToken, slack.OptionAPIURL(fake.APIURL()))

	ch, _, _, err := api.OpenConversation(&slack.OpenConversationParameters{Users: []string{"U0BOB"}})
	if err != nil || !strings.HasPrefix(ch.ID, "D") {
		t.Fatalf("conversations.open = %+v, %v", ch, err)
	}
	if _, _, err := api.PostMessage(ch.ID, slack.MsgOptionText("via D channel", false)); err != nil {
		t.Fatal(err)
	}
	got, _, err := api.PostMessage("U0BOB", slack.MsgOptionText("via user ID", false))
	if err != nil || got != ch.ID {
		t.Errorf("posting to a user ID answered channel %q (%v), want %q", got, err, ch.ID)
	}
	dms := fake.DMs("U0BOB")
	if len(dms) != 2 || dms[0].Text != "via D channel" || dms[1].Text != "via user ID" || dms[0].TS >= dms[1].TS {
		t.Errorf("DMs = %+v", dms)
	}

	user, err := api.GetUserInfo("U0BOB")
	if err != nil || user.RealName != "Bob Builder" || user.Profile.Email != "bob@example.com" || user.Profile.RealName != "Bob Builder" || user.TeamID != TeamID {
		t.Errorf("users.info = %+v, %v", user, err)
	}
	if _, err := api.GetUserInfo("U0NOBODY"); err == nil || err.Error() != "user_not_found" {
		t.Errorf("unknown user: %v", err)
	}
	members, err := api.GetUserGroupMembers("S0DBA")
	if err != nil || strings.Join(members, ",") != "U0BOB,U0ANN" {
		t.Errorf("usergroups.users.list = %v, %v", members, err)
	}
	if _, err := api.GetUserGroupMembers("S0NONE"); err == nil || err.Error() != "no_such_subteam" {
		t.Errorf("unknown group: %v", err)
	}
	if got := fake.Calls("users.info"); got != 2 {
		t.Errorf("Calls(users.info) = %d", got)
	}
}

func TestChatUpdateAndEphemeral(t *testing.T) {
	fake, rec := newRecorded(t)
	api := slack.New(BotToken, slack.OptionAPIURL(fake.APIURL()))
	_, ts, err := api.PostMessage("C0X", slack.MsgOptionText("v1", false),
		slack.MsgOptionBlocks(slack.NewSectionBlock(slack.NewTextBlockObject(slack.PlainTextType, "body v1", false, false), nil, nil)))
	if err != nil {
		t.Fatal(err)
	}
	if _, _, _, err := api.UpdateMessage("C0X", ts, slack.MsgOptionText("v2", false)); err != nil {
		t.Fatal(err)
	}
	msgs := fake.Messages("C0X")
	if len(msgs) != 1 || msgs[0].Text != "v2" || msgs[0].Updated != 1 || !strings.Contains(msgs[0].AllText(), "body v1") {
		t.Errorf("after update without blocks the blocks stay: %+v", msgs)
	}
	if _, _, _, err := api.UpdateMessage("C0X", "1.2", slack.MsgOptionText("v3", false)); err == nil || err.Error() != "message_not_found" {
		t.Errorf("update of a missing message: %v", err)
	}
	if _, err := api.PostEphemeral("C0X", "U0ANN", slack.MsgOptionText("only you", false)); err != nil {
		t.Fatal(err)
	}
	if e := fake.Ephemerals("U0ANN"); len(e) != 1 || e[0].Channel != "C0X" || e[0].User != "U0ANN" || !e[0].Ephemeral {
		t.Errorf("ephemerals = %+v", e)
	}
	if _, _, err := api.PostMessage("#general", slack.MsgOptionText("x", false)); err == nil || err.Error() != "channel_not_found" {
		t.Errorf("post to a channel name: %v", err)
	}
	if !rec.has("message_not_found") || !rec.has("channel_not_found") {
		t.Errorf("failures = %q", rec.failures())
	}
}

func TestRateLimit(t *testing.T) {
	fake := New(t)
	fake.AddUser("U0BOB", "Bob", "bob@example.com")
	fake.SetRateLimit("users.info", 2)
	api := slack.New(BotToken, slack.OptionAPIURL(fake.APIURL()))
	for range 2 {
		if _, err := api.GetUserInfo("U0BOB"); err != nil {
			t.Fatal(err)
		}
	}
	_, err := api.GetUserInfo("U0BOB")
	var rl *slack.RateLimitedError
	if !errors.As(err, &rl) || rl.RetryAfter < time.Second || rl.RetryAfter > time.Minute {
		t.Errorf("third call: %v, want a RateLimitedError", err)
	}
	if _, err := api.AuthTest(); err != nil {
		t.Errorf("other methods are not limited: %v", err)
	}
	if fake.Calls("users.info") != 3 {
		t.Errorf("Calls = %d", fake.Calls("users.info"))
	}
	fake.SetRateLimit("users.info", 0)
	if _, err := api.GetUserInfo("U0BOB"); err != nil {
		t.Errorf("after removing the limit: %v", err)
	}
}

func TestResponseURL(t *testing.T) {
	fake, rec := newRecorded(t)
	api := slack.New(BotToken, slack.OptionAPIURL(fake.APIURL()))
	_, ts, err := api.PostMessage("C0X", slack.MsgOptionText("request", false),
		slack.MsgOptionBlocks(slack.NewActionBlock("a", slack.NewButtonBlockElement("ok", "1", slack.NewTextBlockObject(slack.PlainTextType, "OK", false, false)))))
	if err != nil {
		t.Fatal(err)
	}
	respURL := make(chan string, 1)
	startApp(t, fake, func(app *testApp, evt socketmode.Event) {
		cb := evt.Data.(slack.InteractionCallback)
		_ = app.client.Ack(*evt.Request)
		if cb.Message.Timestamp != ts || cb.Container.MessageTs != ts || cb.Channel.ID != "C0X" || cb.ActionCallback.BlockActions[0].ActionID != "ok" {
			t.Errorf("block_actions payload = %+v", cb)
		}
		respURL <- cb.ResponseURL
	})
	if _, err := fake.ClickButton("U0ANN", fake.Messages("C0X")[0], "OK"); err != nil {
		t.Fatal(err)
	}
	url := <-respURL

	send := func(opts ...slack.MsgOption) error {
		_, _, err := api.PostMessage("", append([]slack.MsgOption{slack.MsgOptionResponseURL(url, "")}, opts...)...)
		return err
	}
	if err := send(slack.MsgOptionText("just for you", false)); err != nil {
		t.Fatal(err)
	}
	if err := send(slack.MsgOptionText("for everyone", false), slack.MsgOptionResponseURL(url, slack.ResponseTypeInChannel)); err != nil {
		t.Fatal(err)
	}
	if err := send(slack.MsgOptionText("done", false), slack.MsgOptionReplaceOriginal(url)); err != nil {
		t.Fatal(err)
	}
	if e := fake.Ephemerals("U0ANN"); len(e) != 1 || e[0].Text != "just for you" {
		t.Errorf("ephemerals = %+v", e)
	}
	msgs := fake.Messages("C0X")
	if len(msgs) != 2 || msgs[0].Text != "done" || msgs[0].Updated != 1 || len(msgs[0].Buttons()) != 0 || msgs[1].Text != "for everyone" {
		t.Errorf("messages = %+v", msgs)
	}
	if err := send(slack.MsgOptionDeleteOriginal(url)); err != nil {
		t.Fatal(err)
	}
	if msgs := fake.Messages("C0X"); len(msgs) != 1 {
		t.Errorf("after delete_original: %+v", msgs)
	}
	if err := send(slack.MsgOptionText("fifth", false)); err != nil {
		t.Fatal(err)
	}
	if len(rec.failures()) != 0 {
		t.Errorf("failures = %q", rec.failures())
	}
	if err := send(slack.MsgOptionText("sixth", false)); err == nil {
		t.Error("a sixth use of the response_url succeeded")
	}
	if !rec.has("response_url used 6 times; Slack allows 5") {
		t.Errorf("failures = %q", rec.failures())
	}
}

func TestPingsKeepSlackGoConnected(t *testing.T) {
	fake := New(t)
	fake.PingInterval = 20 * time.Millisecond
	api := slack.New(BotToken, slack.OptionAPIURL(fake.APIURL()), slack.OptionAppLevelToken(AppToken))
	client := socketmode.New(api, socketmode.OptionPingInterval(150*time.Millisecond))
	ctx := t.Context()
	go func() { _ = client.RunContext(ctx) }()
	go func() {
		for {
			select {
			case <-ctx.Done():
				return
			case <-client.Events:
			}
		}
	}()
	if err := fake.Connected(5 * time.Second); err != nil {
		t.Fatal(err)
	}
	time.Sleep(600 * time.Millisecond) // four of the client's ping deadlines
	if n := fake.Calls("apps.connections.open"); n != 1 {
		t.Errorf("client reconnected (%d opens): pings did not arrive", n)
	}
}

func TestConnectionLimit(t *testing.T) {
	fake := New(t)
	for i := range MaxConnections {
		status, resp := callAPI(t, fake, "apps.connections.open", AppToken, nil)
		if status != http.StatusOK || resp["ok"] != true {
			t.Fatal(resp)
		}
		wsURL := resp["url"].(string)
		ws, _, err := websocketDial(wsURL)
		if err != nil {
			t.Fatal(err)
		}
		defer ws.Close()
		var hello socketmode.Request
		if err := ws.ReadJSON(&hello); err != nil || hello.Type != "hello" || hello.NumConnections != i+1 || hello.ConnectionInfo.AppID != AppID {
			t.Fatalf("hello = %+v, %v", hello, err)
		}
		if _, _, err := websocketDial(wsURL); err == nil {
			t.Fatal("a Socket Mode ticket worked twice")
		}
	}
	if err := fake.Connected(time.Second); err != nil || fake.Connections() != MaxConnections {
		t.Fatalf("connections = %d, %v", fake.Connections(), err)
	}
	if _, resp := callAPI(t, fake, "apps.connections.open", AppToken, nil); resp["error"] != "too_many_websockets" {
		t.Errorf("11th connection: %v", resp)
	}
}

func TestHostileInputsGetSlackErrorsNotPanics(t *testing.T) {
	fake, rec := newRecorded(t)
	garbage := []any{
		nil, 7, "x", []any{1, "two", nil},
		map[string]any{"type": 5, "text": []any{}},
		map[string]any{"type": "section", "text": map[string]any{"type": "mrkdwn", "text": 3}, "fields": "f", "accessory": 1},
		map[string]any{"type": "input", "label": plain("L"), "element": map[string]any{"type": "plain_text_input", "max_length": "ten", "min_length": 1.5}},
		map[string]any{"type": "actions", "elements": []any{nil, map[string]any{"type": "static_select", "options": "o", "initial_option": 3, "confirm": "c"}}},
	}
	var methodNames []string
	for name := range methods {
		methodNames = append(methodNames, name)
	}
	for _, name := range methodNames {
		token := BotToken
		if name == "apps.connections.open" {
			token = AppToken
		}
		for _, g := range garbage {
			body := map[string]any{
				"channel": g, "ts": g, "text": g, "blocks": g, "user": g, "users": g, "usergroup": g,
				"trigger_id": g, "view_id": g, "external_id": g, "hash": g, "email": g, "user_id": g,
				"view": map[string]any{"type": "modal", "title": plain("T"), "blocks": g},
			}
			for _, view := range []any{body["view"], g} {
				body["view"] = view
				status, resp := callAPI(t, fake, name, token, body)
				if status != http.StatusOK || resp["ok"] == nil {
					t.Errorf("%s with %v: %d %v", name, g, status, resp)
				}
			}
		}
	}
	// response_url with garbage.
	for _, body := range []string{"", "{", `{"blocks":"nope","text":1}`, `{"text":"ok","blocks":[{"type":"nope"}]}`} {
		resp, err := http.Post(fake.base+"/response/nope", "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	if len(rec.failures()) == 0 {
		t.Error("hostile payloads failed nothing")
	}
}
