package binlog

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/rewind-backup/rewind/internal/backend"
	"github.com/rewind-backup/rewind/internal/id"
	"github.com/rewind-backup/rewind/internal/pack"
	"github.com/rewind-backup/rewind/internal/repository"
)

// ErrCorrupt: the bytes read back do not hash to the stored piece's ID.
var ErrCorrupt = errors.New("binlog piece read back does not match its content hash")

// StoreOptions say whose binlog a store is.
type StoreOptions struct {
	Source     string
	ServerID   uint32
	ServerUUID string
	Host       string
	Now        func() time.Time
}

// StoreResult tells what Store did.
type StoreResult struct {
	IndexFile  id.ID
	BlobsAdded int
}

// Store stores pieces (each p with its bytes data[i]) and returns once
// they are durable: their packs, the index, and one binlog index file.
// It does not compact: the receiver merges index files beside its stores
// (Compact).
// r is open with its index loaded, under the caller's shared lock.
func Store(ctx context.Context, r *repository.Repository, pieces []Piece, data [][]byte, opt StoreOptions) (*StoreResult, error) {
	if opt.Source == "" {
		opt.Source = DefaultSource
	}
	if opt.Now == nil {
		opt.Now = time.Now
	}
	res := &StoreResult{}
	r.StartWriting(ctx)
	flushed := false
	defer func() {
		if !flushed {
			_ = r.Flush(ctx)
		}
	}()
	ch := r.Chunker(repository.ProfileDefault)
	buf := make([]byte, ch.BufferSize())
	for i := range pieces {
		p := &pieces[i]
		if uint64(len(data[i])) != p.End-p.Start {
			return nil, fmt.Errorf("%s piece [%d, %d): %d bytes", p.Name, p.Start, p.End, len(data[i]))
		}
		p.ID = r.Key().BlobID(data[i])
		p.Blobs = nil
		err := ch.Split(bytes.NewReader(data[i]), buf, func(chunk []byte) error {
			bid, added, err := r.SaveBlob(ctx, pack.DataBlob, chunk)
			if err != nil {
				return err
			}
			if added {
				res.BlobsAdded++
			}
			p.Blobs = append(p.Blobs, bid)
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("store %s [%d, %d): %w", p.Name, p.Start, p.End, err)
		}
	}
	flushed = true
	if err := r.Flush(ctx); err != nil {
		return nil, fmt.Errorf("store the binary log: %w", err)
	}
	now := opt.Now().UTC()
	f := &File{Version: FormatVersion, Source: opt.Source, ServerID: opt.ServerID, ServerUUID: opt.ServerUUID, Time: now, Host: opt.Host}
	for _, p := range pieces {
		p.Stored = now
		if p.Txns == nil {
			p.Txns = []Txn{}
		}
		f.Pieces = append(f.Pieces, p)
	}
	name, err := r.SaveJSON(ctx, backend.BinlogFile, f)
	if err != nil {
		return nil, fmt.Errorf("store the binlog index file: %w", err)
	}
	res.IndexFile = name
	return res, nil
}

// Read returns a stored piece's bytes, checked against its hash. r is
// open with its index loaded.
func Read(ctx context.Context, r *repository.Repository, p *Piece) ([]byte, error) {
	data := make([]byte, 0, p.End-p.Start)
	var buf []byte
	for _, b := range p.Blobs {
		var err error
		buf, err = r.LoadBlob(ctx, pack.DataBlob, b, buf[:0])
		if err != nil {
			return nil, fmt.Errorf("%s [%d, %d): blob %s: %w", p.Name, p.Start, p.End, b.Short(), err)
		}
		data = append(data, buf...)
	}
	if uint64(len(data)) != p.End-p.Start || r.Key().BlobID(data) != p.ID {
		return nil, fmt.Errorf("%s [%d, %d): %w", p.Name, p.Start, p.End, ErrCorrupt)
	}
	return data, nil
}

// Materialize writes the stored binlog files from from.File through
// stop.File into dir, each from its beginning to the end of what is
// stored, byte for byte as the server wrote them and under their own
// names, for a replay (as relay logs, or through mariadb-binlog). It
// returns the paths written, in order. Every byte from the start of
// from.File to stop's position must be stored without a gap.
func Materialize(ctx context.Context, r *repository.Repository, cat *Catalog, from Position, stop StopPoint, dir string) ([]string, error) {
	s, err := cat.source(stop.Source, 0)
	if err != nil {
		return nil, err
	}
	if from.File == "" {
		return nil, errors.New("materialize: no starting binlog file")
	}
	if fileLess(stop.File, from.File) || (stop.File == from.File && stop.Pos < from.Pos) {
		return nil, fmt.Errorf("materialize: the stop point %s is before the start %s", stop.Position(), from)
	}
	var names []string
	for _, n := range s.Names() {
		if !fileLess(n, from.File) && !fileLess(stop.File, n) {
			names = append(names, n)
		}
	}
	if len(names) == 0 || names[0] != from.File {
		return nil, fmt.Errorf("materialize: %s is not stored in source %q", from.File, s.Name)
	}
	if names[len(names)-1] != stop.File {
		return nil, fmt.Errorf("materialize: %s is not stored in source %q", stop.File, s.Name)
	}
	for _, g := range s.Gaps() {
		if !fileLess(g.Before.File, from.File) && !fileLess(stop.File, g.After.File) && !(g.After.File == stop.File && g.After.Pos >= stop.Pos) {
			return nil, fmt.Errorf("materialize: the stored binary log has a gap between %s and %s: %s", from, stop.Position(), g.What)
		}
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	var out []string
	for _, n := range names {
		ps := s.Pieces(n)
		if ps[0].Start != 0 {
			return out, fmt.Errorf("materialize: %s is stored from offset %d, not from its beginning", n, ps[0].Start)
		}
		path := filepath.Join(dir, n)
		if err := writePieces(ctx, r, ps, path); err != nil {
			return out, err
		}
		out = append(out, path)
	}
	return out, nil
}

// writePieces writes the contiguous pieces from the first on into path.
func writePieces(ctx context.Context, r *repository.Repository, ps []*StoredPiece, path string) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	var end uint64
	for _, p := range ps {
		if p.Start != end {
			break
		}
		data, err := Read(ctx, r, &p.Piece)
		if err != nil {
			f.Close()
			return err
		}
		if _, err := f.Write(data); err != nil {
			f.Close()
			return err
		}
		end = p.End
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
