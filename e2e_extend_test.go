package main

import (
	"context"
	"strings"
	"testing"
	"time"
)

func TestExtendWithinAndBeyondLimits(t *testing.T) {
	g := startGatehouse(t)
	ctx := context.Background()
	grantID := g.grantFor("U0ALICE", "prod-db-admin", "1h", "U0BOB", "C0DBA")
	first, _ := g.svc.Store.Grant(ctx, grantID)

	extend := func(duration, reason string) {
		t.Helper()
		dm := g.dm("U0ALICE", "*Approved*", grantID)
		g.click("U0ALICE", dm, "Extend")
		g.view("U0ALICE", "Extend access")
		ack := g.submit("U0ALICE", map[string]string{"Duration": duration, "Reason": reason})
		if ack.ResponseAction != "update" {
			t.Fatalf("extend ack = %+v", ack)
		}
		msg := g.message("C0DBA", "Extension request: prod-db-admin", "Extends grant `"+grantID+"`", reason)
		g.approve("U0BOB", msg, "")
		g.message("C0DBA", reason, "*Approved*")
	}

	extend("2h", "the migration runs long")
	g.dm("U0ALICE", "*Approved*: your request", "to extend *prod-db-admin* by 2h")
	g.svc.App.Wait()
	got, _ := g.svc.Store.Grant(ctx, grantID)
	if want := first.ExpiresAt.Add(2 * time.Hour); !got.ExpiresAt.Equal(want) || got.Extensions != 1 {
		t.Errorf("after one extension the grant ends %s (%d extensions), want %s", got.ExpiresAt, got.Extensions, want)
	}

	// max_duration is 4h from the first approval and the role allows no extra extensions:
	// the next 2h only reach the 4h mark.
	extend("2h", "one more time")
	g.svc.App.Wait()
	got, _ = g.svc.Store.Grant(ctx, grantID)
	if want := first.CreatedAt.Add(4 * time.Hour); !got.ExpiresAt.Equal(want) {
		t.Errorf("capped extension ends %s, want %s", got.ExpiresAt, want)
	}

	// At the cap, asking again is refused in the form and files nothing.
	dm := g.dm("U0ALICE", "*Approved*", grantID)
	g.click("U0ALICE", dm, "Extend")
	g.view("U0ALICE", "Extend access")
	ack := g.submit("U0ALICE", map[string]string{"Duration": "1h", "Reason": "please"})
	if ack.ResponseAction != "errors" || !strings.Contains(ack.Errors["duration"], "already ends at the latest") {
		t.Errorf("extension past the cap: %+v", ack)
	}

	// Only the holder may extend.
	if _, err := g.slack.SendRaw("interactive", map[string]any{"type": "block_actions", "team": map[string]any{"id": "T0FAKE"},
		"user": map[string]any{"id": "U0MALLORY"}, "trigger_id": "", "actions": []any{map[string]any{"action_id": "extend", "value": grantID}}}); err != nil {
		t.Fatal(err)
	}
	g.svc.App.Wait()
	if n := strings.Count(strings.Join(texts(g.slack.Messages("C0DBA")), "\n"), "Extension request"); n != 2 {
		t.Errorf("%d extension requests posted, want 2", n)
	}
}
