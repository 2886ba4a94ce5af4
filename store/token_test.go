package store

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/app"
)

func issuance(n int, grants ...app.Grant) app.Issuance {
	now := bgT0.Add(time.Minute)
	return app.Issuance{At: now, GrantIDs: grantIDs(grants),
		Events: app.IssuanceEvents(now, "ci", app.User("U0ONCALL"), "client_credentials", fmt.Sprintf("jti-%d", n), now.Add(time.Minute), grants)}
}

// revokeSession ends client session id at at, as a replay or /revoke does.
func revokeSession(ctx context.Context, s *Store, id string, at time.Time) error {
	r := app.Revocation{Kind: app.RevokedSession, Ref: id, At: at, Until: at.Add(time.Hour)}
	return s.RevokeClientTokens(ctx, r, app.AuditEvent{At: at, Actor: "c", Action: app.ActionTokenRevoked, Source: app.SourceOIDC})
}

// refreshIn is a refresh token of session, generation gen of chain ("" for a token from
// before chains), good for an hour.
func refreshIn(hash, chain string, gen int, session string) *app.RefreshToken {
	return &app.RefreshToken{Hash: hash, Chain: chain, Generation: gen, SessionID: session, ClientID: "c", ExpiresAt: bgT0.Add(time.Hour)}
}

func grantIDs(grants []app.Grant) []string {
	var ids []string
	for _, g := range grants {
		ids = append(ids, g.ID)
	}
	return ids
}

