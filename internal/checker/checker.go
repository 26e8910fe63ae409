// Package checker verifies a repository: that the index agrees with the
// pack headers, that every snapshot and tree decodes, that every blob they
// reference is stored, and (with ReadData) that every stored blob
// decrypts and hashes to its ID.
package checker

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"runtime"
	"slices"
	"strings"
	"sync"

	"github.com/rewind-backup/rewind/internal/backend"
	"github.com/rewind-backup/rewind/internal/crypto"
	"github.com/rewind-backup/rewind/internal/id"
	"github.com/rewind-backup/rewind/internal/index"
	"github.com/rewind-backup/rewind/internal/inventory"
	"github.com/rewind-backup/rewind/internal/mysql/binlog"
	"github.com/rewind-backup/rewind/internal/pack"
	"github.com/rewind-backup/rewind/internal/pg/wal"
	"github.com/rewind-backup/rewind/internal/repository"
	"github.com/rewind-backup/rewind/internal/snapshot"
	"github.com/rewind-backup/rewind/internal/tree"
	"golang.org/x/sync/errgroup"
)

// Options select the checks.
type Options struct {
	// ReadData reads every pack in full and verifies every blob.
	ReadData bool
	// Snapshots, when not nil, are the snapshots to check, listed by the
	// caller before it loaded the index (so that a backup finishing in
	// between cannot look like damage). When nil, Check lists them.
	Snapshots []*snapshot.Snapshot
	// ListErrors are the snapshots the caller could not read while
	// listing Snapshots; they are reported as problems.
	ListErrors map[id.ID]error
	// Subset, when not nil, reads only the packs it selects in full (and
	// implies reading data). See Subset.
	Subset *Subset
	// StateDir keeps the position of a rotating (P%) subset between runs,
	// in the file check-position: outside the repository, since a check
	// never writes to it. The CLI uses $XDG_CACHE_HOME/rewind/<repository
	// id>. When the position cannot be read (first run, empty StateDir,
	// unreadable file) the window starts at a random pack; when it cannot be
	// written, the next run starts at random again. Full coverage over
	// repeated runs is guaranteed only while the position is kept.
	StateDir string
	// Warn, when not nil, is told about a position that could not be read
	// or written.
	Warn func(msg string)
}

// Problem is one thing found wrong, naming the damaged object.
type Problem struct {
	Object string `json:"object"`
	Error  string `json:"error"`
}

// Result is what a check found.
type Result struct {
	Packs     int `json:"packs"`
	Snapshots int `json:"snapshots"`
	Trees     int `json:"trees"`
	// Inventories counts the inventory files the snapshots name.
	Inventories int `json:"inventories"`
	// WALFiles counts the WAL files (segments, history and backup files)
	// that WAL index files list (rewind pg wal-push).
	WALFiles  int      `json:"wal_files,omitempty"`
	DataBlobs int      `json:"data_blobs"`
	BlobsRead int      `json:"blobs_read"`
	PacksRead int      `json:"packs_read"`
	Subset    string   `json:"subset,omitempty"`
	Unindexed []string `json:"unindexed_packs,omitempty"`
	// Condemned counts the stored packs that a prune mark condemned.
	Condemned int       `json:"condemned_packs,omitempty"`
	Problems  []Problem `json:"problems"`
	mu        sync.Mutex
	read      []id.ID // packs read in full, for tests
}

func (r *Result) add(obj string, err error) {
	r.mu.Lock()
	r.Problems = append(r.Problems, Problem{Object: obj, Error: err.Error()})
	r.mu.Unlock()
}

// Check runs the checks. The returned error is for failures to run the
// check at all; damage is reported in Result.Problems.
func Check(ctx context.Context, r *repository.Repository, opt Options) (*Result, error) {
	res := &Result{Problems: []Problem{}}
	if err := checkKeys(ctx, r, res); err != nil {
		return nil, err
	}
	checkIndexDamage(r, res)
	if err := checkPacks(ctx, r, res, opt); err != nil {
		return nil, err
	}
	if err := checkSnapshots(ctx, r, res, opt); err != nil {
		return nil, err
	}
	if err := checkWAL(ctx, r, res); err != nil {
		return nil, err
	}
	if err := checkBinlog(ctx, r, res); err != nil {
		return nil, err
	}
	return res, nil
}

