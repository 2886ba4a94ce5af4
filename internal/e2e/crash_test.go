package e2e

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/app"
	"github.com/gatehouse/gatehouse/internal/slackfake"
	"github.com/gatehouse/gatehouse/store"
)

// killTolerant is the test as the fake Slack sees it while the app is killed: envelopes the
// dead process never acknowledged are expected, anything else Slack would refuse still fails.
type killTolerant struct{ testing.TB }

func (k killTolerant) Errorf(format string, args ...any) {
	if msg := fmt.Sprintf(format, args...); strings.Contains(msg, "envelope not") {
		k.Logf("while killed: %s", msg)
		return
	}
	k.TB.Errorf(format, args...)
}

// buildGatehouse builds the real binary once per test run.
var buildGatehouse = sync.OnceValues(func() (string, error) {
	dir, err := os.MkdirTemp("", "gatehouse-bin")
	if err != nil {
		return "", err
	}
	bin := filepath.Join(dir, "gatehouse")
	out, err := exec.Command("go", "build", "-o", bin, "github.com/gatehouse/gatehouse").CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("go build: %v\n%s", err, out)
	}
	return bin, nil
})

// process is the real binary serving against a fake Slack.
type process struct {
	t      *testing.T
	bin    string
	config string
	env    []string
	cmd    *exec.Cmd
	log    *os.File
}

func (p *process) start() {
	p.t.Helper()
	p.cmd = exec.Command(p.bin, "serve", "--config", p.config)
	p.cmd.Env, p.cmd.Stdout, p.cmd.Stderr = p.env, p.log, p.log
	if err := p.cmd.Start(); err != nil {
		p.t.Fatal(err)
	}
}

func (p *process) kill() {
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	_ = p.cmd.Wait()
}

// A burst of commands and approvals, the process SIGKILLed in the middle of it at several
// points, and a restart on the same database: every request a user was shown exists once
// with one approval message, every acknowledged command is answered, every acknowledged
// approval is recorded once, redrawn and its requester DMed once, and the audit trail holds.
func TestCrashMidBurstLosesNothing(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and kills the real binary")
	}
	bin, err := buildGatehouse()
	if err != nil {
		t.Fatal(err)
	}
	// Killed after so many of the burst's 22 actions were acknowledged: early, midway, and
	// once all were (with their Slack effects still on the way).
	for _, killAt := range []int{2, 11, 22} {
		t.Run(fmt.Sprintf("killed after %d acks", killAt), func(t *testing.T) {
			t.Parallel()
			crashMidBurst(t, bin, killAt)
		})
	}
}

