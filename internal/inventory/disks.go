package inventory

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// virtualDisk reports whether a /sys/block entry is not a disk to
// record by default: loop, ram and zram devices, device-mapper and MD
// devices (recorded as layers), and empty nbd, floppy or optical ones.
func virtualDisk(name string, size int64) bool {
	for _, p := range []string{"loop", "ram", "zram", "dm-", "md", "fd", "sr"} {
		if strings.HasPrefix(name, p) {
			return true
		}
	}
	return size == 0
}

// diskNames lists the disks to record.
func (c *collector) diskNames() []string {
	if len(c.src.Disks) > 0 {
		var out []string
		for _, d := range c.src.Disks {
			out = append(out, filepath.Base(d))
		}
		return out
	}
	ents, err := os.ReadDir(c.src.sys("block"))
	if err != nil {
		c.warnf("disks: %v", err)
		return nil
	}
	var out []string
	for _, e := range ents {
		size, _ := strconv.ParseInt(sysString(c.src.sys("block/"+e.Name()+"/size")), 10, 64)
		if !virtualDisk(e.Name(), size) {
			out = append(out, e.Name())
		}
	}
	return out
}

func (c *collector) disks(ctx context.Context) {
	for _, name := range c.diskNames() {
		dir := c.src.sys("block/" + name)
		sizeText := sysString(filepath.Join(dir, "size"))
		sectors, err := strconv.ParseInt(sizeText, 10, 64)
		if err != nil {
			c.warnf("disk %s: no size in %s", name, dir)
			continue
		}
		d := Disk{
			Name:               name,
			Path:               "/dev/" + name,
			SizeBytes:          sectors * 512,
			LogicalSectorSize:  atoi(sysString(filepath.Join(dir, "queue/logical_block_size"))),
			PhysicalSectorSize: atoi(sysString(filepath.Join(dir, "queue/physical_block_size"))),
			Rotational:         sysString(filepath.Join(dir, "queue/rotational")) == "1",
			Removable:          sysString(filepath.Join(dir, "removable")) == "1",
			Model:              sysString(filepath.Join(dir, "device/model")),
			Serial:             firstOf(sysString(filepath.Join(dir, "device/serial")), sysString(filepath.Join(dir, "serial"))),
			WWID:               firstOf(sysString(filepath.Join(dir, "wwid")), sysString(filepath.Join(dir, "device/wwid"))),
		}
		t, err := sfdiskDump(ctx, c.run, d.Path)
		switch {
		case err == nil:
			d.Table = t
		case exitCode(err) == 1 && strings.Contains(err.Error(), "does not contain a recognized partition table"):
			// A disk without a partition table.
		default:
			c.toolFailed("partition table of "+d.Path, err)
		}
		c.doc.Disks = append(c.doc.Disks, d)
	}
	slices.SortFunc(c.doc.Disks, func(a, b Disk) int { return strings.Compare(a.Name, b.Name) })
}

func atoi(s string) int {
	n, _ := strconv.Atoi(s)
	return n
}

func firstOf(ss ...string) string {
	for _, s := range ss {
		if s != "" {
			return s
		}
	}
	return ""
}

// sfdiskJSON is the output of `sfdisk -J`.
type sfdiskJSON struct {
	Table struct {
		Label      string `json:"label"`
		ID         string `json:"id"`
		Device     string `json:"device"`
		Unit       string `json:"unit"`
		FirstLBA   int64  `json:"firstlba"`
		LastLBA    int64  `json:"lastlba"`
		SectorSize int    `json:"sectorsize"`
		Partitions []struct {
			Node     string `json:"node"`
			Start    int64  `json:"start"`
			Size     int64  `json:"size"`
			Type     string `json:"type"`
			UUID     string `json:"uuid"`
			Name     string `json:"name"`
			Attrs    string `json:"attrs"`
			Bootable bool   `json:"bootable"`
		} `json:"partitions"`
	} `json:"partitiontable"`
}

// sfdiskDump reads the partition table of dev with `sfdisk -J`.
func sfdiskDump(ctx context.Context, run Runner, dev string) (*PartitionTable, error) {
	out, err := run.Run(ctx, "sfdisk", "-J", dev)
	if err != nil {
		return nil, err
	}
	return parseSfdisk(out)
}

func parseSfdisk(out []byte) (*PartitionTable, error) {
	var j sfdiskJSON
	if err := json.Unmarshal(out, &j); err != nil {
		return nil, fmt.Errorf("sfdisk -J output: %w", err)
	}
	if j.Table.Unit != "" && j.Table.Unit != "sectors" {
		return nil, fmt.Errorf("sfdisk -J: unit %q, not sectors", j.Table.Unit)
	}
	t := &PartitionTable{Type: j.Table.Label, ID: j.Table.ID, SectorSize: j.Table.SectorSize,
		FirstLBA: j.Table.FirstLBA, LastLBA: j.Table.LastLBA, Partitions: []Partition{}}
	if t.SectorSize == 0 {
		t.SectorSize = 512
	}
	for _, p := range j.Table.Partitions {
		t.Partitions = append(t.Partitions, Partition{
			Number: partNumber(p.Node), Path: p.Node, Start: p.Start, Size: p.Size,
			Type: p.Type, UUID: p.UUID, Name: p.Name, Attrs: p.Attrs, Bootable: p.Bootable,
		})
	}
	return t, nil
}

