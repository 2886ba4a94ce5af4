package e2e

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/zitadel/oidc/v3/pkg/op"
)

// benchWorkers is how many clients hit an endpoint at once (two per core).
const benchWorkers = 4

// BenchmarkTokenEndpoint measures the token endpoint (refresh grant: rotate the refresh
// token, re-check the grant, sign a JWT) next to a bare net/http handler that does nothing
// but sign one JWT with the same key, both driven by the same client loop in the same
// run; then introspection and JWKS. Reported: requests per second, p50/p99 latency, and
// for the token endpoint its rate as a percentage of the bare signer's.
func BenchmarkTokenEndpoint(b *testing.B) {
	for _, alg := range []string{"RS256", "ES256"} {
		b.Run(alg, func(b *testing.B) {
			g := startGatehouse(b, signedWith(alg))
			g.quiet()
			g.grantFor("U0ALICE", "prod-db-admin", "4h", "U0BOB", "C0DBA")
			sessions := make([]*session, benchWorkers)
			for i := range sessions {
				sessions[i] = g.session()
			}
			key, err := g.svc.Keys.SigningKey(context.Background())
			if err != nil {
				b.Fatal(err)
			}
			bare := httptest.NewServer(bareSigner(b, key))
			defer bare.Close()

			var bareRate float64
			b.Run("bare-sign", func(b *testing.B) {
				bareRate = load(b, func(int) error { return postOK(bare.URL, nil) })
			})
			b.Run("refresh", func(b *testing.B) {
				rate := load(b, func(w int) error { return sessions[w].refresh(g) })
				if bareRate > 0 {
					b.ReportMetric(100*rate/bareRate, "%-of-bare")
				}
			})
			token := sessions[0].access
			b.Run("introspect", func(b *testing.B) {
				load(b, func(int) error {
					req := newFormRequest(g.issuer()+"/oauth/introspect", url.Values{"token": {token}})
					req.SetBasicAuth("resource-server", resourceServerSecret)
					return doOK(req)
				})
			})
			b.Run("jwks", func(b *testing.B) {
				load(b, func(int) error {
					req, _ := http.NewRequest("GET", g.issuer()+"/keys", nil)
					return doOK(req)
				})
			})
		})
	}
}

// load runs b.N calls of call spread over benchWorkers workers and reports the rate and
// latency percentiles; it returns the rate.
func load(b *testing.B, call func(worker int) error) float64 {
	var mu sync.Mutex
	var latencies []time.Duration
	var next sync.Mutex
	remaining := b.N
	b.ResetTimer()
	start := time.Now()
	var wg sync.WaitGroup
	for w := range benchWorkers {
		wg.Go(func() {
			var mine []time.Duration
			for {
				next.Lock()
				if remaining == 0 {
					next.Unlock()
					break
				}
				remaining--
				next.Unlock()
				t0 := time.Now()
				if err := call(w); err != nil {
					b.Error(err)
					return
				}
				mine = append(mine, time.Since(t0))
			}
			mu.Lock()
			latencies = append(latencies, mine...)
			mu.Unlock()
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	if len(latencies) == 0 {
		return 0
	}
	rate := float64(len(latencies)) / elapsed.Seconds()
	b.ReportMetric(rate, "req/s")
	reportLatencies(b, latencies, "-ms")
	return rate
}

// bareSigner is the baseline: an HTTP handler that only signs one small JWT.
func bareSigner(b *testing.B, key op.SigningKey) http.Handler {
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: key.SignatureAlgorithm(), Key: key.Key()},
		(&jose.SignerOptions{}).WithHeader("kid", key.ID()))
	if err != nil {
		b.Fatal(err)
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		payload := fmt.Sprintf(`{"iss":"bench","sub":"U0ALICE","exp":%d}`, time.Now().Add(time.Minute).Unix())
		obj, err := signer.Sign([]byte(payload))
		if err != nil {
			http.Error(w, err.Error(), 500)
			return
		}
		s, _ := obj.CompactSerialize()
		fmt.Fprintf(w, `{"access_token":%q}`, s)
	})
}

var benchClient = &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: benchWorkers * 2}}

func postOK(u string, form url.Values) error { return doOK(newFormRequest(u, form)) }

func doOK(req *http.Request) error {
	resp, err := benchClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: %d %s", req.URL.Path, resp.StatusCode, body)
	}
	return nil
}

// session is one client session: its current refresh token and last access token.
type session struct {
	refreshToken string
	access       string
}

// session signs U0ALICE in through the device flow with offline_access.
func (g *gatehouse) session() *session {
	g.t.Helper()
	rp := g.client("gatehouse-cli", "openid", "offline_access", "role:prod-db-admin")
	tok := rp.signIn("U0ALICE")
	return &session{refreshToken: tok.RefreshToken, access: tok.AccessToken}
}

// refresh exchanges the session's refresh token for the next one.
func (s *session) refresh(g *gatehouse) error {
	resp, err := benchClient.Do(newFormRequest(g.issuer()+"/oauth/token", url.Values{
		"grant_type": {"refresh_token"}, "refresh_token": {s.refreshToken}, "client_id": {"gatehouse-cli"}}))
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	var tok struct {
		RefreshToken string `json:"refresh_token"`
	}
	if resp.StatusCode != http.StatusOK || jsonDecode(body, &tok) != nil || tok.RefreshToken == "" {
		return fmt.Errorf("refresh: %d %s", resp.StatusCode, strings.TrimSpace(string(body)))
	}
	s.refreshToken = tok.RefreshToken
	return nil
}

// BenchmarkApprovalToToken measures, for a device-flow client already waiting (polling at
// the announced 1 s interval), the time from the approver's submit to the client holding
// its token. The goal is p50 within one poll interval + 200 ms.
func BenchmarkApprovalToToken(b *testing.B) {
	g := startGatehouse(b)
	g.quiet()
	var latencies []time.Duration
	for i := 0; b.Loop(); i++ {
		rp := g.client("gatehouse-cli", "openid", "role:prod-db-admin")
		da := rp.start()
		waiting := rp.wait(da)
		reason := fmt.Sprintf("bench %d", i)
		g.loginInSlack("U0ALICE", da.UserCode, map[string]string{"Reason": reason})
		msg := g.message("C0DBA", reason)
		time.Sleep(time.Duration(i%10) * 100 * time.Millisecond) // approvals land anywhere in the poll cycle
		g.approve("U0BOB", msg, "")
		approved := time.Now()
		if got := g.receive(waiting); got.err != nil {
			b.Fatal(got.err)
		}
		latencies = append(latencies, time.Since(approved))
		g.command("U0BOB", "revoke "+grantIn(g, "C0DBA", reason)) // the next round needs approval again
	}
	slices.Sort(latencies)
	b.ReportMetric(float64(latencies[len(latencies)/2].Milliseconds()), "p50-ms")
	b.ReportMetric(float64(latencies[len(latencies)-1].Milliseconds()), "max-ms")
}

// grantIn returns the grant ID shown on the approved message containing text.
func grantIn(g *gatehouse, channel, text string) string {
	return grantIDRe.FindString(g.message(channel, text, "*Approved*").AllText())
}
