package store

// This file is the one place that knows which database is underneath: how to connect to
// SQLite and to PostgreSQL, how big the connection pools are, how two processes migrating
// at once keep out of each other's way, how hand-written SQL differs, and which errors
// only one of them gives. Everything else in the package is dialect-neutral gorm.

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/url"
	"os"
	"runtime"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/mattn/go-sqlite3"
	"gorm.io/driver/postgres"
	"gorm.io/driver/sqlite"
	"gorm.io/gorm"
	"gorm.io/gorm/clause"

	"github.com/gatehouse/gatehouse/app"
)

// IsPostgres reports whether database names a PostgreSQL database (a postgres:// or
// postgresql:// URL) rather than a SQLite file.
func IsPostgres(database string) bool {
	return strings.HasPrefix(database, "postgres://") || strings.HasPrefix(database, "postgresql://")
}

// CheckDatabase says what is wrong with a database setting, or returns nil. A SQLite path
// is anything else and always passes (opening it tells). A PostgreSQL URL must parse and
// must not carry a password: that comes from PGPASSWORD or the .pgpass file.
func CheckDatabase(database string) error {
	if !IsPostgres(database) {
		return nil
	}
	u, err := url.Parse(database)
	if err != nil {
		return errors.New("database: the PostgreSQL URL does not parse") // url's error would repeat the URL
	}
	if _, ok := u.User.Password(); ok || u.Query().Has("password") {
		return fmt.Errorf("database %q must not hold a password: give it in PGPASSWORD or a .pgpass file", redact(u))
	}
	if _, err := pgx.ParseConfig(database); err != nil {
		return fmt.Errorf("database %q: %w", redact(u), err)
	}
	return nil
}

// redact is the URL without its password, for messages.
func redact(u *url.URL) string {
	c := *u
	q := c.Query()
	if q.Has("password") {
		q.Set("password", "xxxxx")
		c.RawQuery = q.Encode()
	}
	return c.Redacted()
}

// dialect is what differs between the databases.
type dialect struct {
	// writer is gorm's driver for the pool that writes (not embedded: gorm looks for its
	// error translation on the value it is given, and would not find it on a wrapper).
	writer     gorm.Dialector
	writerPool func(*sql.DB)
	// readers, when set, is a second pool for reads outside a transaction.
	readers    gorm.Dialector
	readerPool func(*sql.DB)
	// lockMigrations, run first in the migration transaction, keeps every other process
	// out of migrating until that transaction ends.
	lockMigrations func(tx *gorm.DB) error
	// rewrite turns the store's hand-written SQL (batch statements) into the dialect's.
	rewrite func(query string) string
	// urgentPool, when set, configures a second pool on writer for urgent transactions.
	urgentPool func(*sql.DB)
	// oneWriter: the database has one writer connection, whose transactions wait in a
	// queue of ours (see writeGate).
	oneWriter bool
	// skipLocked: claims of shared work (the outbox, kept commands) lock the rows they
	// pick and pass over rows another claim holds (see claimable).
	skipLocked bool
	// checkpoints, when set, is the SQLite file (as a DSN) whose WAL the store checkpoints
	// in the background.
	checkpoints string
}

func dialectOf(database string) (dialect, error) {
	if err := CheckDatabase(database); err != nil {
		return dialect{}, err
	}
	if IsPostgres(database) {
		return dialect{writer: postgresDialector{postgres.Open(database).(*postgres.Dialector)}, writerPool: postgresPool(postgresMaxConns), urgentPool: postgresPool(postgresUrgentConns), lockMigrations: postgresMigrationLock,
			rewrite: postgresSQL, skipLocked: true}, nil
	}
	if err := createPrivateFile(database); err != nil {
		return dialect{}, err
	}
	q := sqliteParams()
	dsn := "file:" + url.PathEscape(database) + "?" + q.Encode()
	writer := sqlite.New(sqlite.Config{DriverName: sqliteWriterDriver, DSN: dsn})
	q.Del("_journal_mode") // set by the writer, once for the file
	q.Set("_query_only", "true")
	q.Set("_txlock", "deferred")
	readers := sqlite.Open("file:" + url.PathEscape(database) + "?" + q.Encode())
	return dialect{writer: writer, writerPool: sqliteWriterPool, readers: readers, readerPool: sqliteReaderPool,
		lockMigrations: sqliteMigrationLock, rewrite: sqliteSQL, oneWriter: true, checkpoints: dsn}, nil
}