// partNumber is the number at the end of a partition's device name.
func partNumber(node string) int {
	i := len(node)
	for i > 0 && node[i-1] >= '0' && node[i-1] <= '9' {
		i--
	}
	n, _ := strconv.Atoi(node[i:])
	return n
}

// devices lists the block devices whose content is recorded: each disk,
// its partitions (from sysfs), and every MD array.
func (c *collector) devices() []string {
	var out []string
	for _, d := range c.doc.Disks {
		out = append(out, d.Path)
		ents, _ := os.ReadDir(c.src.sys("block/" + d.Name))
		for _, e := range ents {
			if _, err := os.Stat(c.src.sys("block/" + d.Name + "/" + e.Name() + "/partition")); err == nil {
				out = append(out, "/dev/"+e.Name())
			}
		}
	}
	for _, md := range c.mdNames() {
		out = append(out, "/dev/"+md)
	}
	slices.Sort(out)
	return slices.Compact(out)
}

func (c *collector) mdNames() []string {
	ents, _ := os.ReadDir(c.src.sys("block"))
	var out []string
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), "md") {
			out = append(out, e.Name())
		}
	}
	return out
}

// volatileMD are `mdadm --detail --export` keys that change on a
// running array.
var volatileMD = map[string]bool{"MD_DEVICE_ev_STATE": true}

func (c *collector) md(ctx context.Context) {
	names := c.mdNames()
	stat, missing := c.readFile(c.src.proc("mdstat"))
	if len(names) == 0 {
		return
	}
	m := &MD{Arrays: []MDArray{}}
	if !missing {
		m.Mdstat = stat
	}
	for _, n := range names {
		out, err := c.run.Run(ctx, "mdadm", "--detail", "--export", "/dev/"+n)
		if err != nil {
			c.toolFailed("RAID array /dev/"+n, err)
			continue
		}
		kv := parseExport(string(out))
		for k := range kv {
			if volatileMD[k] || strings.HasSuffix(k, "_STATE") {
				delete(kv, k)
			}
		}
		m.Arrays = append(m.Arrays, MDArray{Device: "/dev/" + n, Detail: kv})
	}
	c.doc.MD = m
}

// parseExport reads KEY=VALUE lines (blkid -o export, mdadm --export).
func parseExport(s string) map[string]string {
	kv := map[string]string{}
	for _, line := range strings.Split(s, "\n") {
		k, v, ok := strings.Cut(strings.TrimSpace(line), "=")
		if ok && k != "" {
			kv[k] = v
		}
	}
	return kv
}

func (c *collector) luks(ctx context.Context) {
	for _, fs := range c.doc.Filesystems {
		if fs.Type != "crypto_LUKS" {
			continue
		}
		l := LUKS{Device: fs.Device, UUID: fs.UUID, Version: fs.Version, Label: fs.Label}
		out, err := c.run.Run(ctx, "cryptsetup", "luksDump", fs.Device)
		if err != nil {
			c.toolFailed("LUKS header of "+fs.Device, err)
		} else {
			l.Header = luksHeader(string(out))
		}
		c.doc.LUKS = append(c.doc.LUKS, l)
	}
}

// luksHeader keeps the lines of a luksDump before the key slots: the
// header's version, UUID, label, cipher and data segment.
func luksHeader(dump string) string {
	var b strings.Builder
	for _, line := range strings.Split(dump, "\n") {
		if strings.HasPrefix(line, "Keyslots:") || strings.HasPrefix(line, "Key Slot") || strings.HasPrefix(line, "Tokens:") {
			break
		}
		b.WriteString(line)
		b.WriteByte('\n')
	}
	return strings.TrimSpace(b.String())
}

func (c *collector) lvm(ctx context.Context) {
	hasPV := slices.ContainsFunc(c.doc.Filesystems, func(f Filesystem) bool { return f.Type == "LVM2_member" })
	if _, err := lookPath("lvs"); err != nil {
		if hasPV {
			c.warnf("LVM: physical volumes found but lvs is not installed (and this kernel may lack device-mapper)")
		}
		return
	}
	l := &LVM{}
	for _, q := range []struct {
		prog, fields string
		dst          *[]map[string]string
	}{
		{"pvs", "pv_name,vg_name,pv_uuid,pv_size,pe_start", &l.PVs},
		{"vgs", "vg_name,vg_uuid,vg_size,vg_extent_size", &l.VGs},
		{"lvs", "lv_name,vg_name,lv_uuid,lv_size,segtype,devices", &l.LVs},
	} {
		rows, err := lvmReport(ctx, c.run, q.prog, q.fields)
		if err != nil {
			c.toolFailed("LVM "+q.prog, err)
			continue
		}
		*q.dst = rows
	}
	if len(l.PVs)+len(l.VGs)+len(l.LVs) > 0 {
		c.doc.LVM = l
	}
}

// lvmReport runs one LVM reporting program with a JSON report in bytes.
func lvmReport(ctx context.Context, run Runner, prog, fields string) ([]map[string]string, error) {
	out, err := run.Run(ctx, prog, "--reportformat", "json", "--units", "b", "--nosuffix", "-o", fields)
	if err != nil {
		return nil, err
	}
	var j struct {
		Report []map[string][]map[string]string `json:"report"`
	}
	if err := json.Unmarshal(out, &j); err != nil {
		return nil, fmt.Errorf("%s output: %w", prog, err)
	}
	rows := []map[string]string{}
	for _, r := range j.Report {
		for _, v := range r {
			rows = append(rows, v...)
		}
	}
	return rows, nil
}
