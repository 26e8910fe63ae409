package pg

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/rewind-backup/rewind/internal/archiver"
	"github.com/rewind-backup/rewind/internal/pg/wal"
	"github.com/rewind-backup/rewind/internal/pg/walparse"
	"github.com/rewind-backup/rewind/internal/repository"
	"github.com/rewind-backup/rewind/internal/snapshot"
)

// WAL-delta (docs/POSTGRES.md, "Reading less: WAL-delta"): a base backup
// whose parent is a base backup of the same cluster and timeline reads
// the WAL from the parent's start LSN to its own and reads, of each
// relation file of the main fork that changed, only the blocks that WAL
// references; everything else is the parent's.

// deltaPlan is the changed-block set of one backup, or why there is none.
type deltaPlan struct {
	info    *snapshot.PGDelta
	changes *walparse.Changes
	dataDir string
}

// planDelta reads the WAL from the parent's start to start (stored in
// the repository, else still in pg_wal) into the set of changed blocks.
// It returns nil without a parent; a plan whose info says Fallback when
// the set cannot be had, so that every changed file is read whole.
func planDelta(ctx context.Context, r *repository.Repository, parent *snapshot.Snapshot, srv *Server, dataDir string, tli uint32, start LSN) *deltaPlan {
	if parent == nil {
		return nil
	}
	info := &snapshot.PGDelta{Parent: parent.ID.String(), ToLSN: start.String()}
	plan := &deltaPlan{info: info, dataDir: dataDir}
	fall := func(format string, a ...any) *deltaPlan {
		info.Fallback = fmt.Sprintf(format, a...)
		plan.changes = nil
		return plan
	}
	pp := parent.Postgres
	if pp == nil {
		return fall("the parent snapshot %s is not a base backup", parent.ID.Short())
	}
	info.FromLSN = pp.StartLSN
	if pp.SystemID != strconv.FormatUint(srv.SystemID, 10) {
		return fall("the parent is a base backup of another cluster (system %s)", pp.SystemID)
	}
	if pp.Timeline != tli {
		return fall("the parent is on timeline %d, this backup on %d", pp.Timeline, tli)
	}
	from, err := ParseLSN(pp.StartLSN)
	if err != nil || from > start {
		return fall("the parent's start LSN %q is not before %s", pp.StartLSN, start)
	}
	if srv.SegmentSize == 0 || srv.Major() != 15 {
		return fall("WAL-delta reads PostgreSQL 15's WAL; the server is %s", srv.VersionText)
	}
	cat, err := wal.Load(ctx, r)
	if err != nil {
		return fall("the repository's WAL index cannot be read: %v", err)
	}
	var cl *wal.Cluster
	for _, name := range cat.Names() {
		if c := cat.Cluster(name); c.SystemID == srv.SystemID && c.SegSize() == uint32(srv.SegmentSize) {
			cl = c
			break
		}
	}
	reloaded := false
	load := func(no uint64) ([]byte, error) {
		name := SegmentName(tli, LSN(no*srv.SegmentSize), srv.SegmentSize)
		if cl != nil {
			if e := cl.Find(name); e != nil && e.Kind == wal.KindSegment {
				b, err := wal.Read(ctx, r, &e.Entry)
				if errors.Is(err, repository.ErrBlobNotFound) && !reloaded {
					// Pushed by archive_command after this backup loaded
					// the repository's index: load it again, once.
					reloaded = true
					if err = r.LoadIndex(ctx); err == nil {
						b, err = wal.Read(ctx, r, &e.Entry)
					}
				}
				if err != nil {
					return nil, err
				}
				info.SegmentsStored++
				return b, nil
			}
		}
		// Not archived yet (the segment this backup starts in, or
		// archive_command lagging): pg_wal still has it, since the server
		// keeps WAL until it is archived. A recycled file is refused by
		// the page address check.
		b, err := os.ReadFile(filepath.Join(dataDir, "pg_wal", name))
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("%w: %s is neither in the repository nor in pg_wal", walparse.ErrMissing, name)
		}
		if err != nil {
			return nil, err
		}
		info.SegmentsLocal++
		return b, nil
	}
	ch := walparse.NewChanges()
	s := &walparse.Scanner{SegSize: srv.SegmentSize, Timeline: tli, SystemID: srv.SystemID, Load: load}
	if err := s.Scan(uint64(from), uint64(start), func(rec *walparse.Record) error {
		ch.Add(rec)
		return ctx.Err()
	}); err != nil {
		if ctx.Err() != nil {
			return fall("%v", ctx.Err())
		}
		return fall("the WAL from %s to %s cannot be read: %v", from, start, err)
	}
	if ch.Structural != "" {
		return fall("%s", ch.Structural)
	}
	info.Used = true
	info.Records, info.ChangedBlocks = ch.Records, ch.Count()
	plan.changes = ch
	return plan
}

