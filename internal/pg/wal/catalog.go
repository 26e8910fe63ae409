package wal

import (
	"fmt"
	"strconv"

	"github.com/rewind-backup/rewind/internal/id"
)

// NewCatalog merges index files held in memory, as Load merges those it
// reads (oldest first, so that the first push of a name wins): for
// callers that build a view of WAL without a repository, and their
// tests. names are the files' IDs, in the order of files.
func NewCatalog(names []id.ID, files []*File) (*Catalog, error) {
	if len(names) != len(files) {
		return nil, fmt.Errorf("%d names for %d WAL index files", len(names), len(files))
	}
	all := make([]loaded, 0, len(files))
	for i, f := range files {
		sys, err := strconv.ParseUint(f.SystemID, 10, 64)
		if err != nil || sys == 0 {
			return nil, fmt.Errorf("WAL index: bad system identifier %q", f.SystemID)
		}
		l := loaded{name: names[i], f: f, sys: sys}
		if f.KeepFrom != "" {
			l.keep, _ = ParseLSN(f.KeepFrom)
		}
		all = append(all, l)
	}
	return merge(all), nil
}
