package app

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strconv"
	"time"
)

// ChainHash returns the hash that seals e into the audit trail after the event whose hash
// is e.PrevHash: the hex SHA-256 of these fields, in this order, each written as a
// netstring ("<length in bytes>:<bytes>,"): prev_hash, id (decimal), at (UTC, RFC 3339
// with nanoseconds), actor, action, principal kind, principal ID, request ID, grant ID,
// reason, source. The length prefixes make the encoding unambiguous: no two different
// events encode alike, whatever their text holds. e.Hash itself is not hashed.
func (e AuditEvent) ChainHash() string {
	buf := make([]byte, 0, 256)
	for _, field := range [...]string{
		e.PrevHash, strconv.FormatUint(e.ID, 10), e.At.UTC().Format(time.RFC3339Nano), e.Actor, e.Action,
		string(e.Principal.Kind), e.Principal.ID, e.RequestID, e.GrantID, e.Reason, e.Source,
	} {
		buf = strconv.AppendInt(buf, int64(len(field)), 10)
		buf = append(append(append(buf, ':'), field...), ',')
	}
	sum := sha256.Sum256(buf)
	return hex.EncodeToString(sum[:])
}

// AuditVerification is what checking the audit trail found: how many events, oldest
// first, are intact, and the first broken link if there is one.
type AuditVerification struct {
	Events   int    // events found intact, in trail order
	LastID   uint64 // the last intact event; 0 before the first
	LastHash string // its hash
	BrokenAt uint64 // the event where the chain breaks; 0 while it holds
	Problem  string // what is wrong, in words; empty while the chain holds
}

// OK reports whether the trail checked so far is intact.
func (v AuditVerification) OK() bool { return v.Problem == "" }

// Check takes the next event of the trail, in ID order, and reports whether it follows the
// last intact event and still matches its hash. Once a problem is found it returns false
// and records nothing more: the first broken link is the one to investigate.
func (v *AuditVerification) Check(e AuditEvent) bool {
	switch {
	case !v.OK():
		return false
	case e.PrevHash != v.LastHash:
		v.BrokenAt = e.ID
		v.Problem = fmt.Sprintf("event %d does not follow %s: an event was deleted or reordered", e.ID, v.last())
	case e.ChainHash() != e.Hash:
		v.BrokenAt = e.ID
		v.Problem = fmt.Sprintf("event %d was edited (its hash does not match its content)", e.ID)
	default:
		v.Events++
		v.LastID, v.LastHash = e.ID, e.Hash
		return true
	}
	return false
}

// CheckHead compares where the trail ends with the chain head, the record of the newest
// event kept apart from the events. Only the head shows that the newest events were
// deleted: what remains is still a valid chain.
func (v *AuditVerification) CheckHead(lastID uint64, lastHash string) {
	switch {
	case !v.OK():
	case lastID != v.LastID:
		end := "has no events"
		if v.LastID > 0 {
			end = fmt.Sprintf("ends at event %d", v.LastID)
		}
		v.BrokenAt = lastID
		v.Problem = fmt.Sprintf("the chain head says the last event is %d, but the trail %s: the newest events were deleted", lastID, end)
	case lastHash != v.LastHash:
		v.BrokenAt = lastID
		v.Problem = fmt.Sprintf("the chain head says event %d has hash %s, but it has hash %s: the newest event was replaced",
			lastID, lastHash, v.LastHash)
	}
}

// last names the last intact event, for messages.
func (v AuditVerification) last() string {
	if v.LastID == 0 {
		return "the start of the trail"
	}
	return fmt.Sprintf("event %d", v.LastID)
}
