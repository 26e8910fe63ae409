package repository

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"

	"github.com/rewind-backup/rewind/internal/backend"
	"github.com/rewind-backup/rewind/internal/id"
)

// ErrIndexDamaged is wrapped by the error of IndexDamage.Err: an index
// file cannot be read, so the index was completed from pack headers, and
// only `rewind repair index` makes the stored index whole again.
var ErrIndexDamaged = errors.New("index files are damaged")

// IndexDamage says which index files LoadIndex could not read and what it
// did instead. Reading goes on: every stored pack that no intact index
// file lists (and no prune mark condemns) had its header read, and its
// blobs are in the in-memory index as if the damaged file had listed
// them. Nothing is written: the stored index stays damaged until `rewind
// repair index` replaces it.
type IndexDamage struct {
	// Files are the damaged index files, sorted by name.
	Files []UnreadableFile
	// PacksFromHeaders counts the packs indexed from their headers.
	PacksFromHeaders int
	// UnreadablePacks are stored packs that no intact index file lists
	// and whose header cannot be read either: their blobs are not in the
	// index, so readers miss them and backups store them again.
	UnreadablePacks []PackError
}

// Err is the error for commands that must not go on with a damaged stored
// index (prune, which would forget what it cannot account for). It names
// the files and the cure.
func (d *IndexDamage) Err() error {
	names := make([]string, len(d.Files))
	for i, f := range d.Files {
		names[i] = "index/" + f.File.String()
	}
	return fmt.Errorf("%w: %s cannot be read; run `rewind repair index`, which rebuilds the index from the packs", ErrIndexDamaged, strings.Join(names, ", "))
}

// IndexDamage returns what the last LoadIndex found damaged, or nil when
// every index file could be read.
func (r *Repository) IndexDamage() *IndexDamage { return r.indexDamage }

// coverDamagedIndex completes the in-memory index after index files failed
// to load: the packs they listed are found as the stored packs that no
// intact file lists, and each is indexed from its own header, as `repair
// index` would. A blob is then found where it is stored, never assumed
// stored because a damaged file might have said so.
func (r *Repository) coverDamagedIndex(ctx context.Context, damaged map[id.ID]error) error {
	d := &IndexDamage{}
	for name, err := range damaged {
		d.Files = append(d.Files, UnreadableFile{File: name, Err: err})
	}
	slices.SortFunc(d.Files, func(a, b UnreadableFile) int { return bytes.Compare(a.File[:], b.File[:]) })
	stored, err := r.List(ctx, backend.PackFile)
	if err != nil {
		return fmt.Errorf("list packs to cover damaged index files: %w", err)
	}
	known := map[id.ID]bool{}
	for _, p := range r.idx.Packs() {
		known[p] = true
	}
	var uncovered []id.ID
	for _, p := range stored {
		if !known[p] && !r.Condemned(p) {
			uncovered = append(uncovered, p)
		}
	}
	entries, skipped, err := r.readPackHeaders(ctx, uncovered)
	if err != nil {
		return err
	}
	for _, e := range entries {
		r.idx.AddPack(e.ID, e.Blobs)
	}
	r.idx.Merge()
	d.PacksFromHeaders = len(entries)
	d.UnreadablePacks = skipped
	r.indexDamage = d
	for _, f := range d.Files {
		slog.Warn("index file is damaged; reading on with the packs' own headers; run `rewind repair index`",
			"file", "index/"+f.File.String(), "err", f.Err)
	}
	for _, p := range skipped {
		slog.Warn("pack not in any readable index file, and its header cannot be read either; its blobs are missing",
			"pack", "data/"+p.Pack.String(), "err", p.Err)
	}
	return nil
}
