package app

import (
	"log/slog"
	"time"
)

// Signature algorithms Gatehouse makes signing keys for.
const (
	AlgRS256 = "RS256" // RSA 2048 with SHA-256
	AlgES256 = "ES256" // ECDSA P-256 with SHA-256
)

// SigningKey is a key the OpenID Provider signs tokens with, as stored.
//
// Exactly one key is active (RetiredAt zero) at a time. Retired keys are kept, and published,
// for as long as a token they signed may still be valid, so rotating never breaks a token
// already issued.
type SigningKey struct {
	ID         string    // the JWK "kid"
	Algorithm  string    // "RS256" or "ES256"
	PrivateKey []byte    // PKCS#8 DER
	CreatedAt  time.Time // when it was made; also when the key before it was retired
	RetiredAt  time.Time // zero while it is the active key; set when a newer key replaces it
}

// LogValue keeps the private key out of logs.
func (k SigningKey) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("kid", k.ID),
		slog.String("alg", k.Algorithm),
		slog.Time("created_at", k.CreatedAt),
		slog.Time("retired_at", k.RetiredAt),
	)
}
