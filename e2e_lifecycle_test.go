package main

import (
	"context"
	"strings"
	"testing"
	"time"
)

func TestRequestAndGrantExpire(t *testing.T) {
	g := startGatehouse(t)
	ctx := context.Background()

	g.command("U0ALICE", "prod-db-admin 1h nobody looks")
	pending := g.message("C0DBA", "nobody looks")
	g.command("U0CAROL", "prod-db-admin 1h short job")
	job := g.message("C0DBA", "short job")
	g.approve("U0BOB", job, "")
	g.message("C0DBA", "short job", "*Approved*")

	g.clock.Advance(61 * time.Minute) // past request_ttl and the grant's hour
	if err := g.svc.App.Sweep(ctx); err != nil {
		t.Fatal(err)
	}
	expired := g.message("C0DBA", "nobody looks", "*Expired*: not decided in time.")
	if len(expired.Buttons()) != 0 || expired.TS != pending.TS {
		t.Errorf("expired request message: buttons %q, updated in place %v", expired.Buttons(), expired.TS == pending.TS)
	}
	g.dm("U0ALICE", "*Expired*", "was not decided in time")
	g.message("C0DBA", "short job", "*Approved*", "*Expired* at")
	g.dm("U0CAROL", "*Expired*: your access to *prod-db-admin* has ended")

	// A second sweep finds nothing new: nobody is told twice.
	if err := g.svc.App.Sweep(ctx); err != nil {
		t.Fatal(err)
	}
	g.svc.App.Wait()
	if n := len(g.slack.DMs("U0CAROL")); n != 2 { // approved, then expired
		t.Errorf("holder got %d DMs, want 2", n)
	}
}

func TestExpiryCatchesUpAfterRestart(t *testing.T) {
	g := startGatehouse(t)
	g.command("U0ALICE", "prod-db-admin 1h while you were out")
	g.message("C0DBA", "while you were out")
	g.stop()
	g.clock.Advance(2 * time.Hour)
	g.start() // the sweep at start catches up
	g.message("C0DBA", "while you were out", "*Expired*")
	g.dm("U0ALICE", "*Expired*")
}

func TestRevokeByEachAllowedActor(t *testing.T) {
	g := startGatehouse(t)
	for i, tt := range []struct{ who, as string }{{"U0ALICE", "holder"}, {"U0BOB", "approver"}, {"U0DAVE", "approver via group"}, {"U0SECOPS", "admin"}} {
		t.Run(tt.as, func(t *testing.T) {
			grantID := g.grantFor("U0ALICE", "prod-db-admin", "1h", "U0BOB", "C0DBA")
			g.command("U0MALLORY", "revoke "+grantID+" because I can")
			g.command(tt.who, "revoke "+grantID+" \u202egnp")
			g.ephemeral(tt.who, "invisible or control character")
			g.ephemeralCount("U0MALLORY", i+1)
			if told := g.slack.Ephemerals("U0MALLORY"); !strings.Contains(told[i].AllText(), "only its holder, an approver of its role or a Gatehouse admin can revoke it") {
				t.Errorf("Mallory was told %q", told[i].AllText())
			}

			g.command(tt.who, "revoke "+grantID+" rotation by "+tt.as)
			g.ephemeral(tt.who, "*Revoked*: grant `"+grantID+"`")
			g.message("C0DBA", grantID, "*Revoked* by <@"+tt.who+">: rotation by "+tt.as)
			g.dm("U0ALICE", "*Revoked*", "rotation by "+tt.as)

			g.command(tt.who, "revoke "+grantID+" again")
			g.ephemeral(tt.who, "has ended")
		})
	}
}
