package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sync/atomic"
	"syscall"

	"golang.org/x/sync/errgroup"
)

// lseek whence values for sparse files (Linux).
const (
	seekData = 3
	seekHole = 4
)

// punchHole is FALLOC_FL_PUNCH_HOLE|FALLOC_FL_KEEP_SIZE.
const punchHole = 0x02 | 0x01

// bufSize is the buffer every copy, read and comparison uses.
const bufSize = 1 << 20

// dataExtents calls fn for each [off, end) range of f that holds data, as
// SEEK_DATA/SEEK_HOLE report it; a file system without them is one extent.
func dataExtents(f *os.File, size int64, fn func(off, end int64) error) error {
	for off := int64(0); off < size; {
		d, err := f.Seek(off, seekData)
		switch {
		case errors.Is(err, syscall.ENXIO):
			return nil // only a hole is left
		case err != nil:
			return fn(off, size)
		}
		h, err := f.Seek(d, seekHole)
		if err != nil || h > size {
			h = size
		}
		if err := fn(d, h); err != nil {
			return err
		}
		off = h
	}
	return nil
}

// copyFile copies src to dst, leaving holes where src has them, and gives
// dst src's permissions and modification time.
func copyFile(src, dst string, info fs.FileInfo, buf []byte) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, info.Mode().Perm())
	if err != nil {
		return err
	}
	err = dataExtents(in, info.Size(), func(off, end int64) error {
		for off < end {
			n := min(int64(len(buf)), end-off)
			m, err := in.ReadAt(buf[:n], off)
			if m == 0 && err != nil {
				return fmt.Errorf("read %s: %w", src, err)
			}
			if _, err := out.WriteAt(buf[:m], off); err != nil {
				return err
			}
			off += int64(m)
		}
		return nil
	})
	if err == nil {
		err = out.Truncate(info.Size())
	}
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("copy %s: %w", src, err)
	}
	return os.Chtimes(dst, info.ModTime(), info.ModTime())
}

// fileJob is one regular file handed from a walk to a worker.
type fileJob struct {
	path string
	info fs.FileInfo
}

// parallelFiles walks root in one goroutine, calls visit for every entry
// there (in walk order), and hands regular files to workers goroutines that
// call work. The walk stops at the first error.
func parallelFiles(ctx context.Context, root string, workers int,
	visit func(p string, info fs.FileInfo) error,
	work func(j fileJob, buf []byte) error) error {
	g, ctx := errgroup.WithContext(ctx)
	jobs := make(chan fileJob)
	g.Go(func() error {
		defer close(jobs)
		return filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			info, err := os.Lstat(p)
			if err != nil {
				return err
			}
			if visit != nil {
				if err := visit(p, info); err != nil {
					return err
				}
			}
			if !info.Mode().IsRegular() {
				return nil
			}
			select {
			case jobs <- fileJob{p, info}:
				return nil
			case <-ctx.Done():
				return ctx.Err()
			}
		})
	})
	for i := 0; i < workers; i++ {
		g.Go(func() error {
			buf := make([]byte, bufSize)
			for j := range jobs {
				if err := work(j, buf); err != nil {
					return err
				}
			}
			return nil
		})
	}
	return g.Wait()
}

// copyTree copies src to a new dst with workers parallel file copies, like
// `cp -a` without owners: folders, symlinks, sparse regular files, modes and
// modification times.
func copyTree(ctx context.Context, src, dst string, workers int) error {
	type dirTime struct {
		path string
		info fs.FileInfo
	}
	var dirs []dirTime
	visit := func(p string, info fs.FileInfo) error {
		rel, err := filepath.Rel(src, p)
		if err != nil {
			return err
		}
		target := filepath.Join(dst, rel)
		switch {
		case info.IsDir():
			dirs = append(dirs, dirTime{target, info})
			return os.MkdirAll(target, info.Mode().Perm()|0o700)
		case info.Mode()&fs.ModeSymlink != 0:
			l, err := os.Readlink(p)
			if err != nil {
				return err
			}
			return os.Symlink(l, target)
		}
		return nil
	}
	work := func(j fileJob, buf []byte) error {
		rel, err := filepath.Rel(src, j.path)
		if err != nil {
			return err
		}
		return copyFile(j.path, filepath.Join(dst, rel), j.info, buf)
	}
	if err := parallelFiles(ctx, src, workers, visit, work); err != nil {
		return err
	}
	for i := len(dirs) - 1; i >= 0; i-- {
		d := dirs[i]
		if err := os.Chmod(d.path, d.info.Mode().Perm()); err != nil {
			return err
		}
		if err := os.Chtimes(d.path, d.info.ModTime(), d.info.ModTime()); err != nil {
			return err
		}
	}
	return nil
}

// readTree reads the data of every regular file below root with workers
// parallel readers, skipping holes, and returns the bytes read.
func readTree(ctx context.Context, root string, workers int) (int64, error) {
	var total atomic.Int64
	err := parallelFiles(ctx, root, workers, nil, func(j fileJob, buf []byte) error {
		f, err := os.Open(j.path)
		if err != nil {
			return err
		}
		defer f.Close()
		var n int64
		err = dataExtents(f, j.info.Size(), func(off, end int64) error {
			for off < end {
				m, err := f.ReadAt(buf[:min(int64(len(buf)), end-off)], off)
				if m == 0 && err != nil {
					return fmt.Errorf("read %s: %w", j.path, err)
				}
				off += int64(m)
				n += int64(m)
			}
			return nil
		})
		total.Add(n) // once a file, so the counter costs nothing measurable
		return err
	})
	return total.Load(), err
}

