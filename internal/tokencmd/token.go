// Package tokencmd is `gatehouse token`: an OAuth device-flow client that asks Gatehouse
// for an access token, printing what to type in Slack and the progress on stderr and the
// token on stdout.
package tokencmd

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	gooidc "github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"

	"github.com/gatehouse/gatehouse/app"
)

// flags are what `gatehouse token` was asked for.
type flags struct {
	issuer, clientID, secret, output, reason, duration string
	scopes                                             []string
}

// parseFlags reads the command line; getenv gives GATEHOUSE_ISSUER and the client secret.
func parseFlags(args []string, getenv func(string) string, stderr io.Writer) (flags, error) {
	fs := flag.NewFlagSet("token", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var f flags
	fs.StringVar(&f.issuer, "issuer", getenv("GATEHOUSE_ISSUER"), "Gatehouse's issuer URL (or GATEHOUSE_ISSUER)")
	fs.StringVar(&f.clientID, "client-id", "gatehouse-cli", "OAuth client ID")
	secretEnv := fs.String("client-secret-env", "", "environment variable holding the client secret (confidential clients)")
	fs.StringVar(&f.output, "output", "token", "token: the access token only; json: the whole token response")
	extra := fs.String("scope", "openid", "scopes besides the roles, space separated")
	fs.StringVar(&f.reason, "reason", "", "service clients: why the service needs the roles (shown to approvers)")
	fs.StringVar(&f.duration, "duration", "", "service clients: how long, in Go syntax (default: each role's default)")
	var roles []string
	fs.Func("role", "role to ask for (repeatable)", func(r string) error { roles = append(roles, r); return nil })
	if err := fs.Parse(args); err != nil {
		return f, err
	}
	switch {
	case f.issuer == "":
		return f, errors.New("token: --issuer (or GATEHOUSE_ISSUER) is required")
	case f.output != "token" && f.output != "json":
		return f, fmt.Errorf("token: --output must be token or json, not %q", f.output)
	case fs.NArg() > 0:
		return f, fmt.Errorf("token: unexpected arguments: %s", strings.Join(fs.Args(), " "))
	}
	if *secretEnv != "" {
		if f.secret = getenv(*secretEnv); f.secret == "" {
			return f, fmt.Errorf("token: %s is empty", *secretEnv)
		}
	}
	f.scopes = strings.Fields(*extra)
	for _, r := range roles {
		f.scopes = append(f.scopes, app.RoleScopePrefix+r)
	}
	return f, nil
}

// Run runs `gatehouse token` with args (after the command's name): the device flow,
// printing what to type in Slack and the progress on stderr, and the access token (or,
// with --output json, the whole token response) on stdout.
func Run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	f, err := parseFlags(args, getenv, stderr)
	if err != nil {
		return err
	}
	waiting := &progress{out: stderr, stop: ctx}
	ctx = context.WithValue(ctx, oauth2.HTTPClient, &http.Client{Timeout: time.Minute, Transport: waiting})
	conf, err := discover(ctx, f)
	if err != nil {
		return err
	}
	waiting.polls = conf.Endpoint.TokenURL
	var params []oauth2.AuthCodeOption
	// x/oauth2 does not authenticate the device authorization request by itself.
	for name, value := range map[string]string{"reason": f.reason, "duration": f.duration, "client_secret": f.secret} {
		if value != "" {
			params = append(params, oauth2.SetAuthURLParam(name, value))
		}
	}
	auth, err := conf.DeviceAuth(ctx, params...)
	if err != nil {
		return fmt.Errorf("token: %s", oauthProblem(err))
	}
	if f.secret == "" { // a person signs in; a service's request goes to the approvers by itself
		fmt.Fprintf(stderr, "In Slack, run:\n\n    /access login %s\n\nthen confirm. Waiting for you…\n", auth.UserCode)
	}
	tok, err := conf.DeviceAccessToken(ctx, auth)
	if errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil { // the code's own expiry
		if problem := waiting.unanswered(); problem != "" {
			return fmt.Errorf("token: Gatehouse did not answer before the code expired (last: %s); run the command again", problem)
		}
		return errors.New("token: expired before it was confirmed and approved; run the command again")
	}
	if err != nil {
		return fmt.Errorf("token: %s", oauthProblem(err))
	}
	fmt.Fprintln(stderr, "Approved.")
	if f.output == "token" {
		fmt.Fprintln(stdout, tok.AccessToken)
		return nil
	}
	resp := map[string]any{"access_token": tok.AccessToken, "token_type": tok.TokenType, "expires_in": tok.ExpiresIn}
	for _, k := range []string{"refresh_token", "id_token", "scope"} {
		if v := tok.Extra(k); v != nil && v != "" {
			resp[k] = v
		}
	}
	enc := json.NewEncoder(stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(resp)
}

// discover reads the issuer's discovery document and returns the device flow's client config.
func discover(ctx context.Context, f flags) (*oauth2.Config, error) {
	provider, err := gooidc.NewProvider(ctx, f.issuer)
	if err != nil {
		return nil, fmt.Errorf("token: discovery at %s: %w", f.issuer, err)
	}
	var discovery struct {
		DeviceAuthorizationEndpoint string `json:"device_authorization_endpoint"`
	}
	if err := provider.Claims(&discovery); err != nil || discovery.DeviceAuthorizationEndpoint == "" {
		return nil, fmt.Errorf("token: %s offers no device flow", f.issuer)
	}
	conf := &oauth2.Config{ClientID: f.clientID, ClientSecret: f.secret, Scopes: f.scopes, Endpoint: oauth2.Endpoint{
		DeviceAuthURL: discovery.DeviceAuthorizationEndpoint, TokenURL: provider.Endpoint().TokenURL, AuthStyle: oauth2.AuthStyleInParams,
	}}
	if f.secret != "" {
		conf.Endpoint.AuthStyle = oauth2.AuthStyleInHeader
	}
	return conf, nil
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
// client waits (authorization_pending's error_description), each change once. A poll the
// provider does not answer (502, 503, 504: restarting, its database unreachable; no
// connection, or no answer at all) is no answer about the sign-in either: it reads as
// authorization_pending, and the wait goes on until the device code expires.
type progress struct {
	out     io.Writer
	stop    context.Context // the command's: once it ends, nothing reads as pending
	polls   string          // the token endpoint, once discovered
	mu      sync.Mutex
	last    string
	problem string // why the last poll went unanswered; empty once one is answered
}

func (p *progress) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := http.DefaultTransport.RoundTrip(r)
	if p.polls == "" || r.URL.String() != p.polls || p.stop.Err() != nil {
		return resp, err
	}
	problem := ""
	switch {
	case err != nil:
		problem = err.Error()
	case slices.Contains([]int{http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout}, resp.StatusCode):
		resp.Body.Close()
		problem = resp.Status
	}
	p.mu.Lock()
	p.problem = problem
	p.mu.Unlock()
	if problem != "" {
		p.say("Gatehouse did not answer (" + problem + "); still waiting")
		return &http.Response{StatusCode: http.StatusBadRequest, Status: "400 Bad Request", Request: r,
			Header: http.Header{"Content-Type": {"application/json"}}, Body: io.NopCloser(strings.NewReader(`{"error":"authorization_pending"}`))}, nil
	}
	if resp.StatusCode != http.StatusBadRequest {
		return resp, nil
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
		p.say(answer.Description)
	}
	return resp, nil
}

// unanswered says why the last poll went unanswered, or "" if it was answered.
func (p *progress) unanswered() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.problem
}

// say prints where things stand, unless it was the last thing said.
func (p *progress) say(what string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if what != p.last {
		p.last = what
		fmt.Fprintf(p.out, "… %s\n", what)
	}
}
