package backend

import (
	"bytes"
	"fmt"
	"io"
)

// ByteReader is a RewindReader over a byte slice.
type ByteReader struct {
	*bytes.Reader
	buf []byte
}

// NewByteReader returns a RewindReader over buf. buf must not change while
// the reader is in use.
func NewByteReader(buf []byte) *ByteReader {
	return &ByteReader{Reader: bytes.NewReader(buf), buf: buf}
}

// Length returns len of the whole buffer.
func (b *ByteReader) Length() int64 { return int64(len(b.buf)) }

// Rewind starts again at the first byte.
func (b *ByteReader) Rewind() error {
	_, err := b.Seek(0, io.SeekStart)
	return err
}

// Bytes returns the whole buffer, so that in-memory providers avoid a copy.
func (b *ByteReader) Bytes() []byte { return b.buf }

// ReadAll reads a whole RewindReader, checking that it yields Length bytes.
func ReadAll(rd RewindReader) ([]byte, error) {
	if br, ok := rd.(*ByteReader); ok {
		return br.Bytes(), nil
	}
	buf := make([]byte, rd.Length())
	if _, err := io.ReadFull(rd, buf); err != nil {
		return nil, fmt.Errorf("read %d bytes: %w", rd.Length(), err)
	}
	return buf, nil
}

// FileReader is a RewindReader over the first size bytes of an open file,
// read with ReadAt so that the file's offset does not matter.
type FileReader struct {
	*io.SectionReader
}

// NewFileReader returns a RewindReader over f[0:size].
func NewFileReader(f io.ReaderAt, size int64) *FileReader {
	return &FileReader{SectionReader: io.NewSectionReader(f, 0, size)}
}

// Length returns size.
func (f *FileReader) Length() int64 { return f.Size() }

// Rewind starts again at the first byte.
func (f *FileReader) Rewind() error {
	_, err := f.Seek(0, io.SeekStart)
	return err
}
