package checker

import (
	"bytes"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/rewind-backup/rewind/internal/id"
)

// Subset selects the packs that a check reads in full. The zero value is
// not a valid selection; use ParseSubset.
//
// "N/M" is a stable partition: a pack belongs to slice N when the first 8
// bytes of its ID, read as a big-endian uint64, are N-1 modulo M. Running
// 1/M, 2/M, ..., M/M reads every pack exactly once.
//
// "P%" is a rotating window: the packs are ordered by ID, and each run
// reads the next ceil(P% × packs) of them, starting after the last pack
// the previous run read (a position kept outside the repository, see
// Options.StateDir) and wrapping around. Over ceil(100/P) consecutive runs
// every pack is read at least once.
type Subset struct {
	N, M    int     // slice N of M, 1-based, when M > 0
	Percent float64 // percentage in (0, 100], when M == 0
}

// ParseSubset parses "N/M" or "P%".
func ParseSubset(s string) (Subset, error) {
	bad := func(why string) (Subset, error) {
		return Subset{}, fmt.Errorf("invalid subset %q: %s", s, why)
	}
	s = strings.TrimSpace(s)
	if p, ok := strings.CutSuffix(s, "%"); ok {
		v, err := strconv.ParseFloat(p, 64)
		if err != nil || math.IsNaN(v) || math.IsInf(v, 0) {
			return bad("want a percentage such as 10%")
		}
		if v <= 0 || v > 100 {
			return bad("the percentage must be greater than 0 and at most 100")
		}
		return Subset{Percent: v}, nil
	}
	if ns, ms, ok := strings.Cut(s, "/"); ok {
		n, err1 := strconv.Atoi(ns)
		m, err2 := strconv.Atoi(ms)
		if err1 != nil || err2 != nil {
			return bad("want N/M with whole numbers, such as 1/10")
		}
		if m < 1 {
			return bad("M must be at least 1")
		}
		if n < 1 || n > m {
			return bad(fmt.Sprintf("N must be between 1 and %d", m))
		}
		return Subset{N: n, M: m}, nil
	}
	return bad("want N/M (slice N of M, such as 1/10) or P% (such as 5%)")
}

// String returns the subset in the form ParseSubset accepts.
func (s Subset) String() string {
	if s.M > 0 {
		return fmt.Sprintf("%d/%d", s.N, s.M)
	}
	return strconv.FormatFloat(s.Percent, 'f', -1, 64) + "%"
}

// inSlice reports whether pack p belongs to slice N of M.
func (s Subset) inSlice(p id.ID) bool {
	return binary.BigEndian.Uint64(p[:8])%uint64(s.M) == uint64(s.N-1)
}

// windowSize is how many of n packs a P% run reads: ceil(P% × n), and at
// least one when there are packs.
func (s Subset) windowSize(n int) int {
	k := int(math.Ceil(s.Percent * float64(n) / 100))
	return min(max(k, 1), n)
}

// positionFile is the name of the file in Options.StateDir that holds the
// ID of the last pack the previous P% run read.
const positionFile = "check-position"

// loadPosition returns the stored cursor, or a random one (with the reason)
// when there is none.
func loadPosition(dir string) (id.ID, error) {
	var cur id.ID
	var why error
	if dir == "" {
		why = errors.New("no cache directory")
	} else if b, err := os.ReadFile(filepath.Join(dir, positionFile)); err != nil {
		why = err
	} else if cur, err = id.Parse(string(bytes.TrimSpace(b))); err != nil {
		why = fmt.Errorf("%s: %w", filepath.Join(dir, positionFile), err)
	} else {
		return cur, nil
	}
	_, _ = rand.Read(cur[:])
	return cur, why
}

// savePosition stores cur atomically in dir.
func savePosition(dir string, cur id.ID) error {
	if dir == "" {
		return errors.New("no cache directory")
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	f, err := os.CreateTemp(dir, positionFile+".tmp*")
	if err != nil {
		return err
	}
	_, err = f.WriteString(cur.String() + "\n")
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(f.Name(), filepath.Join(dir, positionFile))
	}
	if err != nil {
		_ = os.Remove(f.Name())
	}
	return err
}

// selectPacks returns the packs of all (any order) that s selects. For a
// P% subset it also returns the new cursor (the last pack in the window)
// to store for the next run; ok is false for N/M.
func (s Subset) selectPacks(all []id.ID, cursor id.ID) (sel []id.ID, next id.ID, ok bool) {
	if s.M > 0 {
		for _, p := range all {
			if s.inSlice(p) {
				sel = append(sel, p)
			}
		}
		return sel, id.ID{}, false
	}
	if len(all) == 0 {
		return nil, cursor, true
	}
	sorted := slices.Clone(all)
	slices.SortFunc(sorted, func(a, b id.ID) int { return bytes.Compare(a[:], b[:]) })
	// The window starts at the first pack after the cursor, wrapping.
	start, found := slices.BinarySearchFunc(sorted, cursor, func(a, b id.ID) int { return bytes.Compare(a[:], b[:]) })
	if found {
		start++
	}
	k := s.windowSize(len(sorted))
	for i := range k {
		sel = append(sel, sorted[(start+i)%len(sorted)])
	}
	return sel, sel[len(sel)-1], true
}
