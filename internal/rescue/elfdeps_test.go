package rescue

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestLibrariesOfSfdisk: sfdisk's libraries are found, recursively
// (libfdisk needs libuuid and libblkid), with the dynamic loader, each
// once and each an existing file.
func TestLibrariesOfSfdisk(t *testing.T) {
	p := lookTool("sfdisk")
	if p == "" {
		t.Skip("no sfdisk on this machine")
	}
	libs, err := Libraries(p, LibDirs)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, l := range libs {
		if seen[l] {
			t.Errorf("%s twice", l)
		}
		seen[l] = true
		if _, err := os.Stat(l); err != nil {
			t.Error(err)
		}
	}
	for _, want := range []string{"libfdisk.so.1", "libc.so.6", "ld-linux-x86-64.so.2", "libuuid.so.1", "libblkid.so.1"} {
		found := false
		for _, l := range libs {
			found = found || filepath.Base(l) == want
		}
		if !found {
			t.Errorf("sfdisk's libraries lack %s: %v", want, libs)
		}
	}
	if err := CheckStatic(p); !errors.Is(err, ErrNotStatic) {
		t.Errorf("CheckStatic(sfdisk) = %v, want ErrNotStatic", err)
	}
	if err := CheckStatic("/bin/busybox"); err != nil && !os.IsNotExist(errors.Unwrap(err)) {
		t.Errorf("CheckStatic(busybox-static) = %v", err)
	}
}

// TestLibrariesNamesMissingOne: a library found nowhere is an error
// naming it.
func TestLibrariesNamesMissingOne(t *testing.T) {
	p := lookTool("sfdisk")
	if p == "" {
		t.Skip("no sfdisk on this machine")
	}
	_, err := Libraries(p, []string{t.TempDir()})
	if err == nil || !strings.Contains(err.Error(), "needs lib") {
		t.Fatalf("err = %v, want one naming the missing library", err)
	}
}

// TestBuildRefusesDynamicRewind: a rewind built with cgo cannot run in
// the image; the error says how to build a static one, and nothing is
// written.
func TestBuildRefusesDynamicRewind(t *testing.T) {
	dyn := lookTool("sfdisk")
	if dyn == "" {
		t.Skip("no dynamically linked program to stand for rewind")
	}
	out := filepath.Join(t.TempDir(), "out")
	k := filepath.Join(t.TempDir(), "vmlinuz")
	os.WriteFile(k, []byte("kernel"), 0o644)
	_, err := Build(context.Background(), Options{Out: out, Kernel: k, Modules: t.TempDir(), Rewind: dyn})
	if err == nil || !strings.Contains(err.Error(), "CGO_ENABLED=0 go build -o rewind ./cmd/rewind") {
		t.Fatalf("err = %v, want the static build hint", err)
	}
	if _, err := os.Stat(out); !os.IsNotExist(err) {
		t.Errorf("the output folder was made: %v", err)
	}
}

// TestBuildNamesMissingKernel: without a kernel the error says to pass
// --kernel and --modules.
func TestBuildNamesMissingKernel(t *testing.T) {
	_, err := Build(context.Background(), Options{Out: t.TempDir(), Kernel: "/nonexistent/vmlinuz", Modules: t.TempDir()})
	if !errors.Is(err, ErrNoKernel) || !strings.Contains(err.Error(), "--kernel FILE and --modules DIR") {
		t.Fatalf("err = %v, want ErrNoKernel with the flags to pass", err)
	}
}
