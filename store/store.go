// Package store keeps Gatehouse's state in SQL through gorm: requests, decisions, grants and
// the audit trail. Rows are converted to app types at this boundary and gorm errors to app
// sentinels. Repositories record; they never decide (that is app's job).
//
// Everything here is dialect-neutral gorm except Open, the one place that knows SQLite.
package store

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"runtime"

	"gorm.io/driver/sqlite"
	"gorm.io/gorm"
	"gorm.io/gorm/logger"

	"github.com/gatehouse/gatehouse/app"
)

// Store is the SQL-backed implementation of the app's storage interfaces.
//
// It holds two connection pools: db, the one writer, and read, several readers that never
// wait for it (WAL lets readers go on while a write is in progress). Writes on the token path
// go through batch, a group commit over the writer.
type Store struct {
	db      *gorm.DB // the writer: transactions and single writes
	read    *gorm.DB // readers: queries outside a transaction
	batch   *committer
	revoked revocationCache
}

var _ app.RequestStore = (*Store)(nil)

// Open opens (creating if needed) the SQLite database at path and brings its schema up to date.
//
// SQLite-specific: WAL, a busy timeout so other processes' writers queue instead of
// failing, foreign keys on, and BEGIN IMMEDIATE so a transaction that reads then writes
// holds the write lock from its start (two approvers at once serialise instead of
// deadlocking on a lock upgrade).
//
// Writes go through one connection: SQLite has one writer anyway, and queueing in Go is
// cheaper than writers sleeping in SQLite's busy handler, each holding an OS thread.
// Reads outside a transaction use a pool of read-only connections, one per core or more,
// so that no lock is shared by every request.
func Open(path string) (*Store, error) {
	// Created 0600 before SQLite opens it: SQLite gives the -wal and -shm files the
	// database file's permissions.
	if f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600); err == nil {
		f.Close()
	} else if !errors.Is(err, fs.ErrExist) {
		return nil, fmt.Errorf("store: create %s: %w", path, err)
	}
	q := url.Values{}
	q.Set("_journal_mode", "WAL")
	q.Set("_busy_timeout", "10000")
	q.Set("_foreign_keys", "on")
	q.Set("_txlock", "immediate")
	// NORMAL: a commit reaches the WAL file before it is acknowledged, so a killed process
	// loses nothing; only a power cut may lose the last commits before a checkpoint.
	q.Set("_synchronous", "NORMAL")
	dsn := "file:" + url.PathEscape(path) + "?" + q.Encode()
	db, err := openPool(dsn, 1)
	if err != nil {
		return nil, fmt.Errorf("store: open %s: %w", path, err)
	}
	s := &Store{db: db, read: db}
	if err := s.migrate(); err != nil {
		s.Close()
		return nil, fmt.Errorf("store: open %s: %w", path, err)
	}
	q.Del("_journal_mode") // set by the writer, once for the file
	q.Set("_query_only", "true")
	q.Set("_txlock", "deferred")
	if s.read, err = openPool("file:"+url.PathEscape(path)+"?"+q.Encode(), max(4, 2*runtime.GOMAXPROCS(0))); err != nil {
		s.read = nil
		s.Close()
		return nil, fmt.Errorf("store: open %s: %w", path, err)
	}
	stmts, err := prepareBatchStatements(s.db)
	if err != nil {
		s.Close()
		return nil, fmt.Errorf("store: open %s: %w", path, err)
	}
	s.batch = newCommitter(stmts)
	return s, nil
}

func openPool(dsn string, conns int) (*gorm.DB, error) {
	db, err := gorm.Open(sqlite.Open(dsn), &gorm.Config{
		Logger:                 logger.Discard,
		TranslateError:         true,
		SkipDefaultTransaction: true, // single writes are atomic anyway; multi-row changes use Transaction
	})
	if err != nil {
		return nil, err
	}
	sqlDB, err := db.DB()
	if err != nil {
		return nil, err
	}
	sqlDB.SetMaxOpenConns(conns)
	sqlDB.SetMaxIdleConns(conns)
	return db, nil
}

// ReadableByOthers returns those of the database's files (the file, -wal, -shm) that
// users other than the owner may read or write: a copy of them gives away every grant and
// token record. Start-up warns about them.
func ReadableByOthers(path string) []string {
	var loose []string
	for _, p := range []string{path, path + "-wal", path + "-shm"} {
		if info, err := os.Stat(p); err == nil && info.Mode().Perm()&0o077 != 0 {
			loose = append(loose, fmt.Sprintf("%s (%s)", p, info.Mode().Perm()))
		}
	}
	return loose
}

func (s *Store) migrate() error {
	if err := s.db.AutoMigrate(&requestRow{}, &decisionRow{}, &grantRow{}, &auditEventRow{}, &loginRow{}, &refreshTokenRow{}, &sessionRow{}, &authRequestRow{}, &browserSessionRow{}, &signingKeyRow{}, &revocationRow{}, &revocationHeadRow{}, &codeGuessRow{}); err != nil {
		return err
	}
	if err := s.db.Migrator().DropTable("access_tokens"); err != nil { // access tokens are self-contained JWTs now
		return err
	}
	if err := migrateRevocationHead(s.db); err != nil {
		return err
	}
	return migrateAuditChain(s.db)
}

// Close finishes the batched writes already queued, then closes the database.
func (s *Store) Close() error {
	if s.batch != nil {
		s.batch.close()
		s.batch.stmts.close()
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

// translate maps gorm errors to app sentinels, keeping the original in the chain.
func translate(err error) error {
	switch {
	case errors.Is(err, gorm.ErrRecordNotFound):
		return fmt.Errorf("%w: %w", app.ErrNotFound, err)
	case errors.Is(err, gorm.ErrDuplicatedKey):
		return fmt.Errorf("%w: %w", app.ErrConflict, err)
	}
	return err
}
