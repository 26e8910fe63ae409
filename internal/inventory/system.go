package inventory

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// bootConfigs are the files that show which boot loader is installed.
var bootConfigs = []struct{ path, loader string }{
	{"/boot/grub/grub.cfg", "grub"},
	{"/boot/grub2/grub.cfg", "grub"},
	{"/boot/efi/EFI/systemd/systemd-bootx64.efi", "systemd-boot"},
	{"/boot/efi/loader/loader.conf", "systemd-boot"},
	{"/efi/loader/loader.conf", "systemd-boot"},
	{"/boot/loader/loader.conf", "systemd-boot"},
}

func (c *collector) boot(ctx context.Context) {
	b := &c.doc.Boot
	b.Mode = "bios"
	switch {
	case c.root != "":
		// Not running: the firmware here is another machine's.
		b.Mode = c.diskBootMode(ctx)
	case statOK(c.src.sys("firmware/efi")):
		b.Mode = "uefi"
	}
	for _, bc := range bootConfigs {
		if statOK(c.src.root(bc.path)) {
			b.Configs = append(b.Configs, bc.path)
			if !slices.Contains(b.Loaders, bc.loader) {
				b.Loaders = append(b.Loaders, bc.loader)
			}
		}
	}
	if b.Mode != "uefi" || c.root != "" {
		return
	}
	out, err := c.run.Run(ctx, "efibootmgr", "-v")
	if err != nil {
		c.toolFailed("EFI boot entries", err)
		return
	}
	b.EFI = parseEfibootmgr(string(out))
}

// parseEfibootmgr reads `efibootmgr -v`: "BootOrder: 0001,0000" and
// "Boot0001* debian	HD(1,GPT,...)/File(\EFI\debian\shimx64.efi)".
// BootCurrent and BootNext depend on the last boot and are left out.
func parseEfibootmgr(out string) *EFIEntries {
	e := &EFIEntries{Order: []string{}, Entries: []EFIEntry{}}
	for _, line := range strings.Split(out, "\n") {
		if v, ok := strings.CutPrefix(line, "BootOrder:"); ok {
			for _, n := range strings.Split(strings.TrimSpace(v), ",") {
				if n != "" {
					e.Order = append(e.Order, n)
				}
			}
			continue
		}
		rest, ok := strings.CutPrefix(line, "Boot")
		if !ok || len(rest) < 5 || !isHex(rest[:4]) {
			continue
		}
		ent := EFIEntry{Num: rest[:4], Active: rest[4] == '*'}
		text := strings.TrimSpace(strings.TrimPrefix(rest[4:], "*"))
		if lbl, path, ok := strings.Cut(text, "\t"); ok {
			ent.Label, ent.Path = strings.TrimSpace(lbl), strings.TrimSpace(path)
		} else {
			ent.Label = text
		}
		e.Entries = append(e.Entries, ent)
	}
	return e
}

func isHex(s string) bool {
	for _, r := range s {
		if !strings.ContainsRune("0123456789abcdefABCDEF", r) {
			return false
		}
	}
	return true
}

func (c *collector) kernel(context.Context) {
	k := &c.doc.Kernel
	k.Installed = c.installedKernels()
	if c.root == "" {
		k.Release = sysString(c.src.proc("sys/kernel/osrelease"))
		k.Version = sysString(c.src.proc("sys/kernel/version"))
		k.Cmdline = sysString(c.src.proc("cmdline"))
		if k.Release == "" {
			c.warnf("kernel release: %s not readable", c.src.proc("sys/kernel/osrelease"))
		}
	} else if len(k.Installed) == 0 {
		c.warnf("kernels: no vmlinuz-* in %s", c.src.root("/boot"))
	}
	data, missing := c.readFile(c.src.root("/etc/os-release"))
	if missing {
		data, missing = c.readFile(c.src.root("/usr/lib/os-release"))
	}
	if missing {
		return
	}
	c.doc.OS = map[string]string{}
	for k, v := range parseExport(data) {
		c.doc.OS[k] = strings.Trim(v, `"'`)
	}
}

func (c *collector) hostname(context.Context) {
	if c.root == "" {
		c.doc.Hostname.Kernel = sysString(c.src.proc("sys/kernel/hostname"))
	}
	if data, missing := c.readFile(c.src.root("/etc/hostname")); !missing {
		c.doc.Hostname.Etc = strings.TrimSpace(data)
	}
}

