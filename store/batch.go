package store

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/gatehouse/gatehouse/app"
)

// maxBatch bounds how many writes share one transaction, so that a batch commits within a
// few milliseconds even when many requests queue behind it.
const maxBatch = 64

// gatherWindow bounds how long a batch waits for more writes under load (see gather).
const gatherWindow = 2 * time.Millisecond

// batchOp is one write of a group commit: it runs inside the batch's transaction and returns
// the audit events it owes. An error from it undoes its own changes (a savepoint) and fails
// only its caller; the other writes of the batch still commit.
type batchOp func(tx *batchTx) ([]app.AuditEvent, error)

type pendingOp struct {
	ctx    context.Context // the caller's: once it ends, the op is no longer applied
	op     batchOp
	writes bool         // the op itself writes (else it only reads and returns events): it needs a savepoint
	state  atomic.Int32 // opQueued, until its batch takes it or its caller abandons it
	err    error
	done   chan struct{}
}

const (
	opQueued int32 = iota
	opTaken
	opAbandoned
)

// committer is a group commit over the writer: concurrent callers queue their writes, one
// goroutine runs whatever is queued in one transaction, and each caller returns once the
// transaction holding its write committed. Under load many writes share a commit (and the
// audit chain's head is moved once per batch); alone, a write waits for nobody.
type committer struct {
	stmts   *batchStatements
	queue   chan *pendingOp
	stopped chan struct{}
}

func newCommitter(stmts *batchStatements) *committer {
	c := &committer{stmts: stmts, queue: make(chan *pendingOp, 4*maxBatch), stopped: make(chan struct{})}
	go c.run()
	return c
}

// errClosed: the store was closed before the write could be queued.
var errClosed = errors.New("store: closed")

// do queues op and waits until the transaction holding it committed or failed. writes
// says whether op writes anything itself. If ctx ends before op's batch applies it (the
// writer is busy, or another process holds the write lock), op is not applied and do
// returns app.ErrBusy; once applied, do waits for its batch's outcome (see batchTimeout).
func (c *committer) do(ctx context.Context, writes bool, op batchOp) error {
	p := &pendingOp{ctx: ctx, op: op, writes: writes, done: make(chan struct{})}
	select {
	case c.queue <- p:
	case <-c.stopped:
		return errClosed
	case <-ctx.Done():
		return fmt.Errorf("%w: %w", app.ErrBusy, ctx.Err())
	}
	select {
	case <-p.done:
		return p.err
	case <-c.stopped: // queued as the store closed: done by the last batch, or never
		select {
		case <-p.done:
			return p.err
		default:
			return errClosed
		}
	case <-ctx.Done():
		if p.state.CompareAndSwap(opQueued, opAbandoned) {
			return fmt.Errorf("%w: %w", app.ErrBusy, ctx.Err())
		}
		<-p.done
		return p.err
	}
}

// close stops taking writes, commits those queued and returns when they are done.
func (c *committer) close() {
	c.queue <- nil // the stop mark: everything queued before it is committed
	<-c.stopped
}

func (c *committer) run() {
	defer close(c.stopped)
	window := time.NewTimer(time.Hour)
	window.Stop()
	loaded := false // the previous batch held more than one write
	for {
		first := <-c.queue
		if first == nil {
			return
		}
		batch, stop := c.gather([]*pendingOp{first}, loaded, window)
		c.commit(batch)
		if stop {
			c.drain()
			return
		}
		loaded = len(batch) > 1
	}
}

// gather adds what is queued to batch. Under load (the previous batch held more than one
// write) it waits for more, until the batch is full or for at most gatherWindow: each
// commit's fixed cost (begin, the audit chain's head, the commit's own write to the WAL)
// is then shared by more tokens, which under load buys more throughput than the wait
// costs in latency (as PostgreSQL's commit_delay does when other transactions are
// active). Alone, a write waits for nobody. stop reports the stop mark.
func (c *committer) gather(batch []*pendingOp, loaded bool, window *time.Timer) ([]*pendingOp, bool) {
	waiting := false
	defer func() {
		if waiting {
			window.Stop()
		}
	}()
	for len(batch) < maxBatch {
		select {
		case p := <-c.queue:
			if p == nil {
				return batch, true
			}
			batch = append(batch, p)
			continue
		default:
		}
		if !loaded {
			return batch, false
		}
		if !waiting {
			window.Reset(gatherWindow)
			waiting = true
		}
		select {
		case p := <-c.queue:
			if p == nil {
				return batch, true
			}
			batch = append(batch, p)
		case <-window.C:
			waiting = false
			return batch, false
		}
	}
	return batch, false
}

