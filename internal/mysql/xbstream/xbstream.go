// Package xbstream decodes the xbstream archive format mariabackup (and
// Percona's xtrabackup) writes with --stream=xbstream: a sequence of
// chunks, each naming the file it belongs to. A chunk is
//
//	magic    8 bytes  "XBSTCK01"
//	flags    1 byte   bit 0: the chunk may be ignored when its type is unknown
//	type     1 byte   'P' payload, 'E' end of file
//	pathlen  4 bytes  little-endian, less than 512
//	path     pathlen bytes, relative to the backup's root
//
// and a payload chunk goes on with
//
//	length   8 bytes  little-endian
//	offset   8 bytes  little-endian: where the payload goes in the file
//	checksum 4 bytes  little-endian CRC-32 (IEEE) of the payload
//	payload  length bytes
//
// A file is its payload chunks followed by its end chunk; an empty file
// is an end chunk alone.
package xbstream

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path"
	"slices"
	"strings"
)

// Magic starts every chunk.
const Magic = "XBSTCK01"

// Chunk types.
const (
	TypePayload = 'P'
	TypeEOF     = 'E'
)

// FlagIgnorable marks a chunk a reader may skip when it does not know
// its type.
const FlagIgnorable = 0x01

// MaxPath is the longest path a chunk may carry (mariabackup's FN_REFLEN
// less the terminating NUL).
const MaxPath = 511

// MaxPayload bounds one chunk's payload; mariabackup writes at most 10
// MiB. A larger length is taken for damage rather than allocated.
const MaxPayload = 64 << 20

// Chunk is one decoded chunk.
type Chunk struct {
	Flags  byte
	Type   byte
	Path   string
	Offset uint64
	// Data is the payload; it is valid until the next call of Next.
	Data []byte
}

// Reader reads chunks from a stream.
type Reader struct {
	r   io.Reader
	pos int64 // bytes read so far, for messages
	buf []byte
	hdr [20]byte
}

// NewReader reads chunks from r.
func NewReader(r io.Reader) *Reader { return &Reader{r: r} }

// Offset is how many bytes of the stream have been read.
func (x *Reader) Offset() int64 { return x.pos }

func (x *Reader) full(p []byte) error {
	n, err := io.ReadFull(x.r, p)
	x.pos += int64(n)
	if errors.Is(err, io.EOF) {
		err = io.ErrUnexpectedEOF
	}
	return err
}

// Next returns the next chunk, io.EOF at the end of the stream (which
// may only come between chunks), or an error naming the damage and its
// offset in the stream. A payload's checksum is checked; unknown chunk
// types marked ignorable are skipped.
func (x *Reader) Next() (*Chunk, error) {
	for {
		c, err := x.next()
		if c == nil && err == nil {
			continue // an ignorable chunk
		}
		return c, err
	}
}

func (x *Reader) next() (*Chunk, error) {
	start := x.pos
	h := x.hdr[:14]
	n, err := io.ReadFull(x.r, h)
	x.pos += int64(n)
	if n == 0 && errors.Is(err, io.EOF) {
		return nil, io.EOF
	}
	if err != nil {
		return nil, x.damaged(start, "the stream ends inside a chunk header")
	}
	if string(h[:8]) != Magic {
		return nil, x.damaged(start, fmt.Sprintf("no chunk magic (%q)", h[:8]))
	}
	c := &Chunk{Flags: h[8], Type: h[9]}
	known := c.Type == TypePayload || c.Type == TypeEOF
	if !known && c.Flags&FlagIgnorable == 0 {
		return nil, x.damaged(start, fmt.Sprintf("unknown chunk type 0x%02x", c.Type))
	}
	plen := binary.LittleEndian.Uint32(h[10:14])
	if plen > MaxPath {
		return nil, x.damaged(start, fmt.Sprintf("path length %d is too large", plen))
	}
	p := make([]byte, plen)
	if err := x.full(p); err != nil {
		return nil, x.damaged(start, "the stream ends inside a chunk's path")
	}
	c.Path = string(p)
	if c.Type == TypeEOF {
		return c, nil
	}
	if !known {
		// An ignorable chunk of a type we do not know: its layout is
		// unknown too, so only a payload-shaped one can be skipped. The
		// format's only extension (Percona's sparse chunks) is not
		// marked ignorable, so this is the conservative reading.
		return nil, x.damaged(start, fmt.Sprintf("ignorable chunk of unknown type 0x%02x cannot be skipped", c.Type))
	}
	hd := x.hdr[:20]
	if err := x.full(hd); err != nil {
		return nil, x.damaged(start, "the stream ends inside a payload header")
	}
	length := binary.LittleEndian.Uint64(hd[0:8])
	c.Offset = binary.LittleEndian.Uint64(hd[8:16])
	sum := binary.LittleEndian.Uint32(hd[16:20])
	if length > MaxPayload {
		return nil, x.damaged(start, fmt.Sprintf("payload length %d is too large", length))
	}
	if c.Offset > 1<<62 {
		return nil, x.damaged(start, fmt.Sprintf("payload offset %d is too large", c.Offset))
	}
	// The buffer grows as the payload arrives, so that a damaged length
	// costs no more memory than the bytes that are there.
	x.buf = x.buf[:0]
	for uint64(len(x.buf)) < length {
		step := min(length-uint64(len(x.buf)), 1<<20)
		n := len(x.buf)
		x.buf = slices.Grow(x.buf, int(step))[:n+int(step)]
		if err := x.full(x.buf[n:]); err != nil {
			return nil, x.damaged(start, "the stream ends inside a payload")
		}
	}
	c.Data = x.buf
	if got := crc32.ChecksumIEEE(c.Data); got != sum {
		return nil, x.damaged(start, fmt.Sprintf("checksum mismatch for %s at file offset %d: the chunk says %08x, the payload has %08x", c.Path, c.Offset, sum, got))
	}
	return c, nil
}

