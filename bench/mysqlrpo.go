package main

// The binlog RPO of the MariaDB section: from a sampled commit's return to
// the receiver's first store that covers it, read from the receiver's
// --stats file (one JSON object a line per store: its time, and how far
// the stored binary log reaches, as a GTID position and/or a file and
// position).

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"
)

// myStore is one store of the receiver: everything up to GTIDs (by
// domain, the highest sequence number) and up to File:Pos is stored.
type myStore struct {
	Time time.Time
	GTID map[uint32]uint64
	File string
	Pos  uint64
}

// readMyStats reads a --stats file; a last line cut in the middle (the
// receiver still runs) is left out. Field names are taken loosely: the
// position as gtid, gtid_pos or gtid_binlog_pos, and file/binlog_file
// with pos/end_pos/binlog_pos.
func readMyStats(path string) ([]myStore, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []myStore
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	line := 0
	for sc.Scan() {
		line++
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			continue // a partial last line, or not a store
		}
		st, ok := parseMyStore(m)
		if !ok {
			continue
		}
		out = append(out, st)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	slices.SortStableFunc(out, func(a, b myStore) int { return a.Time.Compare(b.Time) })
	return out, nil
}

func parseMyStore(m map[string]any) (myStore, bool) {
	var st myStore
	ts, _ := m["time"].(string)
	t, err := time.Parse(time.RFC3339Nano, ts)
	if err != nil {
		return st, false
	}
	st.Time = t
	for _, k := range []string{"gtid", "gtid_pos", "gtid_binlog_pos", "last_gtid"} {
		if s, ok := m[k].(string); ok && s != "" {
			st.GTID = parseGTIDPos(s)
			break
		}
	}
	for _, k := range []string{"file", "binlog_file"} {
		if s, ok := m[k].(string); ok {
			st.File = s
		}
	}
	for _, k := range []string{"end", "pos", "end_pos", "binlog_pos"} {
		if x, ok := m[k].(float64); ok {
			st.Pos = uint64(x)
		}
	}
	return st, len(st.GTID) > 0 || st.File != ""
}

// parseGTIDPos reads a MariaDB GTID position ("0-1-42,1-2-7"): the
// highest sequence number of each domain.
func parseGTIDPos(s string) map[uint32]uint64 {
	out := map[uint32]uint64{}
	for _, g := range strings.Split(s, ",") {
		f := strings.Split(strings.TrimSpace(g), "-")
		if len(f) != 3 {
			continue
		}
		d, err1 := strconv.ParseUint(f[0], 10, 32)
		seq, err2 := strconv.ParseUint(f[2], 10, 64)
		if err1 != nil || err2 != nil {
			continue
		}
		if seq > out[uint32(d)] {
			out[uint32(d)] = seq
		}
	}
	return out
}

// covers says whether a store holds the commit c: by GTID when both have
// one in c's domain, else by binary log file and position.
func (st myStore) covers(c myCommit) bool {
	if g := parseGTIDPos(c.GTID); len(g) == 1 && len(st.GTID) > 0 {
		for d, seq := range g {
			if have, ok := st.GTID[d]; ok {
				return have >= seq
			}
		}
	}
	if st.File == "" || c.File == "" {
		return false
	}
	if st.File != c.File {
		return st.File > c.File // mysql-bin.000002 after mysql-bin.000001
	}
	return st.Pos >= c.Pos
}

// myLags returns, sorted, each commit's time to the first store that
// covers it (0 when the store came before the client saw the commit
// return), and how many commits no store covers.
func myLags(stores []myStore, commits []myCommit) (lags []time.Duration, missing int) {
	i := 0 // stores are cumulative: a later commit is covered no earlier
	for _, c := range commits {
		for i < len(stores) && !stores[i].covers(c) {
			i++
		}
		if i == len(stores) {
			missing++
			i = 0
			continue
		}
		lags = append(lags, max(0, stores[i].Time.Sub(c.Time)))
	}
	slices.Sort(lags)
	return lags, missing
}

// percentile of sorted durations (p in 0..100).
func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	return sorted[int(p/100*float64(len(sorted)-1))]
}