// walkTree lstats every entry below root, like `find root -ls` without the
// output, and returns how many there are.
func walkTree(root string) (int, error) {
	n := 0
	err := filepath.WalkDir(root, func(p string, _ fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if _, err := os.Lstat(p); err != nil {
			return err
		}
		n++
		return nil
	})
	return n, err
}

// diskUsage returns the bytes allocated to everything below root, as `du`
// counts them (st_blocks), so that holes and partly filled blocks count as
// the disk sees them.
func diskUsage(root string) (int64, error) {
	var total int64
	err := filepath.WalkDir(root, func(p string, _ fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		info, err := os.Lstat(p)
		if err != nil {
			return err
		}
		if st, ok := info.Sys().(*syscall.Stat_t); ok {
			total += st.Blocks * 512
		}
		return nil
	})
	return total, err
}

// resync makes dst equal to src again after a mutation, copying only what
// differs: extra entries are removed, changed files are patched block by
// block (holes punched where src has holes), and modes and modification
// times are set back. A missing dst is copied whole.
func resync(ctx context.Context, src, dst string) error {
	if _, err := os.Lstat(dst); errors.Is(err, fs.ErrNotExist) {
		return copyTree(ctx, src, dst, 2)
	}
	// Remove what src does not have, or has with another type.
	err := filepath.WalkDir(dst, func(p string, d fs.DirEntry, err error) error {
		if err != nil || p == dst {
			return err
		}
		rel, _ := filepath.Rel(dst, p)
		si, err := os.Lstat(filepath.Join(src, rel))
		if err == nil && si.Mode().Type() == d.Type() {
			return nil
		}
		if err := os.RemoveAll(p); err != nil {
			return err
		}
		if d.IsDir() {
			return filepath.SkipDir
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("resync %s: %w", dst, err)
	}
	var dirs []string
	buf := make([]byte, 2*bufSize)
	err = filepath.WalkDir(src, func(p string, _ fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		target := filepath.Join(dst, rel)
		si, err := os.Lstat(p)
		if err != nil {
			return err
		}
		di, derr := os.Lstat(target)
		switch {
		case si.IsDir():
			dirs = append(dirs, rel)
			if derr != nil {
				return os.Mkdir(target, si.Mode().Perm())
			}
		case si.Mode()&fs.ModeSymlink != 0:
			l, err := os.Readlink(p)
			if err != nil {
				return err
			}
			if dl, err := os.Readlink(target); err == nil && dl == l {
				return nil
			}
			os.Remove(target)
			return os.Symlink(l, target)
		case !si.Mode().IsRegular():
			return nil
		case derr != nil:
			return copyFile(p, target, si, buf[:bufSize])
		case di.Size() != si.Size() || !di.ModTime().Equal(si.ModTime()):
			if err := patchFile(p, target, si.Size(), buf); err != nil {
				return err
			}
			if err := os.Chtimes(target, si.ModTime(), si.ModTime()); err != nil {
				return err
			}
		}
		if derr == nil && di.Mode().Perm() != si.Mode().Perm() {
			return os.Chmod(target, si.Mode().Perm())
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("resync %s: %w", dst, err)
	}
	for i := len(dirs) - 1; i >= 0; i-- {
		si, err := os.Lstat(filepath.Join(src, dirs[i]))
		if err != nil {
			return err
		}
		if err := os.Chtimes(filepath.Join(dst, dirs[i]), si.ModTime(), si.ModTime()); err != nil {
			return err
		}
	}
	return nil
}

// patchFile rewrites the blocks of dst that differ from src, which is size
// bytes long; buf is split into the two block buffers.
func patchFile(src, dst string, size int64, buf []byte) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	defer out.Close()
	if err := out.Truncate(size); err != nil {
		return err
	}
	const block = 64 << 10
	a, b := buf[:block], buf[block:2*block]
	for off := int64(0); off < size; off += block {
		n, err := in.ReadAt(a, off)
		if n == 0 && err != nil {
			return fmt.Errorf("read %s: %w", src, err)
		}
		m, err := out.ReadAt(b[:n], off)
		if m < n && err != nil && err != io.EOF {
			return fmt.Errorf("read %s: %w", dst, err)
		}
		if m == n && bytes.Equal(a[:n], b[:n]) {
			continue
		}
		if isZero(a[:n]) && isHole(in, off, int64(n)) {
			if syscall.Fallocate(int(out.Fd()), punchHole, off, int64(n)) == nil {
				continue
			}
		}
		if _, err := out.WriteAt(a[:n], off); err != nil {
			return err
		}
	}
	return nil
}

func isZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

// isHole reports whether f has no data in [off, off+n).
func isHole(f *os.File, off, n int64) bool {
	d, err := f.Seek(off, seekData)
	if errors.Is(err, syscall.ENXIO) {
		return true
	}
	return err == nil && d >= off+n
}
