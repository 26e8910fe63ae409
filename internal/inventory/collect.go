package inventory

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"
)

// Sources say where Collect reads the machine from. The zero value reads
// the running system.
type Sources struct {
	// Root is the system's root directory, for /etc, /var and /boot
	// ("" is "/"). Packages are read from its dpkg or rpm database.
	// A Root other than "/" is a system that is not running: its
	// mounts are those at or below Root, named as that system sees
	// them ("/", "/boot/efi"); its boot mode comes from its disks; the
	// running kernel, host name, network and EFI variables of this host
	// are not recorded.
	Root string
	// Sys and Proc are where sysfs and procfs are mounted ("": /sys,
	// /proc).
	Sys  string
	Proc string
	// Disks, when not empty, are the disks recorded ("/dev/sda" or
	// "sda"); otherwise every disk in Sys/block that is not virtual
	// (loop, ram, zram, device-mapper, md, nbd without size).
	Disks []string
	// Runner runs the external programs; nil is ExecRunner{}.
	Runner Runner
	// Now is the clock for Document.Time; nil is time.Now.
	Now func() time.Time
}

// root is the path of p, a path of the system, on this host. Inside a
// foreign root, symbolic links are followed within it (resolveIn).
func (s Sources) root(p string) string {
	r := s.Root
	if r == "" {
		r = "/"
	}
	if fr := s.foreignRoot(); fr != "" {
		return resolveIn(fr, p)
	}
	return filepath.Join(r, p)
}

func (s Sources) sys(p string) string {
	r := s.Sys
	if r == "" {
		r = "/sys"
	}
	return filepath.Join(r, p)
}

func (s Sources) proc(p string) string {
	r := s.Proc
	if r == "" {
		r = "/proc"
	}
	return filepath.Join(r, p)
}

// collector is one run of Collect.
type collector struct {
	src Sources
	run Runner
	doc *Document
	// root is Sources.Root when it is a system that is not running
	// (foreignRoot), else "".
	root string
	// hostMounts are where each recorded device is mounted on this host
	// (mountinfo targets, before they are mapped into root).
	hostMounts map[string][]string
	mu         sync.Mutex // guards warn: the groups of steps run at once
	warn       map[string]bool
}

// warnf records something that could not be collected.
func (c *collector) warnf(format string, args ...any) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.warn[fmt.Sprintf(format, args...)] = true
}

// toolFailed records a program that failed, saying if it is missing.
func (c *collector) toolFailed(what string, err error) {
	if errors.Is(err, ErrNoTool) {
		c.warnf("%s: not recorded, %v", what, err)
		return
	}
	c.warnf("%s: %v", what, err)
}

// readFile reads a file, recording a warning unless it does not exist
// (missing is then true).
func (c *collector) readFile(path string) (data string, missing bool) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return "", true
	}
	if err != nil {
		c.warnf("read %s: %v", path, err)
		return "", true
	}
	return string(b), false
}

// sysString reads a one-line sysfs or procfs attribute, trimmed; "" when
// it is absent.
func sysString(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

// Collect records the machine that src describes. Problems with single
// sources are warnings in the document; the error is only for ctx ending.
func Collect(ctx context.Context, src Sources, host string) (*Document, error) {
	c := &collector{src: src, run: src.Runner, root: src.foreignRoot(), hostMounts: map[string][]string{}, warn: map[string]bool{}}
	if c.run == nil {
		c.run = ExecRunner{}
	}
	now := time.Now
	if src.Now != nil {
		now = src.Now
	}
	c.doc = &Document{Version: Version, Host: host, Time: now().UTC().Truncate(time.Second)}
	// Three groups run at once, each filling its own sections: storage
	// (later steps read what disks and filesystems found), the network,
	// and the files and packages of the system. Each group's programs
	// take tens of milliseconds; together they would add up while a
	// small backup waits for its inventory.
	groups := [][]func(context.Context){
		{c.disks, c.filesystems, c.fstab, c.md, c.luks, c.lvm, c.boot, c.kernel, c.hostname},
		{c.network},
		{c.packages, c.units, c.accounts, c.crontabs},
	}
	var wg sync.WaitGroup
	for _, steps := range groups {
		wg.Go(func() {
			for _, step := range steps {
				if ctx.Err() != nil {
					return
				}
				step(ctx)
			}
		})
	}
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	c.doc.Warnings = make([]string, 0, len(c.warn))
	for w := range c.warn {
		c.doc.Warnings = append(c.doc.Warnings, w)
	}
	slices.Sort(c.doc.Warnings)
	c.doc.normalize()
	return c.doc, nil
}

// normalize makes empty lists non-nil, so that the JSON shape does not
// depend on what a machine has.
func (d *Document) normalize() {
	if d.Disks == nil {
		d.Disks = []Disk{}
	}
	if d.Filesystems == nil {
		d.Filesystems = []Filesystem{}
	}
	if d.Boot.Loaders == nil {
		d.Boot.Loaders = []string{}
	}
	if d.Network.Interfaces == nil {
		d.Network.Interfaces = []Interface{}
	}
	if d.Network.Routes == nil {
		d.Network.Routes = []Route{}
	}
	if d.Packages.List == nil {
		d.Packages.List = []Package{}
	}
	if d.Units == nil {
		d.Units = []Unit{}
	}
	if d.Users == nil {
		d.Users = []User{}
	}
	if d.Groups == nil {
		d.Groups = []Group{}
	}
	if d.Crontabs == nil {
		d.Crontabs = []TextFile{}
	}
	if d.Warnings == nil {
		d.Warnings = []string{}
	}
}
