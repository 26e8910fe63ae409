package testutil

import (
	"bytes"
	"compress/gzip"
	"debug/elf"
	"encoding/binary"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
)

// kmod is one kernel module of the guest: its file, relative to
// lib/modules/VERSION/kernel, and the path its bytes are read from.
type kmod struct {
	name, rel, path string
}

// moduleOrder finds the modules wanted and those they depend on (the
// "depends=" of each .ko's .modinfo section: the package has no
// modules.dep, depmod makes it on install), dependencies first.
func moduleOrder(kdir string, wanted []string) ([]kmod, error) {
	roots, _ := filepath.Glob(filepath.Join(kdir, "lib", "modules", "*", "kernel"))
	if len(roots) != 1 {
		return nil, fmt.Errorf("no single lib/modules/*/kernel in %s", kdir)
	}
	byName := map[string]kmod{}
	err := filepath.WalkDir(roots[0], func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(p, ".ko") {
			return err
		}
		name := strings.ReplaceAll(strings.TrimSuffix(d.Name(), ".ko"), "-", "_")
		rel, _ := filepath.Rel(roots[0], p)
		byName[name] = kmod{name: name, rel: rel, path: p}
		return nil
	})
	if err != nil {
		return nil, err
	}
	var order []kmod
	seen := map[string]bool{}
	var visit func(name string) error
	visit = func(name string) error {
		if seen[name] {
			return nil
		}
		seen[name] = true
		m, ok := byName[name]
		if !ok {
			return fmt.Errorf("module %s is not in %s", name, roots[0])
		}
		deps, err := moduleDepends(m.path)
		if err != nil {
			return err
		}
		for _, d := range deps {
			if err := visit(d); err != nil {
				return err
			}
		}
		order = append(order, m)
		return nil
	}
	for _, w := range wanted {
		if err := visit(w); err != nil {
			return nil, err
		}
	}
	return order, nil
}

// moduleDepends reads a module's "depends=a,b" from its .modinfo.
func moduleDepends(path string) ([]string, error) {
	f, err := elf.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	s := f.Section(".modinfo")
	if s == nil {
		return nil, fmt.Errorf("%s has no .modinfo", path)
	}
	data, err := s.Data()
	if err != nil {
		return nil, err
	}
	for _, kv := range bytes.Split(data, []byte{0}) {
		if v, ok := bytes.CutPrefix(kv, []byte("depends=")); ok && len(v) > 0 {
			return strings.Split(strings.ReplaceAll(string(v), "-", "_"), ","), nil
		}
	}
	return nil, nil
}

// guestInitramfs is the guest's initramfs, with /disk to mount its disk on.
func guestInitramfs(busybox []byte, mods []kmod) ([]byte, error) {
	return busyboxInitramfs(guestInit, []string{"disk"}, busybox, mods)
}

// busyboxInitramfs is a gzipped cpio (newc) archive: init as /init,
// busybox, the modules in load order (modules.order), /dev/console and
// the empty directories dirs besides bin, dev, proc, sys and lib.
func busyboxInitramfs(init string, dirs []string, busybox []byte, mods []kmod) ([]byte, error) {
	var raw bytes.Buffer
	w := &cpioWriter{w: &raw}
	for _, d := range append([]string{"bin", "dev", "proc", "sys", "lib", "lib/modules"}, dirs...) {
		w.add(d, 0o040755, nil, 0, 0)
	}
	w.add("dev/console", 0o020600, nil, 5, 1)
	w.add("init", 0o100755, []byte(init), 0, 0)
	w.add("bin/busybox", 0o100755, busybox, 0, 0)
	var order []string
	for _, m := range mods {
		b, err := os.ReadFile(m.path)
		if err != nil {
			return nil, err
		}
		w.add("lib/modules/"+m.name+".ko", 0o100644, b, 0, 0)
		order = append(order, m.name+".ko")
	}
	w.add("modules.order", 0o100644, []byte(strings.Join(order, "\n")+"\n"), 0, 0)
	w.add("TRAILER!!!", 0, nil, 0, 0)
	var gz bytes.Buffer
	z := gzip.NewWriter(&gz)
	if _, err := z.Write(raw.Bytes()); err != nil {
		return nil, err
	}
	if err := z.Close(); err != nil {
		return nil, err
	}
	return gz.Bytes(), nil
}

