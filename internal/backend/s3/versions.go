package s3

// A versions view (Config.VersionsAt) reads the repository as it was at a
// point in time from the bucket's object versions, and Recover makes that
// state the current one again. This is how a repository with object lock
// comes back after its current versions were deleted or overwritten with
// the host's own credentials: on a versioned bucket, a DELETE without a
// version only adds a delete marker and a PUT only adds a version, and the
// locked versions below them cannot be removed (docs/OBJECT-LOCK.md).
//
// For each key, the view takes the newest entry (version or delete
// marker) at or before the time. A delete marker there means the file did
// not exist then. Every name but config is the BLAKE3-256 of the file's
// bytes (docs/FORMAT.md §1), so when a key has more than one version up to
// the time (it was overwritten before it), the versions are read whole,
// newest first, and the first whose bytes hash to the name is taken. The
// config, written once by init and never changed, is its oldest version up
// to the time.

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/zeebo/blake3"
	"golang.org/x/sync/errgroup"

	"github.com/rewind-backup/rewind/internal/backend"
)

// errViewReadOnly is the error of Save and Remove on a versions view.
var errViewReadOnly = backend.Permanent(errors.New("the backend is a read-only view of object versions"))

// errNoGoodVersion means no version of a key up to the view's time holds
// bytes that hash to its name.
var errNoGoodVersion = errors.New("no version hashes to the file's name")

// maxCopySize is the largest object one CopyObject request can copy.
const maxCopySize = 5 << 30

// objVersion is one entry of a key's history: a version or a delete
// marker.
type objVersion struct {
	id       string
	size     int64
	etag     string
	modified time.Time
	marker   bool
}

// history is every entry of one key, newest first, and the one the view
// chose.
type history struct {
	h        backend.Handle
	key      string
	versions []objVersion

	once   sync.Once
	chosen int // index into versions; -1: no file at the view's time
	err    error
	reads  int // versions read whole to check their hash
}

// view is the repository at a point in time, built from one listing of
// every version under the prefix.
type view struct {
	at time.Time

	once    sync.Once
	err     error
	keys    map[string]*history // by object key
	entries int                 // versions and delete markers listed
}

// load lists every version under the prefix, once.
func (v *view) load(ctx context.Context, b *Backend) error {
	v.once.Do(func() { v.err = v.list1(ctx, b) })
	return v.err
}

func (v *view) list1(ctx context.Context, b *Backend) error {
	prefix := ""
	if b.cfg.Prefix != "" {
		prefix = b.cfg.Prefix + "/"
	}
	folders := map[string]backend.FileType{}
	for _, t := range backend.AllTypes {
		folders[t.String()] = t
	}
	v.keys = map[string]*history{}
	lctx, cancel := context.WithCancel(ctx)
	defer cancel()
	fetchOwner := false
	for obj := range b.client.ListObjectsIter(lctx, b.cfg.Bucket, minio.ListObjectsOptions{Prefix: prefix, Recursive: true, WithVersions: true, FetchOwner: &fetchOwner}) {
		if obj.Err != nil {
			return b.wrapErr("list versions of", b.Location(), obj.Err)
		}
		v.entries++
		rel := strings.TrimPrefix(obj.Key, prefix)
		var h backend.Handle
		if rel == "config" {
			h = backend.Handle{Type: backend.ConfigFile}
		} else {
			dir, rest, _ := strings.Cut(rel, "/")
			t, ok := folders[dir]
			if !ok || t == backend.ConfigFile {
				continue
			}
			name, ok := fileName(t, rest)
			if !ok {
				continue
			}
			h = backend.Handle{Type: t, Name: name}
		}
		hist := v.keys[obj.Key]
		if hist == nil {
			hist = &history{h: h, key: obj.Key}
			v.keys[obj.Key] = hist
		}
		hist.versions = append(hist.versions, objVersion{id: obj.VersionID, size: obj.Size, etag: obj.ETag, modified: obj.LastModified, marker: obj.IsDeleteMarker})
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("list versions: %w", err)
	}
	for _, hist := range v.keys {
		// S3 lists the versions of a key newest first; keep that order
		// where the times tie.
		slices.SortStableFunc(hist.versions, func(a, b objVersion) int { return b.modified.Compare(a.modified) })
	}
	return nil
}

// version returns the version of h that the view reads: ErrNotExist when
// h did not exist at the view's time.
func (v *view) version(ctx context.Context, b *Backend, h backend.Handle) (objVersion, error) {
	if err := v.load(ctx, b); err != nil {
		return objVersion{}, err
	}
	hist := v.keys[b.key(h)]
	if hist == nil {
		return objVersion{}, fmt.Errorf("no version at %s: %w", v.at.UTC().Format(time.RFC3339), backend.ErrNotExist)
	}
	return v.resolve(ctx, b, hist)
}

