package store

import (
	"context"
	"database/sql"
	"errors"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/app"
)

// holdWriteLock takes path's write lock from another connection, as another process
// (`gatehouse keys rotate`, a second server) does, and returns the function that lets go.
func holdWriteLock(t *testing.T, path string) (release func()) {
	t.Helper()
	other, err := sql.Open("sqlite3", path+"?_busy_timeout=5000")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { other.Close() })
	conn, err := other.Conn(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := conn.ExecContext(context.Background(), "BEGIN IMMEDIATE"); err != nil {
		t.Fatal(err)
	}
	return func() {
		if _, err := conn.ExecContext(context.Background(), "ROLLBACK"); err != nil {
			t.Error(err)
		}
		conn.Close()
	}
}

// The group commit waits for another process's write lock, as other writes do: a token
// issued while `gatehouse keys rotate` holds the lock for a moment used to fail with
// "database is locked" after SQLite's 100 ms. Held longer than its caller waits, the write
// is app.ErrBusy, and nothing of it is recorded.
func TestGroupCommitWaitsForAnotherProcessesLock(t *testing.T) {
	s, path := Backends[0].Open(t) // SQLite
	ctx := context.Background()

	release := holdWriteLock(t, path)
	time.AfterFunc(400*time.Millisecond, release)
	if err := s.RecordIssuance(ctx, issuance(1)); err != nil {
		t.Fatalf("an issuance while another process held the lock for 400 ms: %v", err)
	}

	release = holdWriteLock(t, path)
	short, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancel()
	err := s.SpendLogin(short, app.LoginSpend{}, nil)
	release()
	if !errors.Is(err, app.ErrBusy) {
		t.Errorf("a write whose caller gave up while the lock was held: %v; want app.ErrBusy", err)
	}
	if v, err := s.VerifyAudit(ctx); err != nil || !v.OK() || v.Events != 1 {
		t.Errorf("audit: %+v, %v; want the one issuance", v, err)
	}
}

// Every write waits for another process's lock as long as its caller does: the single
// writes behind the device and browser flows used to fail with "database is locked" after
// SQLite's 100 ms.
func TestSingleWritesWaitForAnotherProcessesLock(t *testing.T) {
	s, path := Backends[0].Open(t) // SQLite
	ctx := context.Background()
	now := bgT0
	guess, _, err := s.TryCodeGuess(ctx, "U0ALICE", now, time.Minute, 5)
	if err != nil {
		t.Fatal(err)
	}
	writes := []struct {
		name  string
		write func() error
	}{
		{"create login", func() error {
			return s.CreateLogin(ctx, app.Login{ID: "login", UserCode: "ABCD-EFGH", SecretHash: "h", Status: app.LoginPending, CreatedAt: now, ExpiresAt: now.Add(time.Hour)})
		}},
		{"create auth request", func() error {
			return s.CreateAuthRequest(ctx, app.AuthRequest{ID: "ar", ExpiresAt: now.Add(time.Hour)})
		}},
		{"attach login", func() error { return s.AttachLogin(ctx, "ar", "login") }},
		{"create browser session", func() error {
			return s.CreateBrowserSession(ctx, app.BrowserSession{Hash: "bs", Subject: "U0ALICE", ExpiresAt: now.Add(time.Hour)})
		}},
		{"end browser session", func() error { return s.EndBrowserSession(ctx, "bs") }},
		{"forget code guess", func() error { return s.ForgetCodeGuess(ctx, guess) }},
	}
	for _, w := range writes {
		release := holdWriteLock(t, path)
		time.AfterFunc(300*time.Millisecond, release)
		if err := w.write(); err != nil {
			t.Errorf("%s while another process held the lock for 300 ms: %v", w.name, err)
		}
	}
}
