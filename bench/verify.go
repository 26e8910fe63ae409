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
	"strings"
	"sync"
)

// changedBytes returns how many bytes of work differ from pristine: every
// byte of a new file, every differing byte of a changed file and what a
// file grew by. It is the "bytes that actually changed" that the bytes an
// incremental backup added are compared with.
func changedBytes(pristine, work string) (int64, error) {
	var total int64
	a, b := make([]byte, bufSize), make([]byte, bufSize)
	err := filepath.WalkDir(work, func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		wi, err := d.Info()
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(work, p)
		pi, err := os.Lstat(filepath.Join(pristine, rel))
		switch {
		case errors.Is(err, fs.ErrNotExist) || (err == nil && !pi.Mode().IsRegular()):
			total += wi.Size()
			return nil
		case err != nil:
			return err
		case pi.Size() == wi.Size() && pi.ModTime().Equal(wi.ModTime()):
			return nil
		}
		n, err := differingBytes(filepath.Join(pristine, rel), p, a, b)
		total += n + max(0, wi.Size()-pi.Size())
		return err
	})
	return total, err
}

// differingBytes counts the positions, up to the shorter length, where the
// two files' bytes differ.
func differingBytes(x, y string, a, b []byte) (int64, error) {
	fx, err := os.Open(x)
	if err != nil {
		return 0, err
	}
	defer fx.Close()
	fy, err := os.Open(y)
	if err != nil {
		return 0, err
	}
	defer fy.Close()
	var n int64
	for {
		ka, errA := io.ReadFull(fx, a)
		kb, errB := io.ReadFull(fy, b)
		k := min(ka, kb)
		if !bytes.Equal(a[:k], b[:k]) {
			for i := 0; i < k; i++ {
				if a[i] != b[i] {
					n++
				}
			}
		}
		if errA != nil || errB != nil {
			if e := firstReal(errA, errB); e != nil {
				return n, e
			}
			return n, nil
		}
	}
}

func firstReal(errs ...error) error {
	for _, err := range errs {
		if err != nil && err != io.EOF && err != io.ErrUnexpectedEOF {
			return err
		}
	}
	return nil
}

// compareTrees checks that got holds exactly what want holds: the same
// names and types, the same symlink targets and the same file contents,
// comparing contents with two workers. Owners, modes and times are not
// compared: the tools differ there and the benchmark is about data.
func compareTrees(ctx context.Context, want, got string) error {
	var (
		mu       sync.Mutex
		problems []string // mu must be held
	)
	report := func(format string, args ...any) {
		mu.Lock()
		defer mu.Unlock()
		if len(problems) < 5 {
			problems = append(problems, fmt.Sprintf(format, args...))
		}
	}
	entries := 0
	visit := func(p string, wi fs.FileInfo) error {
		entries++
		rel, _ := filepath.Rel(want, p)
		target := filepath.Join(got, rel)
		gi, err := os.Lstat(target)
		switch {
		case err != nil:
			report("missing %s", rel)
			if wi.IsDir() {
				return filepath.SkipDir
			}
		case gi.Mode().Type() != wi.Mode().Type():
			report("%s: type %v, want %v", rel, gi.Mode().Type(), wi.Mode().Type())
		case wi.Mode()&fs.ModeSymlink != 0:
			lw, _ := os.Readlink(p)
			lg, _ := os.Readlink(target)
			if lw != lg {
				report("%s: symlink to %q, want %q", rel, lg, lw)
			}
		case wi.Mode().IsRegular() && gi.Size() != wi.Size():
			report("%s: %d bytes, want %d", rel, gi.Size(), wi.Size())
		}
		return nil
	}
	work := func(j fileJob, buf []byte) error {
		rel, _ := filepath.Rel(want, j.path)
		target := filepath.Join(got, rel)
		if gi, err := os.Lstat(target); err != nil || !gi.Mode().IsRegular() || gi.Size() != j.info.Size() {
			return nil // reported by visit
		}
		half := len(buf) / 2
		n, err := differingBytes(j.path, target, buf[:half], buf[half:])
		if err != nil {
			return err
		}
		if n > 0 {
			report("%s: %d bytes differ", rel, n)
		}
		return nil
	}
	if err := parallelFiles(ctx, want, 2, visit, work); err != nil {
		return err
	}
	if len(problems) == 0 {
		n, err := walkTree(got)
		if err != nil {
			return err
		}
		if n != entries {
			report("entries: %d, want %d", n, entries)
		}
	}
	if len(problems) > 0 {
		return fmt.Errorf("%s differs from %s: %s", got, want, strings.Join(problems, "; "))
	}
	return nil
}

// compareFiles checks that two regular files hold the same bytes.
func compareFiles(want, got string) error {
	wi, err := os.Stat(want)
	if err != nil {
		return err
	}
	gi, err := os.Stat(got)
	if err != nil {
		return err
	}
	if wi.Size() != gi.Size() {
		return fmt.Errorf("%s: %d bytes, want %d", got, gi.Size(), wi.Size())
	}
	n, err := differingBytes(want, got, make([]byte, bufSize), make([]byte, bufSize))
	if err == nil && n > 0 {
		err = fmt.Errorf("%s: %d bytes differ from %s", got, n, want)
	}
	return err
}

// restoredPath finds where a tool put abs below target: restic and borg
// recreate the whole absolute path; a tool could also put the last element,
// or the folder's contents, straight into target.
func restoredPath(target, abs string, dir bool) (string, error) {
	candidates := []string{filepath.Join(target, abs), filepath.Join(target, filepath.Base(abs))}
	if dir {
		candidates = append(candidates, target)
	}
	for _, c := range candidates {
		if _, err := os.Lstat(c); err == nil && (c != target || !emptyDir(c)) {
			return c, nil
		}
	}
	return "", fmt.Errorf("restore put nothing for %s below %s", abs, target)
}

func emptyDir(p string) bool {
	entries, err := os.ReadDir(p)
	return err != nil || len(entries) == 0
}