// drain fails whatever was queued after the stop mark by a caller racing close.
func (c *committer) drain() {
	for {
		select {
		case p := <-c.queue:
			if p != nil {
				p.err = errClosed
				close(p.done)
			}
		default:
			return
		}
	}
}

// apply runs one write of a batch, under a savepoint if it writes. Its own failure is
// recorded in p; the error returned is the database's, and fails the batch.
func (c *committer) apply(tx *batchTx, p *pendingOp) ([]app.AuditEvent, error) {
	if !p.state.CompareAndSwap(opQueued, opTaken) { // its caller abandoned it
		return nil, nil
	}
	if err := p.ctx.Err(); err != nil { // its caller is giving up: what it would record is not handed out
		p.err = fmt.Errorf("%w: %w", app.ErrBusy, err)
		return nil, nil
	}
	if !p.writes {
		owed, err := p.op(tx)
		if err != nil {
			p.err = err
			return nil, nil
		}
		return owed, nil
	}
	if _, err := tx.exec(stSavepoint); err != nil {
		return nil, err
	}
	owed, err := p.op(tx)
	if err != nil {
		p.err, owed = err, nil
		if _, err := tx.exec(stRollbackTo); err != nil {
			return nil, err
		}
	}
	_, err = tx.exec(stRelease)
	return owed, err
}

// commit runs one batch in one transaction, each write under its own savepoint, then the
// audit events of the writes that succeeded, then commits and wakes every caller.
func (c *committer) commit(batch []*pendingOp) {
	err := c.transaction(batch, func(tx *batchTx) error {
		var events []app.AuditEvent
		for _, p := range batch {
			owed, err := c.apply(tx, p)
			if err != nil {
				return err
			}
			events = append(events, owed...)
		}
		return tx.appendEvents(events)
	})
	for _, p := range batch {
		if err != nil && p.err == nil {
			p.err = fmt.Errorf("store: group commit: %w", translateSQL(c.stmts.gorm, err))
		}
		close(p.done)
	}
}

// batchTimeout bounds one batch's transaction, so that a database that stops answering
// fails the batch instead of holding the committer; a batch whose callers all have
// deadlines stops its work at the latest of them (see batchDeadline).
const batchTimeout = 10 * time.Second

// commitTimeout is what a batch's COMMIT has after its work's deadline: cutting a COMMIT
// short (on PostgreSQL, by dropping the connection) could leave a write committed whose
// callers were told it failed.
const commitTimeout = 5 * time.Second

// batchDeadline is when batch stops waiting for the write lock and running its statements:
// once its last caller would have given up, or batchTimeout from now, whichever comes
// first. A caller whose write its batch took waits for the batch's outcome, so this (plus
// commitTimeout at worst) bounds that wait too.
func batchDeadline(batch []*pendingOp) time.Time {
	end := time.Now().Add(batchTimeout)
	var latest time.Time
	for _, p := range batch {
		d, ok := p.ctx.Deadline()
		if !ok {
			return end
		}
		if d.After(latest) {
			latest = d
		}
	}
	if latest.Before(end) {
		return latest
	}
	return end
}

// transaction runs f in one transaction on the writer and commits it, or rolls it back if f
// fails.
func (c *committer) transaction(batch []*pendingOp, f func(tx *batchTx) error) error {
	deadline := batchDeadline(batch)
	ctx, cancel := context.WithDeadline(context.Background(), deadline.Add(commitTimeout)) // BEGIN and COMMIT
	defer cancel()
	work, cancelWork := context.WithDeadline(ctx, deadline)
	defer cancelWork()
	tx, err := c.begin(ctx, work, batch)
	if err != nil {
		return err
	}
	if err := f(tx); err != nil {
		tx.tx.Rollback()
		return err
	}
	return tx.tx.Commit()
}

// begin begins the batch's transaction in ctx, its statements to run in work. While
// another process holds the write lock it tries again (SQLite's own wait is short, see
// sqliteParams) for as long as one of the batch's callers still waits and work allows:
// then app.ErrBusy, and nothing of the batch was applied.
func (c *committer) begin(ctx, work context.Context, batch []*pendingOp) (*batchTx, error) {
	for {
		tx, err := c.stmts.begin(ctx, work)
		if err == nil || !lockedOut(err) {
			return tx, err
		}
		if !stillWaited(batch) || work.Err() != nil {
			return nil, fmt.Errorf("%w: %w", app.ErrBusy, err)
		}
		select {
		case <-work.Done():
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// stillWaited reports whether a caller of batch still waits for its write.
func stillWaited(batch []*pendingOp) bool {
	for _, p := range batch {
		if p.state.Load() == opQueued && p.ctx.Err() == nil {
			return true
		}
	}
	return false
}
