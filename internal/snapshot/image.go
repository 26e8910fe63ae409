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
}

// Kinds of image snapshot, also the tag such a snapshot gets.
const (
	ImageDevice = "device"
	ImageFile   = "image"
)

// Methods of choosing the blocks of an image to read.
const (
	MethodExt4Bitmap = "ext4-bitmap"
	MethodXFSBtree   = "xfs-btree"
	// MethodPartitions: a partitioned disk, each ext2/3/4 or XFS
	// partition read by its filesystem's map, the rest whole.
	MethodPartitions = "partitions"
	MethodFull       = "full"
)
