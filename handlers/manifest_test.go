package handlers

import (
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

// appManifest is the part of Slack's app manifest schema Gatehouse uses; unknown keys fail
// the decode, as Slack rejects them.
type appManifest struct {
	DisplayInformation struct {
		Name            string `yaml:"name"`
		Description     string `yaml:"description"`
		BackgroundColor string `yaml:"background_color"`
	} `yaml:"display_information"`
	Features struct {
		AppHome struct {
			HomeTabEnabled             bool `yaml:"home_tab_enabled"`
			MessagesTabEnabled         bool `yaml:"messages_tab_enabled"`
			MessagesTabReadOnlyEnabled bool `yaml:"messages_tab_read_only_enabled"`
		} `yaml:"app_home"`
		BotUser struct {
			DisplayName  string `yaml:"display_name"`
			AlwaysOnline bool   `yaml:"always_online"`
		} `yaml:"bot_user"`
		SlashCommands []struct {
			Command      string `yaml:"command"`
			Description  string `yaml:"description"`
			UsageHint    string `yaml:"usage_hint"`
			ShouldEscape bool   `yaml:"should_escape"`
		} `yaml:"slash_commands"`
	} `yaml:"features"`
	OAuthConfig struct {
		Scopes struct {
			Bot []string `yaml:"bot"`
		} `yaml:"scopes"`
	} `yaml:"oauth_config"`
	Settings struct {
		EventSubscriptions struct {
			BotEvents []string `yaml:"bot_events"`
		} `yaml:"event_subscriptions"`
		Interactivity struct {
			IsEnabled bool `yaml:"is_enabled"`
		} `yaml:"interactivity"`
		OrgDeployEnabled     bool `yaml:"org_deploy_enabled"`
		SocketModeEnabled    bool `yaml:"socket_mode_enabled"`
		TokenRotationEnabled bool `yaml:"token_rotation_enabled"`
	} `yaml:"settings"`
}

// scopesOfCall maps the slack-go calls the code makes to the bot scopes each needs.
var scopesOfCall = map[string][]string{
	"PostMessageContext":         {"chat:write"},
	"UpdateMessageContext":       {"chat:write"},
	"PostEphemeralContext":       {"chat:write"},
	"GetUserGroupMembersContext": {"usergroups:read"},
	"GetUserInfoContext":         {"users:read", "users:read.email"}, // ID tokens carry the email
	"OpenConversationContext":    {"im:write"},
	// Finding an approval message by the request it belongs to, in public and private channels,
	// and the bot's own DMs, so a message sent before a crash is not sent twice.
	"GetConversationHistoryContext": {"channels:history", "groups:history", "im:history"},
	// Finding a reminder or escalation notice in an approval message's thread, likewise.
	"GetConversationRepliesContext": {"channels:history", "groups:history"},
}

func TestManifest(t *testing.T) {
	data, err := os.ReadFile("../manifest.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var m appManifest
	dec := yaml.NewDecoder(strings.NewReader(string(data)))
	dec.KnownFields(true)
	if err := dec.Decode(&m); err != nil {
		t.Fatalf("manifest.yaml does not match Slack's manifest schema: %v", err)
	}
	d := m.DisplayInformation
	check := func(ok bool, problem string) {
		t.Helper()
		if !ok {
			t.Error(problem)
		}
	}
	check(d.Name != "" && len(d.Name) <= 35, "display_information.name must be 1-35 characters")
	check(len(d.Description) <= 140, "display_information.description must be at most 140 characters")
	check(regexp.MustCompile(`^#[0-9a-fA-F]{6}$`).MatchString(d.BackgroundColor), "background_color must be #rrggbb")
	check(m.Features.BotUser.DisplayName != "" && len(m.Features.BotUser.DisplayName) <= 80, "bot_user.display_name must be 1-80 characters")
	check(m.Settings.SocketModeEnabled, "settings.socket_mode_enabled must be true")
	check(m.Settings.Interactivity.IsEnabled, "settings.interactivity.is_enabled must be true")
	check(m.Features.AppHome.MessagesTabEnabled, "app_home.messages_tab_enabled must be true: requesters get DMs")
	check(m.Features.AppHome.HomeTabEnabled && slices.Equal(m.Settings.EventSubscriptions.BotEvents, []string{"app_home_opened"}),
		"the Home tab needs home_tab_enabled and the app_home_opened bot event")

	var commands []string
	for _, c := range m.Features.SlashCommands {
		commands = append(commands, c.Command)
		check(strings.HasPrefix(c.Command, "/") && len(c.Command) <= 32, "slash command "+c.Command+" must start with / and be at most 32 characters")
		check(c.Description != "", "slash command "+c.Command+" needs a description")
		check(len(c.UsageHint) <= 1000, "usage_hint must be at most 1000 characters")
	}
	check(slices.Equal(commands, []string{"/access"}), "the app has exactly one command, /access")

	// The bot scopes must be exactly those the code needs.
	want := map[string]bool{"commands": true}
	files, _ := filepath.Glob("*.go")
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		src, _ := os.ReadFile(f)
		for call, scopes := range scopesOfCall {
			if strings.Contains(string(src), "."+call+"(") {
				for _, s := range scopes {
					want[s] = true
				}
			}
		}
	}
	have := map[string]bool{}
	for _, s := range m.OAuthConfig.Scopes.Bot {
		have[s] = true
	}
	for s := range want {
		check(have[s], "manifest lacks bot scope "+s+", which the code uses")
	}
	for s := range have {
		check(want[s], "manifest asks for bot scope "+s+", which the code does not use")
	}
}
