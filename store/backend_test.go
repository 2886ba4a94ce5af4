package store

import (
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/gatehouse/gatehouse/internal/pgtest"
)

// The store's tests are one conformance suite run against every backend, as dex does: each
// test takes a Backend and opens its databases through it. (Exported here, in a test file,
// for the store_test package's tests.)

func TestMain(m *testing.M) { os.Exit(pgtest.Run(m)) }

// Backend is a database the store's conformance suite runs against.
type Backend struct {
	Name string
	// NewDatabase returns the address of a new, empty database: a SQLite path or a
	// PostgreSQL URL (with the password in PGPASSWORD).
	NewDatabase func(t testing.TB) string
	// newMigrated returns the address of a new database with the schema in place.
	newMigrated func(t testing.TB) string
}

// Backends are SQLite files in the test's temp dir and databases on a real PostgreSQL
// server started for the test binary (skipped where PostgreSQL is not installed).
var Backends = []Backend{
	{"sqlite", sqliteDatabase, sqliteDatabase},
	{"postgres", pgtest.NewDatabase, migratedPostgres},
}

func sqliteDatabase(t testing.TB) string { return filepath.Join(t.TempDir(), "gatehouse.db") }

var postgresTemplate struct {
	once sync.Once
	url  string
	err  error
}

// migratedPostgres copies a database migrated once for the test binary: migrating takes
// longer than copying.
func migratedPostgres(t testing.TB) string {
	t.Helper()
	server := pgtest.Shared(t) // skips every test, not only the first, without PostgreSQL
	postgresTemplate.once.Do(func() {
		url := server.NewDatabase(t)
		s, err := Open(url)
		if err == nil {
			err = s.Close() // a template may have no connections
		}
		postgresTemplate.url, postgresTemplate.err = url, err
	})
	if postgresTemplate.err != nil {
		t.Fatal(postgresTemplate.err)
	}
	return pgtest.CopyDatabase(t, postgresTemplate.url)
}

// ForEachBackend runs test once for each backend, as a subtest named after it.
func ForEachBackend(t *testing.T, test func(t *testing.T, b Backend)) {
	for _, b := range Backends {
		t.Run(b.Name, func(t *testing.T) { test(t, b) })
	}
}

// Open opens a new database of the backend, with the schema but nothing else, closed when
// the test ends, and returns it with its address, for reopening.
func (b Backend) Open(t testing.TB) (*Store, string) {
	t.Helper()
	database := b.newMigrated(t)
	s, err := Open(database)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s, database
}
