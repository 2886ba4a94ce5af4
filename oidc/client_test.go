package oidc

import (
	"testing"

	"golang.org/x/crypto/bcrypt"
)

// A client with a bcrypt secret hash: the right secret passes (the second time without
// bcrypt), a wrong one fails before and after the right one was remembered.
func TestClientSecretHashRemembersOnlyTheRightSecret(t *testing.T) {
	hash, err := bcrypt.GenerateFromPassword([]byte("right"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	c := newClient(ClientConfig{ID: "svc", SecretHash: string(hash)}, 0)
	for _, step := range []struct {
		secret string
		want   bool
	}{{"wrong", false}, {"right", true}, {"right", true}, {"wrong", false}, {"", false}, {"righ", false}} {
		if got := c.checkSecret(step.secret); got != step.want {
			t.Errorf("checkSecret(%q) = %v, want %v", step.secret, got, step.want)
		}
	}
	if c.verified.Load() == nil {
		t.Error("the right secret was not remembered: every request would pay bcrypt")
	}
}
