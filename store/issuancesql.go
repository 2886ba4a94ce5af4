package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"time"

	"gorm.io/gorm"

	"github.com/gatehouse/gatehouse/app"
)

// The group commit writes with hand-written SQL, prepared once on the writer connection:
// gorm would build, prepare and reflect over every statement of every batch, and that was
// most of the token endpoint's CPU time. The statements are written as SQLite's, with the
// row locks PostgreSQL needs (a batch there does not hold the database's one write lock);
// the dialect rewrites them (see dialect.go). The tables and columns are gorm's, migrated
// as usual.
const (
	sqlGrantActive    = `SELECT COUNT(*) FROM (SELECT 1 FROM grants WHERE id = ? AND status = ? AND expires_at > ? FOR SHARE) AS g`
	sqlOpenSession    = `INSERT INTO sessions (id) VALUES (?)`
	sqlSpendLogin     = `UPDATE logins SET status = ?, last_polled_at = ?, version = version + 1 WHERE id = ? AND status = ? AND expires_at > ? AND last_polled_at <= ?`
	sqlSpendCode      = `UPDATE auth_requests SET session_id = ? WHERE id = ? AND code_hash = ? AND session_id = ? AND code_expires_at > ?`
	sqlUseRefresh     = `UPDATE refresh_tokens SET used = ? WHERE hash = ? AND used = ? AND session_id IN (SELECT id FROM sessions WHERE id = refresh_tokens.session_id AND revoked_at IS NULL FOR SHARE)`
	sqlRotateRefresh  = `UPDATE refresh_tokens SET hash = ?, generation = ?, scopes = ? WHERE hash = ? AND chain = ? AND used = ? AND session_id IN (SELECT id FROM sessions WHERE id = refresh_tokens.session_id AND revoked_at IS NULL FOR SHARE)`
	sqlAddRefresh     = `INSERT INTO refresh_tokens (hash, chain, generation, session_id, client_id, subject, scopes, auth_time, expires_at, used) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`
	sqlAuditHead      = `SELECT last_id, last_hash FROM audit_chain_heads WHERE id = ? FOR UPDATE`
	sqlAddAuditEvent  = `INSERT INTO audit_events (id, at, actor, action, principal_kind, principal_id, request_id, grant_id, reason, source, prev_hash, hash) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`
	sqlMoveAuditHead  = `UPDATE audit_chain_heads SET last_id = ?, last_hash = ? WHERE id = ? AND last_hash = ?`
	sqlSavepoint      = `SAVEPOINT issuance`
	sqlRelease        = `RELEASE SAVEPOINT issuance`
	sqlRollbackTo     = `ROLLBACK TO SAVEPOINT issuance`
	batchStatementLen = 13
)

// batchStatements are the group commit's statements, prepared on the writer.
type batchStatements struct {
	db    *sql.DB
	gorm  *gorm.DB // for its error translation
	stmts [batchStatementLen]*sql.Stmt
}

const (
	stGrantActive = iota
	stOpenSession
	stSpendLogin
	stSpendCode
	stUseRefresh
	stRotateRefresh
	stAddRefresh
	stAuditHead
	stAddAuditEvent
	stMoveAuditHead
	stSavepoint
	stRelease
	stRollbackTo
)

func prepareBatchStatements(db *gorm.DB, rewrite func(string) string) (*batchStatements, error) {
	sqlDB, err := db.DB()
	if err != nil {
		return nil, err
	}
	b := &batchStatements{db: sqlDB, gorm: db}
	for i, q := range [batchStatementLen]string{sqlGrantActive, sqlOpenSession, sqlSpendLogin, sqlSpendCode, sqlUseRefresh, sqlRotateRefresh,
		sqlAddRefresh, sqlAuditHead,
		sqlAddAuditEvent, sqlMoveAuditHead, sqlSavepoint, sqlRelease, sqlRollbackTo} {
		if b.stmts[i], err = sqlDB.Prepare(rewrite(q)); err != nil {
			b.close()
			return nil, fmt.Errorf("prepare %q: %w", q, err)
		}
	}
	return b, nil
}

func (b *batchStatements) close() {
	for _, st := range b.stmts {
		if st != nil {
			st.Close()
		}
	}
}

// batchTx is one group commit's transaction, with the statements bound to it.
type batchTx struct {
	ctx   context.Context
	tx    *sql.Tx
	b     *batchStatements
	bound [batchStatementLen]*sql.Stmt
}

// begin begins a transaction in ctx (its COMMIT too) whose statements run in work.
func (b *batchStatements) begin(ctx, work context.Context) (*batchTx, error) {
	tx, err := b.db.BeginTx(ctx, nil) // BEGIN IMMEDIATE (see Open): the batch holds the write lock
	if err != nil {
		return nil, err
	}
	return &batchTx{ctx: work, tx: tx, b: b}, nil
}

