package pack_test

import (
	"bytes"
	"encoding/hex"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rewind-backup/rewind/internal/pack"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

// goldenPack is a fixed pack written with a sealer that does not encrypt,
// so that its bytes depend on the layout alone.
func goldenPack(t *testing.T) ([]byte, []pack.Blob) {
	return buildPack(t, plainSealer{}, []blobSpec{
		{typ: pack.DataBlob, plain: []byte("first data blob")},
		{typ: pack.TreeBlob, plain: []byte{1, 2, 3}, compressed: true},
		{typ: pack.DataBlob, plain: nil},
		{typ: pack.DataBlob, plain: bytes.Repeat([]byte{0xab}, 40), compressed: true},
	})
}

// TestGoldenLayout pins the pack layout (docs/FORMAT.md, "Packs"): blobs,
// header version, entry fields in order and little-endian, trailer.
// Regenerate with go test -run TestGoldenLayout -update, only for a new
// format version.
func TestGoldenLayout(t *testing.T) {
	p, blobs := goldenPack(t)
	golden := filepath.Join("testdata", "pack-v1.golden")
	if *update {
		if err := os.WriteFile(golden, []byte(hexLines(p)), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	raw, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	want, err := hex.DecodeString(strings.Join(strings.Fields(string(raw)), ""))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(p, want) {
		t.Fatalf("pack layout changed:\ngot  %x\nwant %x", p, want)
	}
	got, err := splitPack(plainSealer{}, want)
	if err != nil {
		t.Fatalf("golden pack does not parse: %v", err)
	}
	if len(got) != len(blobs) {
		t.Fatalf("golden pack lists %d blobs, want %d", len(got), len(blobs))
	}
	for i := range got {
		if got[i] != blobs[i] {
			t.Errorf("blob %d: %+v, want %+v", i, got[i], blobs[i])
		}
	}
}

// hexLines formats b as hex, 32 bytes a line.
func hexLines(b []byte) string {
	var sb strings.Builder
	for len(b) > 0 {
		n := min(len(b), 32)
		sb.WriteString(hex.EncodeToString(b[:n]))
		sb.WriteByte('\n')
		b = b[n:]
	}
	return sb.String()
}
