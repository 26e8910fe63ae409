package recovery

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/rewind-backup/rewind/internal/progpath"
)

// ErrMissingTool: a program recover needs is not installed. The message
// names the Debian package that has it.
var ErrMissingTool = errors.New("program not installed")

// packages name the Debian package of each program recover runs.
var packages = map[string]string{
	"sfdisk": "fdisk", "partx": "util-linux", "blkid": "util-linux", "mkswap": "util-linux", "wipefs": "util-linux",
	"mkfs.ext2": "e2fsprogs", "mkfs.ext3": "e2fsprogs", "mkfs.ext4": "e2fsprogs",
	"mkfs.xfs": "xfsprogs", "mkfs.btrfs": "btrfs-progs", "btrfs": "btrfs-progs", "mkfs.vfat": "dosfstools",
	"grub-install": "grub-pc-bin (BIOS) or grub-efi-amd64-bin (UEFI)", "efibootmgr": "efibootmgr",
	"mcopy": "mtools", "grub-mkimage": "grub-common",
}

// lookPath finds a program in PATH, then in the sbin directories.
func lookPath(name string) (string, error) {
	// A PATH that names sbin directories is taken as it is (a test, or an
	// administrator, can hide a program); otherwise the sbin directories
	// a user's PATH leaves out are searched too.
	dirs := progpath.Sbin
	if filepath.IsAbs(name) || strings.Contains(os.Getenv("PATH"), "sbin") {
		dirs = nil
	}
	if p := progpath.Find(name, dirs); p != "" {
		return p, nil
	}
	pkg := packages[name]
	if pkg == "" {
		return "", fmt.Errorf("%w: %s", ErrMissingTool, name)
	}
	return "", fmt.Errorf("%w: %s (install the Debian package %s)", ErrMissingTool, name, pkg)
}

// cmd is one run of a program: argv, optional stdin, optional chroot.
type cmd struct {
	name   string
	args   []string
	stdin  string
	chroot string // run inside this root (the program path is inside it)
}

// run runs c with the C locale and returns its standard output; a
// failure names the program and carries its standard error.
func (c cmd) run(ctx context.Context) (string, error) {
	p := c.name
	if c.chroot == "" {
		var err error
		if p, err = lookPath(c.name); err != nil {
			return "", err
		}
	}
	x := exec.CommandContext(ctx, p, c.args...)
	// mtools refuses FATs whose size is not a floppy geometry unless told.
	x.Env = append(os.Environ(), "LC_ALL=C", "LANG=C", "MTOOLS_SKIP_CHECK=1")
	if c.chroot != "" {
		x.SysProcAttr = &syscall.SysProcAttr{Chroot: c.chroot}
		x.Dir = "/"
		x.Env = []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL=C", "LANG=C", "HOME=/root"}
	}
	if c.stdin != "" {
		x.Stdin = strings.NewReader(c.stdin)
	}
	var out, stderr bytes.Buffer
	x.Stdout, x.Stderr = &out, &stderr
	if err := x.Run(); err != nil {
		msg := strings.TrimSpace(stderr.String())
		if len(msg) > 2000 {
			msg = msg[len(msg)-2000:]
		}
		where := ""
		if c.chroot != "" {
			where = " (in the recovered system)"
		}
		return out.String(), fmt.Errorf("%s %s%s: %w: %s", c.name, strings.Join(c.args, " "), where, err, msg)
	}
	return out.String(), nil
}
