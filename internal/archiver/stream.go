package archiver

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"strings"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/rewind-backup/rewind/internal/fs"
	"github.com/rewind-backup/rewind/internal/id"
	"github.com/rewind-backup/rewind/internal/pack"
	"github.com/rewind-backup/rewind/internal/repository"
	"github.com/rewind-backup/rewind/internal/snapshot"
	"github.com/rewind-backup/rewind/internal/tree"
)

// StreamOptions describe a stream stored as one file of a snapshot.
type StreamOptions struct {
	// Name is the file's absolute path in the snapshot, e.g. "/stdin" or
	// "/db/app.sql". Each element must be a valid file name.
	Name string
	// Mode is the file's permission bits; zero means 0600, since a
	// stream is often a dump holding secrets.
	Mode uint32
	// Profile names the chunking parameters for the stream (a
	// repository profile name); "" is repository.ProfileSmall, since a
	// stream (a database dump, a tar of a container) is written anew
	// each time with most of its content the same, and small chunks find
	// more of it again.
	Profile string
}

// DefaultStreamName is the name of a stream given none, as restic names
// it.
const DefaultStreamName = "/stdin"

// SnapshotStream reads r to its end, stores it as the one file opt.Name
// of a new snapshot, and returns the snapshot. The file's owner is the
// user running the backup and its times are the end of the stream. The
// BeforeCommit hook of the archiver's Options runs once the stream is
// stored and before the snapshot is: a stream whose producer failed is
// refused there, and no snapshot is saved. A read error from r also
// saves no snapshot; the data stored so far stays for later backups to
// reuse.
func (a *Archiver) SnapshotStream(ctx context.Context, r io.Reader, opt StreamOptions) (*snapshot.Snapshot, error) {
	start := time.Now()
	name, err := CleanStreamName(opt.Name)
	if err != nil {
		return nil, err
	}
	statsBefore := a.store.stats()
	a.store.start(ctx)
	root, total, end, err := a.storeStreamTree(ctx, r, name, opt)
	if ferr := a.store.flush(ctx); err == nil {
		err = ferr
	}
	if err != nil {
		return nil, err
	}
	uid, gid := uint32(os.Getuid()), uint32(os.Getgid())
	after := a.store.stats()
	sn := &snapshot.Snapshot{
		Time: start.UTC(), Tree: root, Paths: []string{name}, Hostname: a.opt.Hostname,
		Username: a.names.User(uid), UID: uid, GID: gid, Tags: a.opt.Tags,
		ProgramVersion: a.opt.ProgramVersion,
		Summary: &snapshot.Summary{
			BackupStart: start.UTC(), BackupEnd: end.UTC(),
			FilesNew: 1, DirsNew: int64(strings.Count(name, "/") - 1),
			TotalFiles: 1, TotalBytes: total, BytesRead: total,
			DataBlobs: after.dataBlobs - statsBefore.dataBlobs, TreeBlobs: after.treeBlobs - statsBefore.treeBlobs,
			DataAdded: after.added - statsBefore.added, DataStored: after.stored - statsBefore.stored,
		},
	}
	return a.commit(ctx, sn)
}

// storeStreamTree stores the stream's data, its file node and the
// listings above it, and returns the root's tree blobs, the stream's
// length and when it ended.
func (a *Archiver) storeStreamTree(ctx context.Context, r io.Reader, name string, opt StreamOptions) ([]id.ID, int64, time.Time, error) {
	chunks, total, err := a.storeStream(ctx, r, opt.Profile)
	if err != nil {
		return nil, 0, time.Time{}, err
	}
	end := time.Now()
	mode := opt.Mode
	if mode == 0 {
		mode = 0o600
	}
	uid, gid := uint32(os.Getuid()), uint32(os.Getgid())
	file := tree.Node{
		Name: path.Base(name), Type: tree.File, Mode: mode, UID: uid, GID: gid,
		User: a.names.User(uid), Group: a.names.Group(gid), Links: 1,
		MTime: end.UnixNano(), CTime: end.UnixNano(), ATime: end.UnixNano(),
	}
	if err := a.setContent(ctx, &file, chunks, total); err != nil {
		return nil, 0, time.Time{}, err
	}
	root, err := a.streamTrees(ctx, name, file, end)
	return root, total, end, err
}

