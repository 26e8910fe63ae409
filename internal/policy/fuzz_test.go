package policy_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/rewind-backup/rewind/internal/policy"
)

// FuzzDecode feeds arbitrary bytes to the policy file decoder. It must
// never panic, and what it accepts must encode again to bytes that decode
// to the same policy and encode to the same bytes, with the same signed
// bytes. Seeds: the golden file and testdata/fuzz/FuzzDecode.
func FuzzDecode(f *testing.F) {
	if golden, err := os.ReadFile(filepath.Join("testdata", "policy-v1.golden.json")); err == nil {
		f.Add(golden)
	} else {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := policy.Decode(b)
		if err != nil {
			return
		}
		enc, err := p.Encode()
		if err != nil {
			t.Fatalf("decoded policy does not encode: %v\n%s", err, b)
		}
		q, err := policy.Decode(enc)
		if err != nil {
			t.Fatalf("re-encoded policy does not decode: %v\n%s", err, enc)
		}
		enc2, err := q.Encode()
		if err != nil {
			t.Fatal(err)
		}
		if string(enc2) != string(enc) {
			t.Fatalf("encoding is not stable:\n%s\n%s", enc, enc2)
		}
		var repo [32]byte
		if string(p.SignedBytes(repo)) != string(q.SignedBytes(repo)) {
			t.Fatalf("signed bytes changed over a round trip")
		}
	})
}
