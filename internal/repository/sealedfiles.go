package repository

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/rewind-backup/rewind/internal/backend"
	"github.com/rewind-backup/rewind/internal/id"
)

// UnreadableFile is a stored file that failed to load, decrypt, verify or
// decode.
type UnreadableFile struct {
	File id.ID
	Err  error
}

// LoadEach loads every sealed file of type t and hands its plaintext to
// decode. Files removed since the listing are skipped. A file that fails
// verification or decryption, or that decode rejects, is returned among
// the unreadable ones (sorted by name) instead of failing the call: for
// holds and labels, which keep snapshots, the caller decides what an
// unreadable file means. Any other error (the storage failing) is
// returned.
func (r *Repository) LoadEach(ctx context.Context, t backend.FileType, decode func(name id.ID, plain []byte) error) ([]UnreadableFile, error) {
	names, err := r.List(ctx, t)
	if err != nil {
		return nil, err
	}
	var bad []UnreadableFile
	for _, name := range names {
		plain, err := r.LoadFile(ctx, t, name)
		switch {
		case backend.IsNotExist(err):
			continue
		case errors.Is(err, ErrCorrupt):
			bad = append(bad, UnreadableFile{File: name, Err: err})
			continue
		case err != nil:
			return nil, err
		}
		if err := decode(name, plain); err != nil {
			bad = append(bad, UnreadableFile{File: name, Err: fmt.Errorf("decode: %w", err)})
		}
	}
	slices.SortFunc(bad, func(a, b UnreadableFile) int { return bytes.Compare(a.File[:], b.File[:]) })
	return bad, nil
}
