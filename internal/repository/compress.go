package repository

// compressLevel is the zstd level of stored blobs: zstd's default (3).
// Both encoders below write standard zstd frames without a checksum;
// readers decode them with klauspost/compress either way.
const compressLevel = 3

// compress appends the zstd frame of src to dst[:0] and returns it. It is
// safe for concurrent use.
func (r *Repository) compress(dst, src []byte) []byte {
	return zstdCompress(r, dst, src)
}
