package gatehouse

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// minimalRole is the smallest valid policy.
const minimalRole = `
approvals_channel: C0APPROVALS
roles:
  - name: prod-db-admin
    description: Admin on the production database
    approvers: [U0BOB]
`

func TestCheckConfig(t *testing.T) {
	var out, errOut bytes.Buffer
	m := &Main{Getenv: func(string) string { return "" }, Stdout: &out, Stderr: &errOut}
	if err := m.Run(context.Background(), []string{"check-config", "--config", "../../gatehouse.example.yaml"}); err != nil {
		t.Fatalf("check-config on the example: %v\n%s", err, errOut.String())
	}
	if got := out.String(); got != "config OK: 2 roles, 1 client\n" {
		t.Errorf("output = %q", got)
	}
	path := filepath.Join(t.TempDir(), "gatehouse.yaml")
	os.WriteFile(path, []byte("listen: nowhere\n"+strings.Replace(minimalRole, "[U0BOB]", "[bob]", 1)), 0o600)
	out.Reset()
	err := m.Run(context.Background(), []string{"check-config", "--config", path})
	if err == nil || !strings.Contains(err.Error(), `listen "nowhere"`) || !strings.Contains(err.Error(), `"bob" is neither`) {
		t.Errorf("check-config on a bad file = %v (output %q), want every problem", err, out.String())
	}
}

func TestConfigFromEnvironment(t *testing.T) {
	var out bytes.Buffer
	env := map[string]string{"GATEHOUSE_CONFIG": "../../gatehouse.example.yaml"}
	m := &Main{Getenv: func(k string) string { return env[k] }, Stdout: &out, Stderr: &out}
	if err := m.Run(context.Background(), []string{"check-config"}); err != nil {
		t.Fatalf("GATEHOUSE_CONFIG was not used: %v", err)
	}
}

func TestServeNamesEveryMissingSetting(t *testing.T) {
	var out bytes.Buffer
	env := map[string]string{"SLACK_BOT_TOKEN": "xoxp-user-token", "SLACK_API_URL": "ftp://x"}
	m := &Main{Getenv: func(k string) string { return env[k] }, Stdout: &out, Stderr: &out}
	err := m.Run(context.Background(), []string{"serve", "--config", "../../gatehouse.example.yaml"})
	if err == nil {
		t.Fatal("serve started without Slack tokens")
	}
	for _, w := range []string{"SLACK_BOT_TOKEN", "SLACK_APP_TOKEN", "SLACK_API_URL"} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error does not name %s: %v", w, err)
		}
	}
}

func TestServeNamesConfigAndEnvironmentProblemsAtOnce(t *testing.T) {
	path := filepath.Join(t.TempDir(), "gatehouse.yaml")
	os.WriteFile(path, []byte(minimalRole+"    default_duration: 2h\n    max_duration: 1h\n"), 0o600)
	var out bytes.Buffer
	m := &Main{Getenv: func(string) string { return "" }, Stdout: &out, Stderr: &out}
	err := m.Run(context.Background(), []string{"serve", "--config", path})
	for _, want := range []string{"default_duration 2h is longer than max_duration 1h", "SLACK_BOT_TOKEN", "SLACK_APP_TOKEN"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error does not name %q: %v", want, err)
		}
	}
}