// resolve chooses the version of hist that the view reads, once.
func (v *view) resolve(ctx context.Context, b *Backend, hist *history) (objVersion, error) {
	hist.once.Do(func() { hist.chosen, hist.err = v.choose(ctx, b, hist) })
	if hist.err != nil {
		return objVersion{}, hist.err
	}
	if hist.chosen < 0 {
		return objVersion{}, fmt.Errorf("no version at %s: %w", v.at.UTC().Format(time.RFC3339), backend.ErrNotExist)
	}
	return hist.versions[hist.chosen], nil
}

// choose picks the version of hist that held the file at the view's time
// (see the top of this file); -1 when there was none.
func (v *view) choose(ctx context.Context, b *Backend, hist *history) (int, error) {
	first := -1 // the newest entry at or before the time
	for i, ver := range hist.versions {
		if !ver.modified.After(v.at) {
			first = i
			break
		}
	}
	if first < 0 {
		return -1, nil
	}
	if hist.h.Type == backend.ConfigFile {
		for i := len(hist.versions) - 1; i >= first; i-- {
			if !hist.versions[i].marker {
				return i, nil
			}
		}
		return -1, nil
	}
	if hist.versions[first].marker {
		return -1, nil
	}
	var real []int
	for i := first; i < len(hist.versions); i++ {
		if !hist.versions[i].marker {
			real = append(real, i)
		}
	}
	if len(real) == 1 {
		return real[0], nil
	}
	for _, i := range real {
		hist.reads++
		ok, err := b.hashesToName(ctx, hist, hist.versions[i])
		if err != nil {
			return -1, err
		}
		if ok {
			return i, nil
		}
	}
	return -1, backend.Permanent(fmt.Errorf("%s: versions up to %s: %d, and %w", hist.h, v.at.UTC().Format(time.RFC3339), len(real), errNoGoodVersion))
}

// hashesToName reads one version whole and reports whether its BLAKE3-256
// is the file's name.
func (b *Backend) hashesToName(ctx context.Context, hist *history, ver objVersion) (bool, error) {
	body, _, _, err := b.core.GetObject(ctx, b.cfg.Bucket, hist.key, minio.GetObjectOptions{VersionID: ver.id})
	if err != nil {
		return false, b.wrapErr("read version "+ver.id+" of", hist.h.String(), err)
	}
	defer body.Close()
	hs := blake3.New()
	if _, err := io.Copy(hs, body); err != nil {
		return false, fmt.Errorf("read version %s of %s: %w", ver.id, hist.h, err)
	}
	return hex.EncodeToString(hs.Sum(nil)) == hist.h.Name, nil
}

// list calls fn for every file of type t that existed at the view's time.
func (v *view) list(ctx context.Context, b *Backend, t backend.FileType, fn func(backend.FileInfo) error) error {
	if err := v.load(ctx, b); err != nil {
		return err
	}
	for _, hist := range v.sorted(t) {
		ver, err := v.resolve(ctx, b, hist)
		if backend.IsNotExist(err) {
			continue
		}
		if err != nil {
			return fmt.Errorf("list: %w", err)
		}
		if err := fn(backend.FileInfo{Name: hist.h.Name, Size: ver.size}); err != nil {
			return err
		}
	}
	return nil
}

// sorted returns the histories of the files of type t (every type when t
// is 0), by key.
func (v *view) sorted(t backend.FileType) []*history {
	var out []*history
	for _, hist := range v.keys {
		if t == 0 || hist.h.Type == t {
			out = append(out, hist)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].key < out[j].key })
	return out
}

// RecoverResult is what Recover did, or would do with dryRun.
type RecoverResult struct {
	// At is the point in time that was restored.
	At time.Time `json:"at"`
	// Entries is the number of object versions and delete markers listed.
	Entries int `json:"entries"`
	// Unchanged counts the files whose current version is the one they
	// had at At (or that neither existed then nor exist now).
	Unchanged int `json:"unchanged"`
	// Restored counts the files made current again, in one of two ways:
	// ByDelete by deleting the delete markers and versions stored after
	// the good one, ByCopy by copying the good version on top (when a
	// newer version could not be deleted, being locked itself).
	Restored int `json:"restored"`
	ByDelete int `json:"restored_by_delete"`
	ByCopy   int `json:"restored_by_copy"`
	// Hidden counts the files that did not exist at At and were hidden
	// behind a delete marker (their versions are kept).
	Hidden int `json:"hidden"`
	// Lost names the files that existed at At but have no version whose
	// bytes hash to their name: they are left as they are.
	Lost []string `json:"lost"`
	// Requests counts the changing requests sent: version DELETEs,
	// copies and delete markers; Reads the versions read whole to check
	// their hash.
	Requests int `json:"requests"`
	Reads    int `json:"reads"`
}

