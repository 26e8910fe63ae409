package archiver

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// TestParsePathList reads the same names in each list format: comments,
// blank lines and surrounding spaces only mean something to ListLines;
// a name with a newline can only be given NUL-separated.
func TestParsePathList(t *testing.T) {
	paths := func(ls []ListedPath) []string {
		var out []string
		for _, l := range ls {
			out = append(out, l.Path)
		}
		return out
	}
	lines := "# a comment\n/srv/a\n\n   /srv/b with space \t\r\n  # indented comment\n/srv/#not-a-comment\n"
	got := ParsePathList([]byte(lines), ListLines, "l.txt")
	if want := []string{"/srv/a", "/srv/b with space", "/srv/#not-a-comment"}; !slices.Equal(paths(got), want) {
		t.Errorf("lines: %q, want %q", paths(got), want)
	}
	if got[1].Line != 4 || got[1].File != "l.txt" || got[2].Line != 6 {
		t.Errorf("lines: positions %+v", got)
	}
	got = ParsePathList([]byte(lines), ListVerbatim, "v.txt")
	want := []string{"# a comment", "/srv/a", "   /srv/b with space \t\r", "  # indented comment", "/srv/#not-a-comment"}
	if !slices.Equal(paths(got), want) {
		t.Errorf("verbatim: %q, want %q", paths(got), want)
	}
	got = ParsePathList([]byte("/srv/new\nline\x00 /srv/x \x00\x00#c\x00"), ListNUL, "z")
	if want := []string{"/srv/new\nline", " /srv/x ", "#c"}; !slices.Equal(paths(got), want) {
		t.Errorf("NUL: %q, want %q", paths(got), want)
	}
	if got[2].Line != 4 {
		t.Errorf("NUL: entry numbers %+v", got)
	}
}

// TestCheckListed: a path that does not exist is named with its file and
// line; existing ones of every type pass.
func TestCheckListed(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "f"), []byte("x"))
	if err := os.Symlink("/nonexistent", filepath.Join(dir, "dangling")); err != nil {
		t.Fatal(err)
	}
	ok := []ListedPath{{Path: filepath.Join(dir, "f")}, {Path: dir}, {Path: filepath.Join(dir, "dangling")}}
	if err := CheckListed(ok); err != nil {
		t.Errorf("existing paths refused: %v", err)
	}
	bad := append(ok, ListedPath{Path: filepath.Join(dir, "gone"), File: "list.txt", Line: 7})
	err := CheckListed(bad)
	if err == nil || !strings.Contains(err.Error(), "gone") || !strings.Contains(err.Error(), "line 7 of list.txt") {
		t.Errorf("missing path: %v", err)
	}
}

// FuzzParsePathList: any input parses without panic; every path is
// non-empty, holds no separator, and in ListLines is trimmed and no
// comment.
func FuzzParsePathList(f *testing.F) {
	f.Add([]byte("# c\n/a\n\n /b \n"), uint8(0))
	f.Add([]byte("/a\x00/b\n\x00"), uint8(2))
	f.Fuzz(func(t *testing.T, data []byte, fm uint8) {
		format := ListFormat(fm % 3)
		prev := 0
		for _, p := range ParsePathList(data, format, "f") {
			if p.Path == "" || p.Line <= prev {
				t.Fatalf("bad entry %+v after line %d", p, prev)
			}
			prev = p.Line
			switch format {
			case ListNUL:
				if strings.Contains(p.Path, "\x00") {
					t.Fatalf("NUL in %q", p.Path)
				}
			default:
				if strings.Contains(p.Path, "\n") {
					t.Fatalf("newline in %q", p.Path)
				}
			}
			if format == ListLines && (strings.TrimSpace(p.Path) != p.Path || strings.HasPrefix(p.Path, "#")) {
				t.Fatalf("untrimmed or comment %q", p.Path)
			}
		}
	})
}
