package instant

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// A new --migrate file is made sparse of the image's size; an existing
// file is refused and left alone.
func TestPrepareDest(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "dest.img")
	dev, err := PrepareDest(p, 1<<30)
	if err != nil || dev {
		t.Fatalf("new file: device %v, %v", dev, err)
	}
	st, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	if st.Size() != 1<<30 || st.Sys().(*syscall.Stat_t).Blocks != 0 {
		t.Fatalf("size %d, %d blocks: want 1 GiB, sparse", st.Size(), st.Sys().(*syscall.Stat_t).Blocks)
	}
	if err := os.WriteFile(p, []byte("keep"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := PrepareDest(p, 1<<30); err == nil || !strings.Contains(err.Error(), "exists") {
		t.Fatalf("existing file: %v", err)
	}
	if b, _ := os.ReadFile(p); string(b) != "keep" {
		t.Fatalf("the existing file was changed: %q", b)
	}
}
