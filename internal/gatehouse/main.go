// Package gatehouse is the program: its commands and the serve wiring, the one place that
// imports every adapter. main.go only starts it; the end-to-end tests run it for real.
package gatehouse

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/url"
	"strings"
	"time"

	"github.com/slack-go/slack"

	"github.com/gatehouse/gatehouse/app"
	"github.com/gatehouse/gatehouse/handlers"
	"github.com/gatehouse/gatehouse/internal/config"
	"github.com/gatehouse/gatehouse/internal/tokencmd"
	"github.com/gatehouse/gatehouse/oidc"
	"github.com/gatehouse/gatehouse/store"
)

// Main is the program, with its environment injected so tests run the real thing.
type Main struct {
	Getenv func(string) string
	Stdout io.Writer
	Stderr io.Writer
	Now    func() time.Time // defaults to time.Now

	// Delivery tunes the delivery of what is owed to Slack; tests shorten its waits.
	Delivery app.DeliveryOptions
	// Listener, if set, is where serve listens instead of the config's listen address.
	Listener net.Listener
	// Ready, if set, is called once serve has opened everything and the bot is about to connect.
	Ready func(*Service)
	// HTTPTimeouts bound the HTTP server's connections; zero fields take the defaults.
	HTTPTimeouts HTTPTimeouts
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
  gatehouse keys rewrap --config FILE --old-key-file F  re-encrypt signing keys under a new key-encryption key
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
		return tokencmd.Run(ctx, args[1:], m.Getenv, m.Stdout, m.Stderr)
	case "keys":
		switch {
		case len(args) >= 2 && args[1] == "rotate":
			return m.rotateKeys(ctx, args[1:])
		case len(args) >= 2 && args[1] == "rewrap":
			return m.rewrapKeys(ctx, args[1:])
		}
		return errors.New("usage: gatehouse keys rotate --config FILE [--algorithm RS256|ES256]\n" +
			"       gatehouse keys rewrap --config FILE --old-key-file FILE")
	case "audit":
		return m.audit(ctx, args[1:])
	case "help", "-h", "--help":
		fmt.Fprintln(m.Stdout, usage)
		return nil
	}
	fmt.Fprintln(m.Stderr, usage)
	return fmt.Errorf("unknown command %q", args[0])
}

func (m *Main) loadConfig(args []string, extra ...func(*flag.FlagSet)) (*config.Config, error) {
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
	return config.Load(*path)
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
