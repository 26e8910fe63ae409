package archiver

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// ReadFrom says that the content of the folder Real is read from the
// folder Source, which holds a frozen copy of it (a read-only btrfs
// snapshot, a mounted LVM snapshot), while the snapshot records Real's
// paths. Only where entries are read from changes: names, excludes,
// errors and the parent comparison all use the real paths.
type ReadFrom struct {
	Real   string
	Source string
}

// ParseReadFrom reads the REALDIR=SNAPDIR form of backup --read-from.
func ParseReadFrom(s string) (ReadFrom, error) {
	real, src, ok := strings.Cut(s, "=")
	if !ok || real == "" || src == "" {
		return ReadFrom{}, fmt.Errorf("--read-from %q: give REALDIR=SNAPDIR", s)
	}
	return ReadFrom{Real: real, Source: src}, nil
}

// checkReadFrom makes both sides of each mapping absolute and clean,
// checks that each source is a folder, and sorts the mappings longest
// real path first, so that the most precise one wins.
func checkReadFrom(maps []ReadFrom) ([]ReadFrom, error) {
	out := make([]ReadFrom, 0, len(maps))
	for _, m := range maps {
		if !filepath.IsAbs(m.Real) || !filepath.IsAbs(m.Source) {
			return nil, fmt.Errorf("read from %s for %s: both folders must be absolute paths", m.Source, m.Real)
		}
		m.Real, m.Source = filepath.Clean(m.Real), filepath.Clean(m.Source)
		fi, err := os.Stat(m.Source)
		if err != nil {
			return nil, fmt.Errorf("read from %s for %s: %w", m.Source, m.Real, err)
		}
		if !fi.IsDir() {
			return nil, fmt.Errorf("read from %s for %s: not a folder", m.Source, m.Real)
		}
		for _, o := range out {
			if o.Real == m.Real {
				return nil, fmt.Errorf("%s is read from both %s and %s", m.Real, o.Source, m.Source)
			}
		}
		out = append(out, m)
	}
	slices.SortFunc(out, func(a, b ReadFrom) int { return len(b.Real) - len(a.Real) })
	return out, nil
}

// src returns where the entry recorded at the real path p is read from.
func (a *Archiver) src(p string) string {
	for _, m := range a.opt.ReadFrom {
		if p == m.Real {
			return m.Source
		}
		if m.Real == "/" {
			return m.Source + p
		}
		if strings.HasPrefix(p, m.Real) && p[len(m.Real)] == '/' {
			return m.Source + p[len(m.Real):]
		}
	}
	return p
}
