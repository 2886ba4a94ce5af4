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

	"gorm.io/driver/sqlite"
	"gorm.io/gorm"
	"gorm.io/gorm/logger"

	"github.com/gatehouse/gatehouse/app"
)

// Store is the SQL-backed implementation of the app's storage interfaces.
type Store struct {
	db *gorm.DB
}

var _ app.RequestStore = (*Store)(nil)

// Open opens (creating if needed) the SQLite database at path and brings its schema up to date.
//
// SQLite-specific: WAL, a busy timeout so other processes' writers queue instead of
// failing, foreign keys on, and BEGIN IMMEDIATE so a transaction that reads then writes
// holds the write lock from its start (two approvers at once serialise instead of
// deadlocking on a lock upgrade).
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
	q.Set("_synchronous", "NORMAL")
	dsn := "file:" + url.PathEscape(path) + "?" + q.Encode()
	db, err := gorm.Open(sqlite.Open(dsn), &gorm.Config{
		Logger:                 logger.Discard,
		TranslateError:         true,
		SkipDefaultTransaction: true, // single writes are atomic anyway; multi-row changes use Transaction
	})
	if err != nil {
		return nil, fmt.Errorf("store: open %s: %w", path, err)
	}
	sqlDB, err := db.DB()
	if err != nil {
		return nil, fmt.Errorf("store: open %s: %w", path, err)
	}
	// One connection: SQLite has one writer anyway, and queueing in Go is cheaper than
	// writers sleeping in SQLite's busy handler, each holding an OS thread.
	sqlDB.SetMaxOpenConns(1)
	s := &Store{db: db}
	if err := s.migrate(); err != nil {
		s.Close()
		return nil, fmt.Errorf("store: open %s: %w", path, err)
	}
	return s, nil
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
	if err := s.db.AutoMigrate(&requestRow{}, &decisionRow{}, &grantRow{}, &auditEventRow{}, &loginRow{}, &accessTokenRow{}, &refreshTokenRow{}, &sessionRow{}, &authRequestRow{}, &browserSessionRow{}, &signingKeyRow{}, &codeGuessRow{}); err != nil {
		return err
	}
	return migrateAuditChain(s.db)
}

// Close closes the database.
func (s *Store) Close() error {
	sqlDB, err := s.db.DB()
	if err != nil {
		return err
	}
	return sqlDB.Close()
}

// Ping reports whether the database answers.
func (s *Store) Ping(ctx context.Context) error {
	sqlDB, err := s.db.DB()
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
