package crypto

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite testdata/keyfile-v1.json")

const goldenPassword = "correct horse battery staple"

func TestWrapUnwrap(t *testing.T) {
	k, err := NewRandomKey()
	if err != nil {
		t.Fatal(err)
	}
	kf, err := WrapKey(k, []byte("pw1"), TestKDFParams)
	if err != nil {
		t.Fatal(err)
	}
	b, err := kf.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	kf2, err := ParseKeyFile(b)
	if err != nil {
		t.Fatalf("%v\n%s", err, b)
	}
	k2, err := kf2.Unwrap([]byte("pw1"))
	if err != nil {
		t.Fatal(err)
	}
	if k2.material != k.material {
		t.Fatal("unwrapped a different key")
	}
	if _, err := kf2.Unwrap([]byte("pw2")); !errors.Is(err, ErrWrongPassword) {
		t.Fatalf("wrong password: %v", err)
	}
	if _, err := kf2.Unwrap(nil); !errors.Is(err, ErrWrongPassword) {
		t.Fatalf("empty password: %v", err)
	}

	// Changing the password keeps the master key.
	kf3, err := WrapKey(k2, []byte("pw2"), TestKDFParams)
	if err != nil {
		t.Fatal(err)
	}
	k3, err := kf3.Unwrap([]byte("pw2"))
	if err != nil || k3.material != k.material {
		t.Fatalf("after password change: %v", err)
	}
	if bytes.Equal(kf3.Salt, kf.Salt) || bytes.Equal(kf3.Data, kf.Data) {
		t.Error("rewrapping reused salt or data")
	}
}

func TestUnwrapDamagedData(t *testing.T) {
	kf, err := WrapKey(testKey(t, 0), []byte("pw"), TestKDFParams)
	if err != nil {
		t.Fatal(err)
	}
	for _, i := range []int{0, NonceSize, len(kf.Data) - 1} {
		bad := *kf
		bad.Data = bytes.Clone(kf.Data)
		bad.Data[i] ^= 1
		if _, err := bad.Unwrap([]byte("pw")); !errors.Is(err, ErrWrongPassword) {
			t.Errorf("data byte %d flipped: %v", i, err)
		}
	}
	bad := *kf
	bad.Salt = bytes.Clone(kf.Salt)
	bad.Salt[0] ^= 1
	if _, err := bad.Unwrap([]byte("pw")); !errors.Is(err, ErrWrongPassword) {
		t.Errorf("salt changed: %v", err)
	}
}

// TestGoldenKeyFile opens a key file made by an earlier build: the format
// is a contract. Regenerate (new salt and nonce) with -update.
func TestGoldenKeyFile(t *testing.T) {
	path := filepath.Join("testdata", "keyfile-v1.json")
	if *update {
		kf, err := WrapKey(testKey(t, 0), []byte(goldenPassword), TestKDFParams)
		if err != nil {
			t.Fatal(err)
		}
		kf.Created = time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)
		kf.Hostname, kf.Username = "laptop", "alice"
		b, err := kf.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	kf, err := ParseKeyFile(b)
	if err != nil {
		t.Fatal(err)
	}
	if kf.Hostname != "laptop" || kf.Username != "alice" || kf.Params != TestKDFParams {
		t.Errorf("fields: %+v", kf)
	}
	k, err := kf.Unwrap([]byte(goldenPassword))
	if err != nil {
		t.Fatal(err)
	}
	if got := k.BlobID([]byte("abc")).String(); got != keyedABC {
		t.Errorf("golden key gives BlobID(abc) = %s, want %s", got, keyedABC)
	}
	again, err := kf.Marshal()
	if err != nil || !bytes.Equal(again, b) {
		t.Errorf("re-encoding differs (%v):\n%s\nwant\n%s", err, again, b)
	}
}

// goldenFields returns the golden key file as a generic JSON object, to
// build malformed variants from.
func goldenFields(t *testing.T) map[string]any {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "keyfile-v1.json"))
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