// CleanStreamName makes a stream's name an absolute, clean path whose
// every element is a valid file name.
func CleanStreamName(name string) (string, error) {
	if name == "" {
		name = DefaultStreamName
	}
	clean := path.Clean("/" + name)
	if clean == "/" {
		return "", fmt.Errorf("stream name %q: names no file", name)
	}
	for _, el := range strings.Split(strings.TrimPrefix(clean, "/"), "/") {
		if err := fs.ValidName(el); err != nil {
			return "", fmt.Errorf("stream name %q: %w", name, err)
		}
	}
	return clean, nil
}

// storeStream chunks r and hands new chunks to savers, returning the
// chunk list and the stream's length.
func (a *Archiver) storeStream(ctx context.Context, r io.Reader, profile string) ([]tree.Chunk, int64, error) {
	if profile == "" {
		profile = repository.ProfileSmall
	}
	g, gctx := errgroup.WithContext(ctx)
	a.saves = make(chan saveJob, a.opt.Savers)
	for range a.opt.Savers {
		g.Go(func() error { return a.saver(gctx) })
	}
	rd := &fileReader{a: a}
	var total int64
	var readErr error
	func() {
		defer close(a.saves)
		c := a.repo.Chunker(profile)
		if c == nil {
			readErr = fmt.Errorf("no chunking profile %q in this repository", profile)
			return
		}
		// One buffer serves every stream of the archiver in turn (a
		// snapshot of entries stores thousands of small files one by
		// one): allocating it per stream cost more than chunking them.
		if len(a.streamBuf) < c.BufferSize() {
			a.streamBuf = make([]byte, c.BufferSize())
		}
		rd.buf = a.streamBuf
		cr := c.NewReader(r, rd.buf)
		for {
			chunk, err := cr.Next()
			if errors.Is(err, io.EOF) {
				return
			}
			if err != nil {
				readErr = fmt.Errorf("read the stream: %w", err)
				return
			}
			total += int64(len(chunk))
			a.st.bytesRead.Add(int64(len(chunk)))
			a.prog.Done(0, int64(len(chunk)))
			if err := rd.addChunk(gctx, chunk); err != nil {
				readErr = err
				return
			}
		}
	}()
	if err := g.Wait(); err != nil {
		return nil, 0, err
	}
	if readErr != nil {
		return nil, 0, readErr
	}
	return rd.chunks, total, nil
}

// streamTrees stores the listings from the stream's file up to the root
// and returns the root's tree blobs. Directories on the way get mode 0700
// and the stream's end as their times.
func (a *Archiver) streamTrees(ctx context.Context, name string, file tree.Node, end time.Time) ([]id.ID, error) {
	save := func(n tree.Node) ([]id.ID, error) {
		b := tree.Builder{Emit: func(blob []byte) (id.ID, error) {
			return a.store.saveBlob(ctx, pack.TreeBlob, blob)
		}}
		if err := b.Add(&n); err != nil {
			return nil, err
		}
		return b.Finish()
	}
	uid, gid := uint32(os.Getuid()), uint32(os.Getgid())
	ids, err := save(file)
	if err != nil {
		return nil, err
	}
	for dir := path.Dir(name); dir != "/"; dir = path.Dir(dir) {
		n := tree.Node{
			Name: path.Base(dir), Type: tree.Dir, Mode: 0o700, UID: uid, GID: gid,
			User: a.names.User(uid), Group: a.names.Group(gid), Links: 2, Subtree: ids,
			MTime: end.UnixNano(), CTime: end.UnixNano(), ATime: end.UnixNano(),
		}
		if ids, err = save(n); err != nil {
			return nil, err
		}
	}
	return ids, nil
}
