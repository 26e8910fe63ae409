package index

import (
	"bytes"
	"encoding/binary"
	"slices"
	"sync"

	"github.com/rewind-backup/rewind/internal/id"
	"github.com/rewind-backup/rewind/internal/pack"
)

// entry is the in-memory record of one blob: 48 bytes. The type and the
// compressed flag live in the two top bits of length, since sealed lengths
// are below 2^30.
type entry struct {
	id     id.ID
	pack   uint32
	offset uint32
	length uint32
	raw    uint32
}

const (
	treeBit       = 1 << 31
	compressedBit = 1 << 30
	lengthMask    = compressedBit - 1
)

func makeEntry(p uint32, b pack.Blob) entry {
	l := b.Length
	if b.Type == pack.TreeBlob {
		l |= treeBit
	}
	if b.Compressed {
		l |= compressedBit
	}
	return entry{id: b.ID, pack: p, offset: b.Offset, length: l, raw: b.RawLength}
}

// Location says where a blob is stored.
type Location struct {
	Pack id.ID
	pack.Blob
}

// Index answers "is this blob stored, and where" for every blob of a
// repository. Blobs loaded from index files sit in one sorted slice with a
// 64K-bucket prefix table (48 bytes per blob plus 256 KiB); blobs added
// since the last Merge sit in a map until the next Merge. It is safe for
// concurrent use.
type Index struct {
	mu      sync.RWMutex
	packs   []id.ID
	packPos map[id.ID]uint32
	sorted  []entry
	bucket  []uint32 // bucket[p] = first index in sorted with prefix >= p
	pending map[id.ID]entry
}

// New returns an empty index.
func New() *Index {
	return &Index{packPos: make(map[id.ID]uint32), pending: make(map[id.ID]entry)}
}

// packIndex returns the number of a pack ID. mu must be held for writing.
func (x *Index) packIndex(p id.ID) uint32 {
	if n, ok := x.packPos[p]; ok {
		return n
	}
	n := uint32(len(x.packs))
	x.packs = append(x.packs, p)
	x.packPos[p] = n
	return n
}

// AddPack records the blobs of one pack. They are visible to Lookup at once.
// A blob already known, pending or merged, keeps its first location.
func (x *Index) AddPack(p id.ID, blobs []pack.Blob) {
	x.mu.Lock()
	defer x.mu.Unlock()
	n := x.packIndex(p)
	for _, b := range blobs {
		if _, ok := x.find(b.ID); ok {
			continue
		}
		x.pending[b.ID] = makeEntry(n, b)
	}
}

// AddFiles records every pack of the index files in one pass: the blobs
// are sorted into the table directly, without passing through the pending
// map. Where files list a blob more than once, the first listing wins.
func (x *Index) AddFiles(files []*File) {
	n := 0
	for _, f := range files {
		for _, p := range f.Packs {
			n += len(p.Blobs)
		}
	}
	x.mu.Lock()
	defer x.mu.Unlock()
	add := make([]entry, 0, n)
	for _, f := range files {
		for _, p := range f.Packs {
			pn := x.packIndex(p.ID)
			for _, b := range p.Blobs {
				add = append(add, makeEntry(pn, b))
			}
		}
	}
	x.mergeSorted(add)
}

// AddFile records every pack of an index file. Call Merge after a batch of
// AddFile calls.
func (x *Index) AddFile(f *File) {
	for _, p := range f.Packs {
		x.AddPack(p.ID, p.Blobs)
	}
}

// MergeIfLarge merges when the pending map has grown to an eighth of the
// sorted table (and at least 64Ki entries), so that a long backup keeps
// most blobs in the compact table at an amortized cost of a few copies
// per blob.
func (x *Index) MergeIfLarge() {
	x.mu.RLock()
	large := len(x.pending) >= max(1<<16, len(x.sorted)/8)
	x.mu.RUnlock()
	if large {
		x.Merge()
	}
}

// Merge moves pending blobs into the sorted table. A blob stored in several
// packs keeps the first location seen.
func (x *Index) Merge() {
	x.mu.Lock()
	defer x.mu.Unlock()
	if len(x.pending) == 0 {
		return
	}
	add := make([]entry, 0, len(x.pending))
	for _, e := range x.pending {
		add = append(add, e)
	}
	x.pending = make(map[id.ID]entry)
	x.mergeSorted(add)
}

