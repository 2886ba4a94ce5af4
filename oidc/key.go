package oidc

// This file is the key material itself: making, parsing and signing with one key.

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"fmt"
	"log/slog"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/zitadel/oidc/v3/pkg/op"

	"github.com/gatehouse/gatehouse/app"
)

// checkAlgorithm says whether Gatehouse makes and signs with keys of alg.
func checkAlgorithm(alg string) error {
	switch alg {
	case app.AlgRS256, app.AlgES256:
		return nil
	}
	return fmt.Errorf("signing algorithm %q is not supported; use %s or %s", alg, app.AlgRS256, app.AlgES256)
}

// generateKey makes a new key of alg with a random kid, in clear.
func generateKey(alg string, now time.Time) (app.SigningKey, error) {
	if err := checkAlgorithm(alg); err != nil {
		return app.SigningKey{}, err
	}
	var (
		priv crypto.Signer
		err  error
	)
	switch alg {
	case app.AlgRS256:
		priv, err = rsa.GenerateKey(rand.Reader, 2048)
	case app.AlgES256:
		priv, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	}
	if err != nil {
		return app.SigningKey{}, fmt.Errorf("generate %s key: %w", alg, err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return app.SigningKey{}, fmt.Errorf("encode %s key: %w", alg, err)
	}
	return app.SigningKey{ID: newKeyID(), Algorithm: alg, PrivateKey: der, CreatedAt: now}, nil
}

// newKeyID returns 128 random bits, base64url: unguessable, and safe in a JWT header or URL.
func newKeyID() string {
	b := make([]byte, 16)
	rand.Read(b) // never fails (crypto/rand documents it)
	return base64.RawURLEncoding.EncodeToString(b)
}

// parseKey turns a stored key into one go-jose can sign with, checking that the key is
// what its algorithm says.
func parseKey(k app.SigningKey) (*signingKey, error) {
	if err := checkAlgorithm(k.Algorithm); err != nil {
		return nil, fmt.Errorf("signing key %s: %w", k.ID, err)
	}
	priv, err := x509.ParsePKCS8PrivateKey(k.PrivateKey)
	if err != nil {
		return nil, fmt.Errorf("signing key %s: %w", k.ID, err)
	}
	var ok bool
	switch k.Algorithm {
	case app.AlgRS256:
		var key *rsa.PrivateKey
		key, ok = priv.(*rsa.PrivateKey)
		ok = ok && key.N.BitLen() >= 2048
	case app.AlgES256:
		var key *ecdsa.PrivateKey
		key, ok = priv.(*ecdsa.PrivateKey)
		ok = ok && key.Curve == elliptic.P256()
	}
	if !ok {
		return nil, fmt.Errorf("signing key %s: a %T is not an %s key", k.ID, priv, k.Algorithm)
	}
	key := &signingKey{id: k.ID, alg: jose.SignatureAlgorithm(k.Algorithm), key: priv.(crypto.Signer)}
	for typ, signer := range map[string]*jose.Signer{accessTokenType: &key.accessSigner, "JWT": &key.idSigner} {
		*signer, err = jose.NewSigner(jose.SigningKey{Algorithm: key.alg, Key: &jose.JSONWebKey{Key: key.key, KeyID: key.id}},
			(&jose.SignerOptions{}).WithType(jose.ContentType(typ)))
		if err != nil {
			return nil, fmt.Errorf("signing key %s: %w", k.ID, err)
		}
	}
	return key, nil
}

// signingKey implements op.SigningKey, and signs Gatehouse's tokens itself: the library's
// signer marks every JWT "typ": "JWT", where access tokens must say "at+jwt" (RFC 9068).
type signingKey struct {
	id           string
	alg          jose.SignatureAlgorithm
	key          crypto.Signer // *rsa.PrivateKey or *ecdsa.PrivateKey
	accessSigner jose.Signer   // header typ at+jwt
	idSigner     jose.Signer   // header typ JWT
}

// sign returns the compact JWS of payload, with the header typ of an access token when
// access is set and of an ID token otherwise.
func (s *signingKey) sign(payload []byte, access bool) (string, error) {
	signer := s.idSigner
	if access {
		signer = s.accessSigner
	}
	jws, err := signer.Sign(payload)
	if err != nil {
		return "", fmt.Errorf("oidc: sign: %w", err)
	}
	return jws.CompactSerialize()
}

var _ op.SigningKey = (*signingKey)(nil)

func (s *signingKey) SignatureAlgorithm() jose.SignatureAlgorithm { return s.alg }
func (s *signingKey) Key() any                                    { return s.key }
func (s *signingKey) ID() string                                  { return s.id }

// LogValue keeps the private key out of logs.
func (s *signingKey) LogValue() slog.Value {
	return slog.GroupValue(slog.String("kid", s.id), slog.String("alg", string(s.alg)))
}

// publicKey implements op.Key: the public half of a signing key, as published in JWKS.
type publicKey struct {
	id        string
	alg       jose.SignatureAlgorithm
	key       crypto.PublicKey // *rsa.PublicKey or *ecdsa.PublicKey
	retiredAt time.Time        // zero for the active key
}

var _ op.Key = (*publicKey)(nil)

func (p *publicKey) ID() string                         { return p.id }
func (p *publicKey) Algorithm() jose.SignatureAlgorithm { return p.alg }
func (p *publicKey) Use() string                        { return "sig" }
func (p *publicKey) Key() any                           { return p.key }
