package fs

import (
	"errors"
	"strings"
	"testing"
)

// TestListing feeds listings as a hostile snapshot could store them: a
// symlink and a directory of one name, a name repeated after others, names
// out of order, and invalid names between valid ones. Exactly the entries
// marked ok may be used.
func TestListing(t *testing.T) {
	type ent struct {
		name string
		ok   bool
	}
	tests := [][]ent{
		{{"a", true}, {"b", true}, {"c", true}},
		{{"evil", true}, {"evil", false}, {"ok", true}},
		{{"up", true}, {"up", false}, {"up", false}, {"z", true}},
		// Out of order: a second "evil" after an entry that sorts past it.
		{{"evil", true}, {"a", false}, {"evil", false}, {"f", true}},
		// Refused names leave the comparison where it was.
		{{"..", false}, {".", false}, {"a", true}, {"a/b", false}, {"", false}, {"b", true}},
		{{"\x00", false}, {"\x00", false}, {"x\xff", true}, {"x\xff", false}},
		{{strings.Repeat("n", 256), false}, {strings.Repeat("n", 255), true}},
		{{"B", true}, {"a", true}, {"a\n", true}, {"é", true}, {"e", false}},
	}
	for i, ents := range tests {
		var l Listing
		for _, e := range ents {
			err := l.Check(e.name)
			if e.ok && err != nil {
				t.Errorf("listing %d: Check(%q) = %v, want nil", i, e.name, err)
			}
			if !e.ok && !errors.Is(err, ErrInvalidName) {
				t.Errorf("listing %d: Check(%q) = %v, want ErrInvalidName", i, e.name, err)
			}
		}
	}
}

// FuzzListing checks, for any sequence of names, that the accepted ones
// are valid and strictly increasing, so that none repeats.
func FuzzListing(f *testing.F) {
	f.Add("a\x1fb\x1fb\x1f..\x1fc")
	f.Add("evil\x1fa\x1fevil")
	f.Add("\x1f/\x1f.\x1f\x00")
	f.Fuzz(func(t *testing.T, joined string) {
		var l Listing
		var prev string
		seen := map[string]bool{}
		for i, name := range strings.Split(joined, "\x1f") {
			if l.Check(name) != nil {
				continue
			}
			if ValidName(name) != nil || seen[name] || (len(seen) > 0 && name <= prev) {
				t.Fatalf("entry %d: %q accepted after %q", i, name, prev)
			}
			seen[name], prev = true, name
		}
	})
}
