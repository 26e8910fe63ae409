package archiver

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rewind-backup/rewind/internal/backend"
	"github.com/rewind-backup/rewind/internal/backend/fault"
	"github.com/rewind-backup/rewind/internal/backend/mem"
	"github.com/rewind-backup/rewind/internal/checker"
	"github.com/rewind-backup/rewind/internal/crypto"
	"github.com/rewind-backup/rewind/internal/id"
	"github.com/rewind-backup/rewind/internal/repository"
	"github.com/rewind-backup/rewind/internal/snapshot"
	"github.com/rewind-backup/rewind/internal/testutil"
)

// faultSource writes a few MiB of incompressible files, so that a backup
// with 1 MiB packs stores several data packs, a tree pack, an index file
// and a snapshot.
func faultSource(t *testing.T) string {
	t.Helper()
	src := filepath.Join(t.TempDir(), "src")
	for i := range 4 {
		writeFile(t, filepath.Join(src, fmt.Sprintf("big%d", i)), randomBytes(uint64(100+i), 900<<10))
	}
	for i := range 20 {
		writeFile(t, filepath.Join(src, "small", fmt.Sprintf("f%02d", i)), randomBytes(uint64(200+i), 1000+i*37))
	}
	return src
}

// newFaultRepo initialises a repository with small packs on a fault
// wrapper around a memory backend and returns both ends.
func newFaultRepo(t *testing.T) (*repository.Repository, *fault.Backend, *mem.Backend) {
	t.Helper()
	inner := mem.New()
	fb := fault.New(inner)
	r, err := repository.Init(context.Background(), fb, []byte(testPassword),
		repository.InitOptions{KDF: crypto.TestKDFParams, PackSize: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r, fb, inner
}

// verifyConsistent opens the unwrapped backend afresh and checks that it
// holds no damage other than packs missing from the index, and that any
// snapshot stored references only indexed, readable data.
func verifyConsistent(t *testing.T, be backend.Backend) (snapshots int) {
	t.Helper()
	ctx := context.Background()
	r, err := repository.Open(ctx, be, []byte(testPassword))
	if err != nil {
		t.Fatalf("reopen: %v", err)
	}
	defer r.Close()
	if err := r.LoadIndex(ctx); err != nil {
		t.Fatalf("load index: %v", err)
	}
	res, err := checker.Check(ctx, r, checker.Options{ReadData: true})
	if err != nil {
		t.Fatalf("check: %v", err)
	}
	for _, p := range res.Problems {
		t.Errorf("check problem: %s: %s", p.Object, p.Error)
	}
	sns, err := snapshot.List(ctx, r, func(i id.ID, err error) {
		t.Errorf("snapshot %v: %v", i, err)
	})
	if err != nil {
		t.Fatalf("list snapshots: %v", err)
	}
	return len(sns)
}

func TestBackupSaveFaults(t *testing.T) {
	ctx := context.Background()
	src := faultSource(t)

	// A clean run counts the saves a backup makes.
	r, fb, _ := newFaultRepo(t)
	before := fb.Calls(fault.Save)
	a, err := New(r, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.Snapshot(ctx, []string{src}); err != nil {
		t.Fatal(err)
	}
	saves := fb.Calls(fault.Save) - before
	if saves < 5 {
		t.Fatalf("clean backup made only %d saves; want several packs, an index and a snapshot", saves)
	}

	type tc struct {
		name   string
		inject func(fb *fault.Backend)
		// mustFail: the failure hit an essential save.
		mustFail bool
		// lostReply: the save reached the backend; a snapshot may exist.
		lostReply bool
		// nth is the numbered save the fault hits (0: every save). How
		// many packs a backup writes depends on how the savers share the
		// files, so a numbered fault may fall past the last save of a run.
		nth int
	}
	var cases []tc
	for k := 1; k <= saves; k++ {
		cases = append(cases,
			tc{name: fmt.Sprintf("fail-save-%d", k), inject: func(fb *fault.Backend) { fb.FailNth(fault.Save, k, nil) }, mustFail: true, nth: k},
			tc{name: fmt.Sprintf("lost-reply-save-%d", k), inject: func(fb *fault.Backend) { fb.FailNthAfter(fault.Save, k, nil) }, mustFail: true, lostReply: true, nth: k},
		)
	}
	cases = append(cases,
		tc{name: "fail-every-save", inject: func(fb *fault.Backend) { fb.FailNth(fault.Save, fault.Every, nil) }, mustFail: true},
		tc{name: "lost-reply-every-save", inject: func(fb *fault.Backend) { fb.FailNthAfter(fault.Save, fault.Every, nil) }, mustFail: true, lostReply: true},
		tc{name: "fail-save-past-end", inject: func(fb *fault.Backend) { fb.FailNth(fault.Save, saves+5, nil) }},
	)
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r, fb, inner := newFaultRepo(t)
			start := fb.Calls(fault.Save)
			c.inject(fb)
			a, err := New(r, Options{})
			if err != nil {
				t.Fatal(err)
			}
			sn, err := a.Snapshot(ctx, []string{src})
			if made := fb.Calls(fault.Save) - start; c.nth > 0 && made < c.nth {
				if err != nil {
					t.Errorf("Snapshot failed after %d saves although the fault was set for save %d: %v", made, c.nth, err)
				}
				t.Logf("this run made %d saves; the fault at save %d did not fire", made, c.nth)
				c.mustFail = false
			}
			switch {
			case err != nil && sn != nil:
				t.Errorf("Snapshot returned both a snapshot and an error: %v", err)
			case err == nil && c.mustFail:
				t.Errorf("Snapshot succeeded although a save failed")
			case err != nil && !c.mustFail:
				t.Errorf("Snapshot failed without a fault: %v", err)
			case err != nil && !strings.Contains(err.Error(), fault.ErrInjected.Error()):
				t.Errorf("error does not carry the cause: %v", err)
			}
			testutil.CheckNamedOnce(t, "backup", err)
			n := verifyConsistent(t, inner)
			if n > 1 || (n == 1 && err != nil && !c.lostReply) {
				t.Errorf("%d snapshots stored after a backup that returned %v", n, err)
			}
			if err == nil && n != 1 {
				t.Errorf("successful backup left %d snapshots", n)
			}
		})
	}
}