// sqliteWriterDriver is SQLite's driver with automatic checkpoints off: the writer's
// commits leave them to the store's checkpointer (see checkpointer).
const sqliteWriterDriver = "sqlite3-gatehouse-writer"

func init() {
	sql.Register(sqliteWriterDriver, &sqlite3.SQLiteDriver{ConnectHook: func(c *sqlite3.SQLiteConn) error {
		_, err := c.Exec("PRAGMA wal_autocheckpoint = 0", nil)
		return err
	}})
}

// sqliteParams are the writer's settings: WAL, a short busy timeout (SQLite's own wait for
// another process's lock cannot be cancelled: Store.transaction waits longer, in Go, as the
// caller's deadline allows), foreign keys on, and BEGIN IMMEDIATE so a transaction that
// reads then writes holds the write lock from its start (two approvers at once serialise
// instead of deadlocking on a lock upgrade). synchronous NORMAL: a commit reaches the WAL
// file before it is acknowledged, so a killed process loses nothing; only a power cut may
// lose the last commits before a checkpoint.
func sqliteParams() url.Values {
	q := url.Values{}
	q.Set("_journal_mode", "WAL")
	q.Set("_busy_timeout", "100")
	q.Set("_foreign_keys", "on")
	q.Set("_txlock", "immediate")
	q.Set("_synchronous", "NORMAL")
	return q
}

// sqliteWriterPool keeps one connection: SQLite has one writer anyway, and queueing in Go
// is cheaper than writers sleeping in SQLite's busy handler, each holding an OS thread.
func sqliteWriterPool(db *sql.DB) { db.SetMaxOpenConns(1); db.SetMaxIdleConns(1) }

// sqliteReaderPool keeps read-only connections, one per core or more, so that no lock is
// shared by every request.
func sqliteReaderPool(db *sql.DB) {
	n := max(4, 2*runtime.GOMAXPROCS(0))
	db.SetMaxOpenConns(n)
	db.SetMaxIdleConns(n)
}

// sqliteSQL drops row locks: SQLite has none, and needs none, since a transaction holds the
// database's one write lock from BEGIN IMMEDIATE.
func sqliteSQL(query string) string {
	return strings.NewReplacer(" FOR UPDATE", "", " FOR SHARE", "").Replace(query)
}

// postgresSQL numbers the parameters: PostgreSQL's are $1, $2, … where SQLite's are ?.
func postgresSQL(query string) string {
	var b strings.Builder
	n := 0
	for _, r := range query {
		if r == '?' {
			n++
			fmt.Fprintf(&b, "$%d", n)
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
}

// createPrivateFile creates the SQLite file, if it is new, readable by its owner only,
// before SQLite opens it: SQLite gives the -wal and -shm files the database file's
// permissions.
func createPrivateFile(path string) error {
	if f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600); err == nil {
		f.Close()
	} else if !errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("create %s: %w", path, err)
	}
	return nil
}

// ReadableByOthers returns those of a SQLite database's files (the file, -wal, -shm) that
// users other than the owner may read or write: a copy of them gives away every grant and
// token record. Start-up warns about them. A PostgreSQL database has no such files here.
func ReadableByOthers(database string) []string {
	if IsPostgres(database) {
		return nil
	}
	var loose []string
	for _, p := range []string{database, database + "-wal", database + "-shm"} {
		if info, err := os.Stat(p); err == nil && info.Mode().Perm()&0o077 != 0 {
			loose = append(loose, fmt.Sprintf("%s (%s)", p, info.Mode().Perm()))
		}
	}
	return loose
}

// postgresMaxConns is the most connections one Gatehouse process's main pool opens to
// PostgreSQL. Requests, sign-ins and tokens each hold one for a few milliseconds, so ten
// carry hundreds of operations a second; N replicas need N×(10+2) below the server's
// max_connections (100 by default), with room for backups and psql.
const postgresMaxConns = 10

// postgresUrgentConns is how many more connections a process opens for urgent writes: the
// slash commands kept before their ack. A burst of filings holds the main pool's while
// they queue on the audit chain's head; the acks must not wait for them.
const postgresUrgentConns = 2

// postgresPool configures a pool of up to n connections, all of them kept idle between
// bursts (a new connection costs a TLS and SCRAM handshake), given back after five idle
// minutes, and renewed after half an hour, so that a failover or a pooler's DNS change is
// picked up without a restart.
func postgresPool(n int) func(*sql.DB) {
	return func(db *sql.DB) {
		db.SetMaxOpenConns(n)
		db.SetMaxIdleConns(n)
		db.SetConnMaxIdleTime(5 * time.Minute)
		db.SetConnMaxLifetime(30 * time.Minute)
	}
}

