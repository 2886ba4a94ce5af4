package app

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"math/big"
	"strings"
	"time"
)

// HashSecret returns the hex SHA-256 of a high-entropy secret (device codes, refresh
// tokens), the form in which such secrets are stored and looked up.
func HashSecret(secret string) string {
	sum := sha256.Sum256([]byte(secret))
	return hex.EncodeToString(sum[:])
}

// userCodeAlphabet has no vowels (no words) and no look-alike characters.
const userCodeAlphabet = "BCDFGHJKLMNPQRSTVWXZ"

// newUserCode returns a code like BCDF-GHJK: 20^8 ≈ 2.6e10 possibilities.
func newUserCode() string {
	var b strings.Builder
	for i := range 8 {
		if i == 4 {
			b.WriteByte('-')
		}
		n, _ := rand.Int(rand.Reader, big.NewInt(int64(len(userCodeAlphabet))))
		b.WriteByte(userCodeAlphabet[n.Int64()])
	}
	return b.String()
}

// NormalizeUserCode accepts a code typed loosely (bcdf ghjk, BCDFGHJK) and writes it the
// way it was issued.
func NormalizeUserCode(typed string) string {
	var b strings.Builder
	for _, c := range strings.ToUpper(typed) {
		if strings.ContainsRune(userCodeAlphabet, c) {
			b.WriteRune(c)
		}
	}
	code := b.String()
	if len(code) == 8 {
		code = code[:4] + "-" + code[4:]
	}
	return code
}

// Guessing limits for user codes, per Slack user, counted in the database so that every
// replica counts the same attempts.
const (
	maxWrongCodes    = 5
	wrongCodesWindow = 10 * time.Minute
)
