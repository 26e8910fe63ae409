package wal

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/rewind-backup/rewind/internal/repository"
)

// ErrBadHistory: a timeline history file does not parse.
var ErrBadHistory = errors.New("not a timeline history file")

// HistoryLine is one line of a timeline history file: the timeline
// Parent ended at LSN At (the first LSN of the next timeline), for
// Reason.
type HistoryLine struct {
	Parent uint32
	At     LSN
	Reason string
}

// ParseHistory decodes a timeline history file (TTTTTTTT.history): one
// line per ancestor timeline, oldest first, each "parent<TAB>LSN<TAB>
// reason". Blank lines and lines starting with '#' are skipped, as
// PostgreSQL skips them. The timelines must grow and the LSNs must not go
// back.
func ParseHistory(b []byte) ([]HistoryLine, error) {
	var out []HistoryLine
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 0, 4096), 1<<20)
	n := 0
	for sc.Scan() {
		n++
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		fields := strings.FieldsFunc(line, func(r rune) bool { return r == '\t' || r == ' ' })
		if len(fields) < 2 {
			return nil, fmt.Errorf("%w: line %d: want a timeline and an LSN", ErrBadHistory, n)
		}
		tli, err := strconv.ParseUint(fields[0], 10, 32)
		if err != nil || tli == 0 {
			return nil, fmt.Errorf("%w: line %d: timeline %q", ErrBadHistory, n, fields[0])
		}
		at, err := ParseLSN(fields[1])
		if err != nil {
			return nil, fmt.Errorf("%w: line %d: %v", ErrBadHistory, n, err)
		}
		if k := len(out); k > 0 && (uint32(tli) <= out[k-1].Parent || at < out[k-1].At) {
			return nil, fmt.Errorf("%w: line %d: timeline %d at %s does not follow timeline %d at %s", ErrBadHistory, n, tli, at, out[k-1].Parent, out[k-1].At)
		}
		reason := ""
		if i := strings.Index(line, fields[1]); i >= 0 {
			reason = strings.TrimSpace(line[i+len(fields[1]):])
		}
		out = append(out, HistoryLine{Parent: uint32(tli), At: at, Reason: reason})
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadHistory, err)
	}
	return out, nil
}

// Switch is where a timeline branched from its parent: the parent's WAL
// up to At, then the timeline's own.
type Switch struct {
	Timeline uint32
	Parent   uint32
	At       LSN
	Reason   string
	// Created is when the history file was written: about when the
	// timeline began (the promotion).
	Created time.Time
}

// Switches reads the cluster's stored history files and returns, for
// every timeline that has one, where it branched from its parent, by
// timeline. A history file that cannot be read or parsed is an error
// naming it.
func Switches(ctx context.Context, r *repository.Repository, cl *Cluster) ([]Switch, error) {
	var out []Switch
	for _, e := range cl.Entries() {
		if e.Kind != KindHistory {
			continue
		}
		data, err := Read(ctx, r, &e.Entry)
		if err != nil {
			return nil, err
		}
		lines, err := ParseHistory(data)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", e.Name, err)
		}
		if len(lines) == 0 {
			continue
		}
		last := lines[len(lines)-1]
		if last.Parent >= e.Timeline {
			return nil, fmt.Errorf("%s: %w: its last parent is timeline %d", e.Name, ErrBadHistory, last.Parent)
		}
		out = append(out, Switch{Timeline: e.Timeline, Parent: last.Parent, At: last.At, Reason: last.Reason, Created: e.Modified})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Timeline < out[j].Timeline })
	return out, nil
}
