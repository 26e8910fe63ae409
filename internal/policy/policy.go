package policy

import (
	"bytes"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/rewind-backup/rewind/internal/id"
)

// Limits on the values of a policy file. MaxSeq keeps sequence numbers
// exact in every JSON reader (2^53 - 1); MaxMinRetention (100 years of
// 365 days) keeps the minimum retention far inside a time.Duration.
const (
	MaxSeq          = 1<<53 - 1
	MaxMinRetention = 100 * 365 * 24 * time.Hour
)

// signedHeader starts SignedBytes; it names the encoding so that a
// signature made for anything else never verifies as a policy.
const signedHeader = "rewind policy v1\n"

// ErrInvalid marks a policy file that is malformed: a reader ignores it.
var ErrInvalid = errors.New("invalid policy file")

// Policy is one policy file: the settings it sets and what chains and
// signs it.
type Policy struct {
	// Seq numbers the policies of a chain from 1.
	Seq uint64
	// Previous is the file name of the policy this one replaces (Seq-1);
	// the null ID for Seq 1.
	Previous id.ID
	// MinRetention: forget removes no snapshot younger than this. 0 means
	// no minimum.
	MinRetention time.Duration
	// AdminKey is the key that must sign the next policy.
	AdminKey ed25519.PublicKey
	// Time is when the policy was made, in whole seconds.
	Time time.Time
	// Signature is the Ed25519 signature of SignedBytes by the admin key
	// of the previous policy (for Seq 1: by AdminKey itself).
	Signature []byte

	// File is the name of the file the policy was loaded from or saved
	// as; it is not stored inside the file.
	File id.ID
}

// fileJSON is the stored form (docs/FORMAT.md). MinRetention is a
// pointer so that a missing field is told from 0.
type fileJSON struct {
	Seq            uint64 `json:"seq"`
	Previous       string `json:"previous,omitempty"`
	MinRetention   *int64 `json:"min_retention"`
	AdminPublicKey string `json:"admin_public_key"`
	Time           string `json:"time"`
	Signature      string `json:"signature"`
}

// timeLayout is the only accepted form of "time": RFC 3339 in UTC, whole
// seconds.
const timeLayout = "2006-01-02T15:04:05Z"

// SignedBytes returns the exact bytes the admin key signs: ASCII lines,
// each ended by "\n", binding the policy to the repository repo.
//
//	rewind policy v1
//	repository <repository ID, 64 lowercase hex digits>
//	seq <decimal>
//	previous <file name of policy seq-1, 64 lowercase hex digits, or "none">
//	min_retention <seconds, decimal>
//	admin_public_key <the 32-byte key, 64 lowercase hex digits>
//	time <Unix seconds, decimal>
func (p *Policy) SignedBytes(repo id.ID) []byte {
	prev := "none"
	if p.Seq > 1 {
		prev = p.Previous.String()
	}
	var b bytes.Buffer
	b.WriteString(signedHeader)
	fmt.Fprintf(&b, "repository %s\n", repo)
	fmt.Fprintf(&b, "seq %d\n", p.Seq)
	fmt.Fprintf(&b, "previous %s\n", prev)
	fmt.Fprintf(&b, "min_retention %d\n", int64(p.MinRetention/time.Second))
	fmt.Fprintf(&b, "admin_public_key %s\n", hex.EncodeToString(p.AdminKey))
	fmt.Fprintf(&b, "time %d\n", p.Time.Unix())
	return b.Bytes()
}

// Sign sets p's signature, made with key over SignedBytes(repo).
func (p *Policy) Sign(repo id.ID, key ed25519.PrivateKey) {
	p.Signature = ed25519.Sign(key, p.SignedBytes(repo))
}

// VerifiedBy reports whether p's signature was made by signer.
func (p *Policy) VerifiedBy(repo id.ID, signer ed25519.PublicKey) bool {
	if len(signer) != ed25519.PublicKeySize || len(p.Signature) != ed25519.SignatureSize {
		return false
	}
	return ed25519.Verify(signer, p.SignedBytes(repo), p.Signature)
}

