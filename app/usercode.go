package app

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"math/big"
	"slices"
	"strings"
	"sync"
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

// Guessing limits for user codes, per Slack user.
const (
	maxWrongCodes    = 5
	wrongCodesWindow = 10 * time.Minute
)

// codeGuesses remembers each user's recent attempts at a code that were not right.
type codeGuesses struct {
	mu       sync.Mutex
	attempts map[string][]time.Time
}

// try reserves an attempt for user at now, or reports that the user is over the limit.
// Reserving before looking the code up keeps a burst of guesses within the limit too.
func (g *codeGuesses) try(user string, now time.Time) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	recent := slices.DeleteFunc(g.attempts[user], func(t time.Time) bool { return now.Sub(t) >= wrongCodesWindow })
	if len(recent) >= maxWrongCodes {
		g.attempts[user] = recent
		return false
	}
	g.attempts[user] = append(recent, now)
	return true
}

// right gives back the attempt reserved at now: the code was right.
func (g *codeGuesses) right(user string, now time.Time) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if i := slices.Index(g.attempts[user], now); i >= 0 {
		g.attempts[user] = slices.Delete(g.attempts[user], i, i+1)
	}
	if len(g.attempts[user]) == 0 {
		delete(g.attempts, user)
	}
}