func crashMidBurst(t *testing.T, bin string, killAt int) {
	fake := slackfake.New(killTolerant{t})
	fake.AddUserGroup("S0DBA", "U0DAVE")
	dir := t.TempDir()
	database := filepath.Join(dir, "gatehouse.db")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	config := filepath.Join(dir, "gatehouse.yaml")
	yaml := strings.NewReplacer("DATABASE", database, "ISSUER", "http://"+addr, "ALGORITHM", "RS256").Replace(testConfig) +
		"listen: " + addr + "\n"
	if err := os.WriteFile(config, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	log, err := os.Create(filepath.Join(dir, "gatehouse.log"))
	if err != nil {
		t.Fatal(err)
	}
	p := &process{t: t, bin: bin, config: config, log: log, env: append(os.Environ(),
		"SLACK_BOT_TOKEN="+slackfake.BotToken, "SLACK_APP_TOKEN="+slackfake.AppToken, "SLACK_API_URL="+fake.APIURL(),
		"RESOURCE_SERVER_SECRET="+resourceServerSecret, "CI_DEPLOYER_SECRET="+serviceSecret("ci-deployer"),
		"BATCH_JOB_SECRET="+serviceSecret("batch-job"))}
	p.start()
	t.Cleanup(p.kill)
	t.Cleanup(func() {
		if t.Failed() {
			out, _ := os.ReadFile(log.Name())
			t.Logf("gatehouse's log:\n%s", out)
		}
	})
	connected := func() {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for fake.Connections() == 0 {
			if time.Now().After(deadline) {
				t.Fatal("gatehouse did not connect")
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	connected()

	// Three requests waiting, each with an approver's form open.
	approvers := []string{"U0BOB", "U0DAVE", "U0BOB"}
	var waiting []string
	for i, approver := range approvers {
		requester := fmt.Sprintf("U0REQ%d", i)
		if _, err := fake.SlashCommand(requester, "C0GENERAL", "/access", fmt.Sprintf("prod-db-admin 1h waiting %d", i)); err != nil {
			t.Fatal(err)
		}
		m, err := fake.WaitMessage("C0DBA", wait, func(m slackfake.Message) bool { return strings.Contains(m.AllText(), fmt.Sprintf("waiting %d", i)) })
		if err != nil {
			t.Fatal(err)
		}
		waiting = append(waiting, requestIDIn(t, m.AllText()))
		if i < 2 { // one approver decides two requests: open one form at a time
			if _, err := fake.ClickButton(approver, m, "Approve"); err != nil {
				t.Fatal(err)
			}
			if _, err := fake.WaitView(approver, wait, func(v slackfake.View) bool { return v.Title == "Approve request" }); err != nil {
				t.Fatal(err)
			}
		}
	}

	// The burst: 20 commands and 2 approvals at once; the process dies in the middle.
	ackedCommands, ackedApprovals := burstAndKill(t, fake, 20, approvers[:2], killAt, wait, p.kill) // the third has no form open

	p.start()
	connected()
	// Everything owed is finished: leases of the dead process run out within seconds.
	awaitRecovery(t, fake, database, 25*time.Second, ackedCommands, ackedApprovals, waiting, approvers)
	out, err := exec.Command(bin, "audit", "verify", "--config", config).CombinedOutput()
	if err != nil {
		t.Errorf("audit verify: %v\n%s", err, out)
	}
}

// burstAndKill sends commands /access commands (from users U10000…) and an Approve
// submission from each of approvers at once, calls kill once killAt of them were
// acknowledged (or after wait), and returns the users whose command and the indexes of the
// approvers whose submission were acknowledged.
func burstAndKill(t *testing.T, fake *slackfake.Server, commands int, approvers []string, killAt int, wait time.Duration,
	kill func()) (ackedCommands []string, ackedApprovals []int) {
	var mu sync.Mutex
	var wg sync.WaitGroup
	killed := make(chan struct{})
	acked := func() { // the caller holds mu
		if len(ackedCommands)+len(ackedApprovals) == killAt {
			close(killed)
		}
	}
	for i := range commands {
		user := fmt.Sprintf("U1%04d", i)
		wg.Go(func() {
			if _, err := fake.SlashCommand(user, "C0GENERAL", "/access", fmt.Sprintf("prod-db-admin 1h burst %d", i)); err == nil {
				mu.Lock()
				ackedCommands = append(ackedCommands, user)
				acked()
				mu.Unlock()
			}
		})
	}
	for i := range approvers {
		wg.Go(func() {
			ack, err := fake.Submit(approvers[i], map[string]string{"Comment": "burst"})
			if err == nil && ack.ResponseAction == "" {
				mu.Lock()
				ackedApprovals = append(ackedApprovals, i)
				acked()
				mu.Unlock()
			}
		})
	}
	select {
	case <-killed:
	case <-time.After(wait):
	}
	kill()
	wg.Wait()
	t.Logf("killed: %d commands and %d approvals acknowledged", len(ackedCommands), len(ackedApprovals))
	return ackedCommands, ackedApprovals
}

// awaitRecovery waits up to within for the work a killed process owed to be finished, as
// crashProblems checks it on the database at database, and fails the test with what is not.
func awaitRecovery(t *testing.T, fake *slackfake.Server, database string, within time.Duration, ackedCommands []string,
	ackedApprovals []int, waiting, approvers []string) {
	t.Helper()
	db, err := store.Open(database)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var problems []string
	deadline := time.Now().Add(within)
	for {
		problems = crashProblems(t, fake, db, ackedCommands, ackedApprovals, waiting, approvers)
		if len(problems) == 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	for _, p := range problems {
		t.Error(p)
	}
}

// crashProblems lists what does not (yet) hold after the restart.
func crashProblems(t *testing.T, fake *slackfake.Server, db *store.Store, ackedCommands []string, ackedApprovals []int,
	waiting, approvers []string) []string {
	var problems []string
	messages := map[string]int{}
	for _, m := range fake.Messages("C0DBA") {
		if id := taggedRequest(m); id != "" {
			messages[id]++
		}
	}
	for id, n := range messages {
		if n != 1 {
			problems = append(problems, fmt.Sprintf("request %s has %d approval messages, want 1", id, n))
		}
	}
	shown := map[string]bool{}
	for _, user := range ackedCommands {
		told := fake.Ephemerals(user)
		if len(told) == 0 {
			problems = append(problems, user+"'s acknowledged command was never answered")
		}
		for _, m := range told {
			if strings.Contains(m.AllText(), "req_") {
				shown[requestIDIn(t, m.AllText())] = true
			}
		}
	}
	for id := range shown {
		if _, err := db.Request(context.Background(), id); err != nil {
			problems = append(problems, fmt.Sprintf("request %s shown to a user: %v", id, err))
		}
	}
	pending, err := db.PendingRequests(context.Background(), 1000)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range pending {
		if messages[r.ID] != 1 {
			problems = append(problems, fmt.Sprintf("request %s has %d approval messages, want 1", r.ID, messages[r.ID]))
		}
	}
	for _, i := range ackedApprovals {
		r, err := db.Request(context.Background(), waiting[i])
		switch {
		case err != nil:
			problems = append(problems, err.Error())
			continue
		case r.Status != app.StatusApproved || len(r.Decisions) != 1 || r.Decisions[0].Approver != approvers[i]:
			problems = append(problems, fmt.Sprintf("acknowledged approval of %s: status %s, decisions %+v", r.ID, r.Status, r.Decisions))
		}
		if messages[r.ID] != 1 {
			problems = append(problems, fmt.Sprintf("approved request %s has %d approval messages, want 1", r.ID, messages[r.ID]))
		}
		for _, m := range fake.Messages("C0DBA") {
			if m.Metadata != nil && m.Metadata.EventPayload["request_id"] == r.ID && !strings.Contains(m.AllText(), "*Approved*") {
				problems = append(problems, fmt.Sprintf("approved request %s is not redrawn: %q", r.ID, m.AllText()))
			}
		}
		dms := 0
		for _, m := range fake.DMs(r.Requester.ID) {
			if strings.Contains(m.AllText(), "*Approved*") {
				dms++
			}
		}
		if dms != 1 {
			problems = append(problems, fmt.Sprintf("requester of %s DMed %d times that it was approved, want once", r.ID, dms))
		}
	}
	return problems
}
