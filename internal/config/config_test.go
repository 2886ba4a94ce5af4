package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestExampleConfigIsValid(t *testing.T) {
	cfg, err := Load("../../gatehouse.example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	k8s, _ := cfg.Policy.Role("k8s-prod-exec")
	if k8s.ApprovalsRequired != 2 || k8s.RequestTTL != time.Hour || k8s.MaxDuration != 2*time.Hour {
		t.Errorf("k8s-prod-exec = %+v, want the file's values and a 1h request_ttl default", k8s)
	}
	if cfg.Tokens.DevicePollInterval != 5*time.Second || cfg.Database != "gatehouse.db" {
		t.Errorf("config = %+v", cfg)
	}
}

func TestLoadNamesTheFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "gatehouse.yaml")
	if err := os.WriteFile(path, []byte("listen: nowhere\n"+minimalRole), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := Load(path)
	if err == nil || !strings.Contains(err.Error(), path+" has problems") || !strings.Contains(err.Error(), `listen "nowhere"`) {
		t.Errorf("Load = %v, want the file named and its problem", err)
	}
	if _, err := Load(filepath.Join(t.TempDir(), "missing.yaml")); err == nil || !strings.Contains(err.Error(), "no such file") {
		t.Errorf("Load of a missing file = %v", err)
	}
}

const minimalRole = `
approvals_channel: C0APPROVALS
roles:
  - name: prod-db-admin
    description: Admin on the production database
    approvers: [U0BOB]
`

func TestParseListsEveryProblem(t *testing.T) {
	tests := []struct {
		name string
		yaml string
		want []string
	}{
		{"empty file", "", []string{"the file is empty"}},
		{"not YAML", "roles: [\x00\x01", []string{"yaml"}},
		{"YAML bomb stays bounded", "a: &a [x]\nb: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]\nc: [*b,*b,*b,*b,*b,*b,*b,*b,*b]\n", []string{"field a not found"}},
		{"unknown top-level key", minimalRole + "listen_address: x\n", []string{"field listen_address not found"}},
		{"secret in clear text", minimalRole + "clients:\n  - id: grafana\n    secret: hunter2\n    grant_types: [refresh_token]\n", []string{"field secret not found"}},
		{"bad duration", strings.Replace(minimalRole, "approvers: [U0BOB]", "approvers: [U0BOB]\n    max_duration: forever", 1), []string{"forever"}},
		{"quorum beyond approvers", minimalRole + "    approvals_required: 3\n", []string{"approvals_required is 3 but only 1"}},
		{"default beyond max", minimalRole + "    default_duration: 2h\n    max_duration: 1h\n", []string{"default_duration 2h is longer than max_duration 1h"}},
		{"duplicate role", minimalRole + "  - name: prod-db-admin\n    description: again\n    approvers: [U0BOB]\n", []string{"defined more than once"}},
		{"clash with sub-command", strings.Replace(minimalRole, "prod-db-admin", "revoke", 1), []string{"clashes with the /access sub-command \"revoke\""}},
		{"bad issuer", "issuer: http://127.0.0.1:8080/\n" + minimalRole, []string{"trailing slash"}},
		{"client problems", minimalRole + "clients:\n  - id: a:b\n    public: true\n    secret_env: X\n    grant_types: [password]\n", []string{
			"no ':'", "public client has no secret", "unknown grant type \"password\""}},
		{"several at once", "listen: nowhere\n" + strings.Replace(minimalRole, "[U0BOB]", "[bob]", 1) + "    approvals_required: -1\n", []string{
			"listen \"nowhere\"", `"bob" is neither`, "approvals_required must be at least 1"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse([]byte(tt.yaml))
			if err == nil {
				t.Fatal("Parse accepted it")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error does not mention %q:\n%v", w, err)
				}
			}
		})
	}
}
