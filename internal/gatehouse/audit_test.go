package gatehouse

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/app"
	"github.com/gatehouse/gatehouse/store"
)

// hostileReason is what a reason may hold that breaks naive CSV or JSON writers.
const hostileReason = "incident 4123, \"db\" down;\nsee #ops\t— naïve café ✅ 🚑 <b>&amp;</b> =1+1"

var (
	auditNow        = time.Date(2026, 11, 30, 9, 0, 0, 0, time.UTC)
	auditFiledAt    = time.Date(2026, 11, 1, 9, 0, 0, 0, time.UTC)
	auditApprovedAt = time.Date(2026, 11, 20, 9, 0, 0, 0, time.UTC)
	auditRevokedAt  = auditNow.Add(-time.Hour)
	exportColumns   = []string{"id", "at", "actor", "action", "principal_kind", "principal_id", "request_id", "grant_id", "reason", "source", "hash", "prev_hash"}
)

// auditDatabase writes a config whose database holds one request's life: filed with
// hostileReason, approved (two events) and revoked. It returns the config file's path.
func auditDatabase(t *testing.T) (configPath, databasePath string) {
	t.Helper()
	dir := t.TempDir()
	databasePath = filepath.Join(dir, "gatehouse.db")
	configPath = filepath.Join(dir, "gatehouse.yaml")
	if err := os.WriteFile(configPath, fmt.Appendf(nil, "database: %q\n%s", databasePath, minimalRole), 0o600); err != nil {
		t.Fatal(err)
	}
	db, err := store.Open(databasePath)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	ctx := context.Background()
	alice := app.User("U0ALICE")
	r := app.Request{ID: "req_a", Requester: alice, Role: "prod-db-admin", Duration: time.Hour, Reason: hostileReason,
		Status: app.StatusPending, ApprovalsRequired: 1, CreatedAt: auditFiledAt, ExpiresAt: auditFiledAt.Add(time.Hour)}
	err = db.CreateRequest(ctx, r, app.AuditEvent{At: auditFiledAt, Actor: alice.ID, Action: app.ActionRequestCreated, Principal: alice,
		RequestID: r.ID, Reason: hostileReason, Source: app.SourceSlack})
	if err != nil {
		t.Fatal(err)
	}
	g := app.Grant{ID: "grt_a", RequestID: r.ID, Principal: alice, Role: r.Role, ApprovedBy: []string{"U0BOB"},
		CreatedAt: auditApprovedAt, ExpiresAt: auditApprovedAt.Add(r.Duration), Status: app.GrantActive}
	err = db.UpdateRequest(ctx, r.ID, func(r app.Request) (app.RequestChange, error) {
		r.Status, r.DecidedAt, r.GrantID = app.StatusApproved, auditApprovedAt, g.ID
		return app.RequestChange{Request: r, Grant: &g, Events: []app.AuditEvent{
			{At: auditApprovedAt, Actor: "U0BOB", Action: app.ActionRequestApproved, Principal: alice, RequestID: r.ID, Source: app.SourceSlack},
			{At: auditApprovedAt, Actor: "U0BOB", Action: app.ActionGrantCreated, Principal: alice, RequestID: r.ID, GrantID: g.ID, Source: app.SourceSlack},
		}}, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	err = db.EndGrant(ctx, g.ID, app.GrantRevoked, app.AuditEvent{At: auditRevokedAt, Actor: "U0SECOPS", Action: app.ActionGrantRevoked, Principal: alice,
		RequestID: r.ID, GrantID: g.ID, Reason: "done, thanks", Source: app.SourceSlack})
	if err != nil {
		t.Fatal(err)
	}
	return configPath, databasePath
}

func runAudit(args ...string) (stdout, stderr string, err error) {
	var out, errOut bytes.Buffer
	m := &Main{Getenv: func(string) string { return "" }, Stdout: &out, Stderr: &errOut, Now: func() time.Time { return auditNow }}
	err = m.Run(context.Background(), append([]string{"audit"}, args...))
	return out.String(), errOut.String(), err
}

func TestAuditExportJSONLines(t *testing.T) {
	config, _ := auditDatabase(t)
	for _, format := range [][]string{nil, {"--format", "jsonl"}} {
		out, errOut, err := runAudit(append([]string{"export", "--config", config}, format...)...)
		if err != nil {
			t.Fatalf("export %v: %v\n%s", format, err, errOut)
		}
		dec := json.NewDecoder(strings.NewReader(out))
		var lines []map[string]any
		for {
			var line map[string]any
			if err := dec.Decode(&line); errors.Is(err, io.EOF) {
				break
			} else if err != nil {
				t.Fatalf("line %d: %v\n%s", len(lines)+1, err, out)
			}
			lines = append(lines, line)
		}
		if len(lines) != 4 || strings.Count(out, "\n") != 4 {
			t.Fatalf("export %v gave %d objects on %d lines, want 4 on 4:\n%s", format, len(lines), strings.Count(out, "\n"), out)
		}
		prev := ""
		for i, line := range lines {
			keys := make([]string, 0, len(line))
			for k := range line {
				keys = append(keys, k)
			}
			if !slices.Equal(slices.Sorted(slices.Values(keys)), slices.Sorted(slices.Values(exportColumns))) {
				t.Errorf("line %d has keys %v, want %v", i+1, keys, exportColumns)
			}
			if line["id"] != float64(i+1) || line["prev_hash"] != prev {
				t.Errorf("line %d = %v, want id %d chained onto %q", i+1, line, i+1, prev)
			}
			prev, _ = line["hash"].(string)
		}
		first := lines[0]
		if first["reason"] != hostileReason || first["at"] != "2026-11-01T09:00:00Z" || first["action"] != app.ActionRequestCreated ||
			first["principal_kind"] != "user" || first["principal_id"] != "U0ALICE" || first["request_id"] != "req_a" || first["source"] != "slack" {
			t.Errorf("first line = %v", first)
		}
	}
}

func TestAuditExportCSV(t *testing.T) {
	config, _ := auditDatabase(t)
	out, errOut, err := runAudit("export", "--config", config, "--format", "csv")
	if err != nil {
		t.Fatalf("%v\n%s", err, errOut)
	}
	records, err := csv.NewReader(strings.NewReader(out)).ReadAll()
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if len(records) != 5 || !slices.Equal(records[0], exportColumns) {
		t.Fatalf("records = %q, want the header and 4 events", records)
	}
	want := []string{"1", "2026-11-01T09:00:00Z", "U0ALICE", app.ActionRequestCreated, "user", "U0ALICE", "req_a", "", hostileReason, "slack"}
	if got := records[1][:len(want)]; !slices.Equal(got, want) {
		t.Errorf("first event = %q, want %q", got, want)
	}
	for i, r := range records[2:] {
		if r[0] != fmt.Sprint(i+2) || r[11] != records[i+1][10] || len(r[10]) != 64 {
			t.Errorf("event %d = %q does not chain onto the hash of the one before", i+2, r)
		}
	}
}

func TestAuditExportSince(t *testing.T) {
	config, _ := auditDatabase(t)
	tests := []struct {
		since   string
		wantIDs []string
	}{
		{"2026-11-15T00:00:00Z", []string{"2", "3", "4"}},
		{"2026-11-20T09:00:00Z", []string{"2", "3", "4"}}, // at or after
		{"2026-11-20T10:00:00+01:00", []string{"2", "3", "4"}},
		{"24h", []string{"4"}},
		{"2000h", []string{"1", "2", "3", "4"}},
		{"2027-01-01T00:00:00Z", nil},
	}
	for _, tt := range tests {
		t.Run(tt.since, func(t *testing.T) {
			out, errOut, err := runAudit("export", "--config", config, "--format", "csv", "--since", tt.since)
			if err != nil {
				t.Fatalf("%v\n%s", err, errOut)
			}
			records, err := csv.NewReader(strings.NewReader(out)).ReadAll()
			if err != nil {
				t.Fatal(err)
			}
			var ids []string
			for _, r := range records[1:] {
				ids = append(ids, r[0])
			}
			if !slices.Equal(ids, tt.wantIDs) {
				t.Errorf("exported events %v, want %v", ids, tt.wantIDs)
			}
		})
	}
}

func TestAuditCommandErrors(t *testing.T) {
	config, _ := auditDatabase(t)
	missing := filepath.Join(t.TempDir(), "gatehouse.yaml")
	os.WriteFile(missing, fmt.Appendf(nil, "database: %q\n%s", filepath.Join(t.TempDir(), "nope.db"), minimalRole), 0o600)
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"no sub-command", nil, "usage: gatehouse audit export"},
		{"unknown sub-command", []string{"purge", "--config", config}, "usage: gatehouse audit export"},
		{"unknown format", []string{"export", "--config", config, "--format", "xml"}, `--format must be jsonl or csv, not "xml"`},
		{"bad since", []string{"export", "--config", config, "--since", "yesterday"}, `--since "yesterday" is neither a time`},
		{"negative since", []string{"export", "--config", config, "--since", "-24h"}, `--since "-24h" is neither a time`},
		{"unknown flag", []string{"export", "--config", config, "--verbose"}, "flag provided but not defined: -verbose"},
		{"stray argument", []string{"verify", "--config", config, "now"}, "unexpected arguments: now"},
		{"no config", []string{"verify"}, "no config file"},
		{"no database", []string{"verify", "--config", missing}, "nope.db: no such file"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, _, err := runAudit(tt.args...)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("err = %v, want one containing %q", err, tt.want)
			}
			if out != "" {
				t.Errorf("stdout = %q, want nothing", out)
			}
		})
	}
}

func TestAuditVerify(t *testing.T) {
	config, database := auditDatabase(t)
	out, errOut, err := runAudit("verify", "--config", config)
	if err != nil || out != "audit trail OK: 4 events\n" {
		t.Fatalf("verify = %q, %v (%s); want OK with 4 events", out, err, errOut)
	}

	db, err := sql.Open("sqlite3", database)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec("UPDATE audit_events SET reason = 'routine' WHERE id = 1"); err != nil {
		t.Fatal(err)
	}
	out, _, err = runAudit("verify", "--config", config)
	want := "audit trail broken: event 1 was edited (its hash does not match its content)"
	if err == nil || !strings.Contains(err.Error(), want) || out != "" {
		t.Errorf("verify after an edit = %q, %v; want no output and an error containing %q", out, err, want)
	}
}
