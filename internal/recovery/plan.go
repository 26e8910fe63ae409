package recovery

import "github.com/rewind-backup/rewind/internal/inventory"

// Target is one disk that recover may write to.
type Target struct {
	Path      string `json:"path"` // "/dev/sdb", "/dev/loop7"
	SizeBytes int64  `json:"size_bytes"`
	// SectorSize is the logical sector size (512 unless the disk says).
	SectorSize int `json:"sector_size"`
}

// Plan is everything recover will do, decided before a disk is touched.
// Its JSON form is what `rewind recover --dry-run --json` prints.
type Plan struct {
	Host     string     `json:"hostname"`
	BootMode string     `json:"boot_mode"` // "bios" or "uefi"
	Disks    []DiskPlan `json:"disks"`
	// Filesystems are made in this order; Mounts are mounted in this
	// order (parents first) for the restore.
	Filesystems []FilesystemPlan `json:"filesystems"`
	Mounts      []MountPlan      `json:"mounts"`
	// Warnings name what recover cannot rebuild or will change (a layer
	// this kernel cannot make, a partition that shrinks).
	Warnings []string `json:"warnings"`
}

// DiskPlan maps one recorded disk onto one target disk.
type DiskPlan struct {
	Source     string `json:"source"` // the recorded disk, "/dev/sda"
	Target     string `json:"target"` // the disk written, "/dev/sdb"
	SourceSize int64  `json:"source_size_bytes"`
	TargetSize int64  `json:"target_size_bytes"`
	// Table is the partition table to write, in the target's sectors:
	// the recorded one with its last partition grown or shrunk to fit,
	// and each Partition.Path the target's partition device.
	Table *inventory.PartitionTable `json:"partition_table,omitempty"`
	// Resized names the partition whose size changed ("" when none), and
	// its old and new sizes in bytes.
	Resized    string `json:"resized,omitempty"`
	OldPartLen int64  `json:"old_partition_bytes,omitempty"`
	NewPartLen int64  `json:"new_partition_bytes,omitempty"`
}

// FilesystemPlan is one filesystem or swap area to make.
type FilesystemPlan struct {
	Source string `json:"source"` // recorded device, "/dev/sda2"
	Device string `json:"device"` // device it is made on, "/dev/sdb2"
	Type   string `json:"type"`
	UUID   string `json:"uuid,omitempty"`
	Label  string `json:"label,omitempty"`
	// SizeBytes is the new device's size; UsedBytes what the recorded
	// filesystem held (inventory), which must fit.
	SizeBytes  int64                 `json:"size_bytes"`
	UsedBytes  int64                 `json:"used_bytes"`
	Features   []string              `json:"features,omitempty"`
	Params     map[string]string     `json:"params,omitempty"`
	Subvolumes []inventory.Subvolume `json:"subvolumes,omitempty"`
}

// MountPlan is one mount of the recovered system, as its fstab has it.
type MountPlan struct {
	Target  string `json:"target"` // "/", "/boot/efi"
	Device  string `json:"device"` // the new device
	Type    string `json:"type"`
	Options string `json:"options,omitempty"` // "subvol=@home" for btrfs
}