// checkWAL loads every WAL index file (rewind pg wal-push) and checks
// that each stored WAL file's blobs are in the index, and that no name is
// stored twice with different content or a cluster name by two clusters.
func checkWAL(ctx context.Context, r *repository.Repository, res *Result) error {
	cat, err := wal.Load(ctx, r)
	if err != nil {
		return err
	}
	for _, u := range cat.Unreadable {
		res.add("wal/"+u.File.String(), fmt.Errorf("WAL index file cannot be read: %w", u.Err))
	}
	for _, c := range cat.Conflicts {
		res.add("wal/"+c.File.String(), errors.New(c.What))
	}
	for _, name := range cat.Names() {
		cl := cat.Cluster(name)
		for _, e := range cl.Entries() {
			res.WALFiles++
			for _, b := range e.Blobs {
				if !r.Index().Has(b) {
					res.add("wal/"+e.File.String(), fmt.Errorf("WAL file %s of cluster %q: data blob %s is not in the index", e.Name, name, b))
					break
				}
			}
		}
	}
	return nil
}

// checkBinlog loads every binlog index file (rewind mysql binlog
// receive) and checks that each stored piece's blobs are in the index and
// that no stored stretch of a binlog file has two contents.
func checkBinlog(ctx context.Context, r *repository.Repository, res *Result) error {
	cat, err := binlog.Load(ctx, r)
	if err != nil {
		return err
	}
	for _, u := range cat.Unreadable {
		res.add("binlog/"+u.File.String(), fmt.Errorf("binlog index file cannot be read: %w", u.Err))
	}
	for _, c := range cat.Conflicts {
		res.add("binlog/"+c.File.String(), errors.New(c.What))
	}
	for _, s := range cat.Sources() {
		for _, p := range s.AllPieces() {
			for _, b := range p.Blobs {
				if !r.Index().Has(b) {
					res.add("binlog/"+p.File.String(), fmt.Errorf("binlog %s [%d, %d) of source %q: data blob %s is not in the index", p.Name, p.Start, p.End, s.Name, b))
					break
				}
			}
		}
	}
	return nil
}

// checkIndexDamage reports the index files that the index load could not
// read. The rest of the check goes on with the index completed from the
// pack headers, so that it finds what is really stored; the damaged file
// is a problem until `rewind repair index` replaces it.
func checkIndexDamage(r *repository.Repository, res *Result) {
	d := r.IndexDamage()
	if d == nil {
		return
	}
	for _, f := range d.Files {
		res.add("index/"+f.File.String(), fmt.Errorf("index file cannot be read (%v); the check went on with the pack headers; "+
			"run `rewind repair index` to rebuild the index from the packs", f.Err))
	}
}

// damagedIndexFile reports whether the index load found index file n
// damaged.
func damagedIndexFile(r *repository.Repository, n id.ID) bool {
	d := r.IndexDamage()
	return d != nil && slices.ContainsFunc(d.Files, func(f repository.UnreadableFile) bool { return f.File == n })
}

