package wal

import (
	"fmt"
	"strconv"
	"time"

	"github.com/rewind-backup/rewind/internal/id"
	"github.com/rewind-backup/rewind/internal/snapshot"
)

// BaseBackup is what retention and checking need of a retained base
// backup (a snapshot with a Postgres record).
type BaseBackup struct {
	Snapshot    id.ID
	Time        time.Time
	SystemID    uint64
	Timeline    uint32
	Start, Stop LSN
	SegSize     uint32
	// Copy: out of band (pg backup --copy); it does not move the
	// retention window.
	Copy bool
	// WALFiles are the segments the snapshot holds itself.
	WALFiles []string
}

// BaseBackups returns the base backups among snapshots. A snapshot whose
// Postgres record cannot be read is an error: retention must not guess.
func BaseBackups(snaps []*snapshot.Snapshot) ([]BaseBackup, error) {
	var out []BaseBackup
	for _, sn := range snaps {
		p := sn.Postgres
		if p == nil {
			continue
		}
		sys, err := strconv.ParseUint(p.SystemID, 10, 64)
		if err != nil {
			return nil, fmt.Errorf("snapshot %s: system identifier %q: %w", sn.ID.Short(), p.SystemID, err)
		}
		start, err := ParseLSN(p.StartLSN)
		if err != nil {
			return nil, fmt.Errorf("snapshot %s: start LSN: %w", sn.ID.Short(), err)
		}
		stop, err := ParseLSN(p.StopLSN)
		if err != nil {
			return nil, fmt.Errorf("snapshot %s: stop LSN: %w", sn.ID.Short(), err)
		}
		if stop < start {
			return nil, fmt.Errorf("snapshot %s: stop LSN %s before start LSN %s", sn.ID.Short(), stop, start)
		}
		ss := p.WALSegmentSize
		if ss < 1<<20 || ss > 1<<30 || ss&(ss-1) != 0 {
			return nil, fmt.Errorf("snapshot %s: WAL segment size %d", sn.ID.Short(), ss)
		}
		out = append(out, BaseBackup{Snapshot: sn.ID, Time: sn.Time, SystemID: sys, Timeline: p.Timeline,
			Start: start, Stop: stop, SegSize: uint32(ss), Copy: p.Copy, WALFiles: p.WALFiles})
	}
	return out, nil
}

// Horizon returns where the WAL of cluster cl that base backups need
// starts: the start of the segment holding the start LSN of the oldest
// base backup of the cluster's system identifier that is not a copy. ok is
// false when there is none: then no WAL may be removed, since nothing says
// which backup the archive serves. WAL from the horizon on is kept, on
// every timeline: a backup replays from its start, and point-in-time
// restore needs the WAL between backups.
func Horizon(cl *Cluster, backups []BaseBackup) (keep LSN, oldest *BaseBackup, ok bool) {
	for i := range backups {
		b := &backups[i]
		if b.SystemID != cl.SystemID || b.Copy {
			continue
		}
		if oldest == nil || b.Start < oldest.Start {
			oldest = b
		}
	}
	if oldest == nil {
		return 0, nil, false
	}
	seg := uint64(oldest.SegSize)
	return LSN(uint64(oldest.Start) / seg * seg), oldest, true
}
