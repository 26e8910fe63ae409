package prune

import (
	"cmp"
	"slices"

	"github.com/rewind-backup/rewind/internal/id"
	"github.com/rewind-backup/rewind/internal/index"
	"github.com/rewind-backup/rewind/internal/pack"
)

// packInfo is what the plan knows about one indexed pack.
type packInfo struct {
	entry      index.PackEntry
	keepBlobs  []pack.Blob // the blobs in use that this pack holds the copy of
	size       int64       // stored size
	usedBlobs  int
	usedBytes  int64 // sealed bytes of the blobs to keep
	unusedSize int64 // everything else: unused and duplicate blobs, header
}

// plan says what prune does with every indexed pack.
type plan struct {
	keep      []*packInfo
	repack    []*packInfo // live blobs are copied, then the pack is condemned
	condemn   []*packInfo // holds nothing in use
	missing   []id.ID     // indexed but not stored: left alone, reported
	totalSize int64
}

// keepBlob reports whether blob b of pack p is the copy to keep: it is in
// use and p holds the copy the index resolves it to (other copies are
// duplicates).
func keepBlob(idx *index.Index, used *usedSet, p id.ID, b pack.Blob) bool {
	if !used.has(b.ID) {
		return false
	}
	loc, ok := idx.Lookup(b.ID)
	return ok && loc.Pack == p
}

// makePlan sorts the packs of the index files in force into kept, repacked
// and condemned ones. stored maps every pack in the backend to its size.
//
// Repacking is chosen like restic's --max-unused: packs holding unused
// data are repacked, most-unused first, until the unused bytes left in kept
// packs are at most maxUnused of the repository size, and no more than
// maxRepack bytes of live data are copied (0: no limit).
func makePlan(files []*index.File, idx *index.Index, used *usedSet, stored map[id.ID]int64, maxUnused float64, maxRepack int64) *plan {
	pl := &plan{}
	seen := map[id.ID]bool{}
	var mixed []*packInfo
	for _, f := range files {
		for _, e := range f.Packs {
			if seen[e.ID] {
				continue
			}
			seen[e.ID] = true
			size, ok := stored[e.ID]
			if !ok {
				pl.missing = append(pl.missing, e.ID)
				continue
			}
			pi := &packInfo{entry: e, size: size}
			for _, b := range e.Blobs {
				if keepBlob(idx, used, e.ID, b) {
					pi.keepBlobs = append(pi.keepBlobs, b)
					pi.usedBlobs++
					pi.usedBytes += int64(b.Length)
				}
			}
			pi.unusedSize = size - pi.usedBytes
			pl.totalSize += size
			switch {
			case pi.usedBlobs == 0:
				pl.condemn = append(pl.condemn, pi)
			case pi.usedBlobs == len(e.Blobs):
				pl.keep = append(pl.keep, pi)
			default:
				mixed = append(mixed, pi)
			}
		}
	}
	// Most unused first; ties by ID so that plans are reproducible.
	slices.SortFunc(mixed, func(a, b *packInfo) int {
		fa := float64(a.unusedSize) / float64(a.size)
		fb := float64(b.unusedSize) / float64(b.size)
		if c := cmp.Compare(fb, fa); c != 0 {
			return c
		}
		return slices.Compare(a.entry.ID[:], b.entry.ID[:])
	})
	var unusedLeft int64
	for _, pi := range mixed {
		unusedLeft += pi.unusedSize
	}
	limit := int64(maxUnused * float64(pl.totalSize))
	var copied int64
	for _, pi := range mixed {
		if unusedLeft > limit && (maxRepack <= 0 || copied+pi.usedBytes <= maxRepack) {
			pl.repack = append(pl.repack, pi)
			copied += pi.usedBytes
			unusedLeft -= pi.unusedSize
			continue
		}
		pl.keep = append(pl.keep, pi)
	}
	return pl
}
