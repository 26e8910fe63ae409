package wal

import (
	"context"
	"fmt"
	"sort"
	"strconv"
	"time"

	"github.com/rewind-backup/rewind/internal/backend"
	"github.com/rewind-backup/rewind/internal/id"
	"github.com/rewind-backup/rewind/internal/repository"
)

// CompactAfter is how many files written by single pushes a cluster may
// have before a push merges the cluster's index files into one.
const CompactAfter = 16

// RewriteOptions change Compact and Trim.
type RewriteOptions struct {
	// Host is recorded in the file written.
	Host string
	// Hook, if set, is called at "rewrite-written" (the merged file is
	// stored, none of the files it replaces is removed yet) and
	// "rewrite-removed" (after each removal), for crash tests.
	Hook func(point string)
	// DryRun computes what would change and writes nothing.
	DryRun bool
}

// RewriteResult tells what Compact or Trim did for one cluster.
type RewriteResult struct {
	Cluster string
	// Merged counts the index files read and replaced.
	Merged int
	// Entries counts the entries in the file written.
	Entries int
	// Expired lists the entries left out because the horizon passed them
	// (sorted by name).
	Expired []Entry
	// Superseded counts the partial segments left out because a longer
	// partial or the whole segment of the same name is stored.
	Superseded int
	// KeepFrom is the horizon written (0: none).
	KeepFrom LSN
	// File is the index file written (zero when nothing was written).
	File id.ID
}

// Compact merges every readable index file of cluster name into one and
// then removes the files merged. It writes the merged file before it
// removes anything, and removes only files whose entries it holds, so a
// crash at any point leaves files whose merge is the same catalog (the
// duplicates of a half-done compaction are harmless), and a push at the
// same time only adds a file it does not touch. Entries past the
// cluster's retention horizon are left out; the horizon is carried on.
func Compact(ctx context.Context, r *repository.Repository, name string, opt RewriteOptions) (*RewriteResult, error) {
	return rewrite(ctx, r, name, 0, opt)
}

// Trim moves the retention horizon of cluster name to keep: it writes one
// index file with every entry that does not end at or before keep, and the
// horizon, then removes the files it replaces (as Compact). A horizon never
// moves back: a keep below the stored horizon keeps the stored one. prune
// then drops the blobs that only the expired entries named.
func Trim(ctx context.Context, r *repository.Repository, name string, keep LSN, opt RewriteOptions) (*RewriteResult, error) {
	return rewrite(ctx, r, name, keep, opt)
}

func rewrite(ctx context.Context, r *repository.Repository, name string, keep LSN, opt RewriteOptions) (*RewriteResult, error) {
	hook := func(p string) {
		if opt.Hook != nil {
			opt.Hook(p)
		}
	}
	all, _, err := loadAll(ctx, r)
	if err != nil {
		return nil, fmt.Errorf("read the WAL index: %w", err)
	}
	cat := merge(append([]loaded(nil), all...))
	cl := cat.Cluster(name)
	if cl == nil {
		return nil, fmt.Errorf("no WAL of cluster %q is stored", name)
	}
	if cl.KeepFrom > keep {
		keep = cl.KeepFrom
	}
	mine := map[id.ID]bool{}
	for _, f := range cl.Files {
		mine[f] = true
	}
	res := &RewriteResult{Cluster: name, KeepFrom: keep}
	type key struct {
		name string
		id   id.ID
	}
	seen := map[key]bool{}
	var keepEntries []Entry
	// The merged file takes the time of the oldest file it replaces, so
	// that it still comes first when a reader decides which system
	// identifier owns the cluster name.
	first := time.Time{}
	for _, l := range all {
		if !mine[l.name] {
			continue
		}
		if res.Merged == 0 || l.f.Time.Before(first) {
			first = l.f.Time
		}
		res.Merged++
		for _, e := range l.f.Entries {
			k := key{e.Name, e.ID}
			if seen[k] {
				continue
			}
			seen[k] = true
			if cur := cl.entries[e.Name]; cur != nil && supersedes(&cur.Entry, &e) {
				// A shorter partial that a longer one replaced.
				res.Superseded++
				continue
			}
			if e.Kind == KindPartial && cl.entries[e.Name[:24]] != nil && cl.entries[e.Name[:24]].Kind == KindSegment && e.Size < int64(e.SegSize) {
				// A receiver's partial of a segment stored whole.
				res.Superseded++
				continue
			}
			if Expired(&e, keep, cl.SegSize()) {
				res.Expired = append(res.Expired, e)
				continue
			}
			keepEntries = append(keepEntries, e)
		}
	}
	sort.Slice(keepEntries, func(i, j int) bool {
		a, b := keepEntries[i], keepEntries[j]
		if !a.Archived.Equal(b.Archived) {
			return a.Archived.Before(b.Archived)
		}
		return a.Name < b.Name
	})
	sort.Slice(res.Expired, func(i, j int) bool { return res.Expired[i].Name < res.Expired[j].Name })
	res.Entries = len(keepEntries)
	if opt.DryRun || res.Merged == 0 {
		return res, nil
	}
	f := &File{Version: FormatVersion, Cluster: name, SystemID: strconv.FormatUint(cl.SystemID, 10),
		Time: first, Host: opt.Host, Entries: keepEntries, Merged: res.Merged}
	if f.Entries == nil {
		f.Entries = []Entry{}
	}
	if keep != 0 {
		f.KeepFrom = keep.String()
	}
	written, err := r.SaveJSON(ctx, backend.WALFile, f)
	if err != nil {
		return nil, fmt.Errorf("store the merged WAL index of cluster %q: %w", name, err)
	}
	res.File = written
	hook("rewrite-written")
	for _, n := range cl.Files {
		if n == written {
			// The same content as a file merged (a rerun): keep it.
			continue
		}
		h := backend.Handle{Type: backend.WALFile, Name: n.String()}
		if err := r.Backend().Remove(ctx, h); err != nil && !backend.IsNotExist(err) {
			return res, fmt.Errorf("remove merged WAL index file wal/%s (its entries are in wal/%s; the next compaction removes it): %w", n, written, err)
		}
		hook("rewrite-removed")
	}
	return res, nil
}