// validate checks the values of p against the format's rules.
func (p *Policy) validate() error {
	switch {
	case p.Seq < 1 || p.Seq > MaxSeq:
		return fmt.Errorf("seq %d is out of range 1 to %d", p.Seq, uint64(MaxSeq))
	case p.Seq == 1 && !p.Previous.IsNull():
		return errors.New("policy 1 names a previous policy")
	case p.Seq > 1 && p.Previous.IsNull():
		return fmt.Errorf("policy %d names no previous policy", p.Seq)
	case p.MinRetention < 0 || p.MinRetention > MaxMinRetention || p.MinRetention%time.Second != 0:
		return fmt.Errorf("min_retention %v is not a whole number of seconds from 0 to %d", p.MinRetention, int64(MaxMinRetention/time.Second))
	case len(p.AdminKey) != ed25519.PublicKeySize:
		return fmt.Errorf("admin_public_key has %d bytes, want %d", len(p.AdminKey), ed25519.PublicKeySize)
	case len(p.Signature) != ed25519.SignatureSize:
		return fmt.Errorf("signature has %d bytes, want %d", len(p.Signature), ed25519.SignatureSize)
	case p.Time.Unix() < 0 || !p.Time.Equal(p.Time.Truncate(time.Second)):
		return fmt.Errorf("time %v is not whole seconds after 1970", p.Time)
	}
	return nil
}

// Encode returns the JSON that is sealed into a policy file.
func (p *Policy) Encode() ([]byte, error) {
	if err := p.validate(); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	secs := int64(p.MinRetention / time.Second)
	f := fileJSON{
		Seq:            p.Seq,
		MinRetention:   &secs,
		AdminPublicKey: base64.StdEncoding.EncodeToString(p.AdminKey),
		Time:           p.Time.UTC().Format(timeLayout),
		Signature:      base64.StdEncoding.EncodeToString(p.Signature),
	}
	if p.Seq > 1 {
		f.Previous = p.Previous.String()
	}
	return json.Marshal(f)
}

// Decode reads the JSON of a policy file. It checks the form of every
// field, not the signature (that needs the chain, see Resolve). Unknown
// fields are refused: a signature covers only the fields this version
// knows, so a field it cannot check must not be trusted. Errors match
// ErrInvalid.
func Decode(plain []byte) (*Policy, error) {
	p, err := decode(plain)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	return p, nil
}

func decode(plain []byte) (*Policy, error) {
	d := json.NewDecoder(bytes.NewReader(plain))
	d.DisallowUnknownFields()
	var f fileJSON
	if err := d.Decode(&f); err != nil {
		return nil, err
	}
	if _, err := d.Token(); err != io.EOF {
		return nil, errors.New("data after the JSON object")
	}
	if f.MinRetention == nil {
		return nil, errors.New("min_retention is missing")
	}
	if *f.MinRetention < 0 || *f.MinRetention > int64(MaxMinRetention/time.Second) {
		return nil, fmt.Errorf("min_retention %d is out of range", *f.MinRetention)
	}
	p := &Policy{Seq: f.Seq, MinRetention: time.Duration(*f.MinRetention) * time.Second}
	if f.Previous != "" {
		prev, err := id.Parse(f.Previous)
		if err != nil || prev.String() != f.Previous {
			return nil, fmt.Errorf("previous %q is not 64 lowercase hex digits", f.Previous)
		}
		p.Previous = prev
	}
	var err error
	if p.AdminKey, err = canonicalBase64("admin_public_key", f.AdminPublicKey); err != nil {
		return nil, err
	}
	if p.Signature, err = canonicalBase64("signature", f.Signature); err != nil {
		return nil, err
	}
	t, err := time.Parse(timeLayout, f.Time)
	if err != nil || t.Format(timeLayout) != f.Time {
		return nil, fmt.Errorf("time %q is not of the form %s", f.Time, timeLayout)
	}
	p.Time = t
	if err := p.validate(); err != nil {
		return nil, err
	}
	return p, nil
}

// canonicalBase64 decodes standard, padded base64 and refuses any other
// spelling of the same bytes.
func canonicalBase64(field, s string) ([]byte, error) {
	b, err := base64.StdEncoding.Strict().DecodeString(s)
	if err != nil || base64.StdEncoding.EncodeToString(b) != s {
		return nil, fmt.Errorf("%s is not standard base64", field)
	}
	return b, nil
}
