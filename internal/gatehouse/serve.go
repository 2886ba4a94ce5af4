package gatehouse

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/slack-go/slack"

	"github.com/gatehouse/gatehouse/app"
	"github.com/gatehouse/gatehouse/handlers"
	"github.com/gatehouse/gatehouse/internal/config"
	"github.com/gatehouse/gatehouse/internal/metrics"
	"github.com/gatehouse/gatehouse/oidc"
	"github.com/gatehouse/gatehouse/store"
)

// shutdownTimeout bounds the wait for HTTP requests in flight at shutdown.
const shutdownTimeout = 10 * time.Second

// profileCacheTTL is how long a Slack profile is trusted for ID tokens.
const profileCacheTTL = 10 * time.Minute

// groupCacheTTL is how long a user group's members are trusted before asking Slack again.
const groupCacheTTL = 2 * time.Minute

// serve runs the Slack bot and the HTTP server until ctx ends, then shuts down in order:
// stop taking envelopes and HTTP requests, finish those in flight and their
// notifications, close the database last.
func (m *Main) serve(ctx context.Context, cfg *config.Config) error {
	env, problems := m.settings()
	secrets, secretProblems := m.clientSecrets(cfg)
	if problem := sharedKEKProblem(cfg, m.Getenv); problem != "" {
		problems = append(problems, problem)
	}
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
	for _, f := range store.ReadableByOthers(cfg.Database) {
		log.Warn("database file readable by other users; a copy of it gives away every grant and token record: chmod 600 it", "file", f)
	}
	s, handler, err := m.wire(ctx, cfg, env, secrets, db, log)
	if err != nil {
		return err
	}
	defer s.App.Shutdown(shutdownTimeout)

	ln := m.Listener
	if ln == nil {
		if ln, err = net.Listen("tcp", cfg.Listen); err != nil {
			return fmt.Errorf("listen: %w", err)
		}
	}
	srv := &http.Server{Handler: handler, ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelWarn)}
	m.HTTPTimeouts.apply(srv)
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	if m.Ready != nil {
		m.Ready(s)
	}
	log.Info("gatehouse starting", "issuer", cfg.Issuer, "listen", ln.Addr().String(), "database", cfg.Database, "roles", len(cfg.Policy.Roles))
	err = m.run(ctx, cfg, s, served, log)
	shutdownCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), shutdownTimeout)
	defer cancel()
	if shutdownErr := srv.Shutdown(shutdownCtx); shutdownErr != nil && err == nil {
		err = fmt.Errorf("http shutdown: %w", shutdownErr)
	}
	return err
}

// readyTimeout bounds how long /readyz waits for the database: a load balancer's probe
// needs an answer, and a database this slow is as good as unreachable. It leaves room for
// SQLite's own lock wait (100 ms) within a second.
const readyTimeout = 700 * time.Millisecond

