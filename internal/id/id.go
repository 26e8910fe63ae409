// Package id holds the 32-byte identifiers used for blobs, packs, indexes,
// snapshots and keys.
package id

import (
	"encoding/hex"
	"fmt"
)

// Size is the length of an ID in bytes.
const Size = 32

// ID names a blob (keyed BLAKE3 of its plaintext) or a stored file (BLAKE3
// of its bytes).
type ID [Size]byte

// Null is the zero ID. It never names real content; in a file's content list
// it marks a hole.
var Null ID

// String returns the ID as 64 lowercase hex digits.
func (i ID) String() string { return hex.EncodeToString(i[:]) }

// Short returns the first 8 hex digits, as shown in listings.
func (i ID) Short() string { return hex.EncodeToString(i[:4]) }

// IsNull reports whether i is the zero ID.
func (i ID) IsNull() bool { return i == Null }

// Parse decodes 64 hex digits.
func Parse(s string) (ID, error) {
	var i ID
	if len(s) != 2*Size {
		return i, fmt.Errorf("invalid ID %q: want %d hex digits", s, 2*Size)
	}
	if _, err := hex.Decode(i[:], []byte(s)); err != nil {
		return i, fmt.Errorf("invalid ID %q: %w", s, err)
	}
	return i, nil
}

// MarshalText encodes the ID as hex, for JSON.
func (i ID) MarshalText() ([]byte, error) { return []byte(i.String()), nil }

// UnmarshalText decodes hex, for JSON.
func (i *ID) UnmarshalText(b []byte) error {
	v, err := Parse(string(b))
	if err != nil {
		return err
	}
	*i = v
	return nil
}
