package main

import (
	"context"
	"fmt"
	"io/fs"
	"log/slog"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"time"
)

// standardSets are mkdata's sets, with what the report says of them.
var standardSets = map[string]string{
	"tree":  "about 700 MiB in 31,000 files, half of it duplicated",
	"image": "one 2 GiB disk-image-like file, 60% holes",
	"small": "200,000 files of up to 8 KiB",
}

// mutatePerMille is the size of the change before the incremental backup:
// mkdata's -mutate 10, 1% of the set.
const mutatePerMille = 10

// dataset is one set as the harness uses it.
type dataset struct {
	name     string // tree, image, small or smoke
	mkset    string // the set mkdata's -mutate treats it as
	pristine string // generated once, never changed
	workRoot string // mkdata's -out for the mutation
	work     string // workRoot/mkset: what every tool backs up
	file     string // absolute path, below work, of the single-file restore
}

// prepareSets generates the selected sets, or reuses them when a previous
// run finished generating them, and picks the file for single-file restore.
func prepareSets(ctx context.Context, log *slog.Logger, cfg config, dataDir, mkdata string) ([]*dataset, error) {
	pristineRoot := filepath.Join(dataDir, "pristine")
	workRoot := filepath.Join(dataDir, "work")
	if err := os.MkdirAll(pristineRoot, 0o755); err != nil {
		return nil, err
	}
	var sets []*dataset
	for _, name := range cfg.sets {
		mkset := name
		if name == "smoke" {
			mkset = "tree" // mkdata mutates any folder of files as "tree"
		}
		d := &dataset{
			name:     name,
			mkset:    mkset,
			pristine: filepath.Join(pristineRoot, mkset),
			workRoot: workRoot,
			work:     filepath.Join(workRoot, mkset),
		}
		done := d.pristine + ".done"
		if _, err := os.Stat(done); err != nil {
			if err := os.RemoveAll(d.pristine); err != nil {
				return nil, err
			}
			start := time.Now()
			log.Info("generating dataset", "set", name, "dir", d.pristine)
			if name == "smoke" {
				err = makeSmoke(d.pristine)
			} else {
				err = runMkdata(ctx, mkdata, "-out", pristineRoot, "-set", name)
			}
			if err != nil {
				return nil, fmt.Errorf("generate %s: %w", name, err)
			}
			if err := os.WriteFile(done, []byte(time.Now().Format(time.RFC3339)+"\n"), 0o644); err != nil {
				return nil, err
			}
			log.Info("dataset ready", "set", name, "took", time.Since(start).Round(time.Second))
		} else {
			log.Info("reusing dataset", "set", name, "dir", d.pristine)
		}
		rel, err := middleFile(d.pristine)
		if err != nil {
			return nil, err
		}
		d.file = filepath.Join(d.work, rel)
		sets = append(sets, d)
	}
	return sets, nil
}

// mutate applies round's 1% change to the work copy, as mkdata does it.
func (d *dataset) mutate(ctx context.Context, mkdata string, round int) error {
	return runMkdata(ctx, mkdata, "-out", d.workRoot, "-set", d.mkset,
		"-mutate", strconv.Itoa(mutatePerMille), "-round", strconv.Itoa(round))
}

func runMkdata(ctx context.Context, mkdata string, args ...string) error {
	cmd := exec.CommandContext(ctx, mkdata, args...)
	cmd.Env = append(os.Environ(), mkdataEnv(ctx)...)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("mkdata %v: %w", args, err)
	}
	return nil
}

// middleFile returns the regular file in the middle of the sorted walk of
// dir, relative to dir: a file neither first nor last in any tool's order.
func middleFile(dir string) (string, error) {
	var files []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			files = append(files, p)
		}
		return err
	})
	if err != nil {
		return "", err
	}
	if len(files) == 0 {
		return "", fmt.Errorf("%s has no regular file", dir)
	}
	return filepath.Rel(dir, files[len(files)/2])
}

// makeSmoke writes the smoke set: a few hundred small text files in nested
// folders, some duplicated, an empty file, a symlink, a 1 MiB random file
// and a 16 MiB sparse file with three data extents. It is deterministic.
func makeSmoke(dir string) error {
	if _, err := os.Stat(dir); err == nil {
		return fmt.Errorf("%s exists", dir)
	}
	r := rand.New(rand.NewPCG(7, 7))
	text := func(n int) []byte {
		b := make([]byte, 0, n+64)
		for len(b) < n {
			b = fmt.Appendf(b, "line %d of a smoke file, value=%d\n", len(b), r.IntN(1_000_000))
		}
		return b[:n]
	}
	write := func(rel string, data []byte) error {
		p := filepath.Join(dir, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
		return os.WriteFile(p, data, 0o644)
	}
	for i := 0; i < 300; i++ {
		rel := fmt.Sprintf("site/d%02d/sub%d/f%03d.txt", i/25, i%3, i)
		if err := write(rel, text(100+r.IntN(20_000))); err != nil {
			return err
		}
	}
	// A second copy of one folder: data the tools should deduplicate.
	if err := copyTree(context.Background(), filepath.Join(dir, "site", "d00"), filepath.Join(dir, "copy", "d00"), 1); err != nil {
		return err
	}
	blob := make([]byte, 1<<20)
	for i := range blob {
		blob[i] = byte(r.Uint32())
	}
	if err := write("media/blob.bin", blob); err != nil {
		return err
	}
	if err := write("empty", nil); err != nil {
		return err
	}
	if err := os.Symlink("site/d00/sub0/f000.txt", filepath.Join(dir, "link")); err != nil {
		return err
	}
	return writeSparse(filepath.Join(dir, "disk.img"), 16<<20, []int64{0, 5 << 20, 12 << 20}, 256<<10, r)
}

// writeSparse creates a file of size bytes that is a hole except for
// extents of n random bytes at the given offsets.
func writeSparse(path string, size int64, offsets []int64, n int, r *rand.Rand) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := f.Truncate(size); err != nil {
		f.Close()
		return err
	}
	b := make([]byte, n)
	for _, off := range offsets {
		for i := range b {
			b[i] = byte(r.Uint32())
		}
		if _, err := f.WriteAt(b, off); err != nil {
			f.Close()
			return err
		}
	}
	return f.Close()
}
