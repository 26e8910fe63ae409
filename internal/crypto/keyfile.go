package crypto

import (
	"bytes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/user"
	"time"

	"golang.org/x/crypto/argon2"
	"golang.org/x/crypto/chacha20poly1305"
)

// ErrInvalidKeyFile means a key file is malformed or asks for something
// this version does not support.
var ErrInvalidKeyFile = errors.New("invalid key file")

// Key file format constants (see the package doc).
const (
	KeyFileVersion = 1
	KDFArgon2id    = "argon2id"
	SaltSize       = 32

	// MaxKeyFileSize bounds what ParseKeyFile reads; real ones are ~500 bytes.
	MaxKeyFileSize = 64 << 10

	maxKDFTime      = 100
	maxKDFMemoryKiB = 4 << 20  // 4 GiB
	maxKDFWork      = 16 << 20 // time × memory, in KiB: 16 GiB
	wrappedSize     = MaterialSize + Overhead
)

// KDFParams are argon2id's cost parameters.
type KDFParams struct {
	Time      uint32 `json:"time"`       // passes over memory
	MemoryKiB uint32 `json:"memory_kib"` // memory in KiB
	Threads   uint8  `json:"threads"`    // parallelism (lanes)
}

var (
	// DefaultKDFParams is used for new key files: OWASP's recommended
	// argon2id setting (19 MiB, two passes, one lane), about 40 ms on the
	// reference 2-core machine. Every command pays it once, so it is kept
	// cheap enough for continuous snapshots; on that machine a 64 MiB
	// setting costs 0.2 s, most of it faulting in the memory. A generated
	// default password has 256 bits of entropy and needs no stretching.
	DefaultKDFParams = KDFParams{Time: 2, MemoryKiB: 19 << 10, Threads: 1}

	// TestKDFParams is cheap enough to run many times in tests. Never use
	// it for real key files.
	TestKDFParams = KDFParams{Time: 1, MemoryKiB: 64, Threads: 1}
)

// Validate checks that the parameters are within what ParseKeyFile
// accepts.
func (p KDFParams) Validate() error {
	switch {
	case p.Time < 1 || p.Time > maxKDFTime:
		return fmt.Errorf("%w: argon2id time %d outside 1..%d", ErrInvalidKeyFile, p.Time, maxKDFTime)
	case p.Threads < 1:
		return fmt.Errorf("%w: argon2id threads is 0", ErrInvalidKeyFile)
	case p.MemoryKiB < 8*uint32(p.Threads):
		return fmt.Errorf("%w: argon2id memory %d KiB below 8 KiB per thread", ErrInvalidKeyFile, p.MemoryKiB)
	case p.MemoryKiB > maxKDFMemoryKiB:
		return fmt.Errorf("%w: argon2id memory %d KiB above 4 GiB", ErrInvalidKeyFile, p.MemoryKiB)
	case uint64(p.Time)*uint64(p.MemoryKiB) > maxKDFWork:
		return fmt.Errorf("%w: argon2id time %d × memory %d KiB above 16 GiB", ErrInvalidKeyFile, p.Time, p.MemoryKiB)
	}
	return nil
}

// KeyFile is the JSON document that wraps the master key under a
// password. Its fields map one to one to the JSON in the package doc.
type KeyFile struct {
	Version  int       `json:"version"`
	KDF      string    `json:"kdf"`
	Params   KDFParams `json:"params"`
	Salt     []byte    `json:"salt"`
	Created  time.Time `json:"created"`
	Hostname string    `json:"hostname"`
	Username string    `json:"username"`
	Data     []byte    `json:"data"`
}

// WrapKey seals k's material under a key derived from password with
// argon2id and a fresh random salt. Created, Hostname and Username are
// filled in from the clock and the system; callers may overwrite them.
// To change a password, Unwrap with the old one and WrapKey with the new.
func WrapKey(k *Key, password []byte, p KDFParams) (*KeyFile, error) {
	if err := p.Validate(); err != nil {
		return nil, fmt.Errorf("wrap key: %w", err)
	}
	kf := &KeyFile{
		Version:  KeyFileVersion,
		KDF:      KDFArgon2id,
		Params:   p,
		Salt:     make([]byte, SaltSize),
		Created:  time.Now().UTC(),
		Hostname: hostname(),
		Username: username(),
	}
	if _, err := rand.Read(kf.Salt); err != nil {
		return nil, fmt.Errorf("wrap key: salt: %w", err)
	}
	aead, err := kf.wrappingAEAD(password)
	if err != nil {
		return nil, fmt.Errorf("wrap key: %w", err)
	}
	nonce := make([]byte, NonceSize, wrappedSize)
	if _, err := rand.Read(nonce); err != nil {
		return nil, fmt.Errorf("wrap key: nonce: %w", err)
	}
	kf.Data = aead.Seal(nonce, nonce, k.material[:], nil)
	return kf, nil
}

