package main

import (
	"strings"
	"testing"
)

// TestSpliceTitled: a section replaces its old text and nothing else, or
// goes in before the continuous-protection section when it is new.
func TestSpliceTitled(t *testing.T) {
	doc := "# Bench\n\n## Set tree\n\nrows\n\n" + cpTitle + "\n\ncp\n\n## Reproduce\n\nmake bench\n"
	once := spliceTitled(doc, mountTitle, mountTitle+"\n\nfirst\n")
	if !strings.Contains(once, "rows\n\n"+mountTitle+"\n\nfirst\n\n"+cpTitle) {
		t.Fatalf("new section not before the continuous one:\n%s", once)
	}
	twice := spliceTitled(once, mountTitle, mountTitle+"\n\nsecond\n")
	if strings.Contains(twice, "first") || !strings.Contains(twice, "second\n\n"+cpTitle) || strings.Count(twice, mountTitle) != 1 {
		t.Fatalf("replaced section:\n%s", twice)
	}
	if strings.Replace(twice, "second", "first", 1) != once {
		t.Errorf("replacing touched other text:\n%s", twice)
	}
	last := spliceTitled("# Bench\n\n"+imagesTitle+"\n\nold\n", imagesTitle, imagesTitle+"\n\nnew\n")
	if last != "# Bench\n\n"+imagesTitle+"\n\nnew\n" {
		t.Errorf("last section: %q", last)
	}
}
