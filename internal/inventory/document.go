package inventory

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math/bits"
	"slices"
	"time"
)

// Version is the format version of the documents this package writes.
const Version = 1

// Document is one inventory of a machine. Its JSON form is the content
// of an inventory file, specified field by field in docs/FORMAT.md.
type Document struct {
	Version int `json:"version"`
	// Host is the host name the backup recorded in its snapshot (the
	// machine's, or --host); inventories are reused per Host.
	Host string `json:"hostname"`
	// Time is when this content was first collected, in UTC. A backup
	// that finds the machine unchanged reuses the file, so Time is not
	// part of the content compared (SameContent).
	Time time.Time `json:"time"`

	Disks       []Disk            `json:"disks"`
	Filesystems []Filesystem      `json:"filesystems"`
	Fstab       *TextFile         `json:"fstab,omitempty"`
	Crypttab    *TextFile         `json:"crypttab,omitempty"`
	MD          *MD               `json:"md,omitempty"`
	LUKS        []LUKS            `json:"luks,omitempty"`
	LVM         *LVM              `json:"lvm,omitempty"`
	Boot        Boot              `json:"boot"`
	Kernel      Kernel            `json:"kernel"`
	OS          map[string]string `json:"os,omitempty"`
	Hostname    Hostname          `json:"host_names"`
	Network     Network           `json:"network"`
	Packages    Packages          `json:"packages"`
	Units       []Unit            `json:"units"`
	Users       []User            `json:"users"`
	Groups      []Group           `json:"groups"`
	Crontabs    []TextFile        `json:"crontabs"`
	// Warnings name what could not be recorded (a missing program, an
	// unreadable file), sorted.
	Warnings []string `json:"warnings"`
}

// Disk is a whole block device and its partition table.
type Disk struct {
	Name string `json:"name"` // kernel name: "sda", "nvme0n1", "loop3"
	Path string `json:"path"` // "/dev/sda"
	// SizeBytes is the device's size; sectors are 512 bytes in sysfs,
	// whatever the logical sector size.
	SizeBytes          int64  `json:"size_bytes"`
	LogicalSectorSize  int    `json:"logical_sector_size"`
	PhysicalSectorSize int    `json:"physical_sector_size"`
	Rotational         bool   `json:"rotational"`
	Removable          bool   `json:"removable"`
	Model              string `json:"model,omitempty"`
	Serial             string `json:"serial,omitempty"`
	WWID               string `json:"wwid,omitempty"`
	// Table is nil on a disk without a partition table (a filesystem on
	// the whole disk, a RAID member, a blank disk).
	Table *PartitionTable `json:"partition_table,omitempty"`
}

// PartitionTable is what `sfdisk -J` reports. Positions and sizes are in
// sectors of SectorSize bytes.
type PartitionTable struct {
	Type string `json:"type"` // "gpt" or "dos"
	// ID is the disk GUID (gpt) or the disk identifier "0x1234abcd" (dos).
	ID         string      `json:"id"`
	SectorSize int         `json:"sector_size"`
	FirstLBA   int64       `json:"first_lba,omitempty"`
	LastLBA    int64       `json:"last_lba,omitempty"`
	Partitions []Partition `json:"partitions"`
}

// Partition is one entry of a partition table.
type Partition struct {
	Number int    `json:"number"`
	Path   string `json:"path"` // "/dev/sda1"
	Start  int64  `json:"start"`
	Size   int64  `json:"size"`
	// Type is the type GUID (gpt) or the hex type code "83" (dos).
	Type     string `json:"type"`
	UUID     string `json:"uuid,omitempty"`
	Name     string `json:"name,omitempty"`
	Attrs    string `json:"attrs,omitempty"`
	Bootable bool   `json:"bootable,omitempty"`
}

