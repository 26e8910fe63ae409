package chunker

import (
	"errors"
	"fmt"
	"io"
)

// maxEmptyReads is how many reads in a row may return no data and no
// error before Reader gives up with io.ErrNoProgress.
const maxEmptyReads = 100

// Reader cuts one stream into chunks. It holds the per-stream state; the
// Chunker it came from is shared. A Reader is not safe for concurrent use.
type Reader struct {
	c   *Chunker
	r   io.Reader
	buf []byte
	pos int // next unread byte in buf
	end int // end of the data in buf
	eof bool
	err error
}

// BufferSize is the buffer length NewReader allocates when given none:
// twice Max, so at most one Max-sized remainder is moved per refill.
func (c *Chunker) BufferSize() int { return 2 * c.max }

// NewReader returns a Reader that reads r into buf and cuts it. buf must
// hold at least Max bytes, else (for instance when nil) a buffer of
// BufferSize bytes is allocated. Larger buffers mean fewer reads and less
// copying; chunks returned by Next point into buf.
func (c *Chunker) NewReader(r io.Reader, buf []byte) *Reader {
	rd := &Reader{c: c}
	rd.init(r, buf)
	return rd
}

func (rd *Reader) init(r io.Reader, buf []byte) {
	if len(buf) < rd.c.max {
		buf = make([]byte, rd.c.BufferSize())
	}
	*rd = Reader{c: rd.c, r: r, buf: buf}
}

// Reset makes rd cut a new stream r, keeping its Chunker and buffer.
func (rd *Reader) Reset(r io.Reader) { rd.init(r, rd.buf) }

// Next returns the next chunk. The chunk points into the Reader's buffer
// and is valid only until the next call of Next or Reset. At the end of
// the stream Next returns nil, io.EOF; a read error is returned wrapped,
// and again on every later call.
func (rd *Reader) Next() ([]byte, error) {
	if rd.err != nil {
		return nil, rd.err
	}
	if rd.end-rd.pos < rd.c.max && !rd.eof {
		if err := rd.fill(); err != nil {
			rd.err = fmt.Errorf("chunker: read: %w", err)
			return nil, rd.err
		}
	}
	if rd.pos == rd.end {
		return nil, io.EOF
	}
	data := rd.buf[rd.pos:rd.end]
	n := rd.c.Cut(data)
	rd.pos += n
	return data[:n:n], nil
}

// fill moves the unread data to the front of the buffer and reads until
// the buffer is full or the stream ends.
func (rd *Reader) fill() error {
	if rd.pos > 0 {
		rd.end = copy(rd.buf, rd.buf[rd.pos:rd.end])
		rd.pos = 0
	}
	empty := 0
	for rd.end < len(rd.buf) {
		n, err := rd.r.Read(rd.buf[rd.end:])
		if n < 0 || n > len(rd.buf)-rd.end {
			return fmt.Errorf("reader returned invalid count %d", n)
		}
		rd.end += n
		switch {
		case errors.Is(err, io.EOF):
			rd.eof = true
			return nil
		case err != nil:
			return err
		case n == 0:
			empty++
			if empty >= maxEmptyReads {
				return io.ErrNoProgress
			}
		default:
			empty = 0
		}
	}
	return nil
}

// Split cuts the stream r and calls fn with each chunk in order. The chunk
// points into buf (see NewReader for its size) and is valid only during
// the call; fn must copy what it keeps. Split returns fn's first error
// unchanged, or a wrapped read error.
func (c *Chunker) Split(r io.Reader, buf []byte, fn func(chunk []byte) error) error {
	rd := Reader{c: c}
	rd.init(r, buf)
	for {
		chunk, err := rd.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		if err := fn(chunk); err != nil {
			return err
		}
	}
}