func TestIssuancesShareCommitsAndKeepTheChain(t *testing.T) {
	ForEachBackend(t, func(t *testing.T, b Backend) {
		s, _ := b.Open(t)
		ctx := context.Background()
		var wg sync.WaitGroup
		errs := make(chan error, 200)
		for i := range 200 {
			wg.Go(func() {
				iss := issuance(i)
				iss.SessionID = fmt.Sprintf("ses-%d", i)
				iss.Refresh = refreshIn(fmt.Sprintf("rt-%d", i), "", 0, iss.SessionID)
				errs <- s.RecordIssuance(ctx, iss)
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Fatal(err)
			}
		}
		v, err := s.VerifyAudit(ctx)
		if err != nil || !v.OK() || v.Events != 200 {
			t.Fatalf("audit after 200 issuances: %+v, %v", v, err)
		}
		if _, err := s.RefreshToken(ctx, "rt-199"); err != nil {
			t.Errorf("a refresh token of the batch is missing: %v", err)
		}
	})
}

func TestOneRotationWinsAndTheRestOfItsBatchCommits(t *testing.T) {
	ForEachBackend(t, func(t *testing.T, b Backend) {
		s, _ := b.Open(t)
		ctx := context.Background()
		first := issuance(0)
		first.SessionID = "ses"
		first.Refresh = refreshIn("rt-0", "chain", 0, "ses")
		if err := s.RecordIssuance(ctx, first); err != nil {
			t.Fatal(err)
		}
		var rotated, conflicts, others atomic.Int32
		var wg sync.WaitGroup
		for i := 1; i <= 40; i++ {
			wg.Go(func() {
				iss := issuance(i)
				if i%2 == 0 { // half of them race to rotate rt-0
					iss.Refresh = refreshIn(fmt.Sprintf("rt-%d", i), "chain", 1, "ses")
					iss.Replaces = "rt-0"
				}
				err := s.RecordIssuance(ctx, iss)
				switch {
				case err == nil && i%2 == 0:
					rotated.Add(1)
				case err == nil:
					others.Add(1)
				case errors.Is(err, app.ErrConflict):
					conflicts.Add(1)
				default:
					t.Error(err)
				}
			})
		}
		wg.Wait()
		if rotated.Load() != 1 || conflicts.Load() != 19 || others.Load() != 20 {
			t.Errorf("rotated %d, conflicts %d, others %d; want 1, 19, 20", rotated.Load(), conflicts.Load(), others.Load())
		}
		v, err := s.VerifyAudit(ctx)
		if err != nil || !v.OK() || v.Events != 1+1+20 { // a refused issuance leaves no event
			t.Errorf("audit: %+v, %v", v, err)
		}
		// The winner took the chain's one row in place: the replaced token is gone.
		winner, err := s.RefreshChain(ctx, "chain")
		if err != nil || winner.Generation != 1 || winner.Used {
			t.Fatalf("the chain after the rotation: %+v, %v", winner, err)
		}
		if got, err := s.RefreshToken(ctx, winner.Hash); err != nil || got.Chain != "chain" {
			t.Errorf("the winner by its hash: %+v, %v", got, err)
		}
		if _, err := s.RefreshToken(ctx, "rt-0"); !errors.Is(err, app.ErrNotFound) {
			t.Errorf("the replaced token: %v, want ErrNotFound", err)
		}
		if err := revokeSession(ctx, s, "ses", bgT0); err != nil {
			t.Fatal(err)
		}
		next := issuance(99)
		next.Refresh = refreshIn("rt-99", "chain", 2, "ses")
		next.Replaces = winner.Hash
		if err := s.RecordIssuance(ctx, next); !errors.Is(err, app.ErrConflict) {
			t.Errorf("rotation in a revoked session: %v, want ErrConflict", err)
		}
	})
}

// A rotation stores the scopes the new token carries: a role dropped at a refresh (its
// grant ended) stays dropped. The rotation in place used to keep the chain's first scopes,
// so a dropped role came back at a later refresh once its holder had a new grant for it.
func TestRotationStoresTheNewScopes(t *testing.T) {
	ForEachBackend(t, func(t *testing.T, b Backend) {
		s, _ := b.Open(t)
		ctx := context.Background()
		first := issuance(0)
		first.SessionID = "ses"
		first.Refresh = refreshIn("rt-0", "chain", 0, "ses")
		first.Refresh.Scopes = []string{"openid", "role:a", "role:b"}
		if err := s.RecordIssuance(ctx, first); err != nil {
			t.Fatal(err)
		}
		next := issuance(1)
		next.SessionID, next.Replaces = "ses", "rt-0"
		next.Refresh = refreshIn("rt-1", "chain", 1, "ses")
		next.Refresh.Scopes = []string{"openid", "role:a"}
		if err := s.RecordIssuance(ctx, next); err != nil {
			t.Fatal(err)
		}
		if got, err := s.RefreshToken(ctx, "rt-1"); err != nil || !slices.Equal(got.Scopes, next.Refresh.Scopes) {
			t.Errorf("after the rotation: %+v, %v; want scopes %q", got, err, next.Refresh.Scopes)
		}
	})
}

// A refresh token from before chains (a bare secret, Chain empty) is kept, marked used,
// when it is replaced: a replay of it is still recognised, and the session goes on with a
// chain of its own.
func TestTokenFromBeforeChainsIsKeptWhenReplaced(t *testing.T) {
	ForEachBackend(t, func(t *testing.T, b Backend) {
		s, _ := b.Open(t)
		ctx := context.Background()
		old := issuance(0)
		old.SessionID = "ses"
		old.Refresh = refreshIn("legacy", "", 0, "ses")
		if err := s.RecordIssuance(ctx, old); err != nil {
			t.Fatal(err)
		}
		next := issuance(1)
		next.SessionID, next.Replaces = "ses", "legacy"
		next.Refresh = refreshIn("rt-0", "chain", 0, "ses")
		if err := s.RecordIssuance(ctx, next); err != nil {
			t.Fatal(err)
		}
		if got, err := s.RefreshToken(ctx, "legacy"); err != nil || !got.Used {
			t.Errorf("the replaced token: %+v, %v; want kept, used", got, err)
		}
		if got, err := s.RefreshChain(ctx, "chain"); err != nil || got.Hash != "rt-0" || got.SessionID != "ses" {
			t.Errorf("the session's new chain: %+v, %v", got, err)
		}
		if err := s.RecordIssuance(ctx, next); !errors.Is(err, app.ErrConflict) {
			t.Errorf("replacing the used token again: %v, want ErrConflict", err)
		}
	})
}

// TestRevocationWinsOverIssuance: issue 11 finding 14. Tokens minted while the grant they
// carry is revoked are either recorded before the revocation or refused: the audit trail
// never shows a token issued for a grant after the grant was revoked.
func TestRevocationWinsOverIssuance(t *testing.T) {
	ForEachBackend(t, func(t *testing.T, b Backend) {
		s, _ := b.Open(t)
		ctx := context.Background()
		r, g := activeGrant(t, s, "race")
		var issued, refused atomic.Int32
		var wg sync.WaitGroup
		for i := range 100 {
			wg.Go(func() {
				if i == 50 {
					if err := revokeGrant(s, r, g, bgT0.Add(time.Minute)); err != nil {
						t.Error(err)
					}
					return
				}
				switch err := s.RecordIssuance(ctx, issuance(i, g)); {
				case err == nil:
					issued.Add(1)
				case errors.Is(err, app.ErrGrantEnded):
					refused.Add(1)
				default:
					t.Error(err)
				}
			})
		}
		wg.Wait()
		trail, err := s.AuditEvents(ctx, r.ID)
		if err != nil {
			t.Fatal(err)
		}
		revoked, tokens := false, 0
		for _, e := range trail {
			switch e.Action {
			case app.ActionGrantRevoked:
				revoked = true
			case app.ActionTokenIssued:
				tokens++
				if revoked {
					t.Fatalf("token issued for grant %s after its revocation: %s", g.ID, e.Reason)
				}
			}
		}
		if int32(tokens) != issued.Load() || issued.Load()+refused.Load() != 99 {
			t.Errorf("%d issued, %d refused, %d token events", issued.Load(), refused.Load(), tokens)
		}
		if err := s.RecordIssuance(ctx, issuance(100, g)); !errors.Is(err, app.ErrGrantEnded) {
			t.Errorf("issuance after the revocation: %v, want ErrGrantEnded", err)
		}
		if ok, err := s.Revoked(ctx, app.TokenRef{JTI: "x", GrantIDs: []string{g.ID}}, bgT0.Add(time.Minute)); !ok || err != nil {
			t.Errorf("a token carrying the revoked grant: revoked %v, %v", ok, err)
		}
	})
}

// TestRevocationsSeenByAnotherProcess: a second store on the same database stands for a
// replica (or `gatehouse` run against it). Its revocations reach this one's cache within
// RevocationStaleness; this one's own are seen at once.
func TestRevocationsSeenByAnotherProcess(t *testing.T) {
	ForEachBackend(t, func(t *testing.T, b Backend) {
		s, path := b.Open(t)
		other, err := Open(path)
		if err != nil {
			t.Fatal(err)
		}
		defer other.Close()
		ctx := context.Background()
		now := bgT0
		ref := app.TokenRef{JTI: "jti-other", SessionID: "ses-mine"}
		if ok, err := s.Revoked(ctx, ref, now); ok || err != nil {
			t.Fatalf("revoked before anything happened: %v, %v", ok, err)
		}
		revoked := app.Revocation{Kind: app.RevokedToken, Ref: "jti-other", At: now, Until: now.Add(time.Hour)}
		if err := other.RevokeClientTokens(ctx, revoked, app.AuditEvent{At: now, Actor: "c", Action: app.ActionTokenRevoked, Source: app.SourceOIDC}); err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		for {
			ok, err := s.Revoked(ctx, ref, now)
			if err != nil {
				t.Fatal(err)
			}
			if ok {
				break
			}
			if time.Since(start) > 2*RevocationStaleness+time.Second {
				t.Fatalf("another process's revocation not seen after %s", time.Since(start))
			}
			time.Sleep(10 * time.Millisecond)
		}
		t.Logf("another process's revocation seen after %s", time.Since(start).Round(time.Millisecond))
		mine := app.TokenRef{JTI: "jti-2", SessionID: "ses-2"}
		iss := issuance(1)
		iss.SessionID = "ses-2"
		iss.Refresh = &app.RefreshToken{Hash: "rt", SessionID: "ses-2", ClientID: "c", ExpiresAt: now.Add(time.Hour)}
		if err := s.RecordIssuance(ctx, iss); err != nil {
			t.Fatal(err)
		}
		s.Revoked(ctx, mine, now) // the cache is fresh now
		if err := revokeSession(ctx, s, "ses-2", now); err != nil {
			t.Fatal(err)
		}
		if ok, err := s.Revoked(ctx, mine, now); !ok || err != nil {
			t.Errorf("own session revocation not seen at once: %v, %v", ok, err)
		}
		if ok, _ := s.Revoked(ctx, mine, now.Add(2*time.Hour)); ok {
			t.Error("a revocation is still held after every token it affects expired")
		}
	})
}

// TestAcknowledgedIssuancesSurviveSIGKILL runs issuances in a child process, which prints
// each one the store acknowledged, kills it with SIGKILL mid-stream and checks that every
// acknowledged issuance is in the audit trail, and the trail intact.
func TestAcknowledgedIssuancesSurviveSIGKILL(t *testing.T) {
	if path := os.Getenv("GATEHOUSE_ISSUE_UNTIL_KILLED"); path != "" {
		issueUntilKilled(path)
		return
	}
	path := filepath.Join(t.TempDir(), "gatehouse.db")
	cmd := exec.Command(os.Args[0], "-test.run=^TestAcknowledgedIssuancesSurviveSIGKILL$")
	cmd.Env = append(os.Environ(), "GATEHOUSE_ISSUE_UNTIL_KILLED="+path)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	acked := map[string]bool{}
	lines := bufio.NewScanner(out)
	for len(acked) < 500 && lines.Scan() {
		if jti, ok := strings.CutPrefix(lines.Text(), "ACK "); ok {
			acked[jti] = true
		}
	}
	cmd.Process.Kill() // SIGKILL: no deferred Close, no checkpoint
	cmd.Wait()
	if len(acked) < 500 {
		t.Fatalf("the child acknowledged only %d issuances", len(acked))
	}
	s, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var recorded int
	err = s.AuditExport(context.Background(), time.Time{}, func(e app.AuditEvent) error {
		for _, field := range strings.Fields(e.Reason) {
			if acked[field] {
				delete(acked, field)
			}
		}
		recorded++
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(acked) > 0 {
		t.Errorf("%d acknowledged issuances lost on SIGKILL", len(acked))
	}
	if v, err := s.VerifyAudit(context.Background()); err != nil || !v.OK() {
		t.Errorf("audit after SIGKILL: %+v, %v", v, err)
	}
	t.Logf("%d issuances recorded before the kill", recorded)
}

func issueUntilKilled(path string) {
	s, err := Open(path)
	if err != nil {
		fmt.Println("open:", err)
		os.Exit(1)
	}
	var mu sync.Mutex
	var n atomic.Int64
	for range 8 {
		go func() {
			for {
				i := int(n.Add(1))
				if err := s.RecordIssuance(context.Background(), issuance(i)); err != nil {
					fmt.Println("issue:", err)
					os.Exit(1)
				}
				mu.Lock()
				fmt.Printf("ACK jti-%d\n", i)
				mu.Unlock()
			}
		}()
	}
	select {}
}

// Migration 8 gives the refresh tokens of an older database their chain columns: a token
// stored before reads as one from before chains (no chain, generation 0) and still
// rotates.
func TestMigrateAddsRefreshChains(t *testing.T) {
	ForEachBackend(t, func(t *testing.T, b Backend) {
		s, path := b.Open(t)
		mustExec(t, s.db.Exec("DELETE FROM schema_migrations WHERE version = 8"))
		mustExec(t, s.db.Exec("DROP INDEX idx_refresh_tokens_chain"))
		for _, col := range []string{"chain", "generation"} {
			mustExec(t, s.db.Exec("ALTER TABLE refresh_tokens DROP COLUMN "+col))
		}
		mustExec(t, s.db.Exec("INSERT INTO sessions (id) VALUES ('ses_old')"))
		mustExec(t, s.db.Exec("INSERT INTO refresh_tokens (hash, session_id, client_id, subject, scopes, auth_time, expires_at, used) "+
			"VALUES ('old', 'ses_old', 'c', 'U0ALICE', '[]', ?, ?, ?)", bgT0, bgT0.Add(time.Hour), false))
		s.Close()

		s, err := Open(path)
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		ctx := context.Background()
		got, err := s.RefreshToken(ctx, "old")
		if err != nil || got.Chain != "" || got.Generation != 0 || got.SessionID != "ses_old" {
			t.Fatalf("old refresh token = %+v, %v", got, err)
		}
		next := issuance(1)
		next.SessionID, next.Replaces = "ses_old", "old"
		next.Refresh = refreshIn("new", "chain", 0, "ses_old")
		if err := s.RecordIssuance(ctx, next); err != nil {
			t.Errorf("rotating the old token: %v", err)
		}
	})
}
