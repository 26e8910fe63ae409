package crypto

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// FuzzOpen feeds arbitrary bytes to Open: it must never panic, and must
// fail with ErrUnauthenticated unless the input is a real sealed object.
func FuzzOpen(f *testing.F) {
	k := testKey(f, 9)
	for _, pt := range [][]byte{nil, []byte("x"), []byte("hello, rewind"), bytes.Repeat([]byte{7}, 1000)} {
		ct := k.Seal(nil, pt)
		f.Add(ct)
		f.Add(ct[:len(ct)-1])
		f.Add(ct[:Overhead-1])
	}
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, ct []byte) {
		out, err := k.Open(nil, ct)
		if err != nil {
			if !errors.Is(err, ErrUnauthenticated) || out != nil {
				t.Fatalf("got %q, %v", out, err)
			}
			return
		}
		if len(out) != len(ct)-Overhead {
			t.Fatalf("opened %d bytes into %d", len(ct), len(out))
		}
	})
}

// FuzzParseKeyFile feeds arbitrary bytes to ParseKeyFile: it must never
// panic, and what it accepts must re-encode to something it accepts
// again. Accepted files with cheap KDF params are also unwrapped.
func FuzzParseKeyFile(f *testing.F) {
	golden, err := os.ReadFile(filepath.Join("testdata", "keyfile-v1.json"))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(golden)
	f.Add(golden[:len(golden)/2])
	f.Add(bytes.Replace(golden, []byte(`"version": 1`), []byte(`"version": 2`), 1))
	f.Add(bytes.Replace(golden, []byte(`"memory_kib": 64`), []byte(`"memory_kib": 4294967295`), 1))
	f.Add(bytes.Replace(golden, []byte(`"time": 1`), []byte(`"time": 0`), 1))
	f.Add([]byte(`{"version":1}`))
	f.Add([]byte(`null`))
	f.Fuzz(func(t *testing.T, b []byte) {
		kf, err := ParseKeyFile(b)
		if err != nil {
			if !errors.Is(err, ErrInvalidKeyFile) {
				t.Fatalf("error does not wrap ErrInvalidKeyFile: %v", err)
			}
			return
		}
		enc, err := kf.Marshal()
		if err != nil {
			t.Fatalf("accepted key file does not re-encode: %v", err)
		}
		if _, err := ParseKeyFile(enc); err != nil {
			t.Fatalf("re-encoded key file rejected: %v\n%s", err, enc)
		}
		if kf.Params.Time <= 2 && kf.Params.MemoryKiB <= 1024 {
			k, err := kf.Unwrap([]byte(goldenPassword))
			if err != nil && !errors.Is(err, ErrWrongPassword) {
				t.Fatalf("unwrap: %v", err)
			}
			if err == nil && k == nil {
				t.Fatal("unwrap returned no key and no error")
			}
		}
	})
}