// Error is damage in the stream.
type Error struct {
	// Offset is where the damaged chunk starts in the stream.
	Offset int64
	Msg    string
}

func (e *Error) Error() string {
	return fmt.Sprintf("xbstream: damaged at byte %d: %s", e.Offset, e.Msg)
}

func (x *Reader) damaged(at int64, msg string) error { return &Error{Offset: at, Msg: msg} }

// CleanPath checks a chunk's path: relative, "/"-separated, without ".."
// or empty elements, and returns it cleaned ("./a" is "a").
func CleanPath(p string) (string, error) {
	if p == "" || strings.HasPrefix(p, "/") || strings.ContainsRune(p, 0) {
		return "", fmt.Errorf("xbstream: file path %q is not a relative path", p)
	}
	c := path.Clean(p)
	if c == "." || c == ".." || strings.HasPrefix(c, "../") {
		return "", fmt.Errorf("xbstream: file path %q leaves the backup", p)
	}
	return c, nil
}

// Files reads a stream and calls fn with each file's path and a reader
// of its content, one file at a time. fn may read the content partly or
// not at all; the rest is read and checked before the next file.
//
// mariabackup writes most files whole, one after the other (with
// --parallel=1), but copies the redo log (ib_logfile0) while the data
// files stream, so its chunks come between theirs. The file fn is
// reading is the current one; chunks of other files that come before
// its end are held aside (spooled: in memory up to 4 MiB each, then in a
// temporary file in spoolDir, or in memory when spoolDir is "") and
// handed to fn once the current file is done and theirs has ended. What
// is held aside is the redo log written during the backup, not a copy of
// the data.
//
// A payload that does not start where the one before it in its file
// ended (mariabackup writes files in order, without holes), a file
// without an end chunk, and damage are errors. An error from fn ends
// Files with it.
func Files(r io.Reader, spoolDir string, fn func(path string, content io.Reader) error) error {
	d := &demux{x: NewReader(r), spoolDir: spoolDir, spools: map[string]*spool{}}
	defer d.cleanup()
	for {
		for len(d.ready) > 0 {
			s := d.ready[0]
			d.ready = d.ready[1:]
			if err := d.deliver(s, fn); err != nil {
				return err
			}
		}
		c, err := d.x.Next()
		if err == io.EOF {
			for p := range d.spools {
				return &Error{Offset: d.x.Offset(), Msg: fmt.Sprintf("the stream ends inside %s (no end chunk)", p)}
			}
			return nil
		}
		if err != nil {
			return err
		}
		if _, ok := d.spools[c.Path]; ok {
			if err := d.route(c); err != nil {
				return err
			}
			continue
		}
		p, err := CleanPath(c.Path)
		if err != nil {
			return err
		}
		f := &fileReader{d: d, path: c.Path, first: c}
		if err := fn(p, f); err != nil {
			return err
		}
		if _, err := io.Copy(io.Discard, f); err != nil {
			return err
		}
	}
}

// spoolMem is how much of one held-aside file stays in memory.
const spoolMem = 4 << 20

// demux splits the stream into files.
type demux struct {
	x        *Reader
	spoolDir string
	spools   map[string]*spool // held-aside files not yet ended, by path as in the chunks
	ready    []*spool          // held-aside files that have ended, in the order they did
}

// spool is a file held aside.
type spool struct {
	path, clean string
	pos         uint64
	mem         bytes.Buffer
	f           *os.File
}