// relFile parses a relation file's path below the data directory:
// base/DB/REL[_FORK][.SEG], global/REL..., pg_tblspc/SPC/VERSION/DB/REL...
func relFile(rel string) (walparse.RelFork, uint32, bool) {
	parts := strings.Split(filepath.ToSlash(rel), "/")
	var node walparse.RelFileNode
	var name string
	num := func(s string) (uint32, bool) {
		v, err := strconv.ParseUint(s, 10, 32)
		return uint32(v), err == nil && s != "" && s[0] != '+'
	}
	var ok1, ok2 bool = true, true
	switch {
	case len(parts) == 3 && parts[0] == "base":
		node.Spc = 1663
		node.DB, ok1 = num(parts[1])
		name = parts[2]
	case len(parts) == 2 && parts[0] == "global":
		node.Spc = 1664
		name = parts[1]
	case len(parts) == 5 && parts[0] == "pg_tblspc":
		node.Spc, ok1 = num(parts[1])
		node.DB, ok2 = num(parts[3])
		name = parts[4]
	default:
		return walparse.RelFork{}, 0, false
	}
	if !ok1 || !ok2 {
		return walparse.RelFork{}, 0, false
	}
	var seg uint32
	if base, s, ok := strings.Cut(name, "."); ok {
		v, ok := num(s)
		if !ok {
			return walparse.RelFork{}, 0, false
		}
		name, seg = base, v
	}
	fork := uint8(walparse.ForkMain)
	if base, f, ok := strings.Cut(name, "_"); ok {
		switch f {
		case "fsm":
			fork = walparse.ForkFSM
		case "vm":
			fork = walparse.ForkVM
		case "init":
			fork = walparse.ForkInit
		default:
			return walparse.RelFork{}, 0, false
		}
		name = base
	}
	v, ok := num(name)
	if !ok {
		return walparse.RelFork{}, 0, false
	}
	node.Rel = v
	return walparse.RelFork{RelFileNode: node, Fork: fork}, seg, true
}

// blockDelta is the archiver's BlockDelta for the plan: for a main-fork
// relation file, the blocks the WAL references. Other forks are read
// whole: the visibility map is changed by heap records without a block
// reference of its own, and the free space map is not WAL-logged. So are
// relations created or truncated in the range, and every other file.
func (p *deltaPlan) blockDelta() archiver.BlockDelta {
	return func(path string, prevSize, size int64) ([]archiver.ByteRange, bool) {
		rel, err := filepath.Rel(p.dataDir, path)
		if err != nil {
			return nil, false
		}
		k, seg, ok := relFile(rel)
		if !ok || k.Fork != walparse.ForkMain || prevSize%walparse.BlockSize != 0 {
			return nil, false
		}
		if _, whole := p.changes.Whole[k.RelFileNode]; whole {
			return nil, false
		}
		blocks := p.changes.FileBlocks(k, seg)
		out := make([]archiver.ByteRange, 0, len(blocks))
		for _, b := range blocks {
			out = append(out, archiver.ByteRange{Off: int64(b) * walparse.BlockSize, Len: walparse.BlockSize})
		}
		return out, true
	}
}
