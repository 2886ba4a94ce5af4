package e2e

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/internal/pgtest"
	"github.com/gatehouse/gatehouse/internal/slackfake"
)

// Two replicas of the real binary on one PostgreSQL; one is SIGKILLed in the middle of a
// burst of commands and approvals. The survivor alone finishes what the dead one owed within
// 30 s: every acknowledged command answered, one approval message per request, every
// acknowledged approval recorded, redrawn and DMed once.
func TestReplicaKilledMidBurstSurvivorFinishes(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and kills the real binary")
	}
	database := pgtest.NewDatabase(t)
	bin, err := buildGatehouse()
	if err != nil {
		t.Fatal(err)
	}
	fake := slackfake.New(killTolerant{t})
	fake.AddUserGroup("S0DBA", "U0DAVE")
	dir := t.TempDir()
	env := append(os.Environ(), "SLACK_BOT_TOKEN="+slackfake.BotToken, "SLACK_APP_TOKEN="+slackfake.AppToken,
		"SLACK_API_URL="+fake.APIURL(), "RESOURCE_SERVER_SECRET="+resourceServerSecret,
		"CI_DEPLOYER_SECRET="+serviceSecret("ci-deployer"), "BATCH_JOB_SECRET="+serviceSecret("batch-job"),
		"GATEHOUSE_KEY_ENCRYPTION_KEY="+newKeyEncryptionKey())
	var replicas []*process
	for i := range 2 { // the same config but for listen
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := ln.Addr().String()
		ln.Close()
		config := filepath.Join(dir, fmt.Sprintf("gatehouse-%d.yaml", i))
		yaml := strings.NewReplacer("DATABASE", database, "ISSUER", "http://lb.example", "ALGORITHM", "RS256").Replace(testConfig) +
			"listen: " + addr + "\n"
		if err := os.WriteFile(config, []byte(yaml), 0o600); err != nil {
			t.Fatal(err)
		}
		log, err := os.Create(filepath.Join(dir, fmt.Sprintf("gatehouse-%d.log", i)))
		if err != nil {
			t.Fatal(err)
		}
		p := &process{t: t, bin: bin, config: config, log: log, env: env}
		p.start()
		t.Cleanup(p.kill)
		t.Cleanup(func() {
			if t.Failed() {
				out, _ := os.ReadFile(log.Name())
				t.Logf("replica %d's log:\n%s", i, out)
			}
		})
		replicas = append(replicas, p)
		deadline := time.Now().Add(10 * time.Second)
		for fake.Connections() < i+1 {
			if time.Now().After(deadline) {
				t.Fatalf("replica %d did not connect", i)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}

	approvers := []string{"U0BOB", "U0DAVE"}
	var waiting []string
	for i, approver := range approvers {
		if _, err := fake.SlashCommand(fmt.Sprintf("U0REQ%d", i), "C0GENERAL", "/access", fmt.Sprintf("prod-db-admin 1h waiting %d", i)); err != nil {
			t.Fatal(err)
		}
		m, err := fake.WaitMessage("C0DBA", wait, func(m slackfake.Message) bool { return strings.Contains(m.AllText(), fmt.Sprintf("waiting %d", i)) })
		if err != nil {
			t.Fatal(err)
		}
		waiting = append(waiting, requestIDIn(t, m.AllText()))
		if _, err := fake.ClickButton(approver, m, "Approve"); err != nil {
			t.Fatal(err)
		}
		if _, err := fake.WaitView(approver, wait, func(v slackfake.View) bool { return v.Title == "Approve request" }); err != nil {
			t.Fatal(err)
		}
	}

	// The burst: 30 commands and 2 approvals spread over both replicas; replica 0 dies
	// once 12 were acknowledged.
	ackedCommands, ackedApprovals := burstAndKill(t, fake, 30, approvers, 12, wait, replicas[0].kill)

	awaitRecovery(t, fake, database, 30*time.Second, ackedCommands, ackedApprovals, waiting, approvers)
}