// route holds the chunk c of a file that is not the current one aside.
func (d *demux) route(c *Chunk) error {
	s := d.spools[c.Path]
	if s == nil {
		clean, err := CleanPath(c.Path)
		if err != nil {
			return err
		}
		s = &spool{path: c.Path, clean: clean}
		d.spools[c.Path] = s
	}
	if c.Type == TypeEOF {
		delete(d.spools, c.Path)
		d.ready = append(d.ready, s)
		return nil
	}
	if c.Offset != s.pos {
		return &Error{Offset: d.x.Offset(), Msg: fmt.Sprintf("%s: a payload at offset %d, where the file has %d bytes so far (payloads must follow each other)", s.path, c.Offset, s.pos)}
	}
	s.pos += uint64(len(c.Data))
	if s.f == nil && (d.spoolDir == "" || s.mem.Len()+len(c.Data) <= spoolMem) {
		s.mem.Write(c.Data)
		return nil
	}
	if s.f == nil {
		f, err := os.CreateTemp(d.spoolDir, "xbstream-spool-")
		if err != nil {
			return fmt.Errorf("xbstream: hold %s aside: %w", s.path, err)
		}
		s.f = f
	}
	if _, err := s.f.Write(c.Data); err != nil {
		return fmt.Errorf("xbstream: hold %s aside: %w", s.path, err)
	}
	return nil
}

// deliver hands an ended held-aside file to fn.
func (d *demux) deliver(s *spool, fn func(string, io.Reader) error) error {
	defer s.close()
	var r io.Reader = &s.mem
	if s.f != nil {
		if _, err := s.f.Seek(0, io.SeekStart); err != nil {
			return err
		}
		r = io.MultiReader(&s.mem, s.f)
	}
	if err := fn(s.clean, r); err != nil {
		return err
	}
	_, err := io.Copy(io.Discard, r)
	return err
}

func (s *spool) close() {
	if s.f != nil {
		s.f.Close()
		os.Remove(s.f.Name())
		s.f = nil
	}
}

func (d *demux) cleanup() {
	for _, s := range d.spools {
		s.close()
	}
	for _, s := range d.ready {
		s.close()
	}
}

// fileReader reads the current file's content from its chunks.
type fileReader struct {
	d     *demux
	path  string // as in the chunks
	first *Chunk // the chunk that started the file, not yet consumed
	pos   uint64 // bytes of the file returned so far
	data  []byte // the rest of the current payload
	done  bool
	err   error
}

func (f *fileReader) Read(p []byte) (int, error) {
	for len(f.data) == 0 {
		if f.err != nil {
			return 0, f.err
		}
		if f.done {
			return 0, io.EOF
		}
		c := f.first
		f.first = nil
		if c == nil {
			var err error
			if c, err = f.d.x.Next(); err == io.EOF {
				f.err = &Error{Offset: f.d.x.Offset(), Msg: fmt.Sprintf("the stream ends inside %s (no end chunk)", f.path)}
				continue
			} else if err != nil {
				f.err = err
				continue
			}
		}
		if c.Path != f.path {
			f.err = f.d.route(c)
			continue
		}
		if c.Type == TypeEOF {
			f.done = true
			continue
		}
		if c.Offset != f.pos {
			f.err = &Error{Offset: f.d.x.Offset(), Msg: fmt.Sprintf("%s: a payload at offset %d, where the file has %d bytes so far (payloads must follow each other)", f.path, c.Offset, f.pos)}
			continue
		}
		f.data = c.Data
	}
	n := copy(p, f.data)
	f.data = f.data[n:]
	f.pos += uint64(n)
	return n, nil
}

// Writer writes an xbstream, for tests and tools: one file at a time.
type Writer struct {
	w io.Writer
	// ChunkSize is the largest payload per chunk (default 1 MiB).
	ChunkSize int
}

// NewWriter writes chunks to w.
func NewWriter(w io.Writer) *Writer { return &Writer{w: w, ChunkSize: 1 << 20} }

// WriteFile writes the file name with content data: its payload chunks
// and its end chunk.
func (w *Writer) WriteFile(name string, data []byte) error {
	for off := 0; off < len(data); off += w.ChunkSize {
		end := min(off+w.ChunkSize, len(data))
		if err := w.Payload(name, uint64(off), data[off:end]); err != nil {
			return err
		}
	}
	return w.End(name)
}

// Payload writes one payload chunk.
func (w *Writer) Payload(name string, offset uint64, data []byte) error {
	var b bytes.Buffer
	w.head(&b, TypePayload, name)
	var t [20]byte
	binary.LittleEndian.PutUint64(t[0:], uint64(len(data)))
	binary.LittleEndian.PutUint64(t[8:], offset)
	binary.LittleEndian.PutUint32(t[16:], crc32.ChecksumIEEE(data))
	b.Write(t[:])
	b.Write(data)
	_, err := w.w.Write(b.Bytes())
	return err
}

// End writes a file's end chunk.
func (w *Writer) End(name string) error {
	var b bytes.Buffer
	w.head(&b, TypeEOF, name)
	_, err := w.w.Write(b.Bytes())
	return err
}

func (w *Writer) head(b *bytes.Buffer, typ byte, name string) {
	b.WriteString(Magic)
	b.WriteByte(0)
	b.WriteByte(typ)
	var l [4]byte
	binary.LittleEndian.PutUint32(l[:], uint32(len(name)))
	b.Write(l[:])
	b.WriteString(name)
}
