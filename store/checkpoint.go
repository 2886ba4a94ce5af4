package store

import (
	"context"
	"database/sql"
	"time"
)

// checkpointInterval is how often the checkpointer copies the WAL's committed pages into
// the SQLite file.
const checkpointInterval = 100 * time.Millisecond

// walRestartFrames bounds the WAL (in pages, some 4 KiB each) that background checkpoints
// let grow under sustained writes: past it, one checkpoint runs on the writer itself.
const walRestartFrames = 4096

// checkpointer runs SQLite's WAL checkpoints in the background, on a connection of its own.
// Left to SQLite, the commit that grows the WAL past 1,000 pages runs one itself — the copy
// and an fsync of the database file, tens of milliseconds — while every write queued behind
// it on the one writer (token issuances, commands waiting for their ack) waits, some ten
// times a second under load. A PASSIVE checkpoint waits for nobody: it copies what no
// reader still needs, and the writer starts the WAL over at its next transaction once all
// of it is copied. Under writes that never pause, the copy never catches up with the
// writer; once the WAL passes walRestartFrames, one checkpoint runs on the writer
// connection, between two of its transactions, so that the WAL starts over.
type checkpointer struct {
	db     *sql.DB // a connection of its own
	writer *sql.DB
	stop   context.CancelFunc // ends run, and a checkpoint under way
	done   chan struct{}
}

func startCheckpointer(dsn string, writer *sql.DB) (*checkpointer, error) {
	db, err := sql.Open("sqlite3", dsn)
	if err != nil {
		return nil, err
	}
	db.SetMaxOpenConns(1)
	ctx, stop := context.WithCancel(context.Background())
	c := &checkpointer{db: db, writer: writer, stop: stop, done: make(chan struct{})}
	go c.run(ctx)
	return c, nil
}

func (c *checkpointer) run(ctx context.Context) {
	defer close(c.done)
	tick := time.NewTicker(checkpointInterval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			// Busy (another process checkpointing or holding a lock) is no failure: the
			// next tick tries again, and the WAL stays whole meanwhile.
			if frames, err := checkpoint(ctx, c.db); err == nil && frames > walRestartFrames {
				checkpoint(ctx, c.writer)
			}
		}
	}
}

// checkpoint runs a PASSIVE checkpoint on db and returns the WAL's length in frames.
func checkpoint(ctx context.Context, db *sql.DB) (int, error) {
	var busy, frames, copied int
	err := db.QueryRowContext(ctx, "PRAGMA wal_checkpoint(PASSIVE)").Scan(&busy, &frames, &copied)
	return frames, err
}

func (c *checkpointer) close() {
	c.stop()
	<-c.done
	c.db.Close()
}
