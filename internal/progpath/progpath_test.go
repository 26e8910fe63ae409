package progpath

import (
	"os"
	"path/filepath"
	"testing"
)

// TestFind: PATH wins, then the directories in their order; a file that
// is not executable, or a directory, is not a program.
func TestFind(t *testing.T) {
	onPath, a, b := t.TempDir(), t.TempDir(), t.TempDir()
	t.Setenv("PATH", onPath)
	write := func(dir, name string, mode os.FileMode) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte("#!/bin/sh\n"), mode); err != nil {
			t.Fatal(err)
		}
		return p
	}
	inPath := write(onPath, "tool", 0o755)
	write(a, "tool", 0o755)
	if got := Find("tool", []string{a}); got != inPath {
		t.Errorf("PATH first: %q, want %q", got, inPath)
	}
	write(a, "other", 0o644)
	want := write(b, "other", 0o755)
	if got := Find("other", []string{a, b}); got != want {
		t.Errorf("skipping a file that cannot run: %q, want %q", got, want)
	}
	if err := os.Mkdir(filepath.Join(a, "dir"), 0o755); err != nil {
		t.Fatal(err)
	}
	if got := Find("dir", []string{a}); got != "" {
		t.Errorf("a directory found as a program: %q", got)
	}
	if got := Find("missing", []string{a, b}); got != "" {
		t.Errorf("missing: %q", got)
	}
}
