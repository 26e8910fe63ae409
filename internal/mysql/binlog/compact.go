package binlog

import (
	"context"
	"fmt"
	"sort"
	"time"

	"github.com/rewind-backup/rewind/internal/backend"
	"github.com/rewind-backup/rewind/internal/id"
	"github.com/rewind-backup/rewind/internal/repository"
)

// CompactAfter is how many index files written by single stores a source
// may have before the receiver merges the source's index files into one.
const CompactAfter = 32

// RewriteOptions change Compact and Trim.
type RewriteOptions struct {
	Host   string
	DryRun bool
}

// RewriteResult tells what Compact or Trim did for one source.
type RewriteResult struct {
	Source string
	// Merged counts the index files read and replaced; Pieces the pieces
	// in the file written.
	Merged int
	Pieces int
	// Expired lists the binlog files whose pieces were left out because
	// the horizon passed them, in order.
	Expired []string
	// KeepFrom is the horizon written (empty: none).
	KeepFrom string
	File     id.ID
}

// Compact merges every readable index file of source name into one, then
// removes the files merged: the merged file is written before anything is
// removed, so a crash leaves files whose merge is the same catalog.
func Compact(ctx context.Context, r *repository.Repository, name string, opt RewriteOptions) (*RewriteResult, error) {
	return rewrite(ctx, r, name, "", opt)
}

// Trim moves the retention horizon of source name to the binlog file
// keep: pieces of files before it are left out of the one index file
// written, and prune then drops the blobs only they named. A horizon never
// moves back.
func Trim(ctx context.Context, r *repository.Repository, name, keep string, opt RewriteOptions) (*RewriteResult, error) {
	if keep != "" {
		if err := CheckName(keep); err != nil {
			return nil, err
		}
	}
	return rewrite(ctx, r, name, keep, opt)
}

func rewrite(ctx context.Context, r *repository.Repository, name, keep string, opt RewriteOptions) (*RewriteResult, error) {
	all, _, err := loadAll(ctx, r)
	if err != nil {
		return nil, fmt.Errorf("read the binlog index: %w", err)
	}
	cat := merge(append([]loaded(nil), all...))
	s := cat.Source(name)
	if s == nil {
		return nil, fmt.Errorf("no binary log of source %q is stored", name)
	}
	if s.KeepFrom != "" && (keep == "" || fileLess(keep, s.KeepFrom)) {
		keep = s.KeepFrom
	}
	mine := map[id.ID]bool{}
	for _, f := range s.IndexFiles {
		mine[f] = true
	}
	res := &RewriteResult{Source: name, KeepFrom: keep}
	first := time.Time{}
	for _, l := range all {
		if mine[l.name] {
			if res.Merged == 0 || l.f.Time.Before(first) {
				first = l.f.Time
			}
			res.Merged++
		}
	}
	var pieces []Piece
	expired := map[string]bool{}
	for _, n := range s.Names() {
		for _, p := range s.Pieces(n) {
			if keep != "" && fileLess(n, keep) {
				expired[n] = true
				continue
			}
			pieces = append(pieces, p.Piece)
		}
	}
	for n := range expired {
		res.Expired = append(res.Expired, n)
	}
	sort.Slice(res.Expired, func(i, j int) bool { return fileLess(res.Expired[i], res.Expired[j]) })
	sort.SliceStable(pieces, func(i, j int) bool { return pieces[i].Stored.Before(pieces[j].Stored) })
	res.Pieces = len(pieces)
	if opt.DryRun || res.Merged == 0 {
		return res, nil
	}
	f := &File{Version: FormatVersion, Source: name, ServerID: s.ServerID, ServerUUID: s.ServerUUID,
		Time: first, Host: opt.Host, Pieces: pieces, KeepFrom: keep, Merged: res.Merged}
	if f.Pieces == nil {
		f.Pieces = []Piece{}
	}
	written, err := r.SaveJSON(ctx, backend.BinlogFile, f)
	if err != nil {
		return nil, fmt.Errorf("store the merged binlog index of source %q: %w", name, err)
	}
	res.File = written
	for _, n := range s.IndexFiles {
		if n == written {
			continue
		}
		h := backend.Handle{Type: backend.BinlogFile, Name: n.String()}
		if err := r.Backend().Remove(ctx, h); err != nil && !backend.IsNotExist(err) {
			return res, fmt.Errorf("remove merged binlog index file binlog/%s (its pieces are in binlog/%s; the next compaction removes it): %w", n, written, err)
		}
	}
	return res, nil
}
