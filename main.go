// Command gatehouse puts human approval in Slack in front of elevated access and mints
// short-lived OpenID Connect tokens that carry the approval.
//
//	gatehouse serve --config FILE         run the Slack bot and the OpenID Provider
//	gatehouse check-config --config FILE  validate a policy file, listing every problem
//	gatehouse token --issuer URL --role R get an access token (device flow)
//	gatehouse keys rotate --config FILE   make a new signing key the active one
//	gatehouse audit export|verify --config FILE  export the audit trail or check its hash chain
package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"regexp"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	gooidc "github.com/coreos/go-oidc/v3/oidc"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/slack-go/slack"
	"golang.org/x/oauth2"
	"gopkg.in/yaml.v3"

	"github.com/gatehouse/gatehouse/app"
	"github.com/gatehouse/gatehouse/handlers"
	"github.com/gatehouse/gatehouse/oidc"
	"github.com/gatehouse/gatehouse/store"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	m := &Main{Getenv: os.Getenv, Stdout: os.Stdout, Stderr: os.Stderr}
	if err := m.Run(ctx, os.Args[1:]); err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(os.Stderr, "gatehouse:", err)
		}
		os.Exit(1)
	}
}

// Main is the program, with its environment injected so tests run the real thing.
type Main struct {
	Getenv func(string) string
	Stdout io.Writer
	Stderr io.Writer
	Now    func() time.Time // defaults to time.Now

	// Listener, if set, is where serve listens instead of the config's listen address.
	Listener net.Listener
	// Ready, if set, is called once serve has opened everything and the bot is about to connect.
	Ready func(*Service)
}

// Service is what serve wires together; tests reach the parts through it.
type Service struct {
	Store *store.Store
	App   *app.Service
	Bot   *handlers.Bot
	Keys  *oidc.Keyring
}

const usage = `usage:
  gatehouse serve --config FILE                run Gatehouse until SIGINT/SIGTERM
  gatehouse check-config --config FILE         validate a config file and list every problem
  gatehouse token --issuer URL --role R        get an access token with the device flow
  gatehouse keys rotate --config FILE          make a new signing key the active one
  gatehouse audit export|verify --config FILE  export the audit trail, or check nobody altered it
The config file may also be given as GATEHOUSE_CONFIG. Run a command with -h for its flags.`

// Run runs one sub-command.
func (m *Main) Run(ctx context.Context, args []string) error {
	if m.Now == nil {
		m.Now = time.Now
	}
	if len(args) == 0 {
		fmt.Fprintln(m.Stderr, usage)
		return errors.New("no command given")
	}
	switch args[0] {
	case "serve":
		cfg, err := m.loadConfig(args)
		if _, problems := m.settings(); err != nil && len(problems) > 0 {
			return fmt.Errorf("%w\n%s", err, strings.Join(problems, "\n")) // every problem in one message
		}
		if err != nil {
			return err
		}
		return m.serve(ctx, cfg)
	case "check-config":
		cfg, err := m.loadConfig(args)
		if err != nil {
			return err
		}
		fmt.Fprintf(m.Stdout, "config OK: %s, %s\n", count(len(cfg.Policy.Roles), "role"), count(len(cfg.Clients), "client"))
		return nil
	case "token":
		return m.token(ctx, args[1:])
	case "keys":
		if len(args) < 2 || args[1] != "rotate" {
			return errors.New("usage: gatehouse keys rotate --config FILE [--algorithm RS256|ES256]")
		}
		return m.rotateKeys(ctx, args[1:])
	case "audit":
		return m.audit(ctx, args[1:])
	case "help", "-h", "--help":
		fmt.Fprintln(m.Stdout, usage)
		return nil
	}
	fmt.Fprintln(m.Stderr, usage)
	return fmt.Errorf("unknown command %q", args[0])
}

