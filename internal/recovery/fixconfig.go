package recovery

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"

	"github.com/rewind-backup/rewind/internal/inventory"
)

// uuidOf maps each recorded device to the "UUID=..." that names its
// filesystem on the new disks (the UUIDs are kept), for the filesystems
// the plan makes.
func uuidOf(doc *inventory.Document, p *Plan) map[string]string {
	made := map[string]bool{}
	for _, f := range p.Filesystems {
		made[f.Source] = true
	}
	out := map[string]string{}
	for _, f := range doc.Filesystems {
		if made[f.Device] && f.UUID != "" {
			out[f.Device] = "UUID=" + f.UUID
		}
	}
	return out
}

// FixFstab rewrites the entries of an fstab that name a recorded device
// by its kernel name ("/dev/sda2") to the UUID of the filesystem made
// from it: the recovered disks may have other names. It returns the new
// content and one line per change.
func FixFstab(content string, uuids map[string]string) (string, []string) {
	lines := strings.SplitAfter(content, "\n")
	var changes []string
	for i, line := range lines {
		t := strings.TrimSpace(line)
		if t == "" || t[0] == '#' {
			continue
		}
		f := strings.Fields(t)
		u, ok := uuids[f[0]]
		if !ok {
			continue
		}
		at := strings.Index(line, f[0])
		lines[i] = line[:at] + u + line[at+len(f[0]):]
		changes = append(changes, fmt.Sprintf("line %d: %s -> %s", i+1, f[0], u))
	}
	return strings.Join(lines, ""), changes
}

// FixCrypttab does the same for the device field (the second) of a
// crypttab.
func FixCrypttab(content string, uuids map[string]string) (string, []string) {
	lines := strings.SplitAfter(content, "\n")
	var changes []string
	for i, line := range lines {
		t := strings.TrimSpace(line)
		if t == "" || t[0] == '#' {
			continue
		}
		f := strings.Fields(t)
		if len(f) < 2 {
			continue
		}
		u, ok := uuids[f[1]]
		if !ok {
			continue
		}
		at := strings.Index(line, f[0]) + len(f[0])
		at += strings.Index(line[at:], f[1])
		lines[i] = line[:at] + u + line[at+len(f[1]):]
		changes = append(changes, fmt.Sprintf("line %d: %s -> %s", i+1, f[1], u))
	}
	return strings.Join(lines, ""), changes
}

// devArg matches root= and resume= arguments naming a /dev/ device.
var devArg = regexp.MustCompile(`\b(root|resume)=(/dev/[A-Za-z0-9/_.-]+)`)

// FixKernelArgs rewrites root= and resume= arguments that name a
// recorded device by its kernel name, in a boot loader configuration
// (grub.cfg, /etc/default/grub).
func FixKernelArgs(content string, uuids map[string]string) (string, []string) {
	var changes []string
	out := devArg.ReplaceAllStringFunc(content, func(m string) string {
		sub := devArg.FindStringSubmatch(m)
		u, ok := uuids[sub[2]]
		if !ok {
			return m
		}
		changes = append(changes, fmt.Sprintf("%s=%s -> %s=%s", sub[1], sub[2], sub[1], u))
		return sub[1] + "=" + u
	})
	return out, changes
}

// fixConfigs applies the fixes to the restored system at root and
// returns what changed, one line per change ("/etc/fstab line 3: ...").
func fixConfigs(root string, doc *inventory.Document, p *Plan, renamed map[string]string) ([]string, error) {
	uuids := uuidOf(doc, p)
	var fixed []string
	for _, c := range []struct {
		path string
		fix  func(string, map[string]string) (string, []string)
	}{
		{"/etc/fstab", FixFstab},
		{"/etc/crypttab", FixCrypttab},
		{"/boot/grub/grub.cfg", FixKernelArgs},
		{"/boot/grub2/grub.cfg", FixKernelArgs},
		{"/etc/default/grub", FixKernelArgs},
	} {
		full := filepath.Join(root, c.path)
		fi, err := os.Lstat(full)
		if err != nil || !fi.Mode().IsRegular() {
			continue
		}
		data, err := os.ReadFile(full)
		if err != nil {
			return fixed, err
		}
		out, changes := c.fix(string(data), uuids)
		out, more := ReplaceUUIDs(out, renamed)
		changes = append(changes, more...)
		if len(changes) == 0 {
			continue
		}
		// Written in place: the file keeps its owner, mode and xattrs.
		if err := os.WriteFile(full, []byte(out), fi.Mode().Perm()); err != nil {
			return fixed, fmt.Errorf("fix %s: %w", c.path, err)
		}
		for _, ch := range changes {
			fixed = append(fixed, c.path+" "+ch)
		}
	}
	return fixed, nil
}

// ReplaceUUIDs replaces every occurrence of each old UUID (a filesystem
// made with a new one) with the new, in any letter case: fstab's UUID=,
// grub.cfg's search --fs-uuid and root=UUID=.
func ReplaceUUIDs(content string, renamed map[string]string) (string, []string) {
	var changes []string
	for old, nu := range renamed {
		re := regexp.MustCompile(`(?i)` + regexp.QuoteMeta(old))
		n := len(re.FindAllStringIndex(content, -1))
		if n == 0 {
			continue
		}
		content = re.ReplaceAllLiteralString(content, nu)
		changes = append(changes, fmt.Sprintf("UUID %s -> %s (%d places)", old, nu, n))
	}
	return content, changes
}
