package wal

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strconv"
	"time"

	"github.com/rewind-backup/rewind/internal/backend"
	"github.com/rewind-backup/rewind/internal/id"
	"github.com/rewind-backup/rewind/internal/repository"
)

// FormatVersion is the version of WAL index files this rewind writes and
// the newest it reads.
const FormatVersion = 1

// File is one WAL index file: what one push stored (docs/FORMAT.md §17).
// It is a sealed JSON document in wal/.
type File struct {
	Version int `json:"version"`
	// Cluster is the name the WAL is stored under (--cluster).
	Cluster string `json:"cluster"`
	// SystemID is the cluster's system identifier, in decimal.
	SystemID string    `json:"system_id"`
	Time     time.Time `json:"time"`
	Host     string    `json:"hostname"`
	Entries  []Entry   `json:"entries"`
	// KeepFrom, when set, is the retention horizon (an LSN in text form,
	// "0/5000000"): WAL of the cluster that ends at or before it has
	// expired, and readers ignore such entries in every file of the
	// cluster. Written by Trim; carried on by Compact.
	KeepFrom string `json:"keep_from,omitempty"`
	// Merged counts the index files a compaction or trim merged into this
	// one (informative; 0 for a push's file).
	Merged int `json:"merged,omitempty"`
}

// Entry is one stored file.
type Entry struct {
	// Name is the file's name as PostgreSQL archives it.
	Name     string `json:"name"`
	Kind     Kind   `json:"kind"`
	Timeline uint32 `json:"timeline"`
	// SegNo is the segment number (segment, partial and backup files).
	SegNo uint64 `json:"segno,omitempty"`
	// SegSize is the cluster's WAL segment size (segments and partial
	// segments).
	SegSize uint32 `json:"seg_size,omitempty"`
	// Size is the file's length in bytes.
	Size int64 `json:"size"`
	// ID is the content hash of the whole file: the repository's blob ID
	// function (keyed BLAKE3-256) over its bytes.
	ID id.ID `json:"id"`
	// Blobs are the data blobs holding the file's bytes, in order.
	Blobs []id.ID `json:"blobs"`
	// Modified is the file's modification time when pushed: about when
	// its last record was written.
	Modified time.Time `json:"modified"`
	// Archived is when the push stored it: after every record in it.
	Archived time.Time `json:"archived"`
}

// StartLSN returns the LSN of a segment's first byte.
func (e *Entry) StartLSN() LSN { return LSN(e.SegNo * uint64(e.SegSize)) }

// EndLSN returns the LSN just after a segment's last byte.
func (e *Entry) EndLSN() LSN { return LSN((e.SegNo + 1) * uint64(e.SegSize)) }

// StoredEntry is an entry with the index file that lists it.
type StoredEntry struct {
	Entry
	File id.ID
}

// Cluster is the merged WAL of one cluster name.
type Cluster struct {
	Name     string
	SystemID uint64
	// Files are the WAL index files of the cluster.
	Files []id.ID
	// First is when the cluster's first index file was written.
	First time.Time
	// KeepFrom is the retention horizon (0: none): entries that end at
	// or before it are ignored (Expired).
	KeepFrom LSN
	// Expired counts the entries ignored because of KeepFrom.
	Expired int
	// Small counts the cluster's files written by single pushes (not by
	// a compaction or trim).
	Small int
	// Hosts are the hosts that pushed its WAL, sorted.
	Hosts   []string
	entries map[string]*StoredEntry
	segSize uint32
}

// Conflict is something a reader ignored while merging: a file of a
// cluster name written by another system identifier, or an entry whose
// name is stored already with other content.
type Conflict struct {
	File id.ID
	What string
}

// Catalog is every WAL index file of a repository, merged.
type Catalog struct {
	Clusters   map[string]*Cluster
	Conflicts  []Conflict
	Unreadable []repository.UnreadableFile
}

type loaded struct {
	name id.ID
	f    *File
	sys  uint64
	keep LSN
}