func (m *Main) loadConfig(args []string, extra ...func(*flag.FlagSet)) (*Config, error) {
	fs := flag.NewFlagSet(args[0], flag.ContinueOnError)
	fs.SetOutput(m.Stderr)
	path := fs.String("config", m.Getenv("GATEHOUSE_CONFIG"), "config file (or GATEHOUSE_CONFIG)")
	for _, add := range extra {
		add(fs)
	}
	if err := fs.Parse(args[1:]); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments: %s", strings.Join(fs.Args(), " "))
	}
	if *path == "" {
		return nil, errors.New("no config file: pass --config FILE or set GATEHOUSE_CONFIG")
	}
	data, err := os.ReadFile(*path)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	cfg, err := ParseConfig(data)
	if err != nil {
		return nil, fmt.Errorf("config %s has problems:\n%w", *path, err)
	}
	return cfg, nil
}

// count writes n things: 1 role, 2 roles.
func count(n int, thing string) string {
	if n == 1 {
		return "1 " + thing
	}
	return fmt.Sprintf("%d %ss", n, thing)
}

// settings are what serve reads from the environment.
type settings struct {
	botToken, appToken, apiURL string
}

func (m *Main) settings() (settings, []string) {
	s := settings{botToken: m.Getenv("SLACK_BOT_TOKEN"), appToken: m.Getenv("SLACK_APP_TOKEN"), apiURL: m.Getenv("SLACK_API_URL")}
	var problems []string
	if !strings.HasPrefix(s.botToken, "xoxb-") {
		problems = append(problems, "SLACK_BOT_TOKEN must be set to the bot token (xoxb-…)")
	}
	if !strings.HasPrefix(s.appToken, "xapp-") {
		problems = append(problems, "SLACK_APP_TOKEN must be set to an app-level token (xapp-…) with connections:write")
	}
	if s.apiURL == "" {
		s.apiURL = slack.APIURL
	} else if u, err := url.Parse(s.apiURL); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		problems = append(problems, fmt.Sprintf("SLACK_API_URL %q is not an http(s) URL", s.apiURL))
	} else if !strings.HasSuffix(s.apiURL, "/") {
		s.apiURL += "/"
	}
	return s, problems
}

// serve runs the Slack bot and the HTTP server until ctx ends, then shuts down in order:
// stop taking envelopes and HTTP requests, finish those in flight and their
// notifications, close the database last.
func (m *Main) serve(ctx context.Context, cfg *Config) error {
	env, problems := m.settings()
	secrets, secretProblems := m.clientSecrets(cfg)
	if problems = append(problems, secretProblems...); len(problems) > 0 {
		return fmt.Errorf("cannot start:\n%s", strings.Join(problems, "\n"))
	}
	log := slog.New(slog.NewTextHandler(m.Stderr, nil))
	slog.SetDefault(log) // the OpenID library logs through the default logger
	db, err := store.Open(cfg.Database)
	if err != nil {
		return err
	}
	defer db.Close()
	keys := m.keyring(db, cfg, log)
	if err := keys.EnsureKey(ctx, cfg.Tokens.SigningAlgorithm); err != nil {
		return fmt.Errorf("signing key: %w", err)
	}

	metrics := newMetrics()
	api := slack.New(env.botToken, slack.OptionAppLevelToken(env.appToken), slack.OptionAPIURL(env.apiURL),
		slack.OptionHTTPClient(handlers.NewHTTPClient(metrics)))
	homes := handlers.NewHomes(api, m.Now, log)
	svc := app.NewService(app.Deps{
		Policy:   cfg.Policy,
		Store:    db,
		Grants:   db,
		Logins:   db,
		Notifier: handlers.NewNotifier(api, cfg.Policy, homes, log),
		Groups:   handlers.NewGroupCache(api, groupCacheTTL, m.Now),
		Metrics:  metrics,
		Now:      m.Now,
		Log:      log,
	})
	defer svc.Shutdown(shutdownTimeout)
	bot := handlers.NewBot(api, svc, cfg.Policy, homes, metrics, log)

	provider, err := oidc.NewHandler(oidc.Config{
		Issuer: cfg.Issuer, Policy: cfg.Policy, Clients: secrets,
		AccessTokenTTL: cfg.Tokens.AccessTokenTTL, IDTokenTTL: cfg.Tokens.IDTokenTTL, RefreshTokenTTL: cfg.Tokens.RefreshTokenTTL,
		PollInterval: cfg.Tokens.DevicePollInterval, LoginTTL: cfg.Tokens.LoginTTL,
		Now: m.Now, Log: log, Metrics: metrics,
	}, oidc.Deps{Service: svc, Tokens: db, Browser: db, Keys: keys, Directory: handlers.NewPeople(api, profileCacheTTL, m.Now)})
	if err != nil {
		return fmt.Errorf("openid provider: %w", err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) { fmt.Fprintln(w, "ok") })
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		if err := db.Ping(r.Context()); err != nil {
			http.Error(w, "database unreachable", http.StatusServiceUnavailable)
			return
		}
		if !bot.Connected() {
			http.Error(w, "slack not connected", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ok")
	})
	mux.Handle("GET /metrics", metrics.handler())
	mux.HandleFunc("GET /device", devicePage)
	mux.Handle("/", provider)

	ln := m.Listener
	if ln == nil {
		if ln, err = net.Listen("tcp", cfg.Listen); err != nil {
			return fmt.Errorf("listen: %w", err)
		}
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second, ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelWarn)}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	if m.Ready != nil {
		m.Ready(&Service{Store: db, App: svc, Bot: bot, Keys: keys})
	}
	log.Info("gatehouse starting", "issuer", cfg.Issuer, "listen", ln.Addr().String(), "database", cfg.Database, "roles", len(cfg.Policy.Roles))

	botCtx, stopBot := context.WithCancel(ctx)
	defer stopBot()
	botDone := make(chan error, 1)
	go func() { botDone <- bot.Run(botCtx) }()
	sweeperDone := make(chan struct{})
	// A retired key stays published while a token it signed may be valid (see oidc.Keyring).
	keyRetention := max(cfg.Tokens.AccessTokenTTL, cfg.Tokens.IDTokenTTL) + oidc.DefaultKeyRefreshInterval + time.Minute
	go func() { defer close(sweeperDone); m.sweep(botCtx, svc, db, keyRetention, log) }()
	botStopped := false
	select {
	case <-ctx.Done():
	case err = <-botDone:
		botStopped = true
	case err = <-served:
		err = fmt.Errorf("http server: %w", err)
	}
	log.Info("gatehouse stopping")
	stopBot()
	<-sweeperDone
	if !botStopped { // Run returns once the envelopes in flight are handled
		if botErr := <-botDone; err == nil {
			err = botErr
		}
	}
	shutdownCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), shutdownTimeout)
	defer cancel()
	if shutdownErr := srv.Shutdown(shutdownCtx); shutdownErr != nil && err == nil {
		err = fmt.Errorf("http shutdown: %w", shutdownErr)
	}
	return err
}

