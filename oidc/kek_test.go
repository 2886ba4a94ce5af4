package oidc_test

import (
	"bytes"
	"context"
	"crypto/x509"
	"database/sql"
	"strings"
	"testing"

	_ "github.com/mattn/go-sqlite3"

	"github.com/gatehouse/gatehouse/app"
	"github.com/gatehouse/gatehouse/oidc"
)

var testKEK = mustKEK("AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=")

func mustKEK(text string) *oidc.KeyEncryptionKey {
	k, err := oidc.ParseKeyEncryptionKey(text)
	if err != nil {
		panic(err)
	}
	return k
}

// privateKeys reads the private_key column straight from the SQLite file, as someone with
// a copy of the database would.
func privateKeys(t *testing.T, path string) map[string][]byte {
	t.Helper()
	db, err := sql.Open("sqlite3", path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	rows, err := db.Query("SELECT id, private_key FROM signing_keys")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	keys := map[string][]byte{}
	for rows.Next() {
		var id string
		var key []byte
		if err := rows.Scan(&id, &key); err != nil {
			t.Fatal(err)
		}
		keys[id] = key
	}
	return keys
}

// No private key is in the database in clear: what is stored does not parse as a key and
// decrypts only with the key-encryption key.
func TestSigningKeysEncryptedAtRest(t *testing.T) {
	ctx := context.Background()
	path := dbPath(t)
	kr := oidc.NewKeyring(openStore(t, path), testKEK, newClock().Now, maxTokenLifetime)
	if err := kr.EnsureKey(ctx, app.AlgRS256); err != nil {
		t.Fatal(err)
	}
	if _, err := kr.Rotate(ctx, app.AlgES256); err != nil {
		t.Fatal(err)
	}
	stored := privateKeys(t, path)
	if len(stored) != 2 {
		t.Fatalf("%d keys stored, want 2", len(stored))
	}
	for id, blob := range stored {
		if _, err := x509.ParsePKCS8PrivateKey(blob); err == nil || bytes.HasPrefix(blob, []byte{0x30}) {
			t.Errorf("key %s is stored in clear", id)
		}
	}
	other, _, _ := oidc.GenerateKeyEncryptionKey()
	wrong := oidc.NewKeyring(openStore(t, path), other, newClock().Now, maxTokenLifetime)
	if err := wrong.EnsureKey(ctx, app.AlgRS256); err == nil || !strings.Contains(err.Error(), "gatehouse keys rewrap") {
		t.Errorf("with another key-encryption key: %v, want a refusal pointing at keys rewrap", err)
	}
}

// Keys an older Gatehouse stored in clear are sealed at start, and still sign.
func TestClearKeysSealedAtStart(t *testing.T) {
	ctx := context.Background()
	path := dbPath(t)
	s := openStore(t, path)
	clear := oidc.ClearKeyForTest(t, app.AlgRS256, newClock().Now())
	if err := s.AddSigningKey(ctx, clear); err != nil {
		t.Fatal(err)
	}
	kr := oidc.NewKeyring(s, testKEK, newClock().Now, maxTokenLifetime)
	if err := kr.EnsureKey(ctx, app.AlgRS256); err == nil {
		t.Fatal("a clear key was used without being sealed first")
	}
	n, err := kr.SealClearKeys(ctx)
	if err != nil || n != 1 {
		t.Fatalf("SealClearKeys = %d, %v; want 1", n, err)
	}
	if err := kr.EnsureKey(ctx, app.AlgRS256); err != nil {
		t.Fatal(err)
	}
	if got := activeKey(t, kr).ID(); got != clear.ID {
		t.Errorf("active key %s, want the old one %s kept", got, clear.ID)
	}
	if bytes.Equal(privateKeys(t, path)[clear.ID], clear.PrivateKey) {
		t.Error("the old key is still stored in clear")
	}
}

// Rewrap moves every key to a new key-encryption key; the keys stay the same.
func TestRewrapToNewKeyEncryptionKey(t *testing.T) {
	ctx := context.Background()
	path := dbPath(t)
	old := oidc.NewKeyring(openStore(t, path), testKEK, newClock().Now, maxTokenLifetime)
	if err := old.EnsureKey(ctx, app.AlgES256); err != nil {
		t.Fatal(err)
	}
	kid := activeKey(t, old).ID()
	newKEK, _, _ := oidc.GenerateKeyEncryptionKey()
	kr := oidc.NewKeyring(openStore(t, path), newKEK, newClock().Now, maxTokenLifetime)
	if n, err := kr.Rewrap(ctx, testKEK); err != nil || n != 1 {
		t.Fatalf("Rewrap = %d, %v; want 1", n, err)
	}
	if err := kr.EnsureKey(ctx, app.AlgES256); err != nil {
		t.Fatal(err)
	}
	if got := activeKey(t, kr).ID(); got != kid {
		t.Errorf("active key %s after rewrap, want %s", got, kid)
	}
	if n, err := kr.Rewrap(ctx, testKEK); err != nil || n != 0 {
		t.Errorf("second Rewrap = %d, %v; want nothing left to do", n, err)
	}
}
