package wal

import (
	"slices"
)

// Gap is a run of missing segments between two stored ranges of one
// timeline.
type Gap struct {
	Timeline uint32
	// First and Last name the first and last missing segment.
	First, Last string
	// Start and End are the LSNs the gap covers.
	Start, End LSN
	Segments   uint64
	// Needed: the gap lies at or after the retention horizon (the start
	// of the oldest base backup that is not a copy), so a point-in-time
	// restore cannot replay across it.
	Needed bool
}

// BackupWAL tells whether a base backup's WAL, from its start to its
// stop, is stored.
type BackupWAL struct {
	Backup *BaseBackup
	// Needed names the segments from start to stop on the backup's
	// timeline; Missing those neither in the archive nor in the
	// snapshot itself.
	Needed, Missing []string
	// InSnapshot counts the needed segments the snapshot holds itself.
	InSnapshot int
}

// Report is the continuity of one cluster's WAL.
type Report struct {
	Cluster *Cluster
	Ranges  []Range
	Gaps    []Gap
	Backups []BackupWAL
	// Horizon is the start of the oldest base backup that is not a copy
	// (HasHorizon false: no such backup).
	Horizon    LSN
	HasHorizon bool
}

// OK tells whether the cluster's WAL serves every retained backup: each
// has its WAL from start to stop, and no gap lies after the horizon.
func (r *Report) OK() bool {
	for _, g := range r.Gaps {
		if g.Needed {
			return false
		}
	}
	for _, b := range r.Backups {
		if len(b.Missing) > 0 {
			return false
		}
	}
	return true
}

// Check reports the continuity of cl's WAL against the base backups of
// its system identifier. It reads only the catalog.
func Check(cl *Cluster, backups []BaseBackup) *Report {
	rep := &Report{Cluster: cl, Ranges: cl.Ranges()}
	rep.Horizon, _, rep.HasHorizon = Horizon(cl, backups)
	size := uint64(cl.SegSize())
	for i := 1; i < len(rep.Ranges); i++ {
		prev, next := rep.Ranges[i-1], rep.Ranges[i]
		if prev.Timeline != next.Timeline || size == 0 {
			continue
		}
		g := Gap{Timeline: next.Timeline, Start: prev.End, End: next.Start,
			First:    SegmentName(next.Timeline, uint64(prev.End)/size, uint32(size)),
			Last:     SegmentName(next.Timeline, uint64(next.Start)/size-1, uint32(size)),
			Segments: (uint64(next.Start) - uint64(prev.End)) / size}
		g.Needed = rep.HasHorizon && g.End > rep.Horizon
		rep.Gaps = append(rep.Gaps, g)
	}
	for i := range backups {
		b := &backups[i]
		if b.SystemID != cl.SystemID {
			continue
		}
		rep.Backups = append(rep.Backups, BackupNeeds(cl, b))
	}
	return rep
}

// BackupNeeds checks that the segments from b's start to its stop are in
// the archive (cl, which may be nil) or in the snapshot.
func BackupNeeds(cl *Cluster, b *BaseBackup) BackupWAL {
	out := BackupWAL{Backup: b}
	size := uint64(b.SegSize)
	last := b.Stop
	if last > b.Start {
		last--
	}
	for seg := uint64(b.Start) / size; seg <= uint64(last)/size; seg++ {
		n := SegmentName(b.Timeline, seg, b.SegSize)
		out.Needed = append(out.Needed, n)
		if slices.Contains(b.WALFiles, n) {
			out.InSnapshot++
			continue
		}
		if cl != nil {
			if e := cl.Find(n); e != nil && e.Kind == KindSegment {
				continue
			}
		}
		out.Missing = append(out.Missing, n)
	}
	return out
}
