package repository

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/rewind-backup/rewind/internal/backend"
	"github.com/rewind-backup/rewind/internal/backend/fault"
	"github.com/rewind-backup/rewind/internal/backend/local"
	"github.com/rewind-backup/rewind/internal/backend/retry"
	"github.com/rewind-backup/rewind/internal/crypto"
	"github.com/rewind-backup/rewind/internal/id"
	"github.com/rewind-backup/rewind/internal/index"
	"github.com/rewind-backup/rewind/internal/pack"
	"github.com/rewind-backup/rewind/internal/testutil"
)

// prefixScene is a repository on a local folder holding a few blobs in
// one pack, an index file, a snapshot-like file and a prune mark.
type prefixScene struct {
	dir      string
	blob     id.ID
	pack     id.ID
	snapshot id.ID
	mark     id.ID
}

func newPrefixScene(t *testing.T) prefixScene {
	t.Helper()
	ctx := context.Background()
	r, dir := newLocalRepo(t)
	ids := saveAll(t, r, []testBlob{
		{pack.DataBlob, noise("prefix-a", 9000)},
		{pack.DataBlob, text("prefix-b", 20000)},
		{pack.TreeBlob, []byte(`{"nodes":[]}`)},
	})
	loc, ok := r.Index().Lookup(ids[0])
	if !ok {
		t.Fatal("saved blob not in the index")
	}
	sn, err := r.SaveJSON(ctx, backend.SnapshotFile, map[string]string{"hostname": "prefix-test"})
	if err != nil {
		t.Fatal(err)
	}
	mark, err := r.SaveMark(ctx, &index.Mark{Time: time.Unix(1_700_000_000, 0), Host: "prefix-test"})
	if err != nil {
		t.Fatal(err)
	}
	return prefixScene{dir: dir, blob: ids[0], pack: loc.Pack, snapshot: sn, mark: mark}
}

// clone returns the scene in a copy of its folder, for one run that may
// change it.
func (s prefixScene) clone(t *testing.T) prefixScene {
	t.Helper()
	c := s
	c.dir = filepath.Join(t.TempDir(), "repo")
	if err := os.CopyFS(c.dir, os.DirFS(s.dir)); err != nil {
		t.Fatal(err)
	}
	return c
}

// prefixOps are operations on every kind of stored file, each from a
// newly opened repository, as a command would run them.
var prefixOps = []struct {
	name   string
	writes bool // changes the folder: each run gets its own copy
	run    func(ctx context.Context, be backend.Backend, s prefixScene) error
}{
	{"open (config, keys)", false, func(ctx context.Context, be backend.Backend, _ prefixScene) error {
		_, err := Open(ctx, be, testPassword)
		return err
	}},
	{"load index", false, func(ctx context.Context, be backend.Backend, _ prefixScene) error {
		return withRepo(ctx, be, func(r *Repository) error { return r.LoadIndex(ctx) })
	}},
	{"load blob (pack)", false, func(ctx context.Context, be backend.Backend, s prefixScene) error {
		return withRepo(ctx, be, func(r *Repository) error {
			if err := r.LoadIndex(ctx); err != nil {
				return err
			}
			_, err := r.LoadBlob(ctx, pack.DataBlob, s.blob, nil)
			return err
		})
	}},
	{"read pack header", false, func(ctx context.Context, be backend.Backend, s prefixScene) error {
		return withRepo(ctx, be, func(r *Repository) error {
			_, err := r.ReadPackHeader(ctx, s.pack)
			return err
		})
	}},
	{"save blobs (pack, index)", true, func(ctx context.Context, be backend.Backend, _ prefixScene) error {
		return withRepo(ctx, be, func(r *Repository) error {
			if err := r.LoadIndex(ctx); err != nil {
				return err
			}
			r.StartWriting(ctx)
			if _, _, err := r.SaveBlob(ctx, pack.DataBlob, noise("prefix-new", 5000)); err != nil {
				return err
			}
			return r.Flush(ctx)
		})
	}},
	{"save snapshot", true, func(ctx context.Context, be backend.Backend, _ prefixScene) error {
		return withRepo(ctx, be, func(r *Repository) error {
			_, err := r.SaveJSON(ctx, backend.SnapshotFile, map[string]string{"hostname": "another"})
			return err
		})
	}},
	{"load snapshot", false, func(ctx context.Context, be backend.Backend, s prefixScene) error {
		return withRepo(ctx, be, func(r *Repository) error {
			var v map[string]string
			return r.LoadJSON(ctx, backend.SnapshotFile, s.snapshot, &v)
		})
	}},
	{"load each snapshot", false, func(ctx context.Context, be backend.Backend, _ prefixScene) error {
		return withRepo(ctx, be, func(r *Repository) error {
			_, err := r.LoadEach(ctx, backend.SnapshotFile, func(id.ID, []byte) error { return nil })
			return err
		})
	}},
	{"load marks", false, func(ctx context.Context, be backend.Backend, _ prefixScene) error {
		return withRepo(ctx, be, func(r *Repository) error {
			_, _, err := r.LoadMarks(ctx)
			return err
		})
	}},
	{"add key", true, func(ctx context.Context, be backend.Backend, _ prefixScene) error {
		return withRepo(ctx, be, func(r *Repository) error {
			_, err := r.AddKey(ctx, []byte("another password"), crypto.TestKDFParams)
			return err
		})
	}},
	{"rebuild index", true, func(ctx context.Context, be backend.Backend, _ prefixScene) error {
		return withRepo(ctx, be, func(r *Repository) error {
			_, err := r.RebuildIndex(ctx)
			return err
		})
	}},
}