// Recover makes the current version of every file the one the view reads
// (the state at Config.VersionsAt), and hides the files that did not
// exist then. Lock files are left alone: those of the time are stale. With
// dryRun nothing is changed; the result says what would be. Other
// processes must not use the repository meanwhile.
func (b *Backend) Recover(ctx context.Context, dryRun bool) (*RecoverResult, error) {
	if b.view == nil {
		return nil, backend.Permanent(errors.New("recover: the backend is not a view of object versions (Config.VersionsAt)"))
	}
	v := b.view
	if err := v.load(ctx, b); err != nil {
		return nil, err
	}
	res := &RecoverResult{At: v.at, Entries: v.entries, Lost: []string{}}
	var mu sync.Mutex
	var requests atomic.Int64
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(8)
	for _, hist := range v.sorted(0) {
		if hist.h.Type == backend.LockFile {
			continue
		}
		g.Go(func() error {
			outcome, n, err := b.recoverKey(gctx, hist, dryRun)
			requests.Add(int64(n))
			mu.Lock()
			defer mu.Unlock()
			res.Reads += hist.reads
			switch {
			case errors.Is(err, errNoGoodVersion):
				res.Lost = append(res.Lost, hist.h.String())
				return nil
			case err != nil:
				return err
			}
			switch outcome {
			case "unchanged":
				res.Unchanged++
			case "hidden":
				res.Hidden++
			case "deleted":
				res.Restored++
				res.ByDelete++
			case "copied":
				res.Restored++
				res.ByCopy++
			}
			return nil
		})
	}
	err := g.Wait()
	res.Requests = int(requests.Load())
	slices.Sort(res.Lost)
	return res, err
}

// recoverKey brings one key back to its state at the view's time. It
// returns what it did ("unchanged", "hidden", "deleted" or "copied") and
// the number of changing requests it sent.
func (b *Backend) recoverKey(ctx context.Context, hist *history, dryRun bool) (string, int, error) {
	_, err := b.view.resolve(ctx, b, hist)
	present := err == nil
	if err != nil && !backend.IsNotExist(err) {
		return "", 0, err
	}
	cur := hist.versions[0]
	current := !cur.marker
	// A copy made by an earlier run has the good version's ETag (for a
	// plain upload, the MD5 of the bytes): running again changes nothing.
	copied := present && current && cur.etag != "" && cur.etag == hist.versions[hist.chosen].etag && cur.size == hist.versions[hist.chosen].size
	switch {
	case !present && !current, present && hist.chosen == 0, copied:
		return "unchanged", 0, nil
	case !present:
		if dryRun {
			return "hidden", 0, nil
		}
		if err := b.client.RemoveObject(ctx, b.cfg.Bucket, hist.key, minio.RemoveObjectOptions{}); err != nil {
			return "", 1, b.wrapErr("recover: hide", hist.h.String(), err)
		}
		return "hidden", 1, nil
	}
	if dryRun {
		return "deleted", 0, nil
	}
	// Delete what was stored after the good version, newest first. A
	// delete marker can always be deleted; a version can unless it is
	// locked itself.
	n := 0
	for i := 0; i < hist.chosen; i++ {
		n++
		err := b.client.RemoveObject(ctx, b.cfg.Bucket, hist.key, minio.RemoveObjectOptions{VersionID: hist.versions[i].id})
		if err != nil {
			b.log.Info("recover: a newer version cannot be deleted; copying the good one on top", "key", hist.key, "version", hist.versions[i].id, "err", err)
			n++
			return "copied", n, b.copyVersion(ctx, hist, hist.versions[hist.chosen])
		}
	}
	return "deleted", n, nil
}

// copyVersion stores a copy of one version of hist as its current
// version, with the repository's retention.
func (b *Backend) copyVersion(ctx context.Context, hist *history, ver objVersion) error {
	dst := minio.CopyDestOptions{Bucket: b.cfg.Bucket, Object: hist.key}
	if until := b.retainUntil(hist.h.Type); !until.IsZero() {
		dst.Mode = minio.RetentionMode(b.lock.Mode)
		dst.RetainUntilDate = until
	}
	src := minio.CopySrcOptions{Bucket: b.cfg.Bucket, Object: hist.key, VersionID: ver.id}
	var err error
	if ver.size <= maxCopySize {
		_, err = b.client.CopyObject(ctx, dst, src)
	} else {
		_, err = b.client.ComposeObject(ctx, dst, src)
	}
	if err != nil {
		return b.wrapErr("recover: copy version "+ver.id+" of", hist.h.String(), err)
	}
	return nil
}