// Unwrap derives the wrapping key from password and opens the master
// key. A wrong password (or a damaged data field) gives an error wrapping
// ErrWrongPassword; a malformed KeyFile one wrapping ErrInvalidKeyFile.
func (kf *KeyFile) Unwrap(password []byte) (*Key, error) {
	if err := kf.Validate(); err != nil {
		return nil, fmt.Errorf("unwrap key: %w", err)
	}
	aead, err := kf.wrappingAEAD(password)
	if err != nil {
		return nil, fmt.Errorf("unwrap key: %w", err)
	}
	material, err := aead.Open(nil, kf.Data[:NonceSize], kf.Data[NonceSize:], nil)
	if err != nil {
		return nil, fmt.Errorf("unwrap key: %w", ErrWrongPassword)
	}
	defer clear(material)
	return KeyFromMaterial(material)
}

// wrappingAEAD runs argon2id on password and the key file's salt and
// params, and returns the AEAD keyed with the result.
func (kf *KeyFile) wrappingAEAD(password []byte) (cipher.AEAD, error) {
	p := kf.Params
	wk := argon2.IDKey(password, kf.Salt, p.Time, p.MemoryKiB, p.Threads, KeySize)
	defer clear(wk)
	return chacha20poly1305.NewX(wk)
}

// Validate checks every field except the unauthenticated informational
// ones (Created, Hostname, Username).
func (kf *KeyFile) Validate() error {
	switch {
	case kf.Version != KeyFileVersion:
		return fmt.Errorf("%w: unsupported version %d (this program reads version %d)",
			ErrInvalidKeyFile, kf.Version, KeyFileVersion)
	case kf.KDF != KDFArgon2id:
		return fmt.Errorf("%w: unsupported kdf %q (want %q)", ErrInvalidKeyFile, kf.KDF, KDFArgon2id)
	case len(kf.Salt) != SaltSize:
		return fmt.Errorf("%w: salt is %d bytes, want %d", ErrInvalidKeyFile, len(kf.Salt), SaltSize)
	case len(kf.Data) != wrappedSize:
		return fmt.Errorf("%w: data is %d bytes, want %d", ErrInvalidKeyFile, len(kf.Data), wrappedSize)
	}
	return kf.Params.Validate()
}

// ParseKeyFile decodes and validates a key file. It does not run the KDF.
func ParseKeyFile(b []byte) (*KeyFile, error) {
	if len(b) > MaxKeyFileSize {
		return nil, fmt.Errorf("parse key file: %w: %d bytes, more than %d", ErrInvalidKeyFile, len(b), MaxKeyFileSize)
	}
	// Read the version first, so a newer file gets a version error rather
	// than one about fields this version does not know.
	var probe struct {
		Version *int `json:"version"`
	}
	if err := json.Unmarshal(b, &probe); err != nil {
		return nil, fmt.Errorf("parse key file: %w: %w", ErrInvalidKeyFile, err)
	}
	if probe.Version == nil {
		return nil, fmt.Errorf("parse key file: %w: no version", ErrInvalidKeyFile)
	}
	if *probe.Version != KeyFileVersion {
		return nil, fmt.Errorf("parse key file: %w: unsupported version %d (this program reads version %d)",
			ErrInvalidKeyFile, *probe.Version, KeyFileVersion)
	}

	kf := &KeyFile{}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(kf); err != nil {
		return nil, fmt.Errorf("parse key file: %w: %w", ErrInvalidKeyFile, err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, fmt.Errorf("parse key file: %w: data after the JSON object", ErrInvalidKeyFile)
	}
	if err := kf.Validate(); err != nil {
		return nil, fmt.Errorf("parse key file: %w", err)
	}
	return kf, nil
}

// Marshal validates kf and encodes it as indented JSON with a final
// newline.
func (kf *KeyFile) Marshal() ([]byte, error) {
	if err := kf.Validate(); err != nil {
		return nil, fmt.Errorf("marshal key file: %w", err)
	}
	b, err := json.MarshalIndent(kf, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("marshal key file: %w", err)
	}
	return append(b, '\n'), nil
}

func hostname() string {
	h, _ := os.Hostname()
	return h
}

func username() string {
	if u, err := user.Current(); err == nil {
		return u.Username
	}
	return os.Getenv("USER")
}
