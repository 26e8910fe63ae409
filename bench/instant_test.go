package main

import (
	"strings"
	"testing"
)

// The instant section goes before the continuous-protection section,
// then replaces itself where it stands.
func TestSpliceInstant(t *testing.T) {
	doc := "# B\n\n" + cpTitle + "\n\ncp\n\n## Reproduce\n\nr\n"
	got := spliceTitled(doc, instantTitle, "\n"+instantTitle+"\n\nnew\n")
	want := "# B\n\n" + instantTitle + "\n\nnew\n\n" + cpTitle + "\n\ncp\n\n## Reproduce\n\nr\n"
	if got != want {
		t.Fatalf("added:\n%s\nwant:\n%s", got, want)
	}
	again := spliceTitled(got, instantTitle, instantTitle+"\n\nnewer\n")
	if !strings.Contains(again, instantTitle+"\n\nnewer\n\n"+cpTitle) || strings.Contains(again, "\nnew\n") {
		t.Fatalf("replaced:\n%s", again)
	}
}
