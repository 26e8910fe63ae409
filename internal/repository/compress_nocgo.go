//go:build !cgo

package repository

func zstdCompress(r *Repository, dst, src []byte) []byte {
	return r.zenc.EncodeAll(src, dst[:0])
}