// ipAddr is one link of `ip -j addr`.
type ipAddr struct {
	Name     string `json:"ifname"`
	LinkType string `json:"link_type"`
	Address  string `json:"address"`
	MTU      int    `json:"mtu"`
	AddrInfo []struct {
		Family    string `json:"family"`
		Local     string `json:"local"`
		PrefixLen int    `json:"prefixlen"`
		Scope     string `json:"scope"`
	} `json:"addr_info"`
}

func (c *collector) network(ctx context.Context) {
	n := &c.doc.Network
	if data, missing := c.readFile(c.src.root("/etc/resolv.conf")); !missing {
		n.Resolv = data
	}
	if c.root != "" {
		// This host's interfaces and routes are not that system's.
		return
	}
	out, err := c.run.Run(ctx, "ip", "-j", "addr", "show")
	if err != nil {
		c.toolFailed("network interfaces", err)
	} else if err := parseIPAddr(out, n); err != nil {
		c.warnf("network interfaces: %v", err)
	}
	for _, fam := range []string{"-4", "-6"} {
		out, err := c.run.Run(ctx, "ip", "-j", fam, "route", "show", "table", "main")
		if err != nil {
			c.toolFailed("routes "+fam, err)
			continue
		}
		if err := parseIPRoute(out, fam, n); err != nil {
			c.warnf("routes %s: %v", fam, err)
		}
	}
}

func parseIPAddr(out []byte, n *Network) error {
	var links []ipAddr
	if err := json.Unmarshal(out, &links); err != nil {
		return fmt.Errorf("ip -j addr output: %w", err)
	}
	for _, l := range links {
		i := Interface{Name: l.Name, Type: l.LinkType, MAC: l.Address, MTU: l.MTU}
		for _, a := range l.AddrInfo {
			i.Addresses = append(i.Addresses, Address{Family: a.Family, CIDR: a.Local + "/" + strconv.Itoa(a.PrefixLen), Scope: a.Scope})
		}
		n.Interfaces = append(n.Interfaces, i)
	}
	slices.SortFunc(n.Interfaces, func(a, b Interface) int { return strings.Compare(a.Name, b.Name) })
	return nil
}

func parseIPRoute(out []byte, fam string, n *Network) error {
	var routes []struct {
		Dst      string `json:"dst"`
		Gateway  string `json:"gateway"`
		Dev      string `json:"dev"`
		Protocol string `json:"protocol"`
		Scope    string `json:"scope"`
		Src      string `json:"prefsrc"`
		Metric   int    `json:"metric"`
	}
	if err := json.Unmarshal(out, &routes); err != nil {
		return fmt.Errorf("ip -j route output: %w", err)
	}
	family := "inet"
	if fam == "-6" {
		family = "inet6"
	}
	for _, r := range routes {
		n.Routes = append(n.Routes, Route{Family: family, Dst: r.Dst, Gateway: r.Gateway, Dev: r.Dev,
			Protocol: r.Protocol, Scope: r.Scope, Src: r.Src, Metric: r.Metric})
	}
	return nil
}

func (c *collector) packages(ctx context.Context) {
	p := &c.doc.Packages
	root := c.src.Root
	foreign := root != "" && root != "/"
	if statOK(c.src.root("/var/lib/dpkg/status")) {
		args := []string{"-W", "-f", "${db:Status-Abbrev}\t${Package}\t${Version}\t${Architecture}\n"}
		if foreign {
			args = append([]string{"--admindir=" + c.src.root("/var/lib/dpkg")}, args...)
		}
		out, err := c.run.Run(ctx, "dpkg-query", args...)
		if err != nil {
			c.toolFailed("packages (dpkg)", err)
			return
		}
		p.Manager = "dpkg"
		for _, line := range strings.Split(string(out), "\n") {
			f := strings.Split(line, "\t")
			if len(f) == 4 && strings.HasPrefix(f[0], "ii") {
				p.List = append(p.List, Package{Name: f[1], Version: f[2], Arch: f[3]})
			}
		}
	} else if statOK(c.src.root("/var/lib/rpm")) || statOK(c.src.root("/usr/lib/sysimage/rpm")) {
		args := []string{"-qa", "--qf", "%{NAME}\t%{EPOCHNUM}:%{VERSION}-%{RELEASE}\t%{ARCH}\n"}
		if foreign {
			args = append([]string{"--root", root}, args...)
		}
		out, err := c.run.Run(ctx, "rpm", args...)
		if err != nil {
			c.toolFailed("packages (rpm)", err)
			return
		}
		p.Manager = "rpm"
		for _, line := range strings.Split(string(out), "\n") {
			f := strings.Split(line, "\t")
			if len(f) == 3 {
				p.List = append(p.List, Package{Name: f[0], Version: strings.TrimPrefix(f[1], "0:"), Arch: f[2]})
			}
		}
	} else {
		c.warnf("packages: no dpkg or rpm database found")
		return
	}
	slices.SortFunc(p.List, func(a, b Package) int {
		return cmp.Or(strings.Compare(a.Name, b.Name), strings.Compare(a.Arch, b.Arch), strings.Compare(a.Version, b.Version))
	})
}