// Decode parses and checks a WAL index file's plaintext.
func Decode(plain []byte) (*File, uint64, error) {
	var f File
	if err := json.Unmarshal(plain, &f); err != nil {
		return nil, 0, err
	}
	if f.Version < 1 || f.Version > FormatVersion {
		return nil, 0, fmt.Errorf("WAL index version %d (this rewind reads 1 to %d)", f.Version, FormatVersion)
	}
	if f.Cluster == "" {
		return nil, 0, errors.New("WAL index without a cluster name")
	}
	sys, err := strconv.ParseUint(f.SystemID, 10, 64)
	if err != nil || sys == 0 {
		return nil, 0, fmt.Errorf("WAL index: bad system identifier %q", f.SystemID)
	}
	if f.KeepFrom != "" {
		if _, err := ParseLSN(f.KeepFrom); err != nil {
			return nil, 0, fmt.Errorf("WAL index: keep_from: %w", err)
		}
	}
	for i := range f.Entries {
		e := &f.Entries[i]
		n, err := ParseName(e.Name)
		if err != nil {
			return nil, 0, err
		}
		if n.Kind != e.Kind || n.Timeline != e.Timeline {
			return nil, 0, fmt.Errorf("WAL index entry %s: kind %q timeline %d do not match its name", e.Name, e.Kind, e.Timeline)
		}
		if e.Kind == KindSegment || e.Kind == KindPartial {
			if e.SegSize < 1<<20 || e.SegSize > 1<<30 || e.SegSize&(e.SegSize-1) != 0 {
				return nil, 0, fmt.Errorf("WAL index entry %s: segment size %d", e.Name, e.SegSize)
			}
			if n.SegNo(e.SegSize) != e.SegNo || uint64(n.Seg) >= 0x100000000/uint64(e.SegSize) {
				return nil, 0, fmt.Errorf("WAL index entry %s: segment number %d does not match its name", e.Name, e.SegNo)
			}
		}
		if e.Size < 0 || (e.Size > 0) != (len(e.Blobs) > 0) {
			return nil, 0, fmt.Errorf("WAL index entry %s: %d bytes in %d blob(s)", e.Name, e.Size, len(e.Blobs)) // plural: an error message, the count is rarely 1
		}
	}
	return &f, sys, nil
}

// Load reads every WAL index file of r and merges them. Files that cannot
// be read are in Unreadable; the storage failing is an error.
func Load(ctx context.Context, r *repository.Repository) (*Catalog, error) {
	all, bad, err := loadAll(ctx, r)
	if err != nil {
		return nil, err
	}
	c := merge(all)
	c.Unreadable = bad
	return c, nil
}

func loadAll(ctx context.Context, r *repository.Repository) ([]loaded, []repository.UnreadableFile, error) {
	var all []loaded
	bad, err := r.LoadEach(ctx, backend.WALFile, func(name id.ID, plain []byte) error {
		f, sys, err := Decode(plain)
		if err != nil {
			return err
		}
		l := loaded{name: name, f: f, sys: sys}
		if f.KeepFrom != "" {
			l.keep, _ = ParseLSN(f.KeepFrom)
		}
		all = append(all, l)
		return nil
	})
	return all, bad, err
}

