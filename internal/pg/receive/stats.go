package receive

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"time"

	"github.com/rewind-backup/rewind/internal/pg/wal"
)

// ReadStats reads a --stats file: one Stored per line.
func ReadStats(path string) ([]Stored, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []Stored
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var s Stored
		if err := json.Unmarshal(sc.Bytes(), &s); err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		out = append(out, s)
	}
	return out, sc.Err()
}

// Commit is a commit seen by a client: when it was acknowledged and an
// LSN at or after its commit record's end (pg_current_wal_lsn() read
// right after it).
type Commit struct {
	Time time.Time
	LSN  wal.LSN
}

// Lags returns, for each commit, how long after it the receiver had
// stored WAL up to its LSN (the RPO of that commit), sorted ascending.
// Commits never stored are left out; missing counts them.
func Lags(stores []Stored, commits []Commit) (lags []time.Duration, missing int) {
	type pt struct {
		end wal.LSN
		t   time.Time
	}
	var pts []pt
	for _, s := range stores {
		l, err := wal.ParseLSN(s.EndLSN)
		if err == nil {
			pts = append(pts, pt{l, s.Time})
		}
	}
	slices.SortFunc(pts, func(a, b pt) int { return a.t.Compare(b.t) })
	for _, c := range commits {
		i := slices.IndexFunc(pts, func(p pt) bool { return p.end >= c.LSN })
		if i < 0 {
			missing++
			continue
		}
		lags = append(lags, max(pts[i].t.Sub(c.Time), 0))
	}
	slices.Sort(lags)
	return lags, missing
}

// Percentile returns the p-th percentile (0..100) of sorted durations.
func Percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(p / 100 * float64(len(sorted)-1))
	return sorted[i]
}