// Filesystem is a filesystem, swap area or layer signature found on a
// block device of the machine (a disk, a partition, an MD array).
type Filesystem struct {
	Device    string `json:"device"`
	Type      string `json:"type"` // blkid TYPE: ext4, xfs, btrfs, vfat, swap, crypto_LUKS, linux_raid_member, LVM2_member
	UUID      string `json:"uuid,omitempty"`
	UUIDSub   string `json:"uuid_sub,omitempty"` // btrfs device UUID, md member UUID
	Label     string `json:"label,omitempty"`
	Version   string `json:"version,omitempty"`
	BlockSize int    `json:"block_size,omitempty"`
	// SizeBytes is the size of the device the filesystem is on.
	SizeBytes int64 `json:"size_bytes"`
	// UsedBytes is what the filesystem holds (statfs: blocks minus free
	// blocks, times the block size) when it is mounted; 0 when not.
	// Compared with a tolerance (SameContent): use changes all the time.
	UsedBytes int64   `json:"used_bytes,omitempty"`
	Mounts    []Mount `json:"mounts,omitempty"`
	// Features are the filesystem's feature flags: ext4 from dumpe2fs,
	// xfs from xfs_info ("crc=1"), btrfs from its superblock.
	Features []string `json:"features,omitempty"`
	// Params are creation parameters recreating it needs: ext4 "Block
	// count", "Inode count", "Inode size"; btrfs "nodesize"; xfs "bsize".
	Params     map[string]string `json:"params,omitempty"`
	Subvolumes []Subvolume       `json:"subvolumes,omitempty"`
}

// Mount is one place a filesystem is mounted.
type Mount struct {
	Target string `json:"target"`
	// Root is the directory of the filesystem mounted there ("/" unless
	// a bind mount or a btrfs subvolume).
	Root    string `json:"root"`
	Options string `json:"options"`    // per-mount options: "rw,relatime"
	Super   string `json:"fs_options"` // filesystem options: "errors=remount-ro"
}

// Subvolume is a btrfs subvolume.
type Subvolume struct {
	ID       int64  `json:"id"`
	TopLevel int64  `json:"top_level"`
	Path     string `json:"path"`
}

// TextFile is a configuration file recorded whole.
type TextFile struct {
	Path    string `json:"path"`
	Content string `json:"content"`
}

// MD is the software RAID layer.
type MD struct {
	Mdstat string    `json:"mdstat"`
	Arrays []MDArray `json:"arrays"`
}

// MDArray is one array: `mdadm --detail --export` keys, without the
// volatile ones.
type MDArray struct {
	Device string            `json:"device"`
	Detail map[string]string `json:"detail"`
}

// LUKS is the header summary of an encrypted device (no key material).
type LUKS struct {
	Device  string `json:"device"`
	UUID    string `json:"uuid"`
	Version string `json:"version"`
	Label   string `json:"label,omitempty"`
	Header  string `json:"header,omitempty"` // luksDump up to the key slots
}

// LVM is the logical volume layer: the JSON rows of pvs, vgs and lvs.
type LVM struct {
	PVs []map[string]string `json:"pvs"`
	VGs []map[string]string `json:"vgs"`
	LVs []map[string]string `json:"lvs"`
}

// Boot is how the machine starts.
type Boot struct {
	Mode    string      `json:"mode"`    // "uefi" or "bios"
	Loaders []string    `json:"loaders"` // "grub", "systemd-boot"
	Configs []string    `json:"configs,omitempty"`
	EFI     *EFIEntries `json:"efi,omitempty"`
}

// EFIEntries are the firmware's boot entries (efibootmgr -v).
type EFIEntries struct {
	Order   []string   `json:"order"`
	Entries []EFIEntry `json:"entries"`
}

// EFIEntry is one BootXXXX variable.
type EFIEntry struct {
	Num    string `json:"num"`
	Active bool   `json:"active"`
	Label  string `json:"label"`
	Path   string `json:"path"`
}

// Kernel is the running kernel, and the kernels installed in /boot.
// For a system that is not running (Sources.Root), Release, Version and
// Cmdline are empty: the kernel running here is not that system's.
type Kernel struct {
	Release string `json:"release"`
	Version string `json:"version"`
	Cmdline string `json:"cmdline"`
	// Installed are the releases of the kernel images in /boot
	// (vmlinuz-<release>), oldest first.
	Installed []string `json:"installed,omitempty"`
}

// Hostname holds the kernel's host name and /etc/hostname.
type Hostname struct {
	Kernel string `json:"kernel"`
	Etc    string `json:"etc,omitempty"`
}

// Network is the interfaces, routes and DNS.
type Network struct {
	Interfaces []Interface `json:"interfaces"`
	Routes     []Route     `json:"routes"`
	Resolv     string      `json:"resolv_conf,omitempty"`
}

