package keys

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/lifeboat-vault/lifeboat/internal/lifeboat"
)

// MasterKey seals and opens catalog secrets.
type MasterKey struct {
	aead cipher.AEAD
}

// LoadOrCreate reads the master key file at path (64 hex characters, mode
// 0600), creating it with a fresh random key if it does not exist. A file
// readable by group or others is refused.
func LoadOrCreate(path string) (*MasterKey, bool, error) {
	b, err := os.ReadFile(path)
	created := false
	if errors.Is(err, fs.ErrNotExist) {
		key := make([]byte, 32)
		if _, err := rand.Read(key); err != nil {
			return nil, false, err
		}
		if err := WriteSecretFile(path, []byte(hex.EncodeToString(key)+"\n")); err != nil {
			return nil, false, err
		}
		b, created = []byte(hex.EncodeToString(key)), true
	} else if err != nil {
		return nil, false, lifeboat.Errorf(lifeboat.EUnavailable, "master key %s: %v", path, err)
	} else if err := CheckPrivate(path); err != nil {
		return nil, false, err
	}
	key, err := hex.DecodeString(strings.TrimSpace(string(b)))
	if err != nil || len(key) != 32 {
		return nil, false, lifeboat.Errorf(lifeboat.EInvalid, "master key %s: want 64 hex characters", path)
	}
	m, err := New(key)
	return m, created, err
}

// New makes a master key from 32 bytes.
func New(key []byte) (*MasterKey, error) {
	if len(key) != 32 {
		return nil, fmt.Errorf("master key: %d bytes, want 32", len(key))
	}
	blk, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	aead, err := cipher.NewGCM(blk)
	if err != nil {
		return nil, err
	}
	return &MasterKey{aead: aead}, nil
}

// Seal encrypts a secret bound to its name.
func (m *MasterKey) Seal(name string, plain []byte) string {
	nonce := make([]byte, m.aead.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		panic(err)
	}
	out := m.aead.Seal(nonce, nonce, plain, []byte(name))
	return "v1:" + base64.StdEncoding.EncodeToString(out)
}

// Open decrypts a sealed secret; it fails if the value was sealed under
// another key or another name, or was altered.
func (m *MasterKey) Open(name, sealed string) ([]byte, error) {
	rest, ok := strings.CutPrefix(sealed, "v1:")
	if !ok {
		return nil, lifeboat.Errorf(lifeboat.ECorrupt, "sealed secret %q: unknown format", name)
	}
	b, err := base64.StdEncoding.DecodeString(rest)
	ns := m.aead.NonceSize()
	if err != nil || len(b) < ns+m.aead.Overhead() {
		return nil, lifeboat.Errorf(lifeboat.ECorrupt, "sealed secret %q: malformed", name)
	}
	plain, err := m.aead.Open(nil, b[:ns], b[ns:], []byte(name))
	if err != nil {
		return nil, lifeboat.Errorf(lifeboat.EAuth, "sealed secret %q does not open with this server's master key", name)
	}
	return plain, nil
}

// CheckPrivate refuses a secret file that group or others may read.
func CheckPrivate(path string) error {
	st, err := os.Stat(path)
	if err != nil {
		return lifeboat.Errorf(lifeboat.EUnavailable, "%s: %v", path, err)
	}
	if st.Mode().Perm()&0o077 != 0 {
		return lifeboat.Errorf(lifeboat.EInvalid, "%s is readable by others (mode %04o); chmod 600 it", path, st.Mode().Perm())
	}
	return nil
}

// WriteSecretFile writes data to a new file readable only by its owner
// (never replacing an existing one), fsynced.
func WriteSecretFile(path string, data []byte) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return lifeboat.Errorf(lifeboat.EUnavailable, "write %s: %v", path, err)
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// RandomPassphrase returns a generated vault passphrase: 32 random bytes,
// base64url.
func RandomPassphrase() string {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return base64.RawURLEncoding.EncodeToString(b)
}
