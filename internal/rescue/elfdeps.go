package rescue

import (
	"debug/elf"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// LibDirs are where shared libraries are looked for, after an ELF's own
// RUNPATH/RPATH: Debian's multiarch folders and /lib64.
var LibDirs = []string{"/lib/x86_64-linux-gnu", "/usr/lib/x86_64-linux-gnu", "/lib64", "/usr/lib64", "/lib", "/usr/lib"}

// ErrNotStatic is returned by CheckStatic for a dynamically linked
// program.
var ErrNotStatic = errors.New("not statically linked")

// CheckStatic returns nil when the program at path is an ELF without a
// program interpreter (PT_INTERP), so it runs with no shared libraries.
func CheckStatic(path string) error {
	f, err := elf.Open(path)
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			return fmt.Errorf("%s: %w (it needs a program interpreter)", path, ErrNotStatic)
		}
	}
	return nil
}

// IsELF reports whether the file starts with the ELF magic; a shell
// script such as xfs_admin is not one.
func IsELF(path string) bool {
	f, err := os.Open(path)
	if err != nil {
		return false
	}
	defer f.Close()
	var b [4]byte
	n, _ := f.Read(b[:])
	return n == 4 && string(b[:]) == elf.ELFMAG
}

// Libraries returns the files a dynamically linked program needs to run:
// its program interpreter (the dynamic loader) and its DT_NEEDED
// libraries, recursively, each as the path it is found at (RUNPATH or
// RPATH with $ORIGIN first, then dirs). A static program needs none. A
// library found nowhere is an error naming it.
func Libraries(path string, dirs []string) ([]string, error) {
	var out []string
	seen := map[string]bool{}
	var visit func(file string) error
	visit = func(file string) error {
		f, err := elf.Open(file)
		if err != nil {
			return fmt.Errorf("%s: %w", file, err)
		}
		defer f.Close()
		for _, p := range f.Progs {
			if p.Type != elf.PT_INTERP {
				continue
			}
			b := make([]byte, p.Filesz)
			if _, err := p.ReadAt(b, 0); err != nil {
				return fmt.Errorf("%s: program interpreter: %w", file, err)
			}
			interp := strings.TrimRight(string(b), "\x00")
			if !seen[interp] {
				seen[interp] = true
				out = append(out, interp)
			}
		}
		needed, err := f.ImportedLibraries()
		if err != nil {
			return fmt.Errorf("%s: %w", file, err)
		}
		search := runPaths(f, filepath.Dir(file))
		search = append(search, dirs...)
		for _, lib := range needed {
			p := findLib(lib, search)
			if p == "" {
				return fmt.Errorf("%s needs %s, which is in none of %s", file, lib, strings.Join(search, ", "))
			}
			if seen[p] {
				continue
			}
			seen[p] = true
			out = append(out, p)
			if err := visit(p); err != nil {
				return err
			}
		}
		return nil
	}
	if err := visit(path); err != nil {
		return nil, err
	}
	return out, nil
}

// runPaths are the folders of an ELF's DT_RUNPATH, else DT_RPATH, with
// $ORIGIN replaced by origin.
func runPaths(f *elf.File, origin string) []string {
	vals, _ := f.DynString(elf.DT_RUNPATH)
	if len(vals) == 0 {
		vals, _ = f.DynString(elf.DT_RPATH)
	}
	var dirs []string
	for _, v := range vals {
		for _, d := range strings.Split(v, ":") {
			d = strings.ReplaceAll(strings.ReplaceAll(d, "${ORIGIN}", origin), "$ORIGIN", origin)
			if d != "" {
				dirs = append(dirs, d)
			}
		}
	}
	return dirs
}

// findLib is the first dirs/lib that exists and is an x86-64 ELF (a
// 32-bit copy in /lib would not load).
func findLib(lib string, dirs []string) string {
	if strings.Contains(lib, "/") {
		if _, err := os.Stat(lib); err == nil {
			return lib
		}
		return ""
	}
	for _, d := range dirs {
		p := filepath.Join(d, lib)
		f, err := elf.Open(p)
		if err != nil {
			continue
		}
		ok := f.Machine == elf.EM_X86_64
		f.Close()
		if ok {
			return p
		}
	}
	return ""
}
