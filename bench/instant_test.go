package main

import (
	"strings"
	"testing"
)

// The instant section goes before "## Reproduce", then replaces itself.
func TestSpliceInstant(t *testing.T) {
	doc := "# B\n\n" + cpTitle + "\n\ncp\n\n## Reproduce\n\nr\n"
	got := spliceInstant(doc, "\n"+instantTitle+"\n\nnew\n")
	want := "# B\n\n" + cpTitle + "\n\ncp\n\n" + instantTitle + "\n\nnew\n\n## Reproduce\n\nr\n"
	if got != want {
		t.Fatalf("added:\n%s\nwant:\n%s", got, want)
	}
	again := spliceInstant(got, instantTitle+"\n\nnewer\n")
	if !strings.Contains(again, instantTitle+"\n\nnewer\n\n## Reproduce") || strings.Contains(again, "\nnew\n") {
		t.Fatalf("replaced:\n%s", again)
	}
}