// wire builds the program's parts on db: the signing keys, the use cases with Slack as
// their notifier, the Socket Mode bot, and the HTTP handler (OpenID Provider, health,
// metrics).
func (m *Main) wire(ctx context.Context, cfg *config.Config, env settings, secrets []oidc.ClientConfig, db *store.Store, log *slog.Logger) (*Service, http.Handler, error) {
	keys, err := m.keyring(db, cfg, log)
	if err != nil {
		return nil, nil, err
	}
	if n, err := keys.SealClearKeys(ctx); err != nil {
		return nil, nil, fmt.Errorf("signing key: %w", err)
	} else if n > 0 {
		log.Info("signing keys stored in clear by an older Gatehouse are now encrypted", "keys", n)
	}
	if err := keys.EnsureKey(ctx, cfg.Tokens.SigningAlgorithm); err != nil {
		return nil, nil, fmt.Errorf("signing key: %w", err)
	}
	metrics := metrics.New()
	api := slack.New(env.botToken, slack.OptionAppLevelToken(env.appToken), slack.OptionAPIURL(env.apiURL),
		slack.OptionHTTPClient(handlers.NewHTTPClient(metrics)))
	homes := handlers.NewHomes(api, db, m.Now, log)
	svc := app.NewService(app.Deps{
		Policy:   cfg.Policy,
		Store:    db,
		Grants:   db,
		Logins:   db,
		Outbox:   db,
		Notifier: handlers.NewNotifier(api, cfg.Policy, homes, log),
		Groups:   handlers.NewGroupCache(api, groupCacheTTL, m.Now),
		Metrics:  metrics,
		Now:      m.Now,
		Log:      log,
		Delivery: m.Delivery,
	})
	metrics.WatchOutbox(db.OutboxState)
	bot := handlers.NewBot(api, svc, cfg.Policy, homes, metrics, db, log)
	provider, err := oidc.NewHandler(oidc.Config{
		Issuer: cfg.Issuer, Policy: cfg.Policy, Clients: secrets,
		AccessTokenTTL: cfg.Tokens.AccessTokenTTL, IDTokenTTL: cfg.Tokens.IDTokenTTL, RefreshTokenTTL: cfg.Tokens.RefreshTokenTTL,
		PollInterval: cfg.Tokens.DevicePollInterval, LoginTTL: cfg.Tokens.LoginTTL,
		Now: m.Now, Log: log, Metrics: metrics,
	}, oidc.Deps{Service: svc, Tokens: db, Browser: db, Keys: keys, Directory: handlers.NewPeople(api, profileCacheTTL, m.Now)})
	if err != nil {
		svc.Shutdown(shutdownTimeout)
		return nil, nil, fmt.Errorf("openid provider: %w", err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) { fmt.Fprintln(w, "ok") })
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		// A database host that drops packets, or another process holding the write lock,
		// would hold the probe: it gives up in time.
		ctx, cancel := context.WithTimeout(r.Context(), readyTimeout)
		defer cancel()
		if err := db.CanWrite(ctx); err != nil {
			http.Error(w, "database cannot be written", http.StatusServiceUnavailable)
			return
		}
		if !bot.Connected() {
			http.Error(w, "slack not connected", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ok")
	})
	mux.Handle("GET /metrics", metrics.Handler())
	mux.HandleFunc("GET /device", devicePage)
	mux.Handle("/", provider)
	return &Service{Store: db, App: svc, Bot: bot, Keys: keys}, mux, nil
}

// run runs the bot, the delivery of what is owed to Slack and the sweeper until ctx ends,
// the bot stops or the HTTP server fails (served), and waits for the envelopes and
// deliveries in flight.
func (m *Main) run(ctx context.Context, cfg *config.Config, s *Service, served <-chan error, log *slog.Logger) error {
	botCtx, stopBot := context.WithCancel(ctx)
	defer stopBot()
	botDone := make(chan error, 1)
	go func() { botDone <- s.Bot.Run(botCtx) }()
	sweeperDone := make(chan struct{})
	// A retired key stays published while a token it signed may be valid (see oidc.Keyring).
	keyRetention := max(cfg.Tokens.AccessTokenTTL, cfg.Tokens.IDTokenTTL) + oidc.DefaultKeyRefreshInterval + time.Minute
	go func() { defer close(sweeperDone); m.sweep(botCtx, s.App, s.Store, keyRetention, log) }()
	delivered := make(chan struct{})
	go func() { defer close(delivered); s.App.Deliver(botCtx) }()
	var err error
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
	<-delivered
	if !botStopped { // Run returns once the envelopes in flight are handled
		if botErr := <-botDone; err == nil {
			err = botErr
		}
	}
	return err
}

// keyring returns the signing keys for cfg, sealed with the key-encryption key. Old keys
// stay published as long as a token they signed may live.
func (m *Main) keyring(db *store.Store, cfg *config.Config, log *slog.Logger) (*oidc.Keyring, error) {
	kek, from, err := keyEncryptionKey(cfg, m.Getenv)
	if err != nil {
		return nil, err
	}
	log.Info("signing keys are encrypted at rest", "key_encryption_key", kek.ID(), "from", from)
	keys := oidc.NewKeyring(db, kek, m.Now, max(cfg.Tokens.AccessTokenTTL, cfg.Tokens.IDTokenTTL))
	keys.Logger = log
	return keys, nil
}

// clientSecrets resolves each confidential client's secret_env from the environment.
func (m *Main) clientSecrets(cfg *config.Config) ([]oidc.ClientConfig, []string) {
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
			RedirectURIs: c.RedirectURIs, GrantTypes: c.GrantTypes, Introspect: c.Introspect})
	}
	return clients, problems
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
