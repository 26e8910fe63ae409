// Package kmod reads a kernel's module tree (lib/modules/VERSION) to
// find modules by name and the order to load them in, dependencies
// first, the way an initramfs without modprobe needs them.
package kmod

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"debug/elf"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// Module is one loadable module of a tree.
type Module struct {
	// Name is the module's name with "_" for "-" (as lsmod shows it).
	Name string
	// Rel is the file's path relative to the tree (kernel/fs/ext4/ext4.ko).
	Rel string
	// Path is where the file is read from.
	Path string
}

// Tree is the modules of one kernel version.
type Tree struct {
	dir     string
	byName  map[string]Module
	builtin map[string]bool
}

// suffixes a module file may have, compressed or not.
var suffixes = []string{".ko", ".ko.xz", ".ko.zst", ".ko.gz"}

// Open reads the module tree dir (lib/modules/VERSION: its kernel/,
// updates/ and extra/ folders, and modules.builtin when present).
func Open(dir string) (*Tree, error) {
	if _, err := os.Stat(filepath.Join(dir, "kernel")); err != nil {
		return nil, fmt.Errorf("%s is not a kernel's module tree (no kernel/ folder): %w", dir, err)
	}
	t := &Tree{dir: dir, byName: map[string]Module{}, builtin: map[string]bool{}}
	// extra/ and updates/ are walked last: their modules win, as depmod
	// prefers them.
	for _, sub := range []string{"kernel", "extra", "updates"} {
		root := filepath.Join(dir, sub)
		if _, err := os.Stat(root); err != nil {
			continue
		}
		err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return err
			}
			name, ok := moduleName(d.Name())
			if !ok {
				return nil
			}
			rel, _ := filepath.Rel(dir, p)
			t.byName[name] = Module{Name: name, Rel: rel, Path: p}
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	if f, err := os.Open(filepath.Join(dir, "modules.builtin")); err == nil {
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			if name, ok := moduleName(filepath.Base(sc.Text())); ok {
				t.builtin[name] = true
			}
		}
		f.Close()
	}
	return t, nil
}

// moduleName is the name of a module file, false for another file.
func moduleName(file string) (string, bool) {
	for _, s := range suffixes {
		if strings.HasSuffix(file, s) {
			return strings.ReplaceAll(strings.TrimSuffix(file, s), "-", "_"), true
		}
	}
	return "", false
}

// Has reports whether the tree has the module as a file.
func (t *Tree) Has(name string) bool { _, ok := t.byName[norm(name)]; return ok }

// Builtin reports whether the module is built into the kernel.
func (t *Tree) Builtin(name string) bool { return t.builtin[norm(name)] }

func norm(name string) string { return strings.ReplaceAll(name, "-", "_") }

// Order returns the modules wanted and those they depend on (the
// "depends=" of each module's .modinfo, so the tree needs no
// modules.dep), each once, dependencies first. A wanted or needed module
// that is built into the kernel is left out; one that is neither a file
// nor built in is an error.
func (t *Tree) Order(ctx context.Context, wanted []string) ([]Module, error) {
	var order []Module
	seen := map[string]bool{}
	var visit func(name, from string) error
	visit = func(name, from string) error {
		name = norm(name)
		if seen[name] || t.builtin[name] {
			return nil
		}
		seen[name] = true
		m, ok := t.byName[name]
		if !ok {
			if from != "" {
				return fmt.Errorf("module %s, which %s needs, is not in %s", name, from, t.dir)
			}
			return fmt.Errorf("module %s is not in %s", name, t.dir)
		}
		deps, err := m.Depends(ctx)
		if err != nil {
			return err
		}
		for _, d := range deps {
			if err := visit(d, name); err != nil {
				return err
			}
		}
		order = append(order, m)
		return nil
	}
	for _, w := range wanted {
		if err := visit(w, ""); err != nil {
			return nil, err
		}
	}
	return order, nil
}

// Read returns the module's bytes, decompressed (.ko.gz in Go, .ko.xz
// and .ko.zst through the xz and zstd programs), ready for insmod.
func (m Module) Read(ctx context.Context) ([]byte, error) {
	var tool string
	switch {
	case strings.HasSuffix(m.Path, ".ko"):
		return os.ReadFile(m.Path)
	case strings.HasSuffix(m.Path, ".gz"):
		f, err := os.Open(m.Path)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		z, err := gzip.NewReader(f)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", m.Path, err)
		}
		return io.ReadAll(z)
	case strings.HasSuffix(m.Path, ".xz"):
		tool = "xz"
	default:
		tool = "zstd"
	}
	var stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, tool, "-d", "-c", m.Path)
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("decompress %s with %s (install the %s package): %v: %s", m.Path, tool, tool, err, bytes.TrimSpace(stderr.Bytes()))
	}
	return out, nil
}

// Depends reads the module's "depends=a,b" from its .modinfo section.
func (m Module) Depends(ctx context.Context) ([]string, error) {
	b, err := m.Read(ctx)
	if err != nil {
		return nil, err
	}
	f, err := elf.NewFile(bytes.NewReader(b))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", m.Path, err)
	}
	s := f.Section(".modinfo")
	if s == nil {
		return nil, fmt.Errorf("%s has no .modinfo", m.Path)
	}
	data, err := s.Data()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", m.Path, err)
	}
	for _, kv := range bytes.Split(data, []byte{0}) {
		if v, ok := bytes.CutPrefix(kv, []byte("depends=")); ok && len(v) > 0 {
			return strings.Split(norm(string(v)), ","), nil
		}
	}
	return nil, nil
}
