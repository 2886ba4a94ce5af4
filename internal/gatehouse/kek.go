package gatehouse

import (
	"errors"
	"fmt"
	"io/fs"
	"os"

	"github.com/gatehouse/gatehouse/internal/config"
	"github.com/gatehouse/gatehouse/oidc"
)

// kekEnv holds the key-encryption key itself, in standard base64.
const kekEnv = "GATEHOUSE_KEY_ENCRYPTION_KEY"

// keyEncryptionKey says where the key that encrypts signing keys at rest comes from, and
// returns it with a word for where: GATEHOUSE_KEY_ENCRYPTION_KEY, else the file
// tokens.key_encryption_key_file, else — with SQLite — a 0600 file beside the database,
// created on first start, so that a copy of the database alone never signs a token. (This
// is the one place to require an explicit key for a database on another machine.)
func keyEncryptionKey(cfg *config.Config, getenv func(string) string) (*oidc.KeyEncryptionKey, string, error) {
	if text := getenv(kekEnv); text != "" {
		kek, err := oidc.ParseKeyEncryptionKey(text)
		if err != nil {
			return nil, "", fmt.Errorf("%s: %w", kekEnv, err)
		}
		return kek, kekEnv, nil
	}
	if path := cfg.Tokens.KeyEncryptionKeyFile; path != "" {
		kek, err := readKEKFile(path)
		return kek, path, err
	}
	path := cfg.Database + ".kek"
	kek, err := readKEKFile(path)
	if !errors.Is(err, fs.ErrNotExist) {
		return kek, path, err
	}
	kek, text, err := oidc.GenerateKeyEncryptionKey()
	if err != nil {
		return nil, "", err
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, fs.ErrExist) { // another process created it first
		kek, err := readKEKFile(path)
		return kek, path, err
	}
	if err != nil {
		return nil, "", fmt.Errorf("key-encryption key: %w", err)
	}
	_, err = fmt.Fprintln(f, text)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, "", fmt.Errorf("key-encryption key: %w", err)
	}
	return kek, path + " (created now: back it up apart from the database)", nil
}

// readKEKFile reads a key-encryption key file, refusing one other users may read.
func readKEKFile(path string) (*oidc.KeyEncryptionKey, error) {
	info, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("key-encryption key: %w", err)
	}
	if info.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("key-encryption key file %s is %s: other users may read it; chmod 600 it", path, info.Mode().Perm())
	}
	text, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("key-encryption key: %w", err)
	}
	kek, err := oidc.ParseKeyEncryptionKey(string(text))
	if err != nil {
		return nil, fmt.Errorf("key-encryption key file %s: %w", path, err)
	}
	return kek, nil
}