// sweepInterval is how often expired requests and grants are ended; retention is how long
// ended sign-ins and token records are kept afterwards (requests, grants and the audit
// trail are kept for good).
const (
	sweepInterval = 15 * time.Second
	retention     = 24 * time.Hour
)

// sweep ends expired requests and grants at start (catching up after downtime) and then
// every sweepInterval until ctx ends; it purges what ended more than retention ago and
// signing keys retired more than keyRetention ago.
func (m *Main) sweep(ctx context.Context, svc *app.Service, db *store.Store, keyRetention time.Duration, log *slog.Logger) {
	ticker := time.NewTicker(sweepInterval)
	defer ticker.Stop()
	for {
		if err := svc.Sweep(ctx); err != nil && ctx.Err() == nil {
			log.Error("sweeping expired requests and grants failed", "err", err)
		}
		if _, err := db.Purge(ctx, m.Now().Add(-retention)); err != nil && ctx.Err() == nil {
			log.Error("purging ended sign-ins and tokens failed", "err", err)
		}
		if _, err := db.PruneSigningKeys(ctx, m.Now().Add(-keyRetention)); err != nil && ctx.Err() == nil {
			log.Error("pruning retired signing keys failed", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-ticker.C:
		}
	}
}

// shutdownTimeout bounds the wait for HTTP requests in flight at shutdown.
const shutdownTimeout = 10 * time.Second

// profileCacheTTL is how long a Slack profile is trusted for ID tokens.
const profileCacheTTL = 10 * time.Minute

// keyring returns the signing keys for cfg. Old keys stay published as long as a token
// they signed may live.
func (m *Main) keyring(db *store.Store, cfg *Config, log *slog.Logger) *oidc.Keyring {
	keys := oidc.NewKeyring(db, m.Now, max(cfg.Tokens.AccessTokenTTL, cfg.Tokens.IDTokenTTL))
	keys.Logger = log
	return keys
}

// clientSecrets resolves each confidential client's secret_env from the environment.
func (m *Main) clientSecrets(cfg *Config) ([]oidc.ClientConfig, []string) {
	var clients []oidc.ClientConfig
	var problems []string
	for _, c := range cfg.Clients {
		secret := ""
		if c.SecretEnv != "" {
			if secret = m.Getenv(c.SecretEnv); secret == "" {
				problems = append(problems, fmt.Sprintf("%s must be set: it holds the secret of client %q", c.SecretEnv, c.ID))
			}
		}
		clients = append(clients, oidc.ClientConfig{ID: c.ID, Public: c.Public, Secret: secret, SecretHash: c.SecretHash,
			RedirectURIs: c.RedirectURIs, GrantTypes: c.GrantTypes})
	}
	return clients, problems
}

// rotateKeys runs `gatehouse keys rotate`: a new signing key becomes active; the previous
// stays published until the last token it signed has expired. A running server picks the
// new key up within a minute.
func (m *Main) rotateKeys(ctx context.Context, args []string) error {
	var alg string
	cfg, err := m.loadConfig(args, func(fs *flag.FlagSet) {
		fs.StringVar(&alg, "algorithm", "", "RS256 or ES256 (default: tokens.signing_algorithm)")
	})
	if err != nil {
		return err
	}
	if alg == "" {
		alg = cfg.Tokens.SigningAlgorithm
	}
	db, err := store.Open(cfg.Database)
	if err != nil {
		return err
	}
	defer db.Close()
	key, err := m.keyring(db, cfg, slog.New(slog.NewTextHandler(m.Stderr, nil))).Rotate(ctx, alg)
	if err != nil {
		return fmt.Errorf("rotate: %w", err)
	}
	fmt.Fprintf(m.Stdout, "new signing key %s (%s) is active\n", key.ID, key.Algorithm)
	return nil
}

// devicePage is the verification URI of the device flow: Gatehouse has no form to type the
// code into; people confirm sign-ins in Slack.
func devicePage(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'")
	w.Header().Set("X-Frame-Options", "DENY")
	w.Header().Set("Referrer-Policy", "no-referrer")
	fmt.Fprint(w, `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Gatehouse sign-in</title>
<meta name="viewport" content="width=device-width, initial-scale=1"></head>
<body style="font-family:system-ui,sans-serif;max-width:36rem;margin:4rem auto;line-height:1.5">
<h1>Sign in with Slack</h1>
<p>In Slack, run <code>/access login CODE</code> with the code your client shows, then confirm.</p>
</body></html>`)
}

// groupCacheTTL is how long a user group's members are trusted before asking Slack again.
const groupCacheTTL = 2 * time.Minute

// Config is the parsed and checked config file.
type Config struct {
	Issuer   string
	Listen   string
	Database string
	Tokens   TokensConfig
	Policy   app.Policy
	Clients  []ClientConfig
}

// configFile mirrors the YAML file; unknown keys are an error.
type configFile struct {
	Issuer           string         `yaml:"issuer"`
	Listen           string         `yaml:"listen"`
	Database         string         `yaml:"database"`
	ApprovalsChannel string         `yaml:"approvals_channel"`
	Admins           []string       `yaml:"admins"`
	Tokens           TokensConfig   `yaml:"tokens"`
	Roles            []roleConfig   `yaml:"roles"`
	Clients          []ClientConfig `yaml:"clients"`
}

// TokensConfig sets token lifetimes and the device flow's pace.
type TokensConfig struct {
	AccessTokenTTL     time.Duration `yaml:"access_token_ttl"`
	IDTokenTTL         time.Duration `yaml:"id_token_ttl"`
	RefreshTokenTTL    time.Duration `yaml:"refresh_token_ttl"`
	DevicePollInterval time.Duration `yaml:"device_poll_interval"`
	LoginTTL           time.Duration `yaml:"login_ttl"`
	SigningAlgorithm   string        `yaml:"signing_algorithm"` // RS256 (default, every client supports it) or ES256
}

type roleConfig struct {
	Name              string        `yaml:"name"`
	Description       string        `yaml:"description"`
	Approvers         []string      `yaml:"approvers"`
	ApprovalsRequired int           `yaml:"approvals_required"`
	DefaultDuration   time.Duration `yaml:"default_duration"`
	MaxDuration       time.Duration `yaml:"max_duration"`
	RequestTTL        time.Duration `yaml:"request_ttl"`
	Channel           string        `yaml:"channel"`
	Audience          []string      `yaml:"audience"`
	RemindAfter       time.Duration `yaml:"remind_after"`
	EscalateAfter     time.Duration `yaml:"escalate_after"`
	EscalateTo        []string      `yaml:"escalate_to"`
	MaxExtensions     int           `yaml:"max_extensions"`
	BreakGlass        bool          `yaml:"break_glass"`
	BreakGlassUsers   []string      `yaml:"break_glass_users"`
}

// ClientConfig is an OAuth client allowed to ask for tokens.
type ClientConfig struct {
	ID           string   `yaml:"id"`
	Public       bool     `yaml:"public"`
	SecretEnv    string   `yaml:"secret_env"`
	SecretHash   string   `yaml:"secret_hash"`
	RedirectURIs []string `yaml:"redirect_uris"`
	GrantTypes   []string `yaml:"grant_types"`
	Service      bool     `yaml:"service"`
	Roles        []string `yaml:"roles"`
}

var (
	grantTypes   = []string{"authorization_code", "refresh_token", "device_code", "client_credentials"}
	clientIDRe   = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)
	envNameRe    = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
	bcryptHashRe = regexp.MustCompile(`^\$2[aby]\$\d\d\$[./A-Za-z0-9]{53}$`)
)