// Interface is a network link with its addresses.
type Interface struct {
	Name      string    `json:"name"`
	Type      string    `json:"link_type"`
	MAC       string    `json:"mac,omitempty"`
	MTU       int       `json:"mtu"`
	Addresses []Address `json:"addresses,omitempty"`
}

// Address is an address of an interface, "192.0.2.7/24".
type Address struct {
	Family string `json:"family"`
	CIDR   string `json:"cidr"`
	Scope  string `json:"scope,omitempty"`
}

// Route is one route of the main tables.
type Route struct {
	Family   string `json:"family"`
	Dst      string `json:"dst"`
	Gateway  string `json:"gateway,omitempty"`
	Dev      string `json:"dev,omitempty"`
	Protocol string `json:"protocol,omitempty"`
	Scope    string `json:"scope,omitempty"`
	Src      string `json:"prefsrc,omitempty"`
	Metric   int    `json:"metric,omitempty"`
}

// Packages are the installed packages.
type Packages struct {
	Manager string    `json:"manager,omitempty"` // "dpkg" or "rpm"
	List    []Package `json:"list"`
}

// Package is one installed package.
type Package struct {
	Name    string `json:"name"`
	Version string `json:"version"`
	Arch    string `json:"arch"`
}

// Unit is a systemd unit enabled by a symlink in /etc/systemd/system.
type Unit struct {
	Name string `json:"name"`
	// By is the unit whose .wants or .requires directory holds it.
	By string `json:"by"`
	// Kind is "wants" or "requires".
	Kind string `json:"kind"`
}

// User is a line of /etc/passwd (the password field is left out).
type User struct {
	Name  string `json:"name"`
	UID   int    `json:"uid"`
	GID   int    `json:"gid"`
	Gecos string `json:"gecos,omitempty"`
	Home  string `json:"home"`
	Shell string `json:"shell"`
}

// Group is a line of /etc/group (the password field is left out).
type Group struct {
	Name    string   `json:"name"`
	GID     int      `json:"gid"`
	Members []string `json:"members,omitempty"`
}

// Errors of this package.
var (
	// ErrNewerVersion: a document written by a newer rewind.
	ErrNewerVersion = errors.New("inventory written by a newer rewind")
)

// Decode reads an inventory file's JSON. Fields it does not know are
// ignored, but the version must be one it reads.
func Decode(plain []byte) (*Document, error) {
	var d Document
	if err := json.Unmarshal(plain, &d); err != nil {
		return nil, fmt.Errorf("decode inventory: %w", err)
	}
	switch {
	case d.Version == 0:
		return nil, errors.New("decode inventory: no version")
	case d.Version > Version:
		return nil, fmt.Errorf("%w: version %d, this rewind reads up to %d", ErrNewerVersion, d.Version, Version)
	case d.Version < 0:
		return nil, fmt.Errorf("decode inventory: bad version %d", d.Version)
	}
	return &d, nil
}

// SameContent reports whether a and b record the same machine: every
// field but Time is equal.
func SameContent(a, b *Document) bool {
	ja, err1 := contentJSON(a)
	jb, err2 := contentJSON(b)
	return err1 == nil && err2 == nil && bytes.Equal(ja, jb)
}

func contentJSON(d *Document) ([]byte, error) {
	c := *d
	c.Time = time.Time{}
	c.Filesystems = slices.Clone(d.Filesystems)
	for i := range c.Filesystems {
		c.Filesystems[i].UsedBytes = usedBucket(c.Filesystems[i].UsedBytes)
	}
	return json.Marshal(&c)
}

// usedBucket rounds a used size down to its bucket: eight buckets per
// power of two, each 1/8 of it wide. Two inventories whose filesystems'
// use is in the same bucket are the same content, so that a backup does
// not store a new inventory for every file written since the last one;
// the recorded value, the one first collected, stays within 12.5% of
// the use at any later backup naming it.
func usedBucket(n int64) int64 {
	if n <= 0 {
		return 0
	}
	l := bits.Len64(uint64(n))
	if l <= 4 {
		return n
	}
	return int64(l)<<3 | (n>>(l-4))&7
}
