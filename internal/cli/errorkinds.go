package cli

import (
	"fmt"
	"strings"

	"github.com/rewind-backup/rewind/internal/snapshot"
)

// ErrorCounts counts the entries a backup could not read, by kind: the
// `error_counts` object of the backup summary (docs/JSON.md).
type ErrorCounts struct {
	Files       int `json:"files"`
	Directories int `json:"directories"`
	Other       int `json:"other"`
}

// countErrors counts errs by kind. An error without a kind (recorded by
// an older version) counts as other.
func countErrors(errs []snapshot.FileError) ErrorCounts {
	var c ErrorCounts
	for _, e := range errs {
		switch e.Kind {
		case snapshot.KindFile:
			c.Files++
		case snapshot.KindDir:
			c.Directories++
		default:
			c.Other++
		}
	}
	return c
}

// String says the counts in words, leaving out the kinds with none:
// "1 file", "2 directories", "1 file, 1 directory and 3 other entries".
func (c ErrorCounts) String() string {
	var parts []string
	for _, k := range []struct {
		n          int
		one, other string
	}{
		{c.Files, "file", "files"},
		{c.Directories, "directory", "directories"},
		{c.Other, "other entry", "other entries"},
	} {
		if k.n > 0 {
			parts = append(parts, plural(k.n, k.one, k.other))
		}
	}
	switch len(parts) {
	case 0:
		return "no entries"
	case 1:
		return parts[0]
	}
	return strings.Join(parts[:len(parts)-1], ", ") + " and " + parts[len(parts)-1]
}

// plural says "1 file" or "2 files".
func plural(n int, one, other string) string {
	if n == 1 {
		return fmt.Sprintf("%d %s", n, one)
	}
	return fmt.Sprintf("%d %s", n, other)
}
