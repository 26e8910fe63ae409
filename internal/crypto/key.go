package crypto

import (
	"crypto/cipher"
	"crypto/rand"
	"errors"
	"fmt"
	"slices"
	"sync"

	"github.com/zeebo/blake3"
	"golang.org/x/crypto/chacha20poly1305"
)

var (
	// ErrUnauthenticated means a sealed object is truncated or was
	// changed: it is corrupt or forged.
	ErrUnauthenticated = errors.New("ciphertext not authentic")

	// ErrWrongPassword means a key file did not open with the password.
	ErrWrongPassword = errors.New("wrong password")
)

// Sizes of the format.
const (
	KeySize      = 32                          // each of the three keys
	MaterialSize = 3 * KeySize                 // serialized master key
	NonceSize    = chacha20poly1305.NonceSizeX // 24
	TagSize      = chacha20poly1305.Overhead   // 16
	Overhead     = NonceSize + TagSize         // sealed length − plaintext length
)

// Key is a repository master key. It is immutable and safe for concurrent
// use; it must not be copied (it holds a pool), so pass *Key.
type Key struct {
	material [MaterialSize]byte
	aead     cipher.AEAD
	idProto  *blake3.Hasher // keyed with the ID key; only cloned, never written
	hashers  sync.Pool      // of *blake3.Hasher clones of idProto, reset
}

// NewRandomKey returns a master key of fresh random bytes from
// crypto/rand.
func NewRandomKey() (*Key, error) {
	var m [MaterialSize]byte
	if _, err := rand.Read(m[:]); err != nil {
		return nil, fmt.Errorf("new key: %w", err)
	}
	return KeyFromMaterial(m[:])
}

// KeyFromMaterial rebuilds a master key from its MaterialSize-byte
// serialization (see the package doc). Outside key files it is for tests
// that need a fixed key.
func KeyFromMaterial(material []byte) (*Key, error) {
	if len(material) != MaterialSize {
		return nil, fmt.Errorf("key material is %d bytes, want %d", len(material), MaterialSize)
	}
	k := &Key{}
	copy(k.material[:], material)
	var err error
	if k.aead, err = chacha20poly1305.NewX(k.encKey()); err != nil {
		return nil, fmt.Errorf("key: %w", err)
	}
	if k.idProto, err = blake3.NewKeyed(k.idKey()); err != nil {
		return nil, fmt.Errorf("key: %w", err)
	}
	k.hashers.New = func() any { return k.idProto.Clone() }
	return k, nil
}

func (k *Key) encKey() []byte { return k.material[0:KeySize] }
func (k *Key) idKey() []byte  { return k.material[KeySize : 2*KeySize] }

// ChunkerSecret returns the secret that keys the chunker's gear table.
func (k *Key) ChunkerSecret() [KeySize]byte {
	return [KeySize]byte(k.material[2*KeySize:])
}

// Seal encrypts and authenticates plaintext with a fresh random nonce and
// appends nonce || ciphertext || tag to dst, returning the extended
// slice. It allocates only when dst lacks room for len(plaintext) +
// Overhead more bytes. dst and plaintext must not overlap.
func (k *Key) Seal(dst, plaintext []byte) []byte {
	n := len(dst)
	dst = slices.Grow(dst, Overhead+len(plaintext))[:n+NonceSize]
	nonce := dst[n:]
	// crypto/rand.Read never fails since Go 1.24 (it crashes the program
	// rather than return weak randomness), so there is no error to pass on.
	_, _ = rand.Read(nonce)
	return k.aead.Seal(dst, nonce, plaintext, nil)
}

// Open checks and decrypts a sealed object and appends the plaintext to
// dst, returning the extended slice. Any changed byte, a wrong key, or an
// input shorter than Overhead gives an error wrapping ErrUnauthenticated
// and a nil slice. dst and ciphertext must not overlap.
func (k *Key) Open(dst, ciphertext []byte) ([]byte, error) {
	if len(ciphertext) < Overhead {
		return nil, fmt.Errorf("open: %d bytes is shorter than the %d-byte overhead: %w",
			len(ciphertext), Overhead, ErrUnauthenticated)
	}
	out, err := k.aead.Open(dst, ciphertext[:NonceSize], ciphertext[NonceSize:], nil)
	if err != nil {
		return nil, fmt.Errorf("open %d-byte object: %w", len(ciphertext), ErrUnauthenticated)
	}
	return out, nil
}