func TestParseKeyFileRejects(t *testing.T) {
	cases := map[string]func(m map[string]any){
		"version 2":      func(m map[string]any) { m["version"] = 2 },
		"version 0":      func(m map[string]any) { m["version"] = 0 },
		"no version":     func(m map[string]any) { delete(m, "version") },
		"version string": func(m map[string]any) { m["version"] = "1" },
		"kdf scrypt":     func(m map[string]any) { m["kdf"] = "scrypt" },
		"no kdf":         func(m map[string]any) { delete(m, "kdf") },
		"time 0":         func(m map[string]any) { m["params"].(map[string]any)["time"] = 0 },
		"time 101":       func(m map[string]any) { m["params"].(map[string]any)["time"] = 101 },
		"threads 0":      func(m map[string]any) { m["params"].(map[string]any)["threads"] = 0 },
		"threads 256":    func(m map[string]any) { m["params"].(map[string]any)["threads"] = 256 },
		"memory 4GiB+1":  func(m map[string]any) { m["params"].(map[string]any)["memory_kib"] = 4<<20 + 1 },
		"memory 2^32":    func(m map[string]any) { m["params"].(map[string]any)["memory_kib"] = 1 << 32 },
		"memory -1":      func(m map[string]any) { m["params"].(map[string]any)["memory_kib"] = -1 },
		"memory 7":       func(m map[string]any) { m["params"].(map[string]any)["memory_kib"] = 7 },
		"work too large": func(m map[string]any) {
			m["params"].(map[string]any)["memory_kib"] = 4 << 20
			m["params"].(map[string]any)["time"] = 5
		},
		"no params":     func(m map[string]any) { delete(m, "params") },
		"short salt":    func(m map[string]any) { m["salt"] = "AAAA" },
		"no salt":       func(m map[string]any) { delete(m, "salt") },
		"salt not b64":  func(m map[string]any) { m["salt"] = "!!" },
		"short data":    func(m map[string]any) { m["data"] = m["salt"] },
		"no data":       func(m map[string]any) { delete(m, "data") },
		"unknown field": func(m map[string]any) { m["extra"] = true },
		"bad created":   func(m map[string]any) { m["created"] = "yesterday" },
	}
	for name, edit := range cases {
		m := goldenFields(t)
		edit(m)
		b, err := json.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := ParseKeyFile(b); !errors.Is(err, ErrInvalidKeyFile) {
			t.Errorf("%s: got %v, want ErrInvalidKeyFile", name, err)
		}
	}

	good, err := json.Marshal(goldenFields(t))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ParseKeyFile(good); err != nil {
		t.Fatalf("unchanged golden file: %v", err)
	}
	for name, b := range map[string][]byte{
		"empty":         nil,
		"null":          []byte("null"),
		"array":         []byte("[]"),
		"trailing data": append(bytes.Clone(good), []byte(" {}")...),
		"truncated":     good[:len(good)/2],
		"huge":          append(bytes.Clone(good), bytes.Repeat([]byte(" "), MaxKeyFileSize)...),
	} {
		if _, err := ParseKeyFile(b); !errors.Is(err, ErrInvalidKeyFile) {
			t.Errorf("%s: got %v, want ErrInvalidKeyFile", name, err)
		}
	}
	for n := range good {
		if _, err := ParseKeyFile(good[:n]); err == nil {
			t.Fatalf("truncated to %d bytes: no error", n)
		}
	}
}

func TestVersionErrorIsClear(t *testing.T) {
	m := goldenFields(t)
	m["version"] = 2
	m["new_field"] = "from the future"
	b, _ := json.Marshal(m)
	_, err := ParseKeyFile(b)
	if err == nil || !strings.Contains(err.Error(), "unsupported version 2") {
		t.Errorf("got %v, want an unsupported-version error", err)
	}
}

func TestKDFParamsValidate(t *testing.T) {
	for _, p := range []KDFParams{DefaultKDFParams, TestKDFParams, {Time: 4, MemoryKiB: 4 << 20, Threads: 255}} {
		if err := p.Validate(); err != nil {
			t.Errorf("%+v: %v", p, err)
		}
	}
	if _, err := WrapKey(testKey(t, 0), []byte("pw"), KDFParams{}); !errors.Is(err, ErrInvalidKeyFile) {
		t.Errorf("WrapKey with zero params: %v", err)
	}
}
