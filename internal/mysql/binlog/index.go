// Package binlog keeps a MariaDB/MySQL server's binary log in a rewind
// repository: the bytes of each binlog file at their original offsets,
// stored as pieces (docs/FORMAT.md, "Binary log index files"), an index of
// where each transaction commits, the receiver that streams them from the
// server as a replica does, their check, retention, and the files a
// replay reads back.
package binlog

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"time"

	"github.com/rewind-backup/rewind/internal/backend"
	"github.com/rewind-backup/rewind/internal/id"
	"github.com/rewind-backup/rewind/internal/repository"
)

// FormatVersion is the version of binlog index files this rewind writes
// and the newest it reads.
const FormatVersion = 1

// DefaultSource is the source name used when none is given.
const DefaultSource = "main"

// File is one binlog index file: what one store wrote (docs/FORMAT.md,
// "Binary log index files"). It is a sealed JSON document in binlog/.
type File struct {
	Version int `json:"version"`
	// Source is the name the server's binlog is stored under (--source).
	Source string `json:"source"`
	// ServerID is the server's @@server_id.
	ServerID uint32 `json:"server_id"`
	// ServerUUID is @@server_uuid where the server has one (MySQL).
	ServerUUID string    `json:"server_uuid,omitempty"`
	Time       time.Time `json:"time"`
	Host       string    `json:"hostname"`
	Pieces     []Piece   `json:"pieces"`
	// KeepFrom, when set, is the retention horizon, a binlog file name:
	// pieces of files before it have expired and readers ignore them.
	KeepFrom string `json:"keep_from,omitempty"`
	// Merged counts the index files a compaction or trim merged into
	// this one (0 for a store's file).
	Merged int `json:"merged,omitempty"`
}

// Piece is a stretch of one binlog file: its bytes [Start, End) exactly as
// they are in the server's file (the first piece of a file, Start 0,
// begins with the file's magic bytes).
type Piece struct {
	// Name is the binlog file's name (mysql-bin.000042).
	Name  string `json:"name"`
	Start uint64 `json:"start"`
	End   uint64 `json:"end"`
	// ID is the keyed hash of the piece's bytes; Blobs the data blobs
	// holding them, in order.
	ID    id.ID   `json:"id"`
	Blobs []id.ID `json:"blobs"`
	// FirstTime and LastTime are the times of the piece's first and last
	// event (whole seconds, the server's clock); zero when it has none.
	FirstTime time.Time `json:"first_time"`
	LastTime  time.Time `json:"last_time"`
	// Txns are the transactions that commit in the piece, in order.
	Txns []Txn `json:"txns"`
	// Open is the GTID of the transaction still open at End (its
	// commit follows in a later piece), with Standalone and XA telling
	// how it ends.
	Open *OpenTxn `json:"open,omitempty"`
	// Checksum: the file's events end with a CRC32 (from its format
	// description event).
	Checksum bool `json:"checksum"`
	// Closed: the piece ends with the file's last event (a rotate or stop
	// event); Next is the file a rotate event names.
	Closed bool   `json:"closed,omitempty"`
	Next   string `json:"next,omitempty"`
	// Prev and PrevEnd, on a file's first piece: the receiver came to
	// this file from the end of Prev, PrevEnd bytes long, so nothing of
	// the server's binlog lies between them.
	Prev    string `json:"prev,omitempty"`
	PrevEnd uint64 `json:"prev_end,omitempty"`
	// Stored is when the piece was stored: the binlog was received up
	// to End then.
	Stored time.Time `json:"stored"`
}

// OpenTxn is a transaction begun but not committed at a piece's end.
type OpenTxn struct {
	GTID       string `json:"gtid"`
	Standalone bool   `json:"standalone,omitempty"`
	XA         bool   `json:"xa,omitempty"`
}

// Size returns the piece's length in bytes.
func (p *Piece) Size() int64 { return int64(p.End - p.Start) }

var fileName = regexp.MustCompile(`^[A-Za-z0-9_.-]{1,200}\.([0-9]{1,10})$`)

// fileSeq splits a binlog file name into its base and number.
func fileSeq(name string) (string, uint64, bool) {
	m := fileName.FindStringSubmatch(name)
	if m == nil {
		return "", 0, false
	}
	n, err := strconv.ParseUint(m[1], 10, 64)
	if err != nil {
		return "", 0, false
	}
	return name[:len(name)-len(m[1])-1], n, true
}

// CheckName tells whether name is a binlog file name (base.NNNNNN).
func CheckName(name string) error {
	if _, _, ok := fileSeq(name); !ok {
		return fmt.Errorf("%q is not a binlog file name (base.000001)", name)
	}
	return nil
}

