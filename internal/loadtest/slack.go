package main

import (
	"fmt"
	"os"
	"sync"
	"testing"

	"github.com/gatehouse/gatehouse/internal/slackfake"
)

// fakeSlack is the fake Slack the server connects to; the scenarios need nothing from it
// (services are not approved by people), but serve needs a Slack to start.
type fakeSlack struct {
	*slackfake.Server
	tb *loadTB
}

func startSlack() (*fakeSlack, error) {
	tb := &loadTB{}
	return &fakeSlack{Server: slackfake.New(tb), tb: tb}, nil
}

func (s *fakeSlack) close() { s.tb.cleanup() }

// loadTB lets the fake Slack, written for tests, run in this command: problems it reports
// go to stderr, and its clean-ups run when the run ends. Only the methods the fake calls
// are implemented; the embedded interface is never called.
type loadTB struct {
	testing.TB
	mu       sync.Mutex
	cleanups []func()
}

func (t *loadTB) Helper()                        {}
func (t *loadTB) Cleanup(f func())               { t.mu.Lock(); t.cleanups = append(t.cleanups, f); t.mu.Unlock() }
func (t *loadTB) Errorf(format string, a ...any) { fmt.Fprintf(os.Stderr, format+"\n", a...) }
func (t *loadTB) Logf(format string, a ...any)   {}
func (t *loadTB) Fatalf(format string, a ...any) { t.Errorf(format, a...); os.Exit(1) }
func (t *loadTB) Error(a ...any)                 { fmt.Fprintln(os.Stderr, a...) }
func (t *loadTB) Fatal(a ...any)                 { t.Error(a...); os.Exit(1) }
func (t *loadTB) Log(a ...any)                   {}
func (t *loadTB) Name() string                   { return "loadtest" }
func (t *loadTB) Failed() bool                   { return false }
func (t *loadTB) TempDir() string                { d, _ := os.MkdirTemp("", "slackfake-"); return d }
func (t *loadTB) Setenv(key, value string)       { os.Setenv(key, value) }
func (t *loadTB) Skip(a ...any)                  {}
func (t *loadTB) Skipf(format string, a ...any)  {}
func (t *loadTB) SkipNow()                       {}
func (t *loadTB) Skipped() bool                  { return false }
func (t *loadTB) FailNow()                       { os.Exit(1) }
func (t *loadTB) Fail()                          {}

func (t *loadTB) cleanup() {
	t.mu.Lock()
	defer t.mu.Unlock()
	for i := len(t.cleanups) - 1; i >= 0; i-- {
		t.cleanups[i]()
	}
	t.cleanups = nil
}
