package policy

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"runtime"
)

// The admin key file is a PEM "PRIVATE KEY" block holding the Ed25519
// private key in PKCS #8 (RFC 8410), as `openssl genpkey -algorithm
// ed25519` writes it. rewind creates it with mode 0600 and refuses to read
// one that others than its owner may read.

// pemType is the PEM block type of a PKCS #8 private key.
const pemType = "PRIVATE KEY"

// ErrKeyFileOpen: the admin key file may be read by other users.
var ErrKeyFileOpen = errors.New("admin key file is readable by other users")

// Fingerprint names a public key for people: "SHA256:" and the unpadded
// standard base64 of the SHA-256 of the 32 raw key bytes. (OpenSSH hashes
// its own encoding of a key, so its fingerprints differ.)
func Fingerprint(pub ed25519.PublicKey) string {
	sum := sha256.Sum256(pub)
	return "SHA256:" + base64.RawStdEncoding.EncodeToString(sum[:])
}

// GenerateKey makes a new admin key.
func GenerateKey() (ed25519.PrivateKey, error) {
	_, key, err := ed25519.GenerateKey(rand.Reader)
	return key, err
}

// EncodeKey returns key as the PEM text of an admin key file.
func EncodeKey(key ed25519.PrivateKey) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: pemType, Bytes: der}), nil
}

// DecodeKey reads the PEM text of an admin key file.
func DecodeKey(b []byte) (ed25519.PrivateKey, error) {
	block, rest := pem.Decode(b)
	if block == nil || block.Type != pemType {
		return nil, fmt.Errorf("no PEM %q block", pemType)
	}
	if p, _ := pem.Decode(rest); p != nil {
		return nil, errors.New("more than one PEM block")
	}
	k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, err
	}
	key, ok := k.(ed25519.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("a %T, not an Ed25519 key", k)
	}
	return key, nil
}

// ReadKeyFile reads the admin key from file. On Unix it refuses a file
// that its group or others may read (ErrKeyFileOpen).
func ReadKeyFile(file string) (ed25519.PrivateKey, error) {
	f, err := os.Open(file)
	if err != nil {
		return nil, fmt.Errorf("read admin key: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("read admin key: %w", err)
	}
	if runtime.GOOS != "windows" && fi.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("%w: %s has mode %04o; run chmod 600 on it", ErrKeyFileOpen, file, fi.Mode().Perm())
	}
	b, err := io.ReadAll(io.LimitReader(f, 64<<10))
	if err != nil {
		return nil, fmt.Errorf("read admin key %s: %w", file, err)
	}
	key, err := DecodeKey(b)
	if err != nil {
		return nil, fmt.Errorf("read admin key %s: not an Ed25519 private key in PEM: %w", file, err)
	}
	return key, nil
}

// WriteKeyFile writes key to a new file with mode 0600. It never replaces
// an existing file.
func WriteKeyFile(file string, key ed25519.PrivateKey) error {
	text, err := EncodeKey(key)
	if err != nil {
		return err
	}
	f, err := os.OpenFile(file, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("write admin key: %w", err)
	}
	if _, err := f.Write(text); err != nil {
		f.Close()
		os.Remove(file)
		return fmt.Errorf("write admin key %s: %w", file, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		os.Remove(file)
		return fmt.Errorf("write admin key %s: %w", file, err)
	}
	return f.Close()
}

// LoadOrCreateKeyFile reads the admin key from file, or, when file does
// not exist, makes a new key and writes it there (created is true). A file
// that exists but holds no admin key is an error and is left alone.
func LoadOrCreateKeyFile(file string) (key ed25519.PrivateKey, created bool, err error) {
	key, err = ReadKeyFile(file)
	if err == nil {
		return key, false, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return nil, false, err
	}
	if key, err = GenerateKey(); err != nil {
		return nil, false, err
	}
	if err := WriteKeyFile(file, key); err != nil {
		return nil, false, err
	}
	return key, true, nil
}