// fileLess orders binlog file names by base, then number.
func fileLess(a, b string) bool {
	ab, an, _ := fileSeq(a)
	bb, bn, _ := fileSeq(b)
	if ab != bb {
		return ab < bb
	}
	if an != bn {
		return an < bn
	}
	return a < b
}

// Decode parses and checks a binlog index file's plaintext.
func Decode(plain []byte) (*File, error) {
	var f File
	if err := json.Unmarshal(plain, &f); err != nil {
		return nil, err
	}
	if f.Version < 1 || f.Version > FormatVersion {
		return nil, fmt.Errorf("binlog index version %d (this rewind reads 1 to %d)", f.Version, FormatVersion)
	}
	if f.Source == "" {
		return nil, errors.New("binlog index without a source name")
	}
	if f.KeepFrom != "" {
		if err := CheckName(f.KeepFrom); err != nil {
			return nil, fmt.Errorf("binlog index: keep_from: %w", err)
		}
	}
	for i := range f.Pieces {
		p := &f.Pieces[i]
		if err := CheckName(p.Name); err != nil {
			return nil, fmt.Errorf("binlog index: %w", err)
		}
		if p.End <= p.Start || p.End > 1<<40 || (p.Start > 0 && p.Start < magicLen) {
			return nil, fmt.Errorf("binlog index: %s piece [%d, %d)", p.Name, p.Start, p.End)
		}
		if len(p.Blobs) == 0 {
			return nil, fmt.Errorf("binlog index: %s piece [%d, %d) without blobs", p.Name, p.Start, p.End)
		}
		last := p.Start
		for _, t := range p.Txns {
			if _, err := ParseGTID(t.GTID); err != nil {
				return nil, fmt.Errorf("binlog index: %s: %w", p.Name, err)
			}
			if t.End <= last || t.End > p.End {
				return nil, fmt.Errorf("binlog index: %s: transaction %s ends at %d, outside (%d, %d]", p.Name, t.GTID, t.End, last, p.End)
			}
			last = t.End
		}
		if p.Open != nil {
			if _, err := ParseGTID(p.Open.GTID); err != nil {
				return nil, fmt.Errorf("binlog index: %s: open %w", p.Name, err)
			}
		}
		if p.Next != "" {
			if err := CheckName(p.Next); err != nil {
				return nil, fmt.Errorf("binlog index: %s: next: %w", p.Name, err)
			}
		}
		if p.Prev != "" {
			if err := CheckName(p.Prev); err != nil {
				return nil, fmt.Errorf("binlog index: %s: prev: %w", p.Name, err)
			}
		}
	}
	return &f, nil
}

// StoredPiece is a piece with the index file that lists it.
type StoredPiece struct {
	Piece
	File id.ID
}

// Conflict is something a reader ignored while merging: a file of a
// source name written for another server, or a piece that overlaps a
// stored one with other bytes.
type Conflict struct {
	File id.ID
	What string
}

// Catalog is every binlog index file of a repository, merged.
type Catalog struct {
	sources    map[string]*Source
	Conflicts  []Conflict
	Unreadable []repository.UnreadableFile
}

type loaded struct {
	name id.ID
	f    *File
}

// Load reads every binlog index file of r and merges them. Files that
// cannot be read are in Unreadable; the storage failing is an error.
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
	bad, err := r.LoadEach(ctx, backend.BinlogFile, func(name id.ID, plain []byte) error {
		f, err := Decode(plain)
		if err != nil {
			return err
		}
		all = append(all, loaded{name: name, f: f})
		return nil
	})
	return all, bad, err
}

// NewCatalog merges index files held in memory, as Load does.
func NewCatalog(names []id.ID, files []*File) *Catalog {
	all := make([]loaded, len(files))
	for i := range files {
		all[i] = loaded{names[i], files[i]}
	}
	return merge(all)
}

