package pg

import (
	"bufio"
	"fmt"
	"strconv"
	"strings"
)

// Label is what rewind reads from a backup_label file (PostgreSQL writes
// it; pg_backup_stop returns it).
type Label struct {
	StartLSN      LSN
	StartSegment  string
	StartTimeline uint32
	Name          string
}

// ParseLabel reads the lines of a backup_label that rewind needs:
// "START WAL LOCATION: 0/2000028 (file 000000010000000000000002)",
// "START TIMELINE: 1" and "LABEL: ...". Other lines are ignored.
func ParseLabel(text string) (*Label, error) {
	var l Label
	var haveStart, haveTLI bool
	sc := bufio.NewScanner(strings.NewReader(text))
	for sc.Scan() {
		key, val, ok := strings.Cut(sc.Text(), ": ")
		if !ok {
			continue
		}
		switch key {
		case "START WAL LOCATION":
			lsn, rest, _ := strings.Cut(val, " ")
			v, err := ParseLSN(lsn)
			if err != nil {
				return nil, fmt.Errorf("backup_label: START WAL LOCATION: %w", err)
			}
			l.StartLSN, haveStart = v, true
			if f, ok := strings.CutPrefix(rest, "(file "); ok {
				l.StartSegment = strings.TrimSuffix(f, ")")
			}
		case "START TIMELINE":
			v, err := strconv.ParseUint(val, 10, 32)
			if err != nil || v == 0 {
				return nil, fmt.Errorf("backup_label: START TIMELINE %q is not a timeline number", val)
			}
			l.StartTimeline, haveTLI = uint32(v), true
		case "LABEL":
			l.Name = val
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("backup_label: %w", err)
	}
	if !haveStart || !haveTLI {
		return nil, fmt.Errorf("backup_label has no START WAL LOCATION or START TIMELINE line")
	}
	return &l, nil
}
