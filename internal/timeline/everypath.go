package timeline

import (
	"path"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/rewind-backup/rewind/internal/snapshot"
)

// PathAt is one part of a host as it was at a moment: a path it backed
// up, and the snapshot that shows that path then.
type PathAt struct {
	// Path is absolute and clean.
	Path     string
	Snapshot *snapshot.Snapshot
	// Inner are paths below Path that other entries answer, because a
	// newer snapshot covers them: restoring this one leaves them alone.
	Inner []string
}

// AtEvery answers "everything as it was at t" for one host's history
// (sns in AsOf order, as Select returns them): every path that a snapshot
// whose capture had ended by t backed up, each from the newest such
// snapshot that covers it (the rule of At, path by path). A host may back
// up /etc nightly and /srv/www hourly, and watch may capture some paths
// many times a minute: each path is answered by its own newest capture.
//
// A path is its own entry only where its answer differs from the
// enclosing entry's: /srv/www backed up on its own after the last backup
// of /srv is an entry inside /srv (named in its Inner), while /srv/www
// backed up before the last backup of /srv is answered by /srv's entry.
// Entries come out sorted by path, so each comes after those that enclose
// it. AtEvery returns nil when no capture had ended by t.
func AtEvery(sns []*snapshot.Snapshot, t time.Time) []PathAt {
	done := sns[:sort.Search(len(sns), func(i int) bool { return sns[i].AsOf().After(t) })]
	var paths []string
	for _, sn := range done {
		for _, p := range sn.Paths {
			paths = append(paths, path.Clean("/"+p))
		}
	}
	slices.Sort(paths)
	paths = slices.Compact(paths)

	var out []PathAt
	for _, p := range paths {
		sn := newestCovering(done, p)
		// The deepest PathAt above p: ancestors sort before what they
		// hold, and a deeper one after a shallower one.
		up := -1
		for i := len(out) - 1; i >= 0; i-- {
			if below(p, out[i].Path) {
				up = i
				break
			}
		}
		if up >= 0 && out[up].Snapshot == sn {
			continue
		}
		if up >= 0 {
			out[up].Inner = append(out[up].Inner, p)
		}
		out = append(out, PathAt{Path: p, Snapshot: sn})
	}
	return out
}

// newestCovering returns the last snapshot of sns that covers p.
func newestCovering(sns []*snapshot.Snapshot, p string) *snapshot.Snapshot {
	for i := len(sns) - 1; i >= 0; i-- {
		if Covers(sns[i], p) {
			return sns[i]
		}
	}
	return nil
}

// below reports whether p lies strictly below the directory dir.
func below(p, dir string) bool {
	return p != dir && (dir == "/" || strings.HasPrefix(p, dir+"/"))
}