// mergeSorted sorts add (stably, so earlier entries win among equal IDs)
// and merges it into the table, keeping entries already there. mu must be
// held for writing.
func (x *Index) mergeSorted(add []entry) {
	cmp := func(a, b entry) int { return bytes.Compare(a.id[:], b.id[:]) }
	slices.SortStableFunc(add, cmp)
	add = slices.CompactFunc(add, func(a, b entry) bool { return a.id == b.id })
	merged := make([]entry, 0, len(x.sorted)+len(add))
	i, j := 0, 0
	for i < len(x.sorted) || j < len(add) {
		switch {
		case j == len(add) || i < len(x.sorted) && cmp(x.sorted[i], add[j]) < 0:
			merged = append(merged, x.sorted[i])
			i++
		case i == len(x.sorted) || cmp(x.sorted[i], add[j]) > 0:
			merged = append(merged, add[j])
			j++
		default: // present in both: keep the older entry
			merged = append(merged, x.sorted[i])
			i++
			j++
		}
	}
	x.sorted = merged
	x.rebuildBuckets()
}

// rebuildBuckets fills the prefix table. mu must be held for writing.
func (x *Index) rebuildBuckets() {
	if x.bucket == nil {
		x.bucket = make([]uint32, 1<<16+1)
	}
	pos := 0
	for p := 0; p < 1<<16; p++ {
		for pos < len(x.sorted) && int(binary.BigEndian.Uint16(x.sorted[pos].id[:2])) < p {
			pos++
		}
		x.bucket[p] = uint32(pos)
	}
	x.bucket[1<<16] = uint32(len(x.sorted))
}

// find returns the entry for i. mu must be held.
func (x *Index) find(i id.ID) (entry, bool) {
	if e, ok := x.pending[i]; ok {
		return e, true
	}
	if len(x.sorted) == 0 {
		return entry{}, false
	}
	p := binary.BigEndian.Uint16(i[:2])
	lo, hi := int(x.bucket[p]), int(x.bucket[int(p)+1])
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		c := bytes.Compare(x.sorted[m].id[:], i[:])
		if c == 0 {
			return x.sorted[m], true
		}
		if c < 0 {
			lo = m + 1
		} else {
			hi = m
		}
	}
	return entry{}, false
}

// Has reports whether a blob is stored.
func (x *Index) Has(i id.ID) bool {
	x.mu.RLock()
	_, ok := x.find(i)
	x.mu.RUnlock()
	return ok
}

// Lookup returns where a blob is stored.
func (x *Index) Lookup(i id.ID) (Location, bool) {
	x.mu.RLock()
	defer x.mu.RUnlock()
	e, ok := x.find(i)
	if !ok {
		return Location{}, false
	}
	return x.location(e), true
}

// location expands an entry. mu must be held.
func (x *Index) location(e entry) Location {
	t := pack.DataBlob
	if e.length&treeBit != 0 {
		t = pack.TreeBlob
	}
	return Location{Pack: x.packs[e.pack], Blob: pack.Blob{
		Type: t, ID: e.id, Offset: e.offset, Length: e.length & lengthMask,
		RawLength: e.raw, Compressed: e.length&compressedBit != 0,
	}}
}

// Len returns the number of distinct blobs.
func (x *Index) Len() int {
	x.mu.RLock()
	defer x.mu.RUnlock()
	return len(x.sorted) + len(x.pending)
}

// Packs returns the IDs of all packs the index knows.
func (x *Index) Packs() []id.ID {
	x.mu.RLock()
	defer x.mu.RUnlock()
	return slices.Clone(x.packs)
}

// Each calls fn for every blob, sorted blobs first. It holds a read lock:
// fn must not call into the index.
func (x *Index) Each(fn func(Location)) {
	x.mu.RLock()
	defer x.mu.RUnlock()
	for _, e := range x.sorted {
		fn(x.location(e))
	}
	for _, e := range x.pending {
		fn(x.location(e))
	}
}
