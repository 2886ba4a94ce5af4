package pgtest_test

import (
	"context"
	"database/sql"
	"os"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/internal/pgtest"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Run(m)) }

func ping(t *testing.T, url string) error {
	t.Helper()
	db, err := sql.Open("pgx", url)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	var one int
	return db.QueryRowContext(ctx, "SELECT 1").Scan(&one)
}

// Each test gets its own database, reached with the password from PGPASSWORD only.
func TestNewDatabase(t *testing.T) {
	a, b := pgtest.NewDatabase(t), pgtest.NewDatabase(t)
	if a == b {
		t.Fatalf("two tests got the same database %s", a)
	}
	for _, url := range []string{a, b} {
		if err := ping(t, url); err != nil {
			t.Errorf("%s: %v", url, err)
		}
	}
	t.Setenv("PGPASSWORD", "wrong")
	if err := ping(t, a); err == nil {
		t.Error("connected with a wrong password: the server does not check it")
	}
}

func TestStopAndRestart(t *testing.T) {
	s := pgtest.Start(t)
	url := s.NewDatabase(t)
	s.Stop()
	if err := ping(t, url); err == nil {
		t.Fatal("a stopped server answered")
	}
	if err := s.Restart(); err != nil {
		t.Fatal(err)
	}
	if err := ping(t, url); err != nil {
		t.Errorf("after restart: %v", err)
	}
}
