package recovery

import (
	"strconv"
	"strings"

	"github.com/rewind-backup/rewind/internal/inventory"
)

// roomNeeded is the smallest partition that holds what f held once the
// filesystem is made anew on it: the data (f.UsedBytes, as statfs counted
// it, which leaves out the filesystem's own structures) plus what the new
// filesystem takes for itself at that size: the journal or log, inode
// tables, allocation metadata. The structures are estimated from the
// recorded parameters and mkfs's defaults, on the large side, so that a
// plan that passes does not run out of room halfway through the restore.
// 0 when nothing is known to need room.
func roomNeeded(f inventory.Filesystem) int64 {
	if f.UsedBytes <= 0 || f.Type == "swap" {
		return 0
	}
	// overhead grows with the size it is computed for: a few rounds
	// settle it.
	size := f.UsedBytes
	for range 8 {
		next := f.UsedBytes + fsOverhead(f, size)
		if next <= size {
			break
		}
		size = next
	}
	return alignUp(size, MiB)
}

// fsOverhead is what a new filesystem of f's type and parameters takes
// for its own structures on a device of size bytes.
func fsOverhead(f inventory.Filesystem, size int64) int64 {
	const slack = 2 * MiB // superblocks, group descriptors, root directory
	switch f.Type {
	case "ext2", "ext3", "ext4":
		bs := paramInt(f.Params, "Block size", 4096)
		isize := paramInt(f.Params, "Inode size", 256)
		ratio := int64(16384)
		if blocks, inodes := paramInt(f.Params, "Block count", 0), paramInt(f.Params, "Inode count", 0); blocks > 0 && inodes > 0 {
			ratio = max(1024, blocks*bs/inodes)
		}
		journal := int64(0)
		if f.Type != "ext2" {
			journal = ext4Journal(size / bs * bs)
			if j := f.Params["Journal size"]; j != "" {
				journal = max(journal, parseJournalSize(j))
			}
		}
		// Inode tables, the block and inode bitmaps (one bit per block
		// and per inode), and the journal.
		return size/ratio*isize + size/bs/8 + size/ratio/8 + journal + slack
	case "xfs":
		// The log (mkfs.xfs: at least 64 MiB from 300 MiB on, about
		// 1/2048 of the size above), AG headers and free-space trees.
		return max(64*MiB, size/2048) + size/100 + slack
	case "btrfs":
		// Metadata is duplicated on a single disk, and chunks are
		// allocated in large steps: a tenth, and at least 64 MiB.
		return max(64*MiB, size/10) + slack
	case "vfat":
		// Two FATs of 4 bytes per 4 KiB cluster at most.
		return size/512 + slack
	}
	return size/20 + slack
}

// ext4Journal is the journal mke2fs makes by default on a filesystem of
// size bytes (ext2fs_default_journal_size, in 4 KiB blocks).
func ext4Journal(size int64) int64 {
	blocks := size / 4096
	switch {
	case blocks < 2048:
		return 0
	case blocks < 32768:
		return 4 * MiB
	case blocks < 256*1024:
		return 16 * MiB
	case blocks < 512*1024:
		return 32 * MiB
	case blocks < 4096*1024:
		return 64 * MiB
	case blocks < 8192*1024:
		return 128 * MiB
	case blocks < 16384*1024:
		return 256 * MiB
	case blocks < 32768*1024:
		return 512 * MiB
	}
	return 1024 * MiB
}

// parseJournalSize reads dumpe2fs's "Journal size" ("4096k", "64M").
func parseJournalSize(s string) int64 {
	s = strings.TrimSpace(s)
	mult := int64(1)
	switch {
	case strings.HasSuffix(s, "k"):
		mult, s = 1024, strings.TrimSuffix(s, "k")
	case strings.HasSuffix(s, "M"):
		mult, s = MiB, strings.TrimSuffix(s, "M")
	case strings.HasSuffix(s, "G"):
		mult, s = 1024*MiB, strings.TrimSuffix(s, "G")
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 0 {
		return 0
	}
	return n * mult
}

func paramInt(p map[string]string, key string, def int64) int64 {
	n, err := strconv.ParseInt(strings.TrimSpace(p[key]), 10, 64)
	if err != nil || n <= 0 {
		return def
	}
	return n
}
