package main

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/gatehouse/gatehouse/internal/slackfake"
)

// serviceSecret is the load-test service client's secret.
const serviceSecret = "s3cret-of-the-load-test-service"

// process is a server under load: its URL and its PID, for RSS and CPU time.
type process struct {
	url string
	cmd *exec.Cmd
}

func (p *process) stop() {
	if p.cmd.Process != nil {
		p.cmd.Process.Signal(os.Interrupt)
		done := make(chan struct{})
		go func() { p.cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			p.cmd.Process.Kill()
		}
	}
}

const loadConfig = `issuer: ISSUER
listen: LISTEN
database: DATABASE
approvals_channel: C0APPROVALS
tokens:
  access_token_ttl: 10m
  refresh_token_ttl: 8h
  device_poll_interval: 1s
  signing_algorithm: ALGORITHM
roles:
  - name: prod-db-admin
    description: Admin on the production database
    approvers: [U0BOB]
    audience: [prod-db]
clients:
  - id: load-service
    secret_env: LOAD_SERVICE_SECRET
    service: true
    grant_types: [client_credentials, device_code, refresh_token]
`

// startGatehouse runs `gatehouse serve` (pinned to o.cpus) on a free port with a new
// database, and waits until it answers.
func startGatehouse(ctx context.Context, o options, alg, dir string, slack *fakeSlack) (*process, error) {
	addr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	issuer := "http://" + addr
	database := filepath.Join(dir, "gatehouse.db")
	if o.database != "" {
		database = o.database
	}
	config := strings.NewReplacer("ISSUER", issuer, "LISTEN", addr, "DATABASE", database, "ALGORITHM", alg).Replace(loadConfig)
	path := filepath.Join(dir, "gatehouse.yaml")
	if err := os.WriteFile(path, []byte(config), 0o600); err != nil {
		return nil, err
	}
	logs, err := os.Create(filepath.Join(dir, "gatehouse.log"))
	if err != nil {
		return nil, err
	}
	cmd := pinned(o.cpus, absPath(o.binary), "serve", "--config", path)
	cmd.Env = append(os.Environ(), "SLACK_BOT_TOKEN="+slackfake.BotToken, "SLACK_APP_TOKEN="+slackfake.AppToken,
		"SLACK_API_URL="+slack.APIURL(), "LOAD_SERVICE_SECRET="+serviceSecret)
	if os.Getenv("GATEHOUSE_KEY_ENCRYPTION_KEY") == "" { // PostgreSQL needs one; SQLite takes it too
		kek := make([]byte, 32)
		rand.Read(kek)
		cmd.Env = append(cmd.Env, "GATEHOUSE_KEY_ENCRYPTION_KEY="+base64.StdEncoding.EncodeToString(kek))
	}
	cmd.Stdout, cmd.Stderr = logs, logs
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", o.binary, err)
	}
	g := &process{url: issuer, cmd: cmd}
	if err := waitUp(ctx, issuer+"/healthz"); err != nil {
		g.stop()
		log, _ := os.ReadFile(logs.Name())
		return nil, fmt.Errorf("gatehouse did not start: %w\n%s", err, log)
	}
	return g, nil
}

// startBare runs this command as the bare signer (pinned like the server), with a new key
// of the algorithm's type.
func startBare(ctx context.Context, o options, alg string) (*process, error) {
	addr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	cmd := pinned(o.cpus, self, "bare-signer", alg, addr)
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	b := &process{url: "http://" + addr, cmd: cmd}
	if err := waitUp(ctx, b.url+"/healthz"); err != nil {
		b.stop()
		return nil, fmt.Errorf("bare signer did not start: %w", err)
	}
	return b, nil
}

// serveBareSigner is the baseline: an HTTP server whose token handler reads the form and
// signs one JWT with an alg key, nothing else.
func serveBareSigner(alg, addr string) error {
	var key crypto.Signer
	var err error
	switch alg {
	case "RS256":
		key, err = rsa.GenerateKey(rand.Reader, 2048)
	case "ES256":
		key, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	default:
		return fmt.Errorf("unknown algorithm %s", alg)
	}
	if err != nil {
		return err
	}
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.SignatureAlgorithm(alg), Key: key},
		(&jose.SignerOptions{}).WithType("at+jwt").WithHeader("kid", "bare"))
	if err != nil {
		return err
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok\n") })
	mux.HandleFunc("POST /oauth/token", func(w http.ResponseWriter, r *http.Request) {
		r.ParseForm()
		now := time.Now()
		payload := fmt.Sprintf(`{"iss":"bare","sub":"load-service","aud":["load-service"],"client_id":"load-service","iat":%d,"exp":%d,"jti":%q}`,
			now.Unix(), now.Add(10*time.Minute).Unix(), strconv.FormatInt(now.UnixNano(), 36))
		obj, err := signer.Sign([]byte(payload))
		if err != nil {
			http.Error(w, err.Error(), 500)
			return
		}
		s, _ := obj.CompactSerialize()
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"access_token":%q,"token_type":"Bearer","expires_in":600}`, s)
	})
	return http.ListenAndServe(addr, mux)
}

func freeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

func waitUp(ctx context.Context, u string) error {
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, err := http.Get(u)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return nil
			}
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("%s: %v", u, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// usage is a process's CPU time so far (user + system) and resident memory, from /proc.
func usage(pid int) (cpu time.Duration, rssMB int) {
	if stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid)); err == nil {
		s := string(stat)
		if i := strings.LastIndexByte(s, ')'); i > 0 {
			f := strings.Fields(s[i+2:])
			if len(f) > 12 {
				u, _ := strconv.ParseInt(f[11], 10, 64)
				k, _ := strconv.ParseInt(f[12], 10, 64)
				cpu = time.Duration(u+k) * (time.Second / 100) // clock ticks, 100 per second on Linux
			}
		}
	}
	if status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid)); err == nil {
		for _, line := range strings.Split(string(status), "\n") {
			if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
				kb, _ := strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(rest), " kB"))
				rssMB = kb / 1024
			}
		}
	}
	return cpu, rssMB
}
