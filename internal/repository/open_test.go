package repository

import (
	"context"
	"encoding/json"
	"errors"
	"maps"
	"strings"
	"testing"

	"github.com/rewind-backup/rewind/internal/backend"
	"github.com/rewind-backup/rewind/internal/backend/local"
	"github.com/rewind-backup/rewind/internal/backend/mem"
	"github.com/rewind-backup/rewind/internal/chunker"
	"github.com/rewind-backup/rewind/internal/crypto"
)

var configHandle = backend.Handle{Type: backend.ConfigFile}

func TestInitOpen(t *testing.T) {
	ctx := context.Background()
	r, be := newMemRepo(t)
	cfg := r.Config()
	if cfg.Version != FormatVersion || cfg.ID.IsNull() || cfg.PackSize != DefaultPackSize || cfg.Compression != "zstd" {
		t.Fatalf("unexpected defaults: %+v", cfg)
	}
	if r.KeyName() == "" {
		t.Fatal("Init did not record its key name")
	}
	r2, err := Open(ctx, be, testPassword)
	if err != nil {
		t.Fatal(err)
	}
	defer closeCodecs(r2)
	got := r2.Config()
	if got.Version != cfg.Version || got.ID != cfg.ID || !got.Created.Equal(cfg.Created) ||
		got.PackSize != cfg.PackSize || got.Compression != cfg.Compression || !maps.Equal(got.Chunkers, cfg.Chunkers) {
		t.Fatalf("config after Open:\n%+v\nwant\n%+v", got, cfg)
	}
	if r2.KeyName() != r.KeyName() {
		t.Fatalf("opened with key %s, created %s", r2.KeyName(), r.KeyName())
	}
	if r2.Key().BlobID([]byte("x")) != r.Key().BlobID([]byte("x")) {
		t.Fatal("the opened key differs from the created one")
	}
	if r2.Chunker(ProfileDefault) == nil || r2.Chunker(ProfileSmall) == nil {
		t.Fatal("chunkers missing after Open")
	}
	if _, err := Init(ctx, be, testPassword, InitOptions{KDF: crypto.TestKDFParams}); err == nil {
		t.Fatal("Init over an existing repository succeeded")
	}
}

func TestInitOptions(t *testing.T) {
	ctx := context.Background()
	be := mem.New()
	custom := map[string]chunker.Params{ProfileDefault: chunker.SmallParams, ProfileSmall: chunker.SmallParams}
	testInit(t, be, InitOptions{PackSize: 4 << 20, Compression: "none", Chunkers: custom})
	r := reopen(t, be)
	if c := r.Config(); c.PackSize != 4<<20 || c.Compression != "none" || !maps.Equal(c.Chunkers, custom) {
		t.Fatalf("options not kept: %+v", c)
	}
	for _, opt := range []InitOptions{
		{PackSize: 1},
		{Compression: "lz4"},
		{Chunkers: map[string]chunker.Params{ProfileDefault: chunker.DefaultParams}},
	} {
		opt.KDF = crypto.TestKDFParams
		if _, err := Init(ctx, mem.New(), testPassword, opt); err == nil {
			t.Errorf("Init with %+v succeeded", opt)
		}
	}
	if _, err := Init(ctx, mem.New(), nil, InitOptions{KDF: crypto.TestKDFParams}); err == nil {
		t.Error("Init with an empty password succeeded")
	}
}

func TestOpenWrongPassword(t *testing.T) {
	_, be := newMemRepo(t)
	for _, pw := range [][]byte{[]byte("wrong"), nil, append(testPassword, 'x')} {
		_, err := Open(context.Background(), be, pw)
		if !errors.Is(err, ErrWrongPassword) {
			t.Fatalf("password %q: got %v, want ErrWrongPassword", pw, err)
		}
		if errors.Is(err, ErrCorrupt) {
			t.Fatalf("password %q: a wrong password is reported as corruption: %v", pw, err)
		}
	}
}

