package oidc

import (
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/app"
)

// ClearKeyForTest makes a signing key stored in clear, as Gatehouse did before keys were
// encrypted at rest.
func ClearKeyForTest(t *testing.T, alg string, now time.Time) app.SigningKey {
	t.Helper()
	k, err := generateKey(alg, now)
	if err != nil {
		t.Fatal(err)
	}
	return k
}