// merge builds the catalog of loaded files. The file written first (by
// time, then name) fixes a cluster name's system identifier; files of the
// name by another one are conflicts. Then the entries of the remaining
// files, whichever file lists them, are merged in the order they were
// archived (then by file name): the first entry of a name wins, a later one
// with the same content is a harmless duplicate (compaction and trim write
// such copies), and one with other content is a conflict. So the result
// does not depend on which files were merged into which.
func merge(all []loaded) *Catalog {
	c := &Catalog{Clusters: map[string]*Cluster{}}
	sort.Slice(all, func(i, j int) bool {
		if !all[i].f.Time.Equal(all[j].f.Time) {
			return all[i].f.Time.Before(all[j].f.Time)
		}
		return all[i].name.String() < all[j].name.String()
	})
	type ent struct {
		e    Entry
		file id.ID
		cl   *Cluster
	}
	var ents []ent
	for _, l := range all {
		f := l.f
		cl := c.Clusters[f.Cluster]
		if cl == nil {
			cl = &Cluster{Name: f.Cluster, SystemID: l.sys, First: f.Time, entries: map[string]*StoredEntry{}}
			c.Clusters[f.Cluster] = cl
		}
		if cl.SystemID != l.sys {
			c.Conflicts = append(c.Conflicts, Conflict{File: l.name, What: fmt.Sprintf(
				"cluster %q: written by system identifier %d, but the cluster's WAL is from %d; ignored", f.Cluster, l.sys, cl.SystemID)})
			continue
		}
		cl.Files = append(cl.Files, l.name)
		if i, found := slices.BinarySearch(cl.Hosts, f.Host); !found {
			cl.Hosts = slices.Insert(cl.Hosts, i, f.Host)
		}
		if f.Merged == 0 && f.KeepFrom == "" {
			cl.Small++
		}
		if l.keep > cl.KeepFrom {
			cl.KeepFrom = l.keep
		}
		for _, e := range f.Entries {
			if cl.segSize == 0 && e.SegSize != 0 {
				cl.segSize = e.SegSize
			}
			ents = append(ents, ent{e, l.name, cl})
		}
	}
	sort.SliceStable(ents, func(i, j int) bool {
		if !ents[i].e.Archived.Equal(ents[j].e.Archived) {
			return ents[i].e.Archived.Before(ents[j].e.Archived)
		}
		return ents[i].file.String() < ents[j].file.String()
	})
	for _, x := range ents {
		cl, e := x.cl, x.e
		if cl.KeepFrom != 0 && Expired(&e, cl.KeepFrom, cl.segSize) {
			cl.Expired++
			continue
		}
		if old := cl.entries[e.Name]; old != nil {
			if supersedes(&e, &old.Entry) {
				cl.entries[e.Name] = &StoredEntry{Entry: e, File: x.file}
				continue
			}
			if old.ID != e.ID && !supersedes(&old.Entry, &e) {
				c.Conflicts = append(c.Conflicts, Conflict{File: x.file, What: fmt.Sprintf(
					"cluster %q: %s stored again with other content (%s, first %s in wal/%s); the first is used", cl.Name, e.Name, e.ID.Short(), old.ID.Short(), old.File.Short())})
			}
			continue
		}
		cl.entries[e.Name] = &StoredEntry{Entry: e, File: x.file}
	}
	return c
}

// Expired tells whether entry e ends at or before the LSN keep, so that no
// recovery that starts at keep or later needs it. segSize is the
// cluster's segment size. History files never expire; a backup history
// file expires with the segment it names (never when segSize is unknown).
func Expired(e *Entry, keep LSN, segSize uint32) bool {
	if keep == 0 {
		return false
	}
	switch e.Kind {
	case KindSegment, KindPartial:
		return e.EndLSN() <= keep
	case KindBackup:
		n, err := ParseName(e.Name)
		if err != nil || segSize == 0 {
			return false
		}
		return LSN((n.SegNo(segSize)+1)*uint64(segSize)) <= keep
	}
	return false
}

// Cluster returns the cluster stored under name, or nil.
func (c *Catalog) Cluster(name string) *Cluster { return c.Clusters[name] }

// Names returns the cluster names, sorted.
func (c *Catalog) Names() []string {
	out := make([]string, 0, len(c.Clusters))
	for n := range c.Clusters {
		out = append(out, n)
	}
	slices.Sort(out)
	return out
}

// Find returns the stored file called name, or nil.
func (cl *Cluster) Find(name string) *StoredEntry { return cl.entries[name] }