// claimable narrows q, a query picking rows of shared work to claim, to rows no other claim
// is taking at the moment. On PostgreSQL, FOR UPDATE SKIP LOCKED: the rows picked are locked
// until the claim commits, and rows another replica's claim has locked are passed over
// rather than waited for, so concurrent claimers never queue behind each other nor take
// the same row. SQLite needs nothing: a claim's transaction holds the database's one write
// lock from its BEGIN IMMEDIATE, so claims run one after another.
func (s *Store) claimable(q *gorm.DB) *gorm.DB {
	if !s.skipLocked {
		return q
	}
	return q.Clauses(clause.Locking{Strength: "UPDATE", Options: "SKIP LOCKED"})
}

// sqliteMigrationLock needs to do nothing: the migration transaction began with BEGIN
// IMMEDIATE (see sqliteParams), which already holds the database's one write lock.
func sqliteMigrationLock(*gorm.DB) error { return nil }

// migrationLockKey names Gatehouse's migration lock among the database's advisory locks.
const migrationLockKey = 0x6761746568 // "gateh"

// postgresMigrationLock takes a transaction-scoped advisory lock: a second replica starting
// on the same database waits here, then finds the migrations applied.
func postgresMigrationLock(tx *gorm.DB) error {
	return tx.Exec("SELECT pg_advisory_xact_lock(?)", migrationLockKey).Error
}

// unstorable reports whether err is PostgreSQL refusing text it cannot hold (a NUL byte).
// SQLite holds any bytes; no row holds such text on either, so a lookup by it finds nothing.
func unstorable(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && pgErr.Code == "22021" // character_not_in_repertoire
}

// lockedOut reports whether err is the database refusing a write because another process
// holds the lock: SQLite's "database is locked" after its busy timeout, PostgreSQL's
// lock_not_available.
func lockedOut(err error) bool {
	var sqliteErr sqlite3.Error
	var pgErr *pgconn.PgError
	switch {
	case errors.As(err, &sqliteErr):
		return sqliteErr.Code == sqlite3.ErrBusy || sqliteErr.Code == sqlite3.ErrLocked
	case errors.As(err, &pgErr):
		return pgErr.Code == "55P03"
	}
	return false
}

// postgresDialector is gorm's PostgreSQL driver, telling apart a database that cannot be
// reached: every error gorm reports goes through Translate.
type postgresDialector struct{ *postgres.Dialector }

// Translate marks errors meaning the database did not answer as app.ErrUnavailable, and
// otherwise translates as gorm's driver does.
func (d postgresDialector) Translate(err error) error {
	if unreachable(err) {
		return fmt.Errorf("%w: %w", app.ErrUnavailable, err)
	}
	return d.Dialector.Translate(err)
}

// unreachable reports whether err means PostgreSQL did not answer: a connection refused,
// reset or closed; the server shutting down or not yet accepting connections; or no answer
// before the deadline. Gatehouse's own transactions hold row locks for milliseconds (the
// audit head last of all, see appendAudit), so a statement that outlives its caller's
// deadline on PostgreSQL means the server, or the network to it, is not answering — not
// that another writer is busy, as on SQLite.
func unreachable(err error) bool {
	var pgErr *pgconn.PgError
	var connectErr *pgconn.ConnectError
	var netErr net.Error
	switch {
	case errors.As(err, &pgErr):
		// Class 08: connection exception; 57P01-57P03: shutting down, crashed, starting.
		return strings.HasPrefix(pgErr.Code, "08") || pgErr.Code == "57P01" || pgErr.Code == "57P02" || pgErr.Code == "57P03"
	case errors.As(err, &connectErr), errors.As(err, &netErr),
		errors.Is(err, context.DeadlineExceeded), errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF),
		errors.Is(err, driver.ErrBadConn), pgconn.Timeout(err):
		return true
	}
	// pgconn's errors for a connection that is closed, or failed before a query was sent.
	var unsent interface{ SafeToRetry() bool }
	return errors.As(err, &unsent) && unsent.SafeToRetry()
}

// busyAtOpen reports whether err is SQLite finding its file locked while opening it: a
// connection's first statements (switching to WAL) do not wait for another process that is
// opening or migrating the same file at that moment, so Open tries again.
func busyAtOpen(err error) bool {
	var sqliteErr sqlite3.Error
	return errors.As(err, &sqliteErr) && sqliteErr.Code == sqlite3.ErrBusy
}
