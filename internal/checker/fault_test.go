package checker_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/rewind-backup/rewind/internal/archiver"
	"github.com/rewind-backup/rewind/internal/backend"
	"github.com/rewind-backup/rewind/internal/backend/fault"
	"github.com/rewind-backup/rewind/internal/backend/mem"
	"github.com/rewind-backup/rewind/internal/checker"
	"github.com/rewind-backup/rewind/internal/crypto"
	"github.com/rewind-backup/rewind/internal/repository"
)

const faultPassword = "checker fault password"

// recorder sits above a fault wrapper and notes whether some load handed
// its caller data that the check must notice: an error, data of the wrong
// length, or changed data anywhere but in the speculative tail read of a
// pack header (whose leading bytes are blob data the header read ignores).
type recorder struct {
	backend.Backend
	clean backend.Backend // the backend below the faults

	mu         sync.Mutex
	mustDetect []string
}

func (r *recorder) Load(ctx context.Context, h backend.Handle, length int, offset int64, fn func(io.Reader) error) error {
	var got []byte
	var readErr error
	err := r.Backend.Load(ctx, h, length, offset, func(rd io.Reader) error {
		got, readErr = io.ReadAll(rd)
		return fn(io.MultiReader(bytes.NewReader(got), errReader{readErr}))
	})
	var want []byte
	cerr := r.clean.Load(ctx, h, length, offset, func(rd io.Reader) error {
		var err error
		want, err = io.ReadAll(rd)
		return err
	})
	fi, serr := r.clean.Stat(ctx, h)
	if cerr != nil || serr != nil {
		return err
	}
	tail := h.Type == backend.PackFile && length != 0 && offset+int64(length) == fi.Size
	var why string
	switch {
	case err != nil || readErr != nil:
		why = "error"
	case len(got) != len(want):
		why = fmt.Sprintf("%d of %d bytes", len(got), len(want))
	case !bytes.Equal(got, want) && !tail:
		why = "changed"
	}
	if why != "" {
		r.mu.Lock()
		r.mustDetect = append(r.mustDetect, fmt.Sprintf("%s [%d+%d]: %s", h, offset, length, why))
		r.mu.Unlock()
	}
	return err
}

type errReader struct{ err error }

func (e errReader) Read([]byte) (int, error) {
	if e.err != nil {
		return 0, e.err
	}
	return 0, io.EOF
}

func faultBytes(seed uint64, n int) []byte {
	rng := rand.New(rand.NewPCG(seed, ^seed))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(rng.Uint32())
	}
	return b
}