func TestOpenNoRepository(t *testing.T) {
	ctx := context.Background()
	if _, err := Open(ctx, mem.New(), testPassword); !errors.Is(err, ErrNoRepository) {
		t.Fatalf("empty memory backend: got %v, want ErrNoRepository", err)
	}
	be, err := local.Create(ctx, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer be.Close()
	if _, err := Open(ctx, be, testPassword); !errors.Is(err, ErrNoRepository) {
		t.Fatalf("local folder without config: got %v, want ErrNoRepository", err)
	}
}

// storedConfig returns the clear part of the stored config.
func storedConfig(t *testing.T, raw []byte) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

func TestOpenNewerFormat(t *testing.T) {
	_, dir := newLocalRepo(t)
	rewrite(t, localFile(dir, configHandle), func(b []byte) []byte {
		m := storedConfig(t, b)
		m["version"] = FormatVersion + 1
		out, err := json.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		return out
	})
	// The version is checked before any key: a newer repository is refused
	// the same way whatever the password.
	for _, pw := range [][]byte{testPassword, []byte("wrong")} {
		_, err := openLocal(t, dir, pw)
		if !errors.Is(err, ErrNewerFormat) {
			t.Fatalf("password %q: got %v, want ErrNewerFormat", pw, err)
		}
		if errors.Is(err, ErrWrongPassword) || errors.Is(err, ErrCorrupt) {
			t.Fatalf("newer format also reported as %v", err)
		}
		if msg := err.Error(); !strings.Contains(msg, "upgrade") || !strings.Contains(msg, "version 2") {
			t.Fatalf("message does not name the version and say to upgrade: %q", msg)
		}
	}

	// The same through a memory backend, with a far newer version.
	r, be := newMemRepo(t)
	raw, err := json.Marshal(configFile{Version: 99, Sealed: r.Key().Seal(nil, []byte("{}"))})
	if err != nil {
		t.Fatal(err)
	}
	memReplace(t, be, configHandle, raw)
	if _, err := Open(context.Background(), be, testPassword); !errors.Is(err, ErrNewerFormat) {
		t.Fatalf("version 99: got %v, want ErrNewerFormat", err)
	}
}

// TestOpenBadConfig stores configs that are damaged, or whose sealed part
// disagrees with the clear part: all are corruption, none a newer format.
func TestOpenBadConfig(t *testing.T) {
	r, be := newMemRepo(t)
	good := r.Config()
	sealedConfig := func(change func(*Config)) []byte {
		c := good
		c.Chunkers = maps.Clone(good.Chunkers)
		change(&c)
		b, err := json.Marshal(c)
		if err != nil {
			t.Fatal(err)
		}
		return r.Key().Seal(nil, b)
	}
	stored := func(v int, sealed []byte) []byte {
		b, err := json.Marshal(configFile{Version: v, Sealed: sealed})
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	other, err := crypto.NewRandomKey()
	if err != nil {
		t.Fatal(err)
	}
	goodSealed := sealedConfig(func(*Config) {})
	cases := []struct {
		name string
		raw  []byte
	}{
		{"inner version newer than the clear one", stored(1, sealedConfig(func(c *Config) { c.Version = 2 }))},
		{"inner version 0", stored(1, sealedConfig(func(c *Config) { c.Version = 0 }))},
		{"clear version 0", stored(0, goodSealed)},
		{"clear version negative", stored(-1, goodSealed)},
		{"no version", []byte(`{"sealed":"AAAA"}`)},
		{"not JSON", []byte("version=1")},
		{"empty", []byte{}},
		{"version as a string", []byte(`{"version":"1","sealed":""}`)},
		{"sealed part missing", stored(1, nil)},
		{"sealed part damaged", stored(1, flipBit(goodSealed, len(goodSealed)/2))},
		{"sealed with another key", stored(1, other.Seal(nil, []byte(`{"version":1}`)))},
		{"sealed part not JSON", stored(1, r.Key().Seal(nil, []byte("nope")))},
		{"pack size out of range", stored(1, sealedConfig(func(c *Config) { c.PackSize = 1 }))},
		{"unknown compression", stored(1, sealedConfig(func(c *Config) { c.Compression = "brotli" }))},
		{"profile missing", stored(1, sealedConfig(func(c *Config) { delete(c.Chunkers, ProfileSmall) }))},
		{"bad profile", stored(1, sealedConfig(func(c *Config) { c.Chunkers[ProfileDefault] = chunker.Params{Min: 1, Avg: 2, Max: 3} }))},
	}
	for _, c := range cases {
		memReplace(t, be, configHandle, c.raw)
		_, err := Open(context.Background(), be, testPassword)
		if !errors.Is(err, ErrCorrupt) || errors.Is(err, ErrNewerFormat) {
			t.Errorf("%s: got %v, want ErrCorrupt", c.name, err)
		}
	}
	memReplace(t, be, configHandle, stored(1, goodSealed))
	reopen(t, be)
}

func flipBit(b []byte, i int) []byte {
	c := append([]byte{}, b...)
	c[i] ^= 1
	return c
}

// TestCheckFormat: the format check needs no password.
func TestCheckFormat(t *testing.T) {
	ctx := context.Background()
	if err := CheckFormat(ctx, mem.New()); !errors.Is(err, ErrNoRepository) {
		t.Fatalf("empty backend: got %v, want ErrNoRepository", err)
	}
	r, be := newMemRepo(t)
	if err := CheckFormat(ctx, be); err != nil {
		t.Fatalf("current format: %v", err)
	}
	raw, err := json.Marshal(configFile{Version: FormatVersion + 1, Sealed: r.Key().Seal(nil, []byte("{}"))})
	if err != nil {
		t.Fatal(err)
	}
	memReplace(t, be, configHandle, raw)
	if err := CheckFormat(ctx, be); !errors.Is(err, ErrNewerFormat) || !strings.Contains(err.Error(), "upgrade") {
		t.Fatalf("newer format: got %v, want ErrNewerFormat saying to upgrade", err)
	}
	memReplace(t, be, configHandle, []byte("garbage"))
	if err := CheckFormat(ctx, be); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("garbage config: got %v, want ErrCorrupt", err)
	}
}

// TestDecodeConfigVersion: only a version above FormatVersion is "newer";
// zero and negative versions are damage.
func TestDecodeConfigVersion(t *testing.T) {
	r, _ := newMemRepo(t)
	for _, v := range []int{-1, 0, 1, 2} {
		c := r.Config()
		c.Version = v
		b, err := json.Marshal(c)
		if err != nil {
			t.Fatal(err)
		}
		_, err = DecodeConfig(b, v)
		switch {
		case v == FormatVersion && err != nil:
			t.Errorf("version %d: %v", v, err)
		case v > FormatVersion && !errors.Is(err, ErrNewerFormat):
			t.Errorf("version %d: got %v, want ErrNewerFormat", v, err)
		case v < 1 && (!errors.Is(err, ErrCorrupt) || errors.Is(err, ErrNewerFormat)):
			t.Errorf("version %d: got %v, want ErrCorrupt", v, err)
		}
	}
}
