package slackfake

import (
	"errors"
	"testing"

	"github.com/slack-go/slack"
)

// A thread reads back as Slack answers conversations.replies: the parent then its replies,
// oldest first, paged with has_more and a cursor, metadata only when asked for, bounded by
// oldest and latest, and thread_not_found for a message that is not there.
func TestConversationsReplies(t *testing.T) {
	fake := New(t)
	api := slack.New(BotToken, slack.OptionAPIURL(fake.APIURL()))
	post := func(text, thread string) string {
		t.Helper()
		opts := []slack.MsgOption{slack.MsgOptionText(text, false),
			slack.MsgOptionMetadata(slack.SlackMetadata{EventType: "tagged", EventPayload: map[string]any{"n": text}})}
		if thread != "" {
			opts = append(opts, slack.MsgOptionTS(thread))
		}
		_, ts, err := api.PostMessage("C0APPROVALS", opts...)
		if err != nil {
			t.Fatal(err)
		}
		return ts
	}
	parent := post("parent", "")
	other := post("other", "")
	one := post("one", parent)
	post("elsewhere", other)
	two := post("two", parent)
	three := post("three", parent)

	read := func(params slack.GetConversationRepliesParameters) (texts []string, pages int, tags []string) {
		t.Helper()
		params.ChannelID = "C0APPROVALS"
		for {
			msgs, more, next, err := api.GetConversationReplies(&params)
			if err != nil {
				t.Fatal(err)
			}
			pages++
			for _, m := range msgs {
				texts = append(texts, m.Text)
				if m.Metadata.EventType != "" {
					tags = append(tags, m.Metadata.EventPayload["n"].(string))
				}
			}
			if !more {
				if next != "" {
					t.Errorf("next_cursor %q on the last page", next)
				}
				return texts, pages, tags
			}
			params.Cursor = next
		}
	}
	same := func(got []string, want ...string) bool {
		if len(got) != len(want) {
			return false
		}
		for i := range got {
			if got[i] != want[i] {
				return false
			}
		}
		return true
	}
	texts, pages, tags := read(slack.GetConversationRepliesParameters{Timestamp: parent, Limit: 3, IncludeAllMetadata: true})
	if !same(texts, "parent", "one", "two", "three") || pages != 2 || !same(tags, texts...) {
		t.Errorf("thread in pages of 3 = %q in %d pages, tags %q; want parent, one, two, three in 2 pages, all tagged", texts, pages, tags)
	}
	if texts, _, tags := read(slack.GetConversationRepliesParameters{Timestamp: two}); !same(texts, "parent", "one", "two", "three") || len(tags) != 0 {
		t.Errorf("thread by a reply's ts, no metadata asked = %q, tags %q; want the whole thread untagged", texts, tags)
	}
	if texts, _, _ := read(slack.GetConversationRepliesParameters{Timestamp: other}); !same(texts, "other", "elsewhere") {
		t.Errorf("other thread = %q", texts)
	}
	if texts, _, _ := read(slack.GetConversationRepliesParameters{Timestamp: parent, Oldest: one, Latest: three}); !same(texts, "two") {
		t.Errorf("between one and three, exclusive = %q, want two", texts)
	}
	if texts, _, _ := read(slack.GetConversationRepliesParameters{Timestamp: parent, Oldest: one, Latest: three, Inclusive: true}); !same(texts, "one", "two", "three") {
		t.Errorf("between one and three, inclusive = %q, want one, two, three", texts)
	}

	for _, c := range []struct {
		params slack.GetConversationRepliesParameters
		want   string
	}{
		{slack.GetConversationRepliesParameters{ChannelID: "C0APPROVALS", Timestamp: "1600000000.000100"}, "thread_not_found"},
		{slack.GetConversationRepliesParameters{ChannelID: "C0APPROVALS", Timestamp: parent, Cursor: "bogus"}, "invalid_cursor"},
		{slack.GetConversationRepliesParameters{ChannelID: "C0APPROVALS", Timestamp: parent, Oldest: "yesterday"}, "invalid_ts_oldest"},
		{slack.GetConversationRepliesParameters{ChannelID: "C0APPROVALS", Timestamp: parent, Latest: "1.1234567"}, "invalid_ts_latest"},
	} {
		_, _, _, err := api.GetConversationReplies(&c.params)
		var answer slack.SlackErrorResponse
		if !errors.As(err, &answer) || answer.Err != c.want {
			t.Errorf("replies %+v: %v, want %s", c.params, err, c.want)
		}
	}
	rec := &recorder{TB: t}
	strict := New(rec)
	_, _, _, err := slack.New(BotToken, slack.OptionAPIURL(strict.APIURL())).GetConversationReplies(&slack.GetConversationRepliesParameters{ChannelID: "#approvals", Timestamp: parent})
	if err == nil || !rec.has("conversations.replies: channel_not_found") {
		t.Errorf("replies in a channel named, not identified: %v, failures %q", err, rec.failures())
	}
}
