package repository

import (
	"context"
	"fmt"
	"io"

	"github.com/rewind-backup/rewind/internal/backend"
	"github.com/rewind-backup/rewind/internal/id"
	"github.com/rewind-backup/rewind/internal/pack"
)

// ReadPackHeader reads and decrypts the header of a stored pack.
func (r *Repository) ReadPackHeader(ctx context.Context, p id.ID) ([]pack.Blob, error) {
	h := backend.Handle{Type: backend.PackFile, Name: p.String()}
	fi, err := r.be.Stat(ctx, h)
	if err != nil {
		return nil, backend.Wrap("stat", h.String(), err)
	}
	if fi.Size < pack.TrailerSize {
		return nil, &CorruptError{Op: "read header of", Object: h.String(), Err: fmt.Errorf("%w: only %d bytes", pack.ErrCorrupt, fi.Size)}
	}
	// Read the trailer and, in the same request, a guess at the header so
	// that most packs need one read.
	guess := min(fi.Size, int64(64<<10))
	var tail []byte
	err = r.be.Load(ctx, h, int(guess), fi.Size-guess, func(rd io.Reader) error {
		tail = make([]byte, guess)
		_, err := io.ReadFull(rd, tail)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("read the pack header: %w", backend.Wrap("load", h.String(), err))
	}
	hl, err := pack.HeaderLength(tail[len(tail)-pack.TrailerSize:], fi.Size)
	if err != nil {
		return nil, &CorruptError{Op: "read header of", Object: h.String(), Err: err}
	}
	start := fi.Size - pack.TrailerSize - int64(hl)
	var sealed []byte
	if int64(hl)+pack.TrailerSize <= guess {
		sealed = tail[len(tail)-pack.TrailerSize-hl : len(tail)-pack.TrailerSize]
	} else {
		err = r.be.Load(ctx, h, hl, start, func(rd io.Reader) error {
			sealed = make([]byte, hl)
			_, err := io.ReadFull(rd, sealed)
			return err
		})
		if err != nil {
			return nil, fmt.Errorf("read the pack header: %w", backend.Wrap("load", h.String(), err))
		}
	}
	blobs, err := pack.ParseHeader(r.key, sealed, start)
	if err != nil {
		return nil, &CorruptError{Op: "read header of", Object: h.String(), Err: err}
	}
	return blobs, nil
}