// checkPacks compares every pack's header with the index, and with
// readData verifies every blob of every pack.
func checkPacks(ctx context.Context, r *repository.Repository, res *Result, opt Options) error {
	stored := map[id.ID]int64{}
	err := r.Backend().List(ctx, backend.PackFile, func(fi backend.FileInfo) error {
		i, err := id.Parse(fi.Name)
		if err != nil {
			res.add("data/"+fi.Name, fmt.Errorf("pack file with an invalid name"))
			return nil
		}
		stored[i] = fi.Size
		return nil
	})
	if err != nil {
		return err
	}
	res.Packs = len(stored)
	// Which blobs the index places in each pack.
	indexed := map[id.ID][]pack.Blob{}
	r.Index().Each(func(l repositoryLocation) {
		indexed[l.Pack] = append(indexed[l.Pack], l.Blob)
	})
	missing := map[id.ID]bool{}
	for p := range indexed {
		if _, ok := stored[p]; !ok {
			res.add("data/"+p.String(), fmt.Errorf("pack listed in the index is missing"))
			missing[p] = true
		}
	}
	if len(missing) > 0 {
		if err := blameIndexFiles(ctx, r, res, missing); err != nil {
			return err
		}
	}
	toRead, commit := packsToRead(stored, opt)
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(runtime.GOMAXPROCS(0) * 2)
	for p := range stored {
		g.Go(func() error {
			obj := "data/" + p.String()
			hdr, err := r.ReadPackHeader(gctx, p)
			if err != nil {
				if gctx.Err() != nil {
					return gctx.Err()
				}
				if backend.IsNotExist(err) && r.Condemned(p) {
					// Deleted by a prune that condemned it meanwhile.
					res.mu.Lock()
					res.Condemned++
					res.mu.Unlock()
					return nil
				}
				res.add(obj, err)
				return nil
			}
			want, ok := indexed[p]
			if !ok && r.Condemned(p) {
				// Out of the index on purpose: a prune mark condemned it
				// and a later prune deletes it (docs/FORMAT.md §12).
				res.mu.Lock()
				res.Condemned++
				res.mu.Unlock()
			} else if !ok {
				res.mu.Lock()
				res.Unindexed = append(res.Unindexed, p.String())
				res.mu.Unlock()
			}
			inHeader := make(map[id.ID]pack.Blob, len(hdr))
			for _, b := range hdr {
				inHeader[b.ID] = b
			}
			for _, b := range want {
				h, ok := inHeader[b.ID]
				if !ok || h.Offset != b.Offset || h.Length != b.Length || h.RawLength != b.RawLength || h.Type != b.Type {
					res.add(obj, fmt.Errorf("index entry for blob %s does not match the pack header", b.ID))
				}
			}
			if toRead[p] {
				return readPack(gctx, r, res, p, hdr)
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return err
	}
	commit()
	if opt.Subset != nil {
		res.Subset = opt.Subset.String()
	}
	return nil
}

// checkKeys checks that every key file hashes to its name and decodes.
// Without its password a key file cannot be opened, so this is all that
// can be told about keys other than the one in use.
func checkKeys(ctx context.Context, r *repository.Repository, res *Result) error {
	var names []string
	err := r.Backend().List(ctx, backend.KeyFile, func(fi backend.FileInfo) error {
		names = append(names, fi.Name)
		return nil
	})
	if err != nil {
		return err
	}
	for _, name := range names {
		if err := r.VerifyKeyFile(ctx, name); err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			res.add("keys/"+name, err)
		}
	}
	return nil
}

// blameIndexFiles names the index files in force that list a missing
// pack: an older index file put back after its packs were deleted shows
// up here, not only as missing packs. It reads the index files again,
// which only a damaged repository pays for.
func blameIndexFiles(ctx context.Context, r *repository.Repository, res *Result, missing map[id.ID]bool) error {
	names, err := r.List(ctx, backend.IndexFile)
	if err != nil {
		return err
	}
	files := make(map[id.ID]*index.File, len(names))
	superseded := map[id.ID]bool{}
	for _, n := range names {
		f, err := r.LoadIndexFile(ctx, n)
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			if !damagedIndexFile(r, n) { // else reported already
				res.add("index/"+n.String(), err)
			}
			continue
		}
		files[n] = f
		for _, s := range f.Supersedes {
			superseded[s] = true
		}
	}
	for n, f := range files {
		if superseded[n] {
			continue
		}
		var gone []string
		for _, p := range f.Packs {
			if missing[p.ID] {
				gone = append(gone, "data/"+p.ID.String())
			}
		}
		if len(gone) > 0 {
			slices.Sort(gone)
			if len(gone) > 3 {
				gone = append(gone[:3], fmt.Sprintf("%d more", len(gone)-3))
			}
			res.add("index/"+n.String(), fmt.Errorf("lists packs that are not stored (%s): packs deleted or moved, or an older index file put back",
				strings.Join(gone, ", ")))
		}
	}
	return nil
}

// packsToRead returns the packs to read in full, and a function to call
// once the check has run, which stores the position of a rotating subset.
func packsToRead(stored map[id.ID]int64, opt Options) (map[id.ID]bool, func()) {
	toRead := map[id.ID]bool{}
	nop := func() {}
	if opt.Subset == nil {
		if opt.ReadData {
			for p := range stored {
				toRead[p] = true
			}
		}
		return toRead, nop
	}
	warn := func(format string, args ...any) {
		if opt.Warn != nil {
			opt.Warn(fmt.Sprintf(format, args...))
		}
	}
	all := make([]id.ID, 0, len(stored))
	for p := range stored {
		all = append(all, p)
	}
	var cursor id.ID
	if opt.Subset.M == 0 {
		var err error
		if cursor, err = loadPosition(opt.StateDir); err != nil && !errors.Is(err, fs.ErrNotExist) {
			warn("read-data-subset: no stored position (%v), starting at a random pack", err)
		}
	}
	sel, next, rotating := opt.Subset.selectPacks(all, cursor)
	for _, p := range sel {
		toRead[p] = true
	}
	if !rotating {
		return toRead, nop
	}
	return toRead, func() {
		if err := savePosition(opt.StateDir, next); err != nil {
			warn("read-data-subset: cannot store the position for the next run (%v); it will start at a random pack", err)
		}
	}
}

type repositoryLocation = index.Location

// readPack reads a whole pack, checks that it hashes to its name, and
// verifies every blob.
func readPack(ctx context.Context, r *repository.Repository, res *Result, p id.ID, hdr []pack.Blob) error {
	obj := "data/" + p.String()
	res.mu.Lock()
	res.PacksRead++
	res.read = append(res.read, p)
	res.mu.Unlock()
	var data []byte
	err := r.Backend().Load(ctx, backend.Handle{Type: backend.PackFile, Name: p.String()}, 0, 0, func(rd io.Reader) error {
		var err error
		data, err = io.ReadAll(rd)
		return err
	})
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		res.add(obj, err)
		return nil
	}
	if crypto.FileID(data) != p {
		res.add(obj, fmt.Errorf("pack content does not match its name (altered, truncated or renamed)"))
	}
	var buf []byte
	for _, b := range hdr {
		if int(b.Offset)+int(b.Length) > len(data) {
			res.add(obj, fmt.Errorf("blob %s lies past the end of the pack", b.ID))
			continue
		}
		out, err := r.OpenBlob(b, data[b.Offset:b.Offset+b.Length], buf)
		if err != nil {
			res.add(obj, fmt.Errorf("blob %s: %w", b.ID, err))
			continue
		}
		buf = out
		res.mu.Lock()
		res.BlobsRead++
		res.mu.Unlock()
	}
	return nil
}

