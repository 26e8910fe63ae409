package kmod_test

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/rewind-backup/rewind/internal/kmod"
	"github.com/rewind-backup/rewind/internal/testutil"
)

// TestOrderPutsDependenciesFirst on Debian's kernel of the test guest:
// ext4 comes after jbd2 and mbcache, each module once, and a missing
// module is an error naming it.
func TestOrderPutsDependenciesFirst(t *testing.T) {
	roots, _ := filepath.Glob(filepath.Join(testutil.GuestKernelDir(t), "lib", "modules", "*"))
	if len(roots) != 1 {
		t.Fatalf("no single module tree: %v", roots)
	}
	tree, err := kmod.Open(roots[0])
	if err != nil {
		t.Fatal(err)
	}
	mods, err := tree.Order(context.Background(), []string{"ext4", "jbd2", "virtio_blk"})
	if err != nil {
		t.Fatal(err)
	}
	pos := map[string]int{}
	for i, m := range mods {
		if _, dup := pos[m.Name]; dup {
			t.Errorf("%s twice", m.Name)
		}
		pos[m.Name] = i
	}
	for _, dep := range []string{"jbd2", "mbcache"} {
		if i, ok := pos[dep]; !ok || i > pos["ext4"] {
			t.Errorf("%s is not before ext4: %v", dep, pos)
		}
	}
	if _, err := tree.Order(context.Background(), []string{"no_such_module"}); err == nil {
		t.Error("a missing module was accepted")
	}
}
