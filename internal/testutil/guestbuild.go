package testutil

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/binary"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"

	"github.com/rewind-backup/rewind/internal/cpio"
	"github.com/rewind-backup/rewind/internal/kmod"
)

// moduleOrder finds the modules wanted in the unpacked kernel package
// kdir and those they depend on, dependencies first (internal/kmod: the
// package has no modules.dep, depmod makes it on install).
func moduleOrder(kdir string, wanted []string) ([]kmod.Module, error) {
	roots, _ := filepath.Glob(filepath.Join(kdir, "lib", "modules", "*", "kernel"))
	if len(roots) != 1 {
		return nil, fmt.Errorf("no single lib/modules/*/kernel in %s", kdir)
	}
	tree, err := kmod.Open(filepath.Dir(roots[0]))
	if err != nil {
		return nil, err
	}
	return tree.Order(context.Background(), wanted)
}

// guestInitramfs is the guest's initramfs, with /disk to mount its disk on.
func guestInitramfs(busybox []byte, mods []kmod.Module) ([]byte, error) {
	return busyboxInitramfs(guestInit, []string{"disk"}, busybox, mods)
}

// busyboxInitramfs is a gzipped cpio (newc) archive: init as /init,
// busybox, the modules in load order (modules.order), /dev/console and
// the empty directories dirs besides bin, dev, proc, sys and lib.
func busyboxInitramfs(init string, dirs []string, busybox []byte, mods []kmod.Module) ([]byte, error) {
	var raw bytes.Buffer
	w := cpio.NewWriter(&raw)
	for _, d := range append([]string{"bin", "dev", "proc", "sys", "lib", "lib/modules"}, dirs...) {
		w.Dir(d, 0o755)
	}
	w.CharDev("dev/console", 0o600, 5, 1)
	w.File("init", 0o755, []byte(init))
	w.File("bin/busybox", 0o755, busybox)
	var order []string
	for _, m := range mods {
		b, err := os.ReadFile(m.Path)
		if err != nil {
			return nil, err
		}
		w.File("lib/modules/"+m.Name+".ko", 0o644, b)
		order = append(order, m.Name+".ko")
	}
	w.File("modules.order", 0o644, []byte(strings.Join(order, "\n")+"\n"))
	if err := w.Close(); err != nil {
		return nil, err
	}
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