// Entries returns every stored file, sorted by timeline, then kind
// (history, segment, partial, backup), then name.
func (cl *Cluster) Entries() []*StoredEntry {
	out := make([]*StoredEntry, 0, len(cl.entries))
	for _, e := range cl.entries {
		out = append(out, e)
	}
	order := map[Kind]int{KindHistory: 0, KindSegment: 1, KindPartial: 2, KindBackup: 3}
	sort.Slice(out, func(i, j int) bool {
		a, b := out[i], out[j]
		if a.Timeline != b.Timeline {
			return a.Timeline < b.Timeline
		}
		if order[a.Kind] != order[b.Kind] {
			return order[a.Kind] < order[b.Kind]
		}
		return a.Name < b.Name
	})
	return out
}

// Timelines returns the timelines that have stored files, ascending.
func (cl *Cluster) Timelines() []uint32 {
	seen := map[uint32]bool{}
	for _, e := range cl.entries {
		seen[e.Timeline] = true
	}
	out := make([]uint32, 0, len(seen))
	for t := range seen {
		out = append(out, t)
	}
	slices.Sort(out)
	return out
}

// Segments returns the complete segments stored on timeline tli, by
// segment number.
func (cl *Cluster) Segments(tli uint32) []*StoredEntry {
	var out []*StoredEntry
	for _, e := range cl.entries {
		if e.Kind == KindSegment && e.Timeline == tli {
			out = append(out, e)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].SegNo < out[j].SegNo })
	return out
}

// SegSize returns the cluster's WAL segment size, or 0 before any segment
// is stored.
func (cl *Cluster) SegSize() uint32 { return cl.segSize }

// SegmentFor returns the stored segment of timeline tli that holds lsn,
// or nil.
func (cl *Cluster) SegmentFor(tli uint32, lsn LSN) *StoredEntry {
	size := cl.SegSize()
	if size == 0 {
		return nil
	}
	e := cl.entries[SegmentName(tli, uint64(lsn)/uint64(size), size)]
	if e == nil || e.Kind != KindSegment {
		return nil
	}
	return e
}

// Range is a run of consecutive stored segments of one timeline.
type Range struct {
	Timeline uint32
	// First and Last are the first and last segment's names.
	First, Last string
	// Start is the LSN of First's first byte; End the LSN after Last.
	Start, End LSN
	// From is when First was archived; To when Last was.
	From, To time.Time
	Segments int
}

// Ranges returns the runs of consecutive segments of every timeline: the
// WAL a restore can replay, with the gaps between runs.
func (cl *Cluster) Ranges() []Range {
	var out []Range
	for _, tli := range cl.Timelines() {
		var cur *Range
		var prev uint64
		for _, e := range cl.Segments(tli) {
			if cur != nil && e.SegNo == prev+1 {
				cur.Last, cur.End, cur.To = e.Name, e.EndLSN(), e.Archived
				cur.Segments++
			} else {
				if cur != nil {
					out = append(out, *cur)
				}
				cur = &Range{Timeline: tli, First: e.Name, Last: e.Name, Start: e.StartLSN(), End: e.EndLSN(), From: e.Archived, To: e.Archived, Segments: 1}
			}
			prev = e.SegNo
		}
		if cur != nil {
			out = append(out, *cur)
		}
	}
	return out
}

// UsedBlobs calls add for every blob that a WAL index file names. A WAL
// index file that cannot be read is an error: its blobs are unknown, and
// prune must not remove them.
func UsedBlobs(ctx context.Context, r *repository.Repository, add func(id.ID)) error {
	bad, err := r.LoadEach(ctx, backend.WALFile, func(_ id.ID, plain []byte) error {
		f, _, err := Decode(plain)
		if err != nil {
			return err
		}
		for _, e := range f.Entries {
			for _, b := range e.Blobs {
				add(b)
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	if len(bad) > 0 {
		return fmt.Errorf("WAL index file wal/%s cannot be read, so the WAL blobs it names are unknown: %w", bad[0].File, bad[0].Err)
	}
	return nil
}
