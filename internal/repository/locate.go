package repository

import (
	"github.com/rewind-backup/rewind/internal/id"
	"github.com/rewind-backup/rewind/internal/index"
)

// Locate says where a blob is stored: in the index, or else in a pack a
// prune mark condemned but that is not deleted yet (a blob that is still
// readable, and that the next prune revives if a snapshot needs it).
func (r *Repository) Locate(i id.ID) (index.Location, bool) {
	if loc, ok := r.idx.Lookup(i); ok {
		return loc, true
	}
	return r.lookupCondemned(i)
}