// checkInventories loads and decodes every inventory file a snapshot
// names, once each.
func checkInventories(ctx context.Context, r *repository.Repository, res *Result, sns []*snapshot.Snapshot) {
	seen := map[id.ID]bool{}
	for _, sn := range sns {
		if sn.Inventory == nil || seen[*sn.Inventory] {
			continue
		}
		seen[*sn.Inventory] = true
		res.Inventories++
		if _, err := inventory.Load(ctx, r, *sn.Inventory); err != nil {
			res.add("inventory/"+sn.Inventory.String(), fmt.Errorf("named by snapshot %s: %w", sn.ID.Short(), err))
		}
	}
}

// checkSnapshots decodes every snapshot and every tree once, and checks
// that every referenced blob is in the index.
func checkSnapshots(ctx context.Context, r *repository.Repository, res *Result, opt Options) error {
	sns := opt.Snapshots
	for i, err := range opt.ListErrors {
		res.add("snapshots/"+i.String(), err)
	}
	if sns == nil {
		var err error
		sns, err = snapshot.List(ctx, r, func(i id.ID, err error) {
			res.add("snapshots/"+i.String(), err)
		})
		if err != nil {
			return err
		}
	}
	res.Snapshots = len(sns)
	checkInventories(ctx, r, res, sns)
	seenTree := map[id.ID]bool{}
	seenData := map[id.ID]bool{}
	var walk func(ids []id.ID, p string)
	walk = func(ids []id.ID, p string) {
		for _, t := range ids {
			if seenTree[t] {
				continue
			}
			seenTree[t] = true
			res.Trees++
			if !r.Readable(t) {
				res.add("tree/"+t.String(), fmt.Errorf("tree blob of %s is missing", p))
				continue
			}
			var subdirs []tree.Node
			err := snapshot.EachNode(ctx, r, []id.ID{t}, func(n *tree.Node) error {
				if n.Type == tree.Dir {
					subdirs = append(subdirs, tree.Node{Name: n.Name, Subtree: n.Subtree})
				}
				for _, c := range n.Content {
					if !c.IsHole() && !seenData[c.ID] {
						seenData[c.ID] = true
						if !r.Readable(c.ID) {
							res.add("data blob "+c.ID.String(), fmt.Errorf("referenced by %s/%s, missing", p, n.Name))
						}
					}
				}
				for _, l := range n.ContentLists {
					cs, err := snapshot.LoadContent(ctx, r, &tree.Node{Name: n.Name, ContentLists: []id.ID{l}})
					if err != nil {
						res.add("tree/"+l.String(), err)
						continue
					}
					for _, c := range cs {
						if !c.IsHole() && !seenData[c.ID] {
							seenData[c.ID] = true
							if !r.Readable(c.ID) {
								res.add("data blob "+c.ID.String(), fmt.Errorf("referenced by %s/%s, missing", p, n.Name))
							}
						}
					}
				}
				return nil
			})
			if err != nil {
				res.add("tree/"+t.String(), err)
			}
			for _, d := range subdirs {
				walk(d.Subtree, p+"/"+d.Name)
			}
		}
	}
	for _, sn := range sns {
		walk(sn.Tree, "")
	}
	res.DataBlobs = len(seenData)
	return nil
}
