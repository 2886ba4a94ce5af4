package slackfake

import (
	"errors"
	"testing"
	"time"

	"github.com/slack-go/slack"
)

func TestFaults(t *testing.T) {
	post := func(api *slack.Client) error {
		_, _, err := api.PostMessage("C0APPROVALS", slack.MsgOptionText("hello", false))
		return err
	}
	cases := []struct {
		name   string
		fault  Fault
		check  func(t *testing.T, err error)
		posted int // messages in the channel after the faulted call
	}{
		{"429 with Retry-After", Fault{Status: 429, RetryAfter: 2, Calls: 1}, func(t *testing.T, err error) {
			var limited *slack.RateLimitedError
			if !errors.As(err, &limited) || limited.RetryAfter != 2*time.Second {
				t.Errorf("err = %v, want a rate limit of 2s", err)
			}
		}, 0},
		{"503", Fault{Status: 503, Calls: 1}, func(t *testing.T, err error) {
			var status slack.StatusCodeError
			if !errors.As(err, &status) || status.Code != 503 {
				t.Errorf("err = %v, want HTTP 503", err)
			}
		}, 0},
		{"ok:false", Fault{Error: "not_in_channel", Calls: 1}, func(t *testing.T, err error) {
			if err == nil || err.Error() != "not_in_channel" {
				t.Errorf("err = %v, want not_in_channel", err)
			}
		}, 0},
		{"applied, answer lost", Fault{Status: 500, Applied: true, Calls: 1}, func(t *testing.T, err error) {
			if err == nil {
				t.Error("no error")
			}
		}, 1},
		{"delay only", Fault{Delay: 50 * time.Millisecond, Calls: 1}, func(t *testing.T, err error) {
			if err != nil {
				t.Error(err)
			}
		}, 1},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			fake := New(t)
			api := slack.New(BotToken, slack.OptionAPIURL(fake.APIURL()))
			fake.Fail("chat.postMessage", tc.fault)
			start := time.Now()
			tc.check(t, post(api))
			if tc.fault.Delay > 0 && time.Since(start) < tc.fault.Delay {
				t.Errorf("answered after %v, want at least %v", time.Since(start), tc.fault.Delay)
			}
			if got := len(fake.Messages("C0APPROVALS")); got != tc.posted {
				t.Errorf("%d messages posted, want %d", got, tc.posted)
			}
			if err := post(api); err != nil { // the fault was for one call only
				t.Errorf("next call: %v", err)
			}
			if fake.Faulted("chat.postMessage") != 1 {
				t.Errorf("faulted %d calls, want 1", fake.Faulted("chat.postMessage"))
			}
		})
	}

	t.Run("every method for a time window", func(t *testing.T) {
		fake := New(t)
		api := slack.New(BotToken, slack.OptionAPIURL(fake.APIURL()))
		end := time.Now().Add(2 * time.Second) // long enough for two calls on a loaded machine
		fake.Fail(AnyMethod, Fault{Status: 503, Until: end})
		if _, err := api.AuthTest(); err == nil {
			t.Error("auth.test answered during the outage")
		}
		if err := post(api); err == nil {
			t.Error("chat.postMessage answered during the outage")
		}
		time.Sleep(time.Until(end) + 50*time.Millisecond)
		if err := post(api); err != nil {
			t.Errorf("after the outage: %v", err)
		}
	})
	t.Run("cleared", func(t *testing.T) {
		fake := New(t)
		api := slack.New(BotToken, slack.OptionAPIURL(fake.APIURL()))
		fake.Fail("chat.postMessage", Fault{Error: "internal_error"})
		if err := post(api); err == nil || err.Error() != "internal_error" {
			t.Errorf("err = %v", err)
		}
		fake.ClearFaults()
		if err := post(api); err != nil {
			t.Error(err)
		}
	})
}

func TestMetadataAndHistory(t *testing.T) {
	fake := New(t)
	api := slack.New(BotToken, slack.OptionAPIURL(fake.APIURL()))
	meta := slack.SlackMetadata{EventType: "access_request", EventPayload: map[string]any{"request_id": "req_1"}}
	_, ts, err := api.PostMessage("C0APPROVALS", slack.MsgOptionText("one", false), slack.MsgOptionMetadata(meta))
	if err != nil {
		t.Fatal(err)
	}
	for _, text := range []string{"two", "three"} {
		if _, _, err := api.PostMessage("C0APPROVALS", slack.MsgOptionText(text, false)); err != nil {
			t.Fatal(err)
		}
	}
	if _, _, err := api.PostMessage("C0APPROVALS", slack.MsgOptionText("reply", false), slack.MsgOptionTS(ts)); err != nil {
		t.Fatal(err)
	}
	if m := fake.Messages("C0APPROVALS")[0]; m.Metadata == nil || m.Metadata.EventPayload["request_id"] != "req_1" {
		t.Errorf("metadata = %+v", m.Metadata)
	}

	var texts []string
	var found *slack.SlackMetadata
	params := &slack.GetConversationHistoryParameters{ChannelID: "C0APPROVALS", Limit: 2, IncludeAllMetadata: true}
	for {
		page, err := api.GetConversationHistory(params)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range page.Messages {
			texts = append(texts, m.Text)
			if m.Metadata.EventType != "" {
				found = &m.Metadata
			}
		}
		if !page.HasMore {
			break
		}
		params.Cursor = page.ResponseMetaData.NextCursor
	}
	if len(texts) != 3 || texts[0] != "three" || texts[2] != "one" {
		t.Errorf("history = %q, want three, two, one (no thread replies)", texts)
	}
	if found == nil || found.EventType != "access_request" || found.EventPayload["request_id"] != "req_1" {
		t.Errorf("metadata in history = %+v", found)
	}
	page, err := api.GetConversationHistory(&slack.GetConversationHistoryParameters{ChannelID: "C0APPROVALS"})
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range page.Messages {
		if m.Metadata.EventType != "" {
			t.Errorf("metadata without include_all_metadata: %+v", m.Metadata)
		}
	}
}