func withRepo(ctx context.Context, be backend.Backend, fn func(r *Repository) error) error {
	r, err := Open(ctx, be, testPassword)
	if err != nil {
		return err
	}
	defer closeCodecs(r)
	return fn(r)
}

// TestErrorsNameFileOnce fails every call of every operation on each kind
// of stored file in turn, before it reaches a real local folder and after
// (a lost reply), with and without the retry wrapper that remote
// repositories get, and checks that no message says an operation on a
// file twice ("save snapshots/1a…: save snapshots/1a…: …").
func TestErrorsNameFileOnce(t *testing.T) {
	ctx := context.Background()
	ops := []fault.Op{fault.Save, fault.Load, fault.Stat, fault.Remove, fault.List}
	failures := 0
	for _, op := range prefixOps {
		t.Run(op.name, func(t *testing.T) {
			scene := newPrefixScene(t)
			// Count the calls a clean run makes, per operation.
			s := scene.clone(t)
			fb := openFault(t, s.dir)
			if err := op.run(ctx, fb, s); err != nil {
				t.Fatalf("clean run: %v", err)
			}
			for _, fop := range ops {
				for n := 1; n <= fb.Calls(fop); n++ {
					for _, after := range []bool{false, true} {
						for _, retried := range []bool{false, true} {
							what := fmt.Sprintf("%s call %d of %d (after: %v, retry: %v)", fop, n, fb.Calls(fop), after, retried)
							s := scene
							if op.writes {
								s = scene.clone(t)
							}
							fb := openFault(t, s.dir)
							var be backend.Backend = fb
							if retried {
								be = retry.New(fb, retry.Config{MaxAttempts: 2, InitialDelay: time.Microsecond, MaxDelay: time.Microsecond})
							}
							// With retries, the fault comes back on every
							// attempt from the nth on.
							inject := fb.FailNth
							if after {
								inject = fb.FailNthAfter
							}
							inject(fop, n, nil)
							if retried {
								inject(fop, n+1, nil)
							}
							err := op.run(ctx, be, s)
							if err != nil {
								failures++
								testutil.CheckNamedOnce(t, what, err)
							}
						}
					}
				}
			}
		})
	}
	if failures == 0 {
		t.Fatal("no injected fault made an operation fail")
	}
}

// TestMissingFilesNamedOnce loads files that a real local folder does not
// hold, of each kind, and checks how the message names them.
func TestMissingFilesNamedOnce(t *testing.T) {
	ctx := context.Background()
	s := newPrefixScene(t)
	be, err := local.Open(ctx, s.dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = be.Close() })
	r, err := Open(ctx, be, testPassword)
	if err != nil {
		t.Fatal(err)
	}
	defer closeCodecs(r)
	missing, _ := id.Parse("0badf11e0badf11e0badf11e0badf11e0badf11e0badf11e0badf11e0badf11e")
	checks := map[string]error{}
	var v map[string]string
	checks["snapshot"] = r.LoadJSON(ctx, backend.SnapshotFile, missing, &v)
	_, checks["index file"] = r.LoadIndexFile(ctx, missing)
	_, checks["prune mark"] = r.LoadMark(ctx, missing)
	_, checks["pack header"] = r.ReadPackHeader(ctx, missing)
	checks["key file"] = r.VerifyKeyFile(ctx, missing.String())
	checks["removed key"] = r.RemoveKey(ctx, missing)
	for what, err := range checks {
		if err == nil {
			t.Errorf("%s: no error for a missing file", what)
			continue
		}
		if !backend.IsNotExist(err) {
			t.Errorf("%s: %v does not say the file is missing", what, err)
		}
		testutil.CheckNamedOnce(t, what, err)
	}
}

// openFault opens the local repository folder dir behind a fault backend.
func openFault(t *testing.T, dir string) *fault.Backend {
	t.Helper()
	be, err := local.Open(context.Background(), dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = be.Close() })
	return fault.New(be)
}