// ParseConfig reads a config file and checks it, reporting every problem at once.
func ParseConfig(data []byte) (*Config, error) {
	var f configFile
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	var problems []string
	if err := dec.Decode(&f); err != nil {
		var typeErr *yaml.TypeError
		switch {
		case errors.Is(err, io.EOF):
			return nil, errors.New("the file is empty")
		case errors.As(err, &typeErr):
			problems = append(problems, typeErr.Errors...) // the rest was decoded; check it too
		default:
			return nil, err
		}
	}
	cfg := &Config{
		Issuer: strings.TrimSpace(f.Issuer), Listen: f.Listen, Database: f.Database, Tokens: f.Tokens, Clients: f.Clients,
		Policy: app.Policy{ApprovalsChannel: f.ApprovalsChannel, Admins: f.Admins},
	}
	for _, r := range f.Roles {
		cfg.Policy.Roles = append(cfg.Policy.Roles, app.Role(r))
	}
	for _, c := range f.Clients {
		cfg.Policy.Clients = append(cfg.Policy.Clients, app.ClientPolicy{ID: c.ID, Service: c.Service, Roles: c.Roles})
	}
	cfg.Policy = cfg.Policy.WithDefaults()
	cfg.applyDefaults()
	problems = append(problems, cfg.check()...)
	if err := cfg.Policy.Validate(); err != nil {
		var policyErr *app.PolicyError
		if errors.As(err, &policyErr) {
			problems = append(problems, policyErr.Problems...)
		}
	}
	if len(problems) > 0 {
		return nil, errors.New(strings.Join(problems, "\n"))
	}
	return cfg, nil
}

