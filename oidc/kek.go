package oidc

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
)

// KeyEncryptionKey seals signing keys at rest with AES-256-GCM, so that a copy of the
// database alone can never sign a token. Only its ID (a hash) is ever shown.
type KeyEncryptionKey struct {
	aead cipher.AEAD
	id   []byte // first 8 bytes of SHA-256 of the key: names it in sealed keys and errors
}

// sealedPrefix starts every sealed private key; a clear PKCS#8 key starts with 0x30.
var sealedPrefix = []byte("GHK1")

// NewKeyEncryptionKey returns a key-encryption key from 32 random bytes.
func NewKeyEncryptionKey(raw []byte) (*KeyEncryptionKey, error) {
	if len(raw) != 32 {
		return nil, fmt.Errorf("a key-encryption key is 32 bytes, not %d", len(raw))
	}
	block, err := aes.NewCipher(raw)
	if err != nil {
		return nil, err
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	sum := sha256.Sum256(raw)
	return &KeyEncryptionKey{aead: aead, id: sum[:8]}, nil
}

// ParseKeyEncryptionKey reads a key-encryption key written as standard base64 of 32 bytes
// (surrounding space ignored), as GATEHOUSE_KEY_ENCRYPTION_KEY and key files hold it.
func ParseKeyEncryptionKey(text string) (*KeyEncryptionKey, error) {
	raw, err := base64.StdEncoding.DecodeString(strings.TrimSpace(text))
	if err != nil {
		return nil, errors.New("a key-encryption key is 32 random bytes in standard base64 (openssl rand -base64 32)")
	}
	return NewKeyEncryptionKey(raw)
}

// GenerateKeyEncryptionKey returns a new random key-encryption key and its base64 text.
func GenerateKeyEncryptionKey() (*KeyEncryptionKey, string, error) {
	raw := make([]byte, 32)
	rand.Read(raw)
	kek, err := NewKeyEncryptionKey(raw)
	return kek, base64.StdEncoding.EncodeToString(raw), err
}

// ID names the key without revealing it.
func (k *KeyEncryptionKey) ID() string { return hex.EncodeToString(k.id) }

// seal encrypts a signing key's PKCS#8 bytes; the key's ID is authenticated with them, so a
// sealed key cannot be swapped onto another key's row.
func (k *KeyEncryptionKey) seal(keyID string, der []byte) []byte {
	nonce := make([]byte, k.aead.NonceSize())
	rand.Read(nonce)
	out := append(append(append([]byte{}, sealedPrefix...), k.id...), nonce...)
	return k.aead.Seal(out, nonce, der, []byte(keyID))
}

// open decrypts what seal made.
func (k *KeyEncryptionKey) open(keyID string, blob []byte) ([]byte, error) {
	if !sealed(blob) {
		return nil, errors.New("stored in clear (gatehouse serve encrypts it at start)")
	}
	rest := blob[len(sealedPrefix):]
	n := len(k.id) + k.aead.NonceSize()
	if len(rest) < n {
		return nil, errors.New("sealed key is truncated")
	}
	if !bytes.Equal(rest[:len(k.id)], k.id) {
		return nil, fmt.Errorf("encrypted with key-encryption key %x, not the configured %s (see gatehouse keys rewrap)", rest[:len(k.id)], k.ID())
	}
	der, err := k.aead.Open(nil, rest[len(k.id):n], rest[n:], []byte(keyID))
	if err != nil {
		return nil, errors.New("sealed key does not decrypt: altered, or moved from another key's row")
	}
	return der, nil
}

// sealed reports whether a stored private key is sealed rather than clear.
func sealed(blob []byte) bool { return bytes.HasPrefix(blob, sealedPrefix) }
