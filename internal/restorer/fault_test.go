package restorer_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rewind-backup/rewind/internal/backend/fault"
	"github.com/rewind-backup/rewind/internal/backend/mem"
	"github.com/rewind-backup/rewind/internal/crypto"
	"github.com/rewind-backup/rewind/internal/repository"
	"github.com/rewind-backup/rewind/internal/restorer"
)

// faultFixture is a repository on a fault wrapper holding one snapshot of
// src, whose files are in want (keyed by path relative to src).
type faultFixture struct {
	fb   *fault.Backend
	src  string
	want map[string][]byte
}

func newFaultFixture(t *testing.T) (*faultFixture, *repository.Repository) {
	t.Helper()
	f := &faultFixture{src: filepath.Join(t.TempDir(), "src"), want: map[string][]byte{}}
	for i := range 3 {
		f.want[fmt.Sprintf("big%d", i)] = randomBytes(uint64(300+i), 800<<10)
	}
	for i := range 12 {
		f.want[fmt.Sprintf("d/small%02d", i)] = randomBytes(uint64(400+i), 500+i*911)
	}
	for rel, data := range f.want {
		writeFile(t, filepath.Join(f.src, rel), data)
	}
	f.fb = fault.New(mem.New())
	r, err := repository.Init(context.Background(), f.fb, []byte(testPassword),
		repository.InitOptions{KDF: crypto.TestKDFParams, PackSize: 1 << 20})
	must(t, err)
	t.Cleanup(func() { r.Close() })
	return f, r
}

// open opens the repository afresh (no cached blobs) with its index.
func (f *faultFixture) open(t *testing.T) *repository.Repository {
	t.Helper()
	ctx := context.Background()
	f.fb.Reset()
	r, err := repository.Open(ctx, f.fb, []byte(testPassword))
	must(t, err)
	t.Cleanup(func() { r.Close() })
	must(t, r.LoadIndex(ctx))
	return r
}

// failedFor reports whether a restore error names snapshot path p or a
// folder above it.
func failedFor(st *restorer.Stats, p string) bool {
	if st == nil {
		return false
	}
	for _, e := range st.Errors {
		if e.Path == p || e.Path == "/" || strings.HasPrefix(p, strings.TrimSuffix(e.Path, "/")+"/") {
			return true
		}
	}
	return false
}

// checkRestored fails the test if a file the restore did not report as
// failed differs from the source, or, after a successful restore, is
// missing.
func (f *faultFixture) checkRestored(t *testing.T, target string, st *restorer.Stats, err error) {
	t.Helper()
	for rel, want := range f.want {
		snapPath := filepath.Join(f.src, rel)
		if failedFor(st, snapPath) {
			continue
		}
		got, rerr := os.ReadFile(filepath.Join(target, snapPath))
		if errors.Is(rerr, fs.ErrNotExist) && err != nil {
			continue // the restore stopped before reaching it
		}
		if rerr != nil {
			t.Errorf("%s: %v (restore error: %v)", rel, rerr, err)
			continue
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%s restored with wrong bytes (%d bytes, want %d) and no error for it; restore error: %v", rel, len(got), len(want), err)
		}
	}
}

func TestRestoreLoadFaults(t *testing.T) {
	ctx := context.Background()
	f, r := newFaultFixture(t)
	sn, _ := backup(t, r, f.src)

	// A clean restore counts its loads.
	r0 := f.open(t)
	before := f.fb.Calls(fault.Load)
	target := filepath.Join(t.TempDir(), "clean")
	st, err := restore(t, r0, sn, "/", restorer.Options{Target: target})
	if err != nil {
		t.Fatalf("clean restore: %v\n%s", err, errorsText(st))
	}
	f.checkRestored(t, target, st, nil)
	loads := f.fb.Calls(fault.Load) - before
	if loads < 3 {
		t.Fatalf("clean restore made only %d loads", loads)
	}

	type tc struct {
		name   string
		inject func(fb *fault.Backend)
		// damaged: the fault certainly changes what the restore reads.
		damaged bool
	}
	var cases []tc
	step := max(1, loads/10)
	for n := 1; n <= loads; n += step {
		for _, bit := range []int64{0, 8*57 + 3, 8*5000 + 6, 8 * 600000} {
			cases = append(cases, tc{
				name:    fmt.Sprintf("flip-load%d-bit%d", n, bit),
				inject:  func(fb *fault.Backend) { fb.FlipBitNth(n, bit) },
				damaged: bit == 0,
			})
		}
		for _, keep := range []int64{0, 33, 4096, 500000} {
			cases = append(cases, tc{
				name:    fmt.Sprintf("short-load%d-keep%d", n, keep),
				inject:  func(fb *fault.Backend) { fb.ShortReadNth(n, keep) },
				damaged: keep < 33,
			})
		}
		cases = append(cases, tc{
			name:    fmt.Sprintf("fail-load%d", n),
			inject:  func(fb *fault.Backend) { fb.FailNth(fault.Load, n, nil) },
			damaged: true,
		})
	}
	cases = append(cases,
		tc{name: "flip-every-load", inject: func(fb *fault.Backend) { fb.FlipBitNth(fault.Every, 9) }, damaged: true},
		tc{name: "short-every-load", inject: func(fb *fault.Backend) { fb.ShortReadNth(fault.Every, 100) }, damaged: true},
		tc{name: "split-reads", inject: func(fb *fault.Backend) { fb.SplitReads(7) }},
	)
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := f.open(t)
			c.inject(f.fb)
			defer f.fb.Reset()
			target := filepath.Join(t.TempDir(), "target")
			rs, err := restorer.New(r, restorer.Options{Target: target})
			must(t, err)
			st, err := rs.Restore(ctx, sn, "/")
			if c.damaged && err == nil {
				t.Errorf("restore succeeded although every byte of a load was damaged")
			}
			if err == nil && st != nil && len(st.Errors) > 0 {
				t.Errorf("restore returned no error but listed errors:\n%s", errorsText(st))
			}
			if err != nil {
				msg := err.Error()
				if st != nil {
					msg += "\n" + errorsText(st)
				}
				if !strings.Contains(msg, "blob") && !strings.Contains(msg, "tree") && !strings.Contains(msg, "pack") {
					t.Errorf("restore error names no blob, tree or pack: %s", msg)
				}
			}
			f.checkRestored(t, target, st, err)
		})
	}
}
