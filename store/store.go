// Package store keeps Gatehouse's state in SQL through gorm: requests, decisions, grants and
// the audit trail. Rows are converted to app types at this boundary and gorm errors to app
// sentinels. Repositories record; they never decide (that is app's job).
//
// The database is SQLite or PostgreSQL; everything here is dialect-neutral gorm except
// dialect.go, the one place that knows which.
package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"time"

	"gorm.io/gorm"
	"gorm.io/gorm/logger"

	"github.com/gatehouse/gatehouse/app"
)

// Store is the SQL-backed implementation of the app's storage interfaces.
//
// It holds two connection pools on SQLite: db, the one writer, and read, several readers
// that never wait for it (WAL lets readers go on while a write is in progress); on
// PostgreSQL one pool serves both. Writes on the token path go through batch, a group
// commit over the writer.
type Store struct {
	db      *gorm.DB // the writer: transactions and single writes
	read    *gorm.DB // readers: queries outside a transaction
	batch   *committer
	reads   *readStatements // the token path's reads, prepared on read
	urgent  *gorm.DB        // PostgreSQL: a pool of its own for urgent transactions (see transactionFirst); else db
	revoked revocationCache
	gate    *writeGate // SQLite: orders the transactions waiting for its one writer; nil on PostgreSQL
	// checkpoints: SQLite's WAL checkpoints, off the writer; nil on PostgreSQL
	checkpoints *checkpointer
	// skipLocked: PostgreSQL, where claims pass over rows other claims locked (see claimable)
	skipLocked bool
}

var _ app.RequestStore = (*Store)(nil)

// Open opens the database — a SQLite file (created if needed) or a PostgreSQL URL with no
// password in it (see CheckDatabase) — and brings its schema up to date.
func Open(database string) (*Store, error) {
	name := database
	if IsPostgres(database) { // never a password in a message
		name = "the PostgreSQL URL"
		if u, err := url.Parse(database); err == nil {
			name = redact(u)
		}
	}
	var s *Store
	var err error
	for attempt := 1; ; attempt++ {
		s, err = open(database)
		if err == nil || !busyAtOpen(err) || attempt == openAttempts {
			break
		}
		time.Sleep(time.Duration(attempt) * 20 * time.Millisecond)
	}
	if err != nil {
		return nil, fmt.Errorf("store: open %s: %w", name, err)
	}
	return s, nil
}

// openAttempts bounds how often Open tries again while another process opens the same
// SQLite file (see busyAtOpen).
const openAttempts = 5

