package fault

import "io"

// flipReader flips one bit of what it reads: bit number bit counted from
// the reader's first byte (a negative bit flips nothing).
type flipReader struct {
	rd  io.Reader
	pos int64 // bytes read so far
	bit int64
}

func (r *flipReader) Read(p []byte) (int, error) {
	n, err := r.rd.Read(p)
	if i := r.bit/8 - r.pos; r.bit >= 0 && i >= 0 && i < int64(n) {
		p[i] ^= 1 << (r.bit % 8)
	}
	r.pos += int64(n)
	return n, err
}

// splitReader returns at most size bytes per Read.
type splitReader struct {
	rd   io.Reader
	size int
}

func (r *splitReader) Read(p []byte) (int, error) {
	if len(p) > r.size {
		p = p[:r.size]
	}
	return r.rd.Read(p)
}