// newFaultRepo returns a fault wrapper around a memory backend holding a
// repository with small packs and two snapshots (so two index files).
func newFaultRepo(t *testing.T) (*fault.Backend, *mem.Backend) {
	t.Helper()
	ctx := context.Background()
	inner := mem.New()
	fb := fault.New(inner)
	r, err := repository.Init(ctx, fb, []byte(faultPassword),
		repository.InitOptions{KDF: crypto.TestKDFParams, PackSize: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	src := filepath.Join(t.TempDir(), "src")
	for round := range 2 {
		for i := range 3 {
			p := filepath.Join(src, fmt.Sprintf("r%d", round), fmt.Sprintf("f%d", i))
			if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(p, faultBytes(uint64(round*10+i), 400<<10+i*1234), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		a, err := archiver.New(r, archiver.Options{})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := a.Snapshot(ctx, []string{src}); err != nil {
			t.Fatal(err)
		}
	}
	return fb, inner
}

// openFault opens the repository on be, with no fault configured on fb.
func openFault(t *testing.T, fb *fault.Backend, be backend.Backend) *repository.Repository {
	t.Helper()
	ctx := context.Background()
	fb.Reset()
	r, err := repository.Open(ctx, be, []byte(faultPassword))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	if err := r.LoadIndex(ctx); err != nil {
		t.Fatal(err)
	}
	return r
}

func TestCheckLoadFaults(t *testing.T) {
	ctx := context.Background()
	fb, inner := newFaultRepo(t)

	r := openFault(t, fb, fb)
	before := fb.Calls(fault.Load)
	res, err := checker.Check(ctx, r, checker.Options{ReadData: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Problems) > 0 || len(res.Unindexed) > 0 {
		t.Fatalf("clean repository: problems %v, unindexed %v", res.Problems, res.Unindexed)
	}
	loads := fb.Calls(fault.Load) - before
	if loads < 5 {
		t.Fatalf("clean check made only %d loads", loads)
	}

	type tc struct {
		name   string
		inject func(fb *fault.Backend)
		// damaged: the fault certainly changes what some load yields.
		damaged bool
	}
	var cases []tc
	for n := 1; n <= loads; n += max(1, loads/5) {
		cases = append(cases,
			tc{fmt.Sprintf("flip-load%d-bit0", n), func(fb *fault.Backend) { fb.FlipBitNth(n, 0) }, false},
			tc{fmt.Sprintf("flip-load%d-bit%d", n, 8*70000+5), func(fb *fault.Backend) { fb.FlipBitNth(n, 8*70000+5) }, false},
			tc{fmt.Sprintf("short-load%d-keep0", n), func(fb *fault.Backend) { fb.ShortReadNth(n, 0) }, true},
			tc{fmt.Sprintf("short-load%d-keep3000", n), func(fb *fault.Backend) { fb.ShortReadNth(n, 3000) }, false},
			tc{fmt.Sprintf("fail-load%d", n), func(fb *fault.Backend) { fb.FailNth(fault.Load, n, nil) }, true},
			tc{fmt.Sprintf("lost-reply-load%d", n), func(fb *fault.Backend) { fb.FailNthAfter(fault.Load, n, nil) }, true},
		)
	}
	cases = append(cases,
		tc{"flip-every-load", func(fb *fault.Backend) { fb.FlipBitNth(fault.Every, 1) }, true},
		tc{"short-every-load", func(fb *fault.Backend) { fb.ShortReadNth(fault.Every, 10) }, true},
		tc{"fail-every-load", func(fb *fault.Backend) { fb.FailNth(fault.Load, fault.Every, nil) }, true},
		tc{"fail-every-list", func(fb *fault.Backend) { fb.FailNth(fault.List, fault.Every, nil) }, true},
		tc{"split-reads", func(fb *fault.Backend) { fb.SplitReads(5) }, false},
	)
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			rec := &recorder{Backend: fb, clean: inner}
			r := openFault(t, fb, rec)
			c.inject(fb)
			defer fb.Reset()
			res, err := checker.Check(ctx, r, checker.Options{ReadData: true})
			if err != nil {
				return // a clean error
			}
			if (c.damaged || len(rec.mustDetect) > 0) && len(res.Problems) == 0 {
				t.Errorf("check reports no problem although a load was damaged: %q", rec.mustDetect)
			}
			for _, p := range res.Problems {
				if p.Object == "" || p.Error == "" {
					t.Errorf("problem without object or error: %+v", p)
				}
			}
		})
	}
}

// TestOpenLoadFaults fails, truncates and flips the loads that Open and
// LoadIndex make: each returns a clean error, reports a damaged index file,
// or succeeds, never panics.
func TestOpenLoadFaults(t *testing.T) {
	ctx := context.Background()
	fb, _ := newFaultRepo(t)
	fb.Reset()
	before := fb.Calls(fault.Load)
	r, err := repository.Open(ctx, fb, []byte(faultPassword))
	if err != nil {
		t.Fatal(err)
	}
	openLoads := fb.Calls(fault.Load) - before
	if err := r.LoadIndex(ctx); err != nil {
		t.Fatal(err)
	}
	r.Close()
	loads := fb.Calls(fault.Load) - before
	type tc struct {
		name   string
		inject func(fb *fault.Backend)
		// damaged: the fault certainly makes Open or LoadIndex fail.
		damaged bool
	}
	var cases []tc
	for n := 1; n <= loads; n++ {
		cases = append(cases,
			tc{fmt.Sprintf("fail-load%d", n), func(fb *fault.Backend) { fb.FailNth(fault.Load, n, nil) }, true},
			tc{fmt.Sprintf("lost-reply-load%d", n), func(fb *fault.Backend) { fb.FailNthAfter(fault.Load, n, nil) }, true},
			tc{fmt.Sprintf("flip-load%d-bit0", n), func(fb *fault.Backend) { fb.FlipBitNth(n, 0) }, false},
			tc{fmt.Sprintf("flip-load%d-bit100", n), func(fb *fault.Backend) { fb.FlipBitNth(n, 100) }, true},
			tc{fmt.Sprintf("short-load%d-keep0", n), func(fb *fault.Backend) { fb.ShortReadNth(n, 0) }, true},
			tc{fmt.Sprintf("short-load%d-keep20", n), func(fb *fault.Backend) { fb.ShortReadNth(n, 20) }, true},
		)
	}
	cases = append(cases,
		tc{"fail-every-load", func(fb *fault.Backend) { fb.FailNth(fault.Load, fault.Every, nil) }, true},
		tc{"lost-reply-every-load", func(fb *fault.Backend) { fb.FailNthAfter(fault.Load, fault.Every, nil) }, true},
		tc{"fail-every-list", func(fb *fault.Backend) { fb.FailNth(fault.List, fault.Every, nil) }, true},
		tc{"fail-every-stat", func(fb *fault.Backend) { fb.FailNth(fault.Stat, fault.Every, nil) }, false},
		tc{"split-reads", func(fb *fault.Backend) { fb.SplitReads(3) }, false},
	)
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			fb.Reset()
			c.inject(fb)
			defer fb.Reset()
			r, err := repository.Open(ctx, fb, []byte(faultPassword))
			noticed := err != nil
			if err == nil {
				defer r.Close()
				err = r.LoadIndex(ctx)
				// A damaged index file does not fail the load: it is
				// reported, and its packs indexed from their headers.
				noticed = err != nil || r.IndexDamage() != nil
			}
			if c.damaged && !noticed {
				t.Errorf("Open+LoadIndex noticed nothing although a load was damaged (open makes %d loads, %d in all)", openLoads, loads)
			}
			if err != nil && err.Error() == "" {
				t.Errorf("empty error")
			}
		})
	}
}