func (c *Config) applyDefaults() {
	if c.Listen == "" {
		c.Listen = "127.0.0.1:8080"
	}
	if c.Issuer == "" {
		c.Issuer = "http://" + c.Listen
	}
	if c.Database == "" {
		c.Database = "gatehouse.db"
	}
	t := &c.Tokens
	if t.SigningAlgorithm == "" {
		t.SigningAlgorithm = oidc.AlgRS256
	}
	for _, d := range []struct {
		v   *time.Duration
		def time.Duration
	}{
		{&t.AccessTokenTTL, 10 * time.Minute}, {&t.IDTokenTTL, 10 * time.Minute}, {&t.RefreshTokenTTL, 8 * time.Hour},
		{&t.DevicePollInterval, 5 * time.Second}, {&t.LoginTTL, 10 * time.Minute},
	} {
		if *d.v == 0 {
			*d.v = d.def
		}
	}
}

// check reports problems outside the policy: addresses, token settings, clients.
func (c *Config) check() []string {
	var problems []string
	add := func(format string, args ...any) { problems = append(problems, fmt.Sprintf(format, args...)) }
	if u, err := url.Parse(c.Issuer); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" ||
		u.RawQuery != "" || u.Fragment != "" || strings.HasSuffix(c.Issuer, "/") {
		add("issuer %q must be an absolute http(s) URL without query, fragment or trailing slash", c.Issuer)
	}
	if _, _, err := net.SplitHostPort(c.Listen); err != nil {
		add("listen %q must be host:port", c.Listen)
	}
	for name, d := range map[string]time.Duration{
		"access_token_ttl": c.Tokens.AccessTokenTTL, "id_token_ttl": c.Tokens.IDTokenTTL, "refresh_token_ttl": c.Tokens.RefreshTokenTTL,
		"device_poll_interval": c.Tokens.DevicePollInterval, "login_ttl": c.Tokens.LoginTTL,
	} {
		if d < 0 {
			add("tokens.%s must be positive", name)
		}
	}
	if d := c.Tokens.DevicePollInterval; d < time.Second || d%time.Second != 0 {
		add("tokens.device_poll_interval %s must be whole seconds, at least 1s: clients are told it in seconds", d)
	}
	if a := c.Tokens.SigningAlgorithm; a != oidc.AlgRS256 && a != oidc.AlgES256 {
		add("tokens.signing_algorithm %q must be RS256 or ES256", a)
	}
	seen := map[string]bool{}
	for i, cl := range c.Clients {
		where := fmt.Sprintf("clients[%d]", i)
		if cl.ID != "" {
			where = fmt.Sprintf("client %q", cl.ID)
		}
		switch {
		case !clientIDRe.MatchString(cl.ID):
			add("%s: id must be 1-64 letters, digits, '.', '_' or '-' (no ':')", where)
		case seen[cl.ID]:
			add("%s: defined more than once", where)
		}
		seen[cl.ID] = true
		switch {
		case cl.Public && (cl.SecretEnv != "" || cl.SecretHash != ""):
			add("%s: a public client has no secret; remove secret_env/secret_hash or public", where)
		case !cl.Public && (cl.SecretEnv == "") == (cl.SecretHash == ""):
			add("%s: a confidential client needs exactly one of secret_env or secret_hash", where)
		}
		if cl.SecretEnv != "" && !envNameRe.MatchString(cl.SecretEnv) {
			add("%s: secret_env %q is not an environment variable name", where, cl.SecretEnv)
		}
		if cl.SecretHash != "" && !bcryptHashRe.MatchString(cl.SecretHash) {
			add("%s: secret_hash must be a bcrypt hash ($2a$/$2b$/$2y$…)", where)
		}
		if cl.Service && cl.Public {
			add("%s: a service client must be confidential", where)
		}
		if len(cl.GrantTypes) == 0 {
			add("%s: grant_types must list at least one of %s", where, strings.Join(grantTypes, ", "))
		}
		for _, g := range cl.GrantTypes {
			if !slices.Contains(grantTypes, g) {
				add("%s: unknown grant type %q (known: %s)", where, g, strings.Join(grantTypes, ", "))
			}
		}
		if slices.Contains(cl.GrantTypes, "authorization_code") && len(cl.RedirectURIs) == 0 {
			add("%s: authorization_code needs redirect_uris", where)
		}
		for _, r := range cl.RedirectURIs {
			if u, err := url.Parse(r); err != nil || u.Scheme == "" || u.Host == "" || u.Fragment != "" {
				add("%s: redirect URI %q must be absolute, without fragment", where, r)
			}
		}
		for _, r := range cl.Roles {
			if _, ok := c.Policy.Role(r); !ok {
				add("%s: roles names %q, which is not a role in this policy", where, r)
			}
		}
	}
	return problems
}

