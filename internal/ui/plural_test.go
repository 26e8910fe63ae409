package ui

import (
	"bufio"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

func TestCount(t *testing.T) {
	for _, c := range []struct {
		n    int64
		want string
	}{{0, "0 files"}, {1, "1 file"}, {2, "2 files"}, {-1, "-1 files"}, {1000, "1000 files"}} {
		if got := Count(c.n, "file", "files"); got != c.want {
			t.Errorf("Count(%d) = %q, want %q", c.n, got, c.want)
		}
	}
	if Verb(1, "is", "are") != "is" || Verb(2, "is", "are") != "are" || Verb(0, "is", "are") != "are" {
		t.Error("Verb does not agree with the count")
	}
}

// countFormat is a format that prints a number before a plural noun,
// which says "1 files" when the number is 1. Counts go through Count
// instead; a format whose number can never be 1 says so with a
// "// plural:" comment on its line.
var countFormat = regexp.MustCompile(`%d (?:[a-z-]+ )?(?:files|snapshots|entries|packs|directories|blobs|keys|locks|trees|versions|problems|requests|scans|overflows|errors|labels|paths|chunks|objects|records|indexes|warnings|items|links|hosts|tags|matches|changes)\b`)

// TestNoFormatCountsPlurals scans the module's sources (tests aside) for
// formats that would print "1 files".
func TestNoFormatCountsPlurals(t *testing.T) {
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "go.mod")); err != nil {
		t.Fatalf("module root not found: %v", err)
	}
	scanned := 0
	err = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (strings.HasPrefix(d.Name(), ".") || d.Name() == "testdata" || d.Name() == "vendor") && p != root {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(p, ".go") || strings.HasSuffix(p, "_test.go") {
			return nil
		}
		f, err := os.Open(p)
		if err != nil {
			return err
		}
		defer f.Close()
		scanned++
		sc := bufio.NewScanner(f)
		sc.Buffer(nil, 1<<20)
		for line := 1; sc.Scan(); line++ {
			l := sc.Text()
			if m := countFormat.FindString(l); m != "" && !strings.Contains(l, "// plural:") {
				rel, _ := filepath.Rel(root, p)
				t.Errorf("%s:%d: %q says \"1 ...s\" for a count of 1; use ui.Count", rel, line, m)
			}
		}
		return sc.Err()
	})
	if err != nil {
		t.Fatal(err)
	}
	if scanned < 100 {
		t.Fatalf("scanned only %d Go files under %s", scanned, root)
	}
}
