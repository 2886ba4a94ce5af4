package e2e

import (
	"bufio"
	"context"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"
)

// strictClientDir holds the Node relying party (openid-client and jose, pinned by
// package-lock.json; .ci/run installs them with npm ci).
const strictClientDir = "testdata/strictclient"

const strictClientSecret = "s3cret-of-the-strict-rp"

// TestStrictRelyingParty runs a standards-strict relying party against a live Gatehouse:
// openid-client with its default checks does discovery, the device flow, the code flow with
// PKCE and nonce, refresh, userinfo, revocation and introspection, and jose validates the
// access tokens as RFC 9068 §4 asks (typ at+jwt, issuer, audience, required claims). The
// test plays the user: it confirms codes in the fake Slack and drives the browser sign-in.
func TestStrictRelyingParty(t *testing.T) {
	node, err := exec.LookPath("node")
	if err != nil {
		t.Skip("node is not on PATH: the strict relying party (openid-client, jose) needs Node.js 20 or later")
	}
	// Debian 12's own nodejs package is Node.js 18, which lacks the Web Crypto global jose needs.
	if out, err := exec.Command(node, "-p", "process.versions.node.split('.')[0]").Output(); err != nil {
		t.Fatalf("node --version: %v", err)
	} else if major, _ := strconv.Atoi(strings.TrimSpace(string(out))); major < 20 {
		t.Skipf("node is Node.js %s: the strict relying party (openid-client, jose) needs Node.js 20 or later", strings.TrimSpace(string(out)))
	}
	if _, err := os.Stat(filepath.Join(strictClientDir, "node_modules", "openid-client")); err != nil {
		t.Fatalf("the strict client's packages are not installed: run `npm ci --prefix internal/e2e/%s` (.ci/run does)", strictClientDir)
	}
	// The script listens for the browser's return on this socket, which it inherits: the
	// redirect URI is registered before the script starts, with no port race.
	redirect, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer redirect.Close()
	redirectURI := "http://" + redirect.Addr().String() + "/callback"
	hash, err := bcrypt.GenerateFromPassword([]byte(strictClientSecret), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	g := startGatehouse(t, withClients(`
  - id: strict-rp
    secret_hash: "`+string(hash)+`"
    redirect_uris: [`+redirectURI+`]
    grant_types: [authorization_code, device_code, refresh_token]
`))
	g.grantFor("U0ALICE", "prod-db-admin", "1h", "U0BOB", "C0DBA")

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, "strict.mjs")
	cmd.Dir = strictClientDir
	cmd.Env = append(os.Environ(),
		"ISSUER="+g.issuer(), "REDIRECT_URI="+redirectURI,
		"CLIENT_ID=strict-rp", "CLIENT_SECRET="+strictClientSecret,
		"RS_ID=resource-server", "RS_SECRET="+resourceServerSecret,
		"ROLE=prod-db-admin", "AUDIENCE=prod-db", "USER=U0ALICE")
	listenerFile, err := redirect.(*net.TCPListener).File()
	if err != nil {
		t.Fatal(err)
	}
	defer listenerFile.Close()
	cmd.ExtraFiles = []*os.File{listenerFile} // file descriptor 3
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	passed := g.playUser(t, bufio.NewScanner(stdout))
	if err := cmd.Wait(); err != nil {
		t.Errorf("the strict client exited with %v; stderr:\n%s", err, stderr.String())
	}
	if passed == 0 {
		t.Error("the strict client ran no check")
	}
}

// playUser answers the strict client's requests line by line, turns its FAIL lines into
// test errors and returns how many checks passed.
func (g *gatehouse) playUser(t *testing.T, lines *bufio.Scanner) int {
	passed := 0
	for lines.Scan() {
		line := lines.Text()
		verb, rest, _ := strings.Cut(line, " ")
		switch verb {
		case "USER_CODE":
			g.loginInSlack("U0ALICE", rest, nil)
		case "AUTHORIZE":
			g.browserSignIn(rest)
		case "PASS":
			t.Logf("strict client: %s", line)
			passed++
		case "FAIL":
			t.Errorf("strict client: %s", rest)
		default:
			t.Logf("strict client: %s", line)
		}
	}
	return passed
}

// browserSignIn plays the browser: it opens the authorization URL, has the user confirm the
// code in Slack, and follows the redirects back to the client, which answers there.
func (g *gatehouse) browserSignIn(authorizeURL string) {
	g.t.Helper()
	b := g.httpBrowser()
	status, loc, body := b.get(authorizeURL)
	if status != http.StatusFound || !strings.HasPrefix(loc, "/signin?id=") {
		g.t.Fatalf("authorize: %d %s %s", status, loc, body)
	}
	status, _, page := b.get(loc)
	m := userCodeInPage.FindStringSubmatch(page)
	if status != http.StatusOK || m == nil {
		g.t.Fatalf("sign-in page: %d %s", status, page)
	}
	g.loginInSlack("U0ALICE", m[1], nil)
	back := b.follow(loc)
	if status, _, page := b.get(back.String()); status != http.StatusOK {
		g.t.Errorf("the client answered the browser's return with %d %s", status, page)
	}
}