// cpioWriter writes the "newc" format the kernel unpacks: a 110-byte
// ASCII header, the name with its NUL, the data, each padded to 4 bytes.
type cpioWriter struct {
	w   *bytes.Buffer
	ino int
}

func (c *cpioWriter) add(name string, mode uint32, data []byte, rmaj, rmin int) {
	c.ino++
	nlink := 1
	if mode&0o170000 == 0o040000 {
		nlink = 2
	}
	fmt.Fprintf(c.w, "070701%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X",
		c.ino, mode, 0, 0, nlink, 0, len(data), 0, 0, rmaj, rmin, len(name)+1, 0)
	c.w.WriteString(name)
	c.w.WriteByte(0)
	c.pad()
	c.w.Write(data)
	c.pad()
}

func (c *cpioWriter) pad() {
	for c.w.Len()%4 != 0 {
		c.w.WriteByte(0)
	}
}

// guestFAT makes the partition's FAT filesystem in the file part, with
// files in its root and syslinux installed, without mounting it.
func guestFAT(work, part string, files map[string][]byte) error {
	mkfs, err := exec.LookPath("mkfs.vfat")
	if err != nil {
		mkfs = "/usr/sbin/mkfs.vfat"
	}
	// -h: the sectors before the partition, which the boot sector adds
	// to find syslinux's loader on the whole disk.
	if err := runErr(mkfs, "-C", "-h", fmt.Sprint(guestPartStart), "-n", "REWINDGUEST", part, fmt.Sprint(guestPartSize/2)); err != nil {
		return err
	}
	names := make([]string, 0, len(files))
	for n := range files {
		names = append(names, n)
	}
	sort.Strings(names)
	args := []string{"-i", part}
	for _, n := range names {
		p := filepath.Join(work, n)
		if err := os.WriteFile(p, files[n], 0o644); err != nil {
			return err
		}
		args = append(args, p)
	}
	if err := runErr("mcopy", append(args, "::")...); err != nil {
		return err
	}
	return runErr("syslinux", "--install", part)
}

// guestAssemble writes the sparse disk: syslinux's MBR code, one active
// FAT16 (LBA) partition entry, the partition's bytes at its offset.
func guestAssemble(disk, part string, mbrCode []byte) error {
	p, err := os.ReadFile(part)
	if err != nil {
		return err
	}
	f, err := os.OpenFile(disk, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := f.Truncate(GuestDiskSize); err != nil {
		return err
	}
	mbr := make([]byte, 512)
	copy(mbr[:440], mbrCode)
	e := mbr[446:462]
	e[0] = 0x80                            // active
	copy(e[1:4], []byte{0xfe, 0xff, 0xff}) // CHS: beyond reach, use LBA
	e[4] = 0x0e                            // FAT16, LBA
	copy(e[5:8], []byte{0xfe, 0xff, 0xff})
	binary.LittleEndian.PutUint32(e[8:12], guestPartStart)
	binary.LittleEndian.PutUint32(e[12:16], guestPartSize)
	mbr[510], mbr[511] = 0x55, 0xaa
	if _, err := f.WriteAt(mbr, 0); err != nil {
		return err
	}
	if err := writeSparse(f, p, guestPartStart*512); err != nil {
		return err
	}
	return f.Close()
}

// writeSparse writes only data's non-zero 64 KiB runs to f at off, so
// that a sparse image stays sparse.
func writeSparse(f *os.File, data []byte, off int64) error {
	const run = 64 << 10
	zero := make([]byte, run)
	for i := 0; i < len(data); i += run {
		b := data[i:min(i+run, len(data))]
		if bytes.Equal(b, zero[:len(b)]) {
			continue
		}
		if _, err := f.WriteAt(b, off+int64(i)); err != nil {
			return err
		}
	}
	return nil
}

// runErr runs a program; its output is in the error when it fails.
func runErr(name string, args ...string) error {
	out, err := run(name, args...)
	if err != nil {
		return fmt.Errorf("%s %s: %v: %s", name, strings.Join(args, " "), err, out)
	}
	return nil
}
