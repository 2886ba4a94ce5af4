// Package config is Gatehouse's config file: its schema, its defaults, and a check that
// reports every problem at once.
package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/gatehouse/gatehouse/app"
)

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
	// KeyEncryptionKeyFile names a file holding the key that encrypts signing keys at rest
	// (32 random bytes, standard base64); GATEHOUSE_KEY_ENCRYPTION_KEY takes precedence.
	KeyEncryptionKeyFile string `yaml:"key_encryption_key_file"`
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
	Introspect   bool     `yaml:"introspect"` // a resource server: may call introspection
}

// Load reads the config file at path and checks it.
func Load(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	cfg, err := Parse(data)
	if err != nil {
		return nil, fmt.Errorf("config %s has problems:\n%w", path, err)
	}
	return cfg, nil
}

// Parse reads a config file and checks it, reporting every problem at once.
func Parse(data []byte) (*Config, error) {
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
		t.SigningAlgorithm = app.AlgRS256
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
