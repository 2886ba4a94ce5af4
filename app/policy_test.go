package app_test

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/app"
)

func validRole() app.Role {
	return app.Role{Name: "prod-db-admin", Description: "Admin on the production database", Approvers: []string{"U0BOB", "S0DBA"},
		ApprovalsRequired: 1, DefaultDuration: time.Hour, MaxDuration: 4 * time.Hour, RequestTTL: time.Hour}
}

func TestPolicyValidate(t *testing.T) {
	tests := []struct {
		name   string
		change func(p *app.Policy)
		want   []string // substrings of the problems reported, one each
	}{
		{"valid", func(p *app.Policy) {}, nil},
		{"no roles", func(p *app.Policy) { p.Roles = nil }, []string{"at least one role"}},
		{"bad name", func(p *app.Policy) { p.Roles[0].Name = "Prod DB" }, []string{"must match"}},
		{"name with unicode", func(p *app.Policy) { p.Roles[0].Name = "prod-ďb" }, []string{"must match"}},
		{"sub-command clash", func(p *app.Policy) { p.Roles[0].Name = "list" }, []string{"clashes with the /access sub-command"}},
		{"duplicate", func(p *app.Policy) { p.Roles = append(p.Roles, p.Roles[0]) }, []string{"defined more than once"}},
		{"quorum beyond approvers", func(p *app.Policy) { p.Roles[0].Approvers = []string{"U0BOB"}; p.Roles[0].ApprovalsRequired = 2 },
			[]string{"approvals_required is 2 but only 1 distinct approvers"}},
		{"quorum counts duplicates once", func(p *app.Policy) {
			p.Roles[0].Approvers = []string{"U0BOB", "U0BOB"}
			p.Roles[0].ApprovalsRequired = 2
		}, []string{"only 1 distinct approvers"}},
		{"zero quorum", func(p *app.Policy) { p.Roles[0].ApprovalsRequired = 0 }, []string{"at least 1"}},
		{"default beyond max", func(p *app.Policy) { p.Roles[0].DefaultDuration = 8 * time.Hour }, []string{"default_duration 8h is longer than max_duration 4h"}},
		{"negative duration", func(p *app.Policy) { p.Roles[0].RequestTTL = -time.Minute }, []string{"request_ttl must not be negative"}},
		{"bad approver", func(p *app.Policy) { p.Roles[0].Approvers = []string{"bob"} }, []string{`"bob" is neither a Slack user ID`}},
		{"no approvers", func(p *app.Policy) { p.Roles[0].Approvers = nil }, []string{"at least one user or user group"}},
		{"bad channel", func(p *app.Policy) { p.Roles[0].Channel = "#dba" }, []string{"not a Slack channel ID"}},
		{"nowhere to post", func(p *app.Policy) { p.ApprovalsChannel = "" }, []string{"nowhere to go"}},
		{"escalate without whom", func(p *app.Policy) { p.Roles[0].EscalateAfter = time.Hour }, []string{"escalate_after needs escalate_to"}},
		{"break glass without users", func(p *app.Policy) { p.Roles[0].BreakGlass = true }, []string{"break_glass needs break_glass_users"}},
		{"every problem at once", func(p *app.Policy) {
			p.Roles[0].Name = "help"
			p.Roles[0].DefaultDuration = 5 * time.Hour
			p.Admins = []string{"root"}
		}, []string{"clashes", "default_duration", "admins"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := app.Policy{ApprovalsChannel: "C0APPROVALS", Roles: []app.Role{validRole()}}
			tt.change(&p)
			err := p.Validate()
			if tt.want == nil {
				if err != nil {
					t.Fatalf("Validate() = %v, want nil", err)
				}
				return
			}
			var pe *app.PolicyError
			if !errors.As(err, &pe) {
				t.Fatalf("Validate() = %v, want a PolicyError", err)
			}
			if len(pe.Problems) != len(tt.want) {
				t.Errorf("problems = %q, want %d", pe.Problems, len(tt.want))
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("problems %q do not mention %q", pe.Problems, w)
				}
			}
		})
	}
}

func TestWithDefaults(t *testing.T) {
	p := app.Policy{Roles: []app.Role{{Name: "a"}, {Name: "b", MaxDuration: 30 * time.Minute}}}.WithDefaults()
	a, b := p.Roles[0], p.Roles[1]
	if a.ApprovalsRequired != 1 || a.DefaultDuration != time.Hour || a.MaxDuration != time.Hour || a.RequestTTL != time.Hour {
		t.Errorf("defaults for a bare role = %+v", a)
	}
	if b.DefaultDuration != 30*time.Minute {
		t.Errorf("default for a role capped at 30m = %s, want 30m", b.DefaultDuration)
	}
}

func TestDurationChoices(t *testing.T) {
	r := validRole()
	r.DefaultDuration, r.MaxDuration = 90*time.Minute, 3*time.Hour
	var got []string
	for _, d := range r.DurationChoices() {
		got = append(got, app.FormatDuration(d))
	}
	if want := "15m 30m 1h 1h30m 2h 3h"; strings.Join(got, " ") != want {
		t.Errorf("choices = %v, want %s", got, want)
	}
}

func TestClientRolesAndPrincipal(t *testing.T) {
	p := app.Policy{ApprovalsChannel: "C0APPROVALS", Roles: []app.Role{validRole(), {Name: "deploy"}},
		Clients: []app.ClientPolicy{{ID: "ci", Service: true, Roles: []string{"deploy"}}, {ID: "cli"}}}.WithDefaults()
	tests := []struct {
		client, scope string
		want          string // substring of the problem, "" for none
	}{
		{"ci", "role:deploy", ""},
		{"ci", "role:prod-db-admin", "Client ci may not ask for role prod-db-admin"},
		{"cli", "role:prod-db-admin", ""},
		{"cli", "role:root", `no role called "root"`},
		{"cli", "admin:all", `scope "admin:all" is not offered`},
	}
	for _, tt := range tests {
		_, err := p.ClientRoles(tt.client, []string{"openid", tt.scope})
		if tt.want == "" && err != nil || tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)) {
			t.Errorf("%s asking %s: %v, want %q", tt.client, tt.scope, err, tt.want)
		}
	}
	if got := p.Principal("ci"); got.Kind != app.PrincipalService {
		t.Errorf("ci is %+v, want a service", got)
	}
	if got := p.Principal("cli"); got != app.User("cli") {
		t.Errorf("a non-service client ID as subject is %+v, want a user", got)
	}
}

func TestCommonDurations(t *testing.T) {
	long := app.Role{Name: "long", DefaultDuration: time.Hour, MaxDuration: 4 * time.Hour}
	short := app.Role{Name: "short", DefaultDuration: 10 * time.Minute, MaxDuration: 10 * time.Minute}
	choices, pre := app.CommonDurations([]app.Role{long, short})
	if pre != 10*time.Minute || len(choices) != 1 || choices[0] != 10*time.Minute {
		t.Errorf("choices %v preselected %s; want only 10m", choices, pre)
	}
	other := app.Role{Name: "other", DefaultDuration: 5 * time.Minute, MaxDuration: 2 * time.Hour}
	choices, pre = app.CommonDurations([]app.Role{long, other})
	if pre != 5*time.Minute || !slices.Contains(choices, 5*time.Minute) || slices.Max(choices) != 2*time.Hour {
		t.Errorf("choices %v preselected %s; want 5m preselected, at most 2h", choices, pre)
	}
}
