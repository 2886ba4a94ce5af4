package gatehouse

import (
	"bufio"
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"time"

	"github.com/gatehouse/gatehouse/app"
	"github.com/gatehouse/gatehouse/store"
)

// audit runs `gatehouse audit export|verify`.
func (m *Main) audit(ctx context.Context, args []string) error {
	if len(args) > 0 {
		// Named in full so flag errors and -h say which command they are about.
		named := append([]string{"audit " + args[0]}, args[1:]...)
		switch args[0] {
		case "export":
			return m.exportAudit(ctx, named)
		case "verify":
			return m.verifyAudit(ctx, named)
		}
	}
	return errors.New("usage: gatehouse audit export --config FILE [--since TIME|DURATION] [--format jsonl|csv]\n" +
		"       gatehouse audit verify --config FILE")
}

// exportAudit runs `gatehouse audit export`: the audit events recorded at or after --since,
// oldest first, on stdout as JSON Lines or CSV, each with its ID and hashes so that the
// export can be checked on its own.
func (m *Main) exportAudit(ctx context.Context, args []string) error {
	var sinceText, format string
	cfg, err := m.loadConfig(args, func(fs *flag.FlagSet) {
		fs.StringVar(&sinceText, "since", "", "export events at or after this time (2026-11-01T00:00:00Z) or this long ago (24h); default: all")
		fs.StringVar(&format, "format", "jsonl", "jsonl (one JSON object per line) or csv (with a header row)")
	})
	if err != nil {
		return err
	}
	since, err := parseSince(sinceText, m.Now())
	if err != nil {
		return err
	}
	out := bufio.NewWriter(m.Stdout)
	var write func(auditLine) error
	switch format {
	case "jsonl":
		enc := json.NewEncoder(out)
		enc.SetEscapeHTML(false) // reasons as typed: this is no HTML page
		write = func(l auditLine) error { return enc.Encode(l) }
	case "csv":
		w := csv.NewWriter(out)
		writeRecord := func(record []string) error {
			w.Write(record) // w buffers; Flush passes the row on to out, and Error says if that failed
			w.Flush()
			return w.Error()
		}
		write = func(l auditLine) error { return writeRecord(l.record()) }
		if err := writeRecord(auditColumns); err != nil {
			return err
		}
	default:
		return fmt.Errorf("audit export: --format must be jsonl or csv, not %q", format)
	}
	db, err := openExistingStore(cfg.Database)
	if err != nil {
		return err
	}
	defer db.Close()
	if err := db.AuditExport(ctx, since, func(e app.AuditEvent) error { return write(newAuditLine(e)) }); err != nil {
		return err
	}
	return out.Flush()
}

// parseSince reads --since: a time in RFC 3339, or a duration meaning that long before now.
// Empty means from the beginning.
func parseSince(text string, now time.Time) (time.Time, error) {
	if text == "" {
		return time.Time{}, nil
	}
	if t, err := time.Parse(time.RFC3339, text); err == nil {
		return t, nil
	}
	if d, err := time.ParseDuration(text); err == nil && d > 0 {
		return now.Add(-d), nil
	}
	return time.Time{}, fmt.Errorf("audit export: --since %q is neither a time like 2026-11-01T00:00:00Z nor a duration like 24h", text)
}

// auditColumns name the fields of an exported audit event: the CSV header, and the keys
// of each JSON line.
var auditColumns = []string{"id", "at", "actor", "action", "principal_kind", "principal_id", "request_id", "grant_id",
	"reason", "source", "hash", "prev_hash"}

// auditLine is an audit event as exported, field for field auditColumns.
type auditLine struct {
	ID            uint64    `json:"id"`
	At            time.Time `json:"at"`
	Actor         string    `json:"actor"`
	Action        string    `json:"action"`
	PrincipalKind string    `json:"principal_kind"`
	PrincipalID   string    `json:"principal_id"`
	RequestID     string    `json:"request_id"`
	GrantID       string    `json:"grant_id"`
	Reason        string    `json:"reason"`
	Source        string    `json:"source"`
	Hash          string    `json:"hash"`
	PrevHash      string    `json:"prev_hash"`
}

func newAuditLine(e app.AuditEvent) auditLine {
	return auditLine{ID: e.ID, At: e.At.UTC(), Actor: e.Actor, Action: e.Action, PrincipalKind: string(e.Principal.Kind),
		PrincipalID: e.Principal.ID, RequestID: e.RequestID, GrantID: e.GrantID, Reason: e.Reason, Source: e.Source,
		Hash: e.Hash, PrevHash: e.PrevHash}
}

// record is l as a CSV row, in the order of auditColumns.
func (l auditLine) record() []string {
	return []string{fmt.Sprint(l.ID), l.At.Format(time.RFC3339Nano), l.Actor, l.Action, l.PrincipalKind, l.PrincipalID,
		l.RequestID, l.GrantID, l.Reason, l.Source, l.Hash, l.PrevHash}
}

// verifyAudit runs `gatehouse audit verify`: it checks the audit trail's hash chain from
// the first event to the chain head, and fails naming the first broken link.
func (m *Main) verifyAudit(ctx context.Context, args []string) error {
	cfg, err := m.loadConfig(args)
	if err != nil {
		return err
	}
	db, err := openExistingStore(cfg.Database)
	if err != nil {
		return err
	}
	defer db.Close()
	v, err := db.VerifyAudit(ctx)
	if err != nil {
		return err
	}
	if !v.OK() {
		return fmt.Errorf("audit trail broken: %s (%d intact events before it)", v.Problem, v.Events)
	}
	fmt.Fprintf(m.Stdout, "audit trail OK: %d events\n", v.Events)
	return nil
}

// openExistingStore opens the database at path, which must exist: the audit commands
// would otherwise create an empty one (say, from the wrong directory) and find it spotless.
func openExistingStore(path string) (*store.Store, error) {
	if _, err := os.Stat(path); err != nil {
		return nil, fmt.Errorf("database: %w", err)
	}
	return store.Open(path)
}
