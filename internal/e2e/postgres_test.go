package e2e

import (
	"flag"
	"net/http"
	"net/url"
	"os"
	"testing"

	"github.com/gatehouse/gatehouse/internal/pgtest"
)

// The end-to-end tests run on SQLite; TestCoreFlowsOnPostgres runs the core flows again on
// a real PostgreSQL (one server for the test binary, a new database per test). With
// -postgres every test and benchmark runs on PostgreSQL:
//
//	go test ./internal/e2e/ -postgres
//	go test ./internal/e2e/ -run '^$' -bench . -postgres

var allOnPostgres = flag.Bool("postgres", false, "run every end-to-end test and benchmark on PostgreSQL")

func TestMain(m *testing.M) { os.Exit(pgtest.Run(m)) }

// onPostgres makes the gatehouses the test starts use a new PostgreSQL database each. (The
// end-to-end tests do not run in parallel, so the package variable is the test's alone.)
func onPostgres(t *testing.T) {
	saved := newDatabase
	newDatabase = func(t testing.TB, _ string) string { return pgtest.NewDatabase(t) }
	t.Cleanup(func() { newDatabase = saved })
}

func TestCoreFlowsOnPostgres(t *testing.T) {
	pgtest.NewDatabase(t) // skips the lot, saying why, where PostgreSQL is not installed
	for _, flow := range []struct {
		name string
		test func(*testing.T)
	}{
		{"request by modal, approved by quorum", TestRequestByModalApprovedByQuorum},
		{"request by text, denied", TestRequestByTextAndDeny},
		{"simultaneous approvals grant once", TestSimultaneousApprovalsGrantOnce},
		{"pending request survives a restart", TestPendingRequestSurvivesRestart},
		{"request expires when decided late", TestPendingRequestExpiresWhenDecidedLate},
		{"break-glass grants at once, approver reviews", TestBreakGlassGrantsAtOnceAndApproverReviews},
		{"device login waits for approval", TestDeviceLoginWaitsForApproval},
		{"refresh rotates and rechecks grants", TestRefreshRotatesAndRechecksGrants},
		{"revoking a refresh token ends the session", TestRevokingRefreshTokenEndsTheSession},
		{"key rotation keeps old tokens verifiable", TestKeyRotationKeepsOldTokensVerifiable},
		{"malformed requests get OAuth errors, never 500", TestMalformedRequestsGetOAuthErrorsNever500},
	} {
		t.Run(flow.name, func(t *testing.T) {
			onPostgres(t)
			flow.test(t)
		})
	}
}

// Text PostgreSQL cannot store (a NUL byte, invalid UTF-8) is refused as the client's
// mistake on every backend, never a server error for one of them.
func TestSignInWithUnstorableStateIsInvalidRequest(t *testing.T) {
	for _, backend := range []struct {
		name  string
		setup func(*testing.T)
	}{{"sqlite", func(*testing.T) {}}, {"postgres", onPostgres}} {
		t.Run(backend.name, func(t *testing.T) {
			backend.setup(t)
			g := startGatehouse(t, webapp)
			b := g.httpBrowser()
			for _, bad := range []string{"\x00", "a\x00b", "\xff\xfe", "tab\there"} {
				for _, param := range []string{"state", "nonce"} {
					q := url.Values{"client_id": {"webapp"}, "response_type": {"code"}, "scope": {"openid role:prod-db-admin"},
						"redirect_uri": {webappRedirect}, "state": {"ok"}, "nonce": {"ok"}, "code_challenge_method": {"S256"},
						"code_challenge": {"E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"}}
					q.Set(param, bad)
					status, location, _ := b.get("/authorize?" + q.Encode())
					if got := locationError(t, location); status != http.StatusFound || got != "invalid_request" {
						t.Errorf("%s %q: %d to %s, want a redirect with invalid_request", param, bad, status, location)
					}
				}
			}
		})
	}
}

func locationError(t *testing.T, location string) string {
	t.Helper()
	u, err := url.Parse(location)
	if err != nil {
		t.Fatal(err)
	}
	return u.Query().Get("error")
}
