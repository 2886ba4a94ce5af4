package app_test

import (
	"crypto/sha256"
	"encoding/hex"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/app"
)

// The chain hash is a contract (it seals trails written by every version): the SHA-256 of
// the fields as netstrings, in the documented order.
func TestChainHashIsTheDocumentedEncoding(t *testing.T) {
	e := app.AuditEvent{
		ID: 42, PrevHash: "ab12", At: time.Date(2026, 12, 4, 10, 0, 0, 123456000, time.FixedZone("CET", 3600)),
		Actor: "U0BOB", Action: app.ActionTokenRevoked, Principal: app.User("U0ALICE"), RequestID: "req_1",
		GrantID: "grt_1", Reason: "a reason, with: punctuation", Source: app.SourceOIDC,
	}
	encoded := "4:ab12,2:42,27:2026-12-04T09:00:00.123456Z,5:U0BOB,13:token.revoked,4:user,7:U0ALICE,5:req_1,5:grt_1,27:a reason, with: punctuation,4:oidc,"
	sum := sha256.Sum256([]byte(encoded))
	if got, want := e.ChainHash(), hex.EncodeToString(sum[:]); got != want {
		t.Errorf("ChainHash() = %s, want %s (sha256 of %q)", got, want, encoded)
	}
}