// merge builds the catalog: the file written first fixes a source name's
// server; the pieces of the remaining files are merged in the order they
// were stored, the first piece at an offset winning and a later one with
// the same bytes being a harmless duplicate (compaction writes such
// copies); a piece that overlaps another otherwise is a conflict.
func merge(all []loaded) *Catalog {
	c := &Catalog{sources: map[string]*Source{}}
	sort.Slice(all, func(i, j int) bool {
		if !all[i].f.Time.Equal(all[j].f.Time) {
			return all[i].f.Time.Before(all[j].f.Time)
		}
		return all[i].name.String() < all[j].name.String()
	})
	type ent struct {
		p    Piece
		file id.ID
		src  *Source
	}
	var ents []ent
	for _, l := range all {
		f := l.f
		src := c.sources[f.Source]
		if src == nil {
			src = &Source{Name: f.Source, ServerID: f.ServerID, ServerUUID: f.ServerUUID, files: map[string][]*StoredPiece{}}
			c.sources[f.Source] = src
		}
		if src.ServerID != f.ServerID || (f.ServerUUID != "" && src.ServerUUID != "" && f.ServerUUID != src.ServerUUID) {
			c.Conflicts = append(c.Conflicts, Conflict{File: l.name, What: fmt.Sprintf(
				"source %q: written for server_id %d, but the source's binlog is from server_id %d; ignored", f.Source, f.ServerID, src.ServerID)})
			continue
		}
		src.IndexFiles = append(src.IndexFiles, l.name)
		if i, found := slices.BinarySearch(src.Hosts, f.Host); !found {
			src.Hosts = slices.Insert(src.Hosts, i, f.Host)
		}
		if f.Merged == 0 && f.KeepFrom == "" {
			src.Small++
		}
		if f.KeepFrom != "" && (src.KeepFrom == "" || fileLess(src.KeepFrom, f.KeepFrom)) {
			src.KeepFrom = f.KeepFrom
		}
		for _, p := range f.Pieces {
			ents = append(ents, ent{p, l.name, src})
		}
	}
	sort.SliceStable(ents, func(i, j int) bool {
		if !ents[i].p.Stored.Equal(ents[j].p.Stored) {
			return ents[i].p.Stored.Before(ents[j].p.Stored)
		}
		return ents[i].file.String() < ents[j].file.String()
	})
	for _, x := range ents {
		src, p := x.src, x.p
		if src.KeepFrom != "" && fileLess(p.Name, src.KeepFrom) {
			src.Expired++
			continue
		}
		ps := src.files[p.Name]
		dup := false
		clash := ""
		for _, o := range ps {
			if o.Start == p.Start && o.End == p.End && o.ID == p.ID {
				dup = true
				break
			}
			if o.Start < p.End && p.Start < o.End {
				clash = fmt.Sprintf("source %q: %s [%d, %d) overlaps [%d, %d) stored in binlog/%s; the first is used", src.Name, p.Name, p.Start, p.End, o.Start, o.End, o.File.Short())
				break
			}
		}
		if dup {
			continue
		}
		if clash != "" {
			c.Conflicts = append(c.Conflicts, Conflict{File: x.file, What: clash})
			continue
		}
		i := sort.Search(len(ps), func(i int) bool { return ps[i].Start > p.Start })
		src.files[p.Name] = slices.Insert(ps, i, &StoredPiece{Piece: p, File: x.file})
	}
	return c
}

// Sources returns the stored sources, by name.
func (c *Catalog) Sources() []*Source {
	out := make([]*Source, 0, len(c.sources))
	for _, s := range c.sources {
		out = append(out, s)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// Source returns the source stored under name, or nil.
func (c *Catalog) Source(name string) *Source { return c.sources[name] }

// SourceFor returns the source of the server with server_id id: the only
// one, or an error naming the candidates.
func (c *Catalog) SourceFor(serverID uint32) (*Source, error) {
	var found []*Source
	for _, s := range c.Sources() {
		if s.ServerID == serverID {
			found = append(found, s)
		}
	}
	switch len(found) {
	case 0:
		return nil, fmt.Errorf("no binary log of server_id %d is stored (run rewind mysql binlog receive against it)", serverID)
	case 1:
		return found[0], nil
	}
	names := make([]string, len(found))
	for i, s := range found {
		names[i] = s.Name
	}
	return nil, fmt.Errorf("the binary logs of %d sources have server_id %d (%v): give the source name", len(found), serverID, names)
}

// UsedBlobs calls add for every blob that a binlog index file names. A
// file that cannot be read is an error: its blobs are unknown, and prune
// must not remove them.
func UsedBlobs(ctx context.Context, r *repository.Repository, add func(id.ID)) error {
	bad, err := r.LoadEach(ctx, backend.BinlogFile, func(_ id.ID, plain []byte) error {
		f, err := Decode(plain)
		if err != nil {
			return err
		}
		for _, p := range f.Pieces {
			for _, b := range p.Blobs {
				add(b)
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	if len(bad) > 0 {
		return fmt.Errorf("binlog index file binlog/%s cannot be read, so the binlog blobs it names are unknown: %w", bad[0].File, bad[0].Err)
	}
	return nil
}
