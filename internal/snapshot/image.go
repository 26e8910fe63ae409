package snapshot

// ImageInfo is set on a snapshot of a whole block device or disk image
// file (`rewind backup --device` or `--image`, docs/IMAGES.md). The
// snapshot holds one file, at Paths[0], whose content is the device cut
// into chunks of exactly BlockSize bytes at offsets that are multiples of
// BlockSize (the last one may be shorter), with holes for blocks that
// are all zeros or free in the filesystem.
type ImageInfo struct {
	// Kind is ImageDevice or ImageFile.
	Kind string `json:"kind"`
	// Size is the device's size in bytes (the file node's size).
	Size int64 `json:"size"`
	// BlockSize is the fixed chunk size in bytes.
	BlockSize int64 `json:"block_size"`
	// Method is how the blocks to read were chosen: MethodExt4Bitmap,
	// MethodXFSBtree, MethodPartitions or MethodFull.
	Method string `json:"method"`
	// Fallback says why the filesystem's bitmaps were not used, when the
	// method is full and a filesystem was looked for.
	Fallback string `json:"fallback,omitempty"`
	// BytesRead is what was read from the device; BytesFree the free
	// filesystem space not read.
	BytesRead int64 `json:"bytes_read"`
	BytesFree int64 `json:"bytes_free"`
	// Blocks counts the blocks; BlocksHole those recorded as holes (all
	// zeros, or free); BlocksChanged those read whose content differs
	// from the parent's block at the same offset (all data blocks without
	// a parent).
	Blocks        int64 `json:"blocks"`
	BlocksHole    int64 `json:"blocks_hole"`
	BlocksChanged int64 `json:"blocks_changed"`
	// QEMUDrive is the drive (block device ID or node name) of a running
	// QEMU guest read over QMP and NBD (backup --qemu-qmp), and
	// DirtyBitmap the persistent dirty bitmap the backup left on it,
	// which records every write since this snapshot's moment: the next
	// backup of the drive reads only what it marks.
	QEMUDrive   string `json:"qemu_drive,omitempty"`
	DirtyBitmap string `json:"dirty_bitmap,omitempty"`
	// BytesClean is what the parent's dirty bitmap marked unchanged and
	// was taken from the parent without being read.
	BytesClean int64 `json:"bytes_clean,omitempty"`
}

// Kinds of image snapshot, also the tag such a snapshot gets.
const (
	ImageDevice = "device"
	ImageFile   = "image"
	// ImageQEMU: a drive of a running QEMU guest (backup --qemu-qmp).
	ImageQEMU = "qemu"
)

// Methods of choosing the blocks of an image to read.
const (
	MethodExt4Bitmap = "ext4-bitmap"
	MethodXFSBtree   = "xfs-btree"
	// MethodPartitions: a partitioned disk, each ext2/3/4 or XFS
	// partition read by its filesystem's map, the rest whole.
	MethodPartitions = "partitions"
	MethodFull       = "full"
	// MethodQEMUDirtyBitmap: a running QEMU guest's drive, only the
	// blocks its dirty bitmap marks written since the parent read over
	// QEMU's NBD export; MethodQEMUAllocation: the same drive read whole
	// where QEMU says it holds data (base:allocation), when no bitmap
	// of the parent can be used (Fallback says why).
	MethodQEMUDirtyBitmap = "qemu-dirty-bitmap"
	MethodQEMUAllocation  = "qemu-allocation"
)
