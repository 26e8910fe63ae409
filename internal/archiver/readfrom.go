package archiver

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/rewind-backup/rewind/internal/fs"
	"github.com/rewind-backup/rewind/internal/tree"
	"golang.org/x/sys/unix"
)

// ReadFrom says that the content of the folder Real is read from the
// folder Source, which holds a frozen copy of it (a read-only btrfs
// snapshot, a mounted LVM snapshot), while the snapshot records Real's
// paths. Only where entries are read from changes: names, excludes,
// errors and the parent comparison all use the real paths.
type ReadFrom struct {
	Real   string
	Source string

	// srcDev and realDev are the devices of Source and Real. Entries
	// read on srcDev are recorded on realDev, so that the next backup
	// from a new frozen copy (a new btrfs snapshot has a new device
	// number) still finds its files unchanged against the parent.
	srcDev, realDev uint64
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
		var src, real unix.Stat_t
		if unix.Stat(m.Source, &src) == nil && unix.Stat(m.Real, &real) == nil {
			m.srcDev, m.realDev = src.Dev, real.Dev
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

// nodeFromStat is fs.NodeFromStat for the entry recorded at the real path
// p, with a frozen copy's device recorded as the real folder's.
func (a *Archiver) nodeFromStat(p, name string, st *unix.Stat_t) tree.Node {
	n := fs.NodeFromStat(name, st)
	if len(a.opt.ReadFrom) == 0 {
		return n
	}
	for _, m := range a.opt.ReadFrom {
		if p == m.Real || m.Real == "/" || strings.HasPrefix(p, m.Real) && p[len(m.Real)] == '/' {
			if m.realDev != 0 && n.DeviceID == m.srcDev {
				n.DeviceID = m.realDev
			}
			break
		}
	}
	return n
}

// devOf is the device recorded for the entry at the real path p whose
// lstat gave dev (see nodeFromStat).
func (a *Archiver) devOf(p string, dev uint64) uint64 {
	var st unix.Stat_t
	st.Dev = dev
	return a.nodeFromStat(p, "", &st).DeviceID
}
