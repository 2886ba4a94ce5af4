// Command gatehouse puts human approval in Slack in front of elevated access and mints
// short-lived OpenID Connect tokens that carry the approval.
//
//	gatehouse serve --config FILE         run the Slack bot (and, later, the OpenID Provider)
//	gatehouse check-config --config FILE  validate a policy file, listing every problem
package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"os"
	"os/signal"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/slack-go/slack"
	"gopkg.in/yaml.v3"

	"github.com/gatehouse/gatehouse/app"
	"github.com/gatehouse/gatehouse/handlers"
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

	// Ready, if set, is called once serve has opened everything and the bot is about to connect.
	Ready func(*Service)
}

// Service is what serve wires together; tests reach the parts through it.
type Service struct {
	Store *store.Store
	App   *app.Service
	Bot   *handlers.Bot
}

const usage = `usage:
  gatehouse serve --config FILE         run Gatehouse until SIGINT/SIGTERM
  gatehouse check-config --config FILE  validate a config file and list every problem
The config file may also be given as GATEHOUSE_CONFIG.`

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
		if err != nil {
			return err
		}
		return m.serve(ctx, cfg)
	case "check-config":
		cfg, err := m.loadConfig(args)
		if err != nil {
			return err
		}
		fmt.Fprintf(m.Stdout, "config OK: %d roles, %d clients\n", len(cfg.Policy.Roles), len(cfg.Clients))
		return nil
	case "help", "-h", "--help":
		fmt.Fprintln(m.Stdout, usage)
		return nil
	}
	fmt.Fprintln(m.Stderr, usage)
	return fmt.Errorf("unknown command %q", args[0])
}

func (m *Main) loadConfig(args []string) (*Config, error) {
	fs := flag.NewFlagSet(args[0], flag.ContinueOnError)
	fs.SetOutput(m.Stderr)
	path := fs.String("config", m.Getenv("GATEHOUSE_CONFIG"), "config file (or GATEHOUSE_CONFIG)")
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

// serve runs the Slack bot until ctx ends, then shuts down in order: stop taking envelopes,
// finish the ones in flight and their notifications, close the database last.
func (m *Main) serve(ctx context.Context, cfg *Config) error {
	env, problems := m.settings()
	if len(problems) > 0 {
		return fmt.Errorf("cannot start:\n%s", strings.Join(problems, "\n"))
	}
	log := slog.New(slog.NewTextHandler(m.Stderr, nil))
	db, err := store.Open(cfg.Database)
	if err != nil {
		return err
	}
	defer db.Close()

	api := slack.New(env.botToken, slack.OptionAppLevelToken(env.appToken), slack.OptionAPIURL(env.apiURL))
	svc := app.NewService(app.Deps{
		Policy:   cfg.Policy,
		Store:    db,
		Notifier: handlers.NewNotifier(api, cfg.Policy, log),
		Groups:   handlers.NewGroupCache(api, groupCacheTTL, m.Now),
		Now:      m.Now,
		Log:      log,
	})
	defer svc.Wait()
	bot := handlers.NewBot(api, svc, cfg.Policy, log)
	if m.Ready != nil {
		m.Ready(&Service{Store: db, App: svc, Bot: bot})
	}
	log.Info("gatehouse starting", "database", cfg.Database, "roles", len(cfg.Policy.Roles))
	err = bot.Run(ctx)
	log.Info("gatehouse stopping")
	return err
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