// metrics is the Prometheus side of every package's Metrics interface.
type metrics struct {
	registry   *prometheus.Registry
	requests   *prometheus.CounterVec
	decisions  *prometheus.CounterVec
	tokens     *prometheus.CounterVec
	slackErrs  *prometheus.CounterVec
	slackRetry *prometheus.CounterVec
	ackLatency prometheus.Histogram
}

func newMetrics() *metrics {
	m := &metrics{
		registry: prometheus.NewRegistry(),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "gatehouse_requests_total",
			Help: "Access requests by outcome: created, approved, denied, expired, cancelled."}, []string{"outcome"}),
		decisions: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "gatehouse_decisions_total",
			Help: "Approver decisions by outcome: approve, deny."}, []string{"outcome"}),
		tokens: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "gatehouse_tokens_issued_total",
			Help: "Token responses issued, by grant type."}, []string{"grant_type"}),
		slackErrs: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "gatehouse_slack_api_errors_total",
			Help: "Slack Web API calls that failed, by method and error."}, []string{"method", "error"}),
		slackRetry: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "gatehouse_slack_api_retries_total",
			Help: "Slack Web API calls rate limited and retried, by method."}, []string{"method"}),
		ackLatency: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "gatehouse_envelope_ack_seconds",
			Help: "Time from receiving a Socket Mode envelope to acknowledging it.", Buckets: prometheus.ExponentialBuckets(0.0005, 2, 14)}),
	}
	m.registry.MustRegister(m.requests, m.decisions, m.tokens, m.slackErrs, m.slackRetry, m.ackLatency,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

func (m *metrics) handler() http.Handler {
	return promhttp.HandlerFor(m.registry, promhttp.HandlerOpts{})
}

// EventsRecorded counts requests and decisions from their audit events.
func (m *metrics) EventsRecorded(events []app.AuditEvent) {
	for _, e := range events {
		switch e.Action {
		case app.ActionRequestCreated, app.ActionRequestApproved, app.ActionRequestDenied, app.ActionRequestExpired, app.ActionRequestCancelled:
			m.requests.WithLabelValues(strings.TrimPrefix(e.Action, "request.")).Inc()
		case app.ActionDecisionApprove, app.ActionDecisionDeny:
			m.decisions.WithLabelValues(strings.TrimPrefix(e.Action, "decision.")).Inc()
		}
	}
}

func (m *metrics) TokenIssued(grantType string)        { m.tokens.WithLabelValues(grantType).Inc() }
func (m *metrics) EnvelopeAcked(latency time.Duration) { m.ackLatency.Observe(latency.Seconds()) }
func (m *metrics) SlackAPIError(method, code string)   { m.slackErrs.WithLabelValues(method, code).Inc() }
func (m *metrics) SlackAPIRetry(method string)         { m.slackRetry.WithLabelValues(method).Inc() }

// token runs `gatehouse token`: the device flow, printing what to type in Slack and the
// progress on stderr, and the access token (or, with --output json, the whole token
// response) on stdout.
func (m *Main) token(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("token", flag.ContinueOnError)
	fs.SetOutput(m.Stderr)
	issuer := fs.String("issuer", m.Getenv("GATEHOUSE_ISSUER"), "Gatehouse's issuer URL (or GATEHOUSE_ISSUER)")
	clientID := fs.String("client-id", "gatehouse-cli", "OAuth client ID")
	secretEnv := fs.String("client-secret-env", "", "environment variable holding the client secret (confidential clients)")
	output := fs.String("output", "token", "token: the access token only; json: the whole token response")
	extra := fs.String("scope", "openid", "scopes besides the roles, space separated")
	reason := fs.String("reason", "", "service clients: why the service needs the roles (shown to approvers)")
	duration := fs.String("duration", "", "service clients: how long, in Go syntax (default: each role's default)")
	var roles []string
	fs.Func("role", "role to ask for (repeatable)", func(r string) error { roles = append(roles, r); return nil })
	if err := fs.Parse(args); err != nil {
		return err
	}
	switch {
	case *issuer == "":
		return errors.New("token: --issuer (or GATEHOUSE_ISSUER) is required")
	case *output != "token" && *output != "json":
		return fmt.Errorf("token: --output must be token or json, not %q", *output)
	case fs.NArg() > 0:
		return fmt.Errorf("token: unexpected arguments: %s", strings.Join(fs.Args(), " "))
	}
	secret := ""
	if *secretEnv != "" {
		if secret = m.Getenv(*secretEnv); secret == "" {
			return fmt.Errorf("token: %s is empty", *secretEnv)
		}
	}
	scopes := strings.Fields(*extra)
	for _, r := range roles {
		scopes = append(scopes, app.RoleScopePrefix+r)
	}

	ctx = context.WithValue(ctx, oauth2.HTTPClient, &http.Client{Timeout: time.Minute, Transport: &progress{out: m.Stderr}})
	provider, err := gooidc.NewProvider(ctx, *issuer)
	if err != nil {
		return fmt.Errorf("token: discovery at %s: %w", *issuer, err)
	}
	var discovery struct {
		DeviceAuthorizationEndpoint string `json:"device_authorization_endpoint"`
	}
	if err := provider.Claims(&discovery); err != nil || discovery.DeviceAuthorizationEndpoint == "" {
		return fmt.Errorf("token: %s offers no device flow", *issuer)
	}
	conf := oauth2.Config{ClientID: *clientID, ClientSecret: secret, Scopes: scopes, Endpoint: oauth2.Endpoint{
		DeviceAuthURL: discovery.DeviceAuthorizationEndpoint, TokenURL: provider.Endpoint().TokenURL, AuthStyle: oauth2.AuthStyleInParams,
	}}
	if secret != "" {
		conf.Endpoint.AuthStyle = oauth2.AuthStyleInHeader
	}
	var params []oauth2.AuthCodeOption
	// x/oauth2 does not authenticate the device authorization request by itself.
	for name, value := range map[string]string{"reason": *reason, "duration": *duration, "client_secret": secret} {
		if value != "" {
			params = append(params, oauth2.SetAuthURLParam(name, value))
		}
	}
	auth, err := conf.DeviceAuth(ctx, params...)
	if err != nil {
		return fmt.Errorf("token: %s", oauthProblem(err))
	}
	if secret == "" { // a person signs in; a service's request goes to the approvers by itself
		fmt.Fprintf(m.Stderr, "In Slack, run:\n\n    /access login %s\n\nthen confirm. Waiting for you…\n", auth.UserCode)
	}
	tok, err := conf.DeviceAccessToken(ctx, auth)
	if err != nil {
		return fmt.Errorf("token: %s", oauthProblem(err))
	}
	fmt.Fprintln(m.Stderr, "Approved.")
	if *output == "token" {
		fmt.Fprintln(m.Stdout, tok.AccessToken)
		return nil
	}
	resp := map[string]any{"access_token": tok.AccessToken, "token_type": tok.TokenType, "expires_in": tok.ExpiresIn}
	for _, k := range []string{"refresh_token", "id_token", "scope"} {
		if v := tok.Extra(k); v != nil && v != "" {
			resp[k] = v
		}
	}
	enc := json.NewEncoder(m.Stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(resp)
}

// oauthProblem says in words what an OAuth error means for the person waiting.
func oauthProblem(err error) string {
	var re *oauth2.RetrieveError
	if !errors.As(err, &re) {
		return err.Error()
	}
	switch re.ErrorCode {
	case "access_denied":
		return "denied: " + re.ErrorDescription
	case "expired_token":
		return "expired before it was confirmed and approved; run the command again (" + re.ErrorDescription + ")"
	case "invalid_client", "unauthorized_client":
		return "the client was refused: " + re.ErrorCode + " " + re.ErrorDescription
	}
	return strings.TrimSpace(re.ErrorCode + ": " + re.ErrorDescription)
}

// progress prints where a device flow stands, as the provider describes it while the
// client waits (authorization_pending's error_description), each change once.
type progress struct {
	out  io.Writer
	mu   sync.Mutex
	last string
}

func (p *progress) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := http.DefaultTransport.RoundTrip(r)
	if err != nil || resp.StatusCode != http.StatusBadRequest {
		return resp, err
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	resp.Body.Close()
	resp.Body = io.NopCloser(bytes.NewReader(body))
	if err != nil {
		return resp, nil
	}
	var answer struct {
		Error       string `json:"error"`
		Description string `json:"error_description"`
	}
	if json.Unmarshal(body, &answer) == nil && answer.Error == "authorization_pending" && answer.Description != "" {
		p.mu.Lock()
		if answer.Description != p.last {
			p.last = answer.Description
			fmt.Fprintf(p.out, "… %s\n", answer.Description)
		}
		p.mu.Unlock()
	}
	return resp, nil
}

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