func open(database string) (*Store, error) {
	d, err := dialectOf(database)
	if err != nil {
		return nil, err
	}
	db, err := openPool(d.writer, d.writerPool)
	if err != nil {
		return nil, err
	}
	s := &Store{db: db, read: db, urgent: db, skipLocked: d.skipLocked}
	if d.oneWriter {
		s.gate = &writeGate{}
	}
	if d.urgentPool != nil {
		if s.urgent, err = openPool(d.writer, d.urgentPool); err != nil {
			s.urgent = db
			s.Close()
			return nil, err
		}
	}
	if err := s.migrate(d); err != nil {
		s.Close()
		return nil, err
	}
	if d.readers != nil {
		if s.read, err = openPool(d.readers, d.readerPool); err != nil {
			s.read = nil
			s.Close()
			return nil, err
		}
	}
	stmts, err := prepareBatchStatements(s.db, d.rewrite)
	if err != nil {
		s.Close()
		return nil, err
	}
	s.batch = newCommitter(stmts)
	if d.checkpoints != "" {
		if s.checkpoints, err = startCheckpointer(d.checkpoints, stmts.db); err != nil {
			s.Close()
			return nil, err
		}
	}
	if s.reads, err = prepareReadStatements(s.read, d.rewrite); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

func openPool(dialector gorm.Dialector, configure func(*sql.DB)) (*gorm.DB, error) {
	db, err := gorm.Open(dialector, &gorm.Config{
		Logger:                 logger.Discard,
		TranslateError:         true,
		SkipDefaultTransaction: true, // single writes are atomic anyway; multi-row changes use Transaction
	})
	if err != nil {
		if db != nil {
			if sqlDB, dbErr := db.DB(); dbErr == nil {
				sqlDB.Close()
			}
		}
		return nil, err
	}
	sqlDB, err := db.DB()
	if err != nil {
		return nil, err
	}
	configure(sqlDB)
	return db, nil
}

// Close finishes the batched writes already queued, then closes the database.
func (s *Store) Close() error {
	if s.checkpoints != nil {
		s.checkpoints.close()
		s.checkpoints = nil
	}
	if s.batch != nil {
		s.batch.close()
		s.batch.stmts.close()
	}
	s.reads.close()
	if s.urgent != nil && s.urgent != s.db {
		if sqlDB, err := s.urgent.DB(); err == nil {
			sqlDB.Close()
		}
	}
	if s.read != nil && s.read != s.db {
		if sqlDB, err := s.read.DB(); err == nil {
			sqlDB.Close()
		}
	}
	sqlDB, err := s.db.DB()
	if err != nil {
		return err
	}
	return sqlDB.Close()
}

// Ping reports whether the database answers.
func (s *Store) Ping(ctx context.Context) error {
	sqlDB, err := s.read.DB()
	if err != nil {
		return err
	}
	return sqlDB.PingContext(ctx)
}

// defaultBusyWait bounds the wait for another process's lock when the context has no deadline.
const defaultBusyWait = 10 * time.Second

// transaction runs fn in a write transaction, trying again while another process holds the
// database's write lock, until ctx ends (or defaultBusyWait passes): then it returns
// app.ErrBusy and nothing was written. The database's own wait for a lock is short (see
// sqliteParams) and cannot be cancelled; this one follows the caller's deadline.
func (s *Store) transaction(ctx context.Context, fn func(tx *gorm.DB) error) error {
	return s.transactionFirst(ctx, false, fn)
}

// transactionFirst is transaction; an urgent one goes before the others waiting to write:
// on SQLite first in the writer's queue, on PostgreSQL on connections of its own, so that
// it never waits for a connection held by a write queued on a row lock.
func (s *Store) transactionFirst(ctx context.Context, urgent bool, fn func(tx *gorm.DB) error) error {
	db := s.db
	if urgent {
		db = s.urgent
	}
	deadline := time.Now().Add(defaultBusyWait)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	for {
		err := s.gate.acquire(ctx, urgent)
		if err == nil {
			err = db.WithContext(ctx).Transaction(fn)
			s.gate.release()
		}
		if err == nil || !(lockedOut(err) || errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled)) {
			return err
		}
		if ctx.Err() != nil || time.Until(deadline) < 10*time.Millisecond {
			return fmt.Errorf("%w: %w", app.ErrBusy, err)
		}
		select {
		case <-ctx.Done():
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// CanWrite reports whether the database takes a write now: it takes and releases the write
// lock, within ctx.
func (s *Store) CanWrite(ctx context.Context) error {
	return s.transaction(ctx, func(tx *gorm.DB) error { return tx.Exec("SELECT 1").Error })
}

// translateSQL is translate for the errors of hand-written SQL (readsql.go, issuancesql.go),
// with the dialect's translation first, as gorm applies it to its own queries: on
// PostgreSQL, app.ErrUnavailable when the server does not answer. An error translated
// already is left as it is.
func translateSQL(db *gorm.DB, err error) error {
	if errors.Is(err, app.ErrUnavailable) || errors.Is(err, app.ErrBusy) || errors.Is(err, app.ErrNotFound) || errors.Is(err, app.ErrConflict) {
		return err
	}
	if tr, ok := db.Dialector.(gorm.ErrorTranslator); ok {
		err = tr.Translate(err)
	}
	return translate(err)
}

// translate maps gorm errors to app sentinels, keeping the original in the chain.
func translate(err error) error {
	switch {
	case errors.Is(err, gorm.ErrRecordNotFound):
		return fmt.Errorf("%w: %w", app.ErrNotFound, err)
	case errors.Is(err, gorm.ErrDuplicatedKey):
		return fmt.Errorf("%w: %w", app.ErrConflict, err)
	case unstorable(err):
		return fmt.Errorf("%w: %w", app.ErrNotFound, err)
	}
	return err
}