func (t *batchTx) stmt(i int) *sql.Stmt {
	if t.bound[i] == nil {
		t.bound[i] = t.tx.StmtContext(t.ctx, t.b.stmts[i]) // reuses the statement prepared on the one writer connection
	}
	return t.bound[i]
}

// exec runs statement i and translates the database's errors as gorm does elsewhere.
func (t *batchTx) exec(i int, args ...any) (sql.Result, error) {
	res, err := t.stmt(i).ExecContext(t.ctx, args...)
	if err != nil {
		return nil, translateSQL(t.b.gorm, err)
	}
	return res, nil
}

func (t *batchTx) queryRow(i int, args ...any) *sql.Row {
	return t.stmt(i).QueryRowContext(t.ctx, args...)
}

// checkGrantsActive fails with app.ErrGrantEnded unless every grant in ids is active and
// unexpired at now. The batch holds SQLite's write lock, or on PostgreSQL a share lock on
// each grant it checks, so a revocation commits either before it (and the check sees it)
// or after the issuance is recorded.
func (t *batchTx) checkGrantsActive(ids []string, now time.Time) error {
	for _, id := range ids {
		var n int
		if err := t.queryRow(stGrantActive, id, string(app.GrantActive), now.UTC()).Scan(&n); err != nil {
			return translateSQL(t.b.gorm, err)
		}
		if n != 1 {
			return fmt.Errorf("%w: %s", app.ErrGrantEnded, id)
		}
	}
	return nil
}

// spendLogin redeems a ready login (see app.LoginSpend): app.ErrConflict if it was spent,
// denied, expired or polled meanwhile.
func (t *batchTx) spendLogin(sp app.LoginSpend) error {
	res, err := t.exec(stSpendLogin, string(app.LoginIssued), sp.At.UTC(), sp.LoginID, string(app.LoginBound), sp.At.UTC(), sp.PolledBefore.UTC())
	return oneRow(res, err, "login spent, denied, expired or polled meanwhile")
}

// spendCode redeems an authorization code for the client session sessionID (see
// app.CodeSpend): app.ErrConflict if it was spent or expired at now.
func (t *batchTx) spendCode(sp app.CodeSpend, sessionID string, now time.Time) error {
	res, err := t.exec(stSpendCode, sessionID, sp.AuthRequestID, sp.CodeHash, "", now.UTC())
	return oneRow(res, err, "authorization code spent or expired")
}

// oneRow is the outcome of a conditional write that must change exactly one row.
func oneRow(res sql.Result, err error, conflict string) error {
	if err != nil {
		return err
	}
	if n, err := res.RowsAffected(); err != nil || n != 1 {
		return fmt.Errorf("%w: %s", app.ErrConflict, conflict)
	}
	return nil
}

func (t *batchTx) openSession(id string) error {
	_, err := t.exec(stOpenSession, id)
	return err
}

// addRefreshToken stores r. When it replaces a token (rotation), the write is conditional
// on that token being unused in a live session, else app.ErrConflict: a later generation
// of a chain takes its predecessor's row in place; a chain's first token replacing a
// token from before chains leaves that one kept, marked used.
func (t *batchTx) addRefreshToken(r app.RefreshToken, replaces string) error {
	const conflict = "refresh token already used or its session revoked"
	scopes, err := json.Marshal(r.Scopes)
	if err != nil {
		return err
	}
	if replaces != "" && r.Generation > 0 { // the scopes may have narrowed: a grant behind one ended
		res, err := t.exec(stRotateRefresh, r.Hash, r.Generation, string(scopes), replaces, r.Chain, false)
		return oneRow(res, err, conflict)
	}
	if replaces != "" {
		res, err := t.exec(stUseRefresh, true, replaces, false)
		if err := oneRow(res, err, conflict); err != nil {
			return err
		}
	}
	_, err = t.exec(stAddRefresh, r.Hash, r.Chain, r.Generation, r.SessionID, r.ClientID, r.Subject, string(scopes), r.AuthTime.UTC(), r.ExpiresAt.UTC(), false)
	return err
}

// appendEvents is store.appendEvents over the prepared statements: the events sealed onto
// the chain head in order, the head moved on only if it still holds the hash read here.
func (t *batchTx) appendEvents(events []app.AuditEvent) error {
	if len(events) == 0 {
		return nil
	}
	var id uint64
	var hash string
	if err := t.queryRow(stAuditHead, chainHeadID).Scan(&id, &hash); err != nil {
		return fmt.Errorf("audit chain head: %w", err)
	}
	sealed := seal(events, id, hash)
	for _, e := range sealed {
		_, err := t.exec(stAddAuditEvent, e.ID, e.At, e.Actor, e.Action, string(e.Principal.Kind), e.Principal.ID, e.RequestID,
			e.GrantID, e.Reason, e.Source, e.PrevHash, e.Hash)
		if err != nil {
			return err
		}
	}
	last := sealed[len(sealed)-1]
	res, err := t.exec(stMoveAuditHead, last.ID, last.Hash, chainHeadID, hash)
	return oneRow(res, err, "another writer extended the audit trail first")
}
