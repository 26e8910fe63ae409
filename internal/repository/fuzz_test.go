package repository

import (
	"context"
	"encoding/json"
	"errors"
	"testing"

	"github.com/rewind-backup/rewind/internal/backend/mem"
	"github.com/rewind-backup/rewind/internal/crypto"
)

// FuzzDecodeConfig feeds arbitrary bytes to both config decoders: the clear
// part (parseConfigVersion) and the sealed JSON (DecodeConfig). Neither may
// panic; every error is ErrCorrupt, or ErrNewerFormat for a version above
// FormatVersion only; an accepted config is valid and survives a round
// trip.
func FuzzDecodeConfig(f *testing.F) {
	ctx := context.Background()
	be := mem.New()
	r, err := Init(ctx, be, []byte("fuzz"), InitOptions{KDF: crypto.TestKDFParams})
	if err != nil {
		f.Fatal(err)
	}
	plain, err := json.Marshal(r.Config())
	if err != nil {
		f.Fatal(err)
	}
	stored := memRead(f, be, configHandle)
	f.Add(plain, 1)
	f.Add(plain, 2)
	f.Add(plain, 0)
	f.Add(stored, 1)
	f.Add([]byte(`{"version":2,"sealed":""}`), 2)
	f.Add([]byte(`{"version":0}`), 0)
	f.Add([]byte(`{"version":1,"chunkers":{"default":{"min":1,"avg":3,"max":2}}}`), 1)
	f.Add([]byte(`null`), 1)
	f.Fuzz(func(t *testing.T, b []byte, outer int) {
		cf, err := parseConfigVersion(b)
		if err != nil {
			checkConfigError(t, err, b)
		} else if cf.Version < 1 || cf.Version > FormatVersion {
			t.Fatalf("parseConfigVersion accepted version %d", cf.Version)
		}

		c, err := DecodeConfig(b, outer)
		if err != nil {
			checkConfigError(t, err, b)
			return
		}
		if c.Version != outer || c.Version < 1 || c.Version > FormatVersion {
			t.Fatalf("accepted version %d with clear version %d", c.Version, outer)
		}
		if err := c.validate(); err != nil {
			t.Fatalf("accepted config is invalid: %v", err)
		}
		enc, err := json.Marshal(c)
		if err != nil {
			t.Fatalf("accepted config does not encode: %v", err)
		}
		if _, err := DecodeConfig(enc, outer); err != nil {
			t.Fatalf("re-encoded config rejected: %v\n%s", err, enc)
		}
	})
}

// checkConfigError fails unless err is ErrCorrupt or, for a version newer
// than this rewind's, ErrNewerFormat.
func checkConfigError(t *testing.T, err error, b []byte) {
	t.Helper()
	var v struct{ Version int }
	newer := json.Unmarshal(b, &v) == nil && v.Version > FormatVersion
	switch {
	case errors.Is(err, ErrNewerFormat) && errors.Is(err, ErrCorrupt):
		t.Fatalf("error is both newer format and corrupt: %v", err)
	case errors.Is(err, ErrNewerFormat) && !newer:
		t.Fatalf("ErrNewerFormat for a config that is not newer: %v\n%q", err, b)
	case !errors.Is(err, ErrNewerFormat) && !errors.Is(err, ErrCorrupt):
		t.Fatalf("error is neither ErrCorrupt nor ErrNewerFormat: %v", err)
	}
}
