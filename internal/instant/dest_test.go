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

// findImage picks the one file of the image's size below the snapshot's
// directory, whatever the path it was backed up from.
func TestFindImage(t *testing.T) {
	dir := t.TempDir()
	deep := filepath.Join(dir, "var", "lib", "images")
	if err := os.MkdirAll(deep, 0o755); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, "other"), make([]byte, 10), 0o644)
	want := filepath.Join(deep, "web1.img")
	os.WriteFile(want, make([]byte, 4096), 0o644)
	if got, err := findImage(dir, 4096); err != nil || got != want {
		t.Fatalf("got %q, %v; want %q", got, err, want)
	}
	if _, err := findImage(dir, 999); err == nil {
		t.Fatal("no file of that size: want an error")
	}
}