// units lists the units enabled by symlinks in /etc/systemd/system's
// .wants and .requires directories: what `systemctl enable` made, read
// without a running systemd.
func (c *collector) units(context.Context) {
	dir := c.src.root("/etc/systemd/system")
	ents, err := os.ReadDir(dir)
	if err != nil {
		if !os.IsNotExist(err) {
			c.warnf("enabled units: %v", err)
		}
		return
	}
	for _, e := range ents {
		by, kind := "", ""
		if b, ok := strings.CutSuffix(e.Name(), ".wants"); ok {
			by, kind = b, "wants"
		} else if b, ok := strings.CutSuffix(e.Name(), ".requires"); ok {
			by, kind = b, "requires"
		} else {
			continue
		}
		links, err := os.ReadDir(filepath.Join(dir, e.Name()))
		if err != nil {
			c.warnf("enabled units: %v", err)
			continue
		}
		for _, l := range links {
			c.doc.Units = append(c.doc.Units, Unit{Name: l.Name(), By: by, Kind: kind})
		}
	}
	slices.SortFunc(c.doc.Units, func(a, b Unit) int {
		return cmp.Or(strings.Compare(a.Name, b.Name), strings.Compare(a.By, b.By), strings.Compare(a.Kind, b.Kind))
	})
}

// accounts parses /etc/passwd and /etc/group. The password fields are
// not recorded (and /etc/shadow is never read).
func (c *collector) accounts(context.Context) {
	if data, missing := c.readFile(c.src.root("/etc/passwd")); !missing {
		c.doc.Users = parsePasswd(data)
	} else {
		c.warnf("users: /etc/passwd not found")
	}
	if data, missing := c.readFile(c.src.root("/etc/group")); !missing {
		c.doc.Groups = parseGroup(data)
	}
}

func parsePasswd(data string) []User {
	var us []User
	for _, line := range strings.Split(data, "\n") {
		f := strings.Split(line, ":")
		if len(f) != 7 || strings.HasPrefix(line, "#") {
			continue
		}
		uid, err1 := strconv.Atoi(f[2])
		gid, err2 := strconv.Atoi(f[3])
		if err1 != nil || err2 != nil {
			continue
		}
		us = append(us, User{Name: f[0], UID: uid, GID: gid, Gecos: f[4], Home: f[5], Shell: f[6]})
	}
	return us
}

func parseGroup(data string) []Group {
	var gs []Group
	for _, line := range strings.Split(data, "\n") {
		f := strings.Split(line, ":")
		if len(f) != 4 || strings.HasPrefix(line, "#") {
			continue
		}
		gid, err := strconv.Atoi(f[2])
		if err != nil {
			continue
		}
		g := Group{Name: f[0], GID: gid}
		for _, m := range strings.Split(f[3], ",") {
			if m != "" {
				g.Members = append(g.Members, m)
			}
		}
		gs = append(gs, g)
	}
	return gs
}

// crontabs records /etc/crontab, /etc/cron.d/* and the users' crontabs.
func (c *collector) crontabs(context.Context) {
	paths := []string{"/etc/crontab"}
	for _, dir := range []string{"/etc/cron.d", "/var/spool/cron/crontabs", "/var/spool/cron"} {
		ents, err := os.ReadDir(c.src.root(dir))
		if err != nil {
			if !os.IsNotExist(err) {
				c.warnf("crontabs: %v", err)
			}
			continue
		}
		for _, e := range ents {
			if e.Type().IsRegular() && !strings.HasPrefix(e.Name(), ".") {
				paths = append(paths, dir+"/"+e.Name())
			}
		}
	}
	for _, p := range paths {
		if data, missing := c.readFile(c.src.root(p)); !missing {
			c.doc.Crontabs = append(c.doc.Crontabs, TextFile{Path: p, Content: data})
		}
	}
}
