// Package cpio writes the "newc" cpio archives the Linux kernel unpacks
// as an initramfs: a 110-byte ASCII header per entry, the name with its
// NUL, then the data, each padded to 4 bytes, and a TRAILER!!! entry.
package cpio

import (
	"fmt"
	"io"
)

// File-type bits of an entry's mode, as in stat(2).
const (
	TypeDir     = 0o040000
	TypeFile    = 0o100000
	TypeSymlink = 0o120000
	TypeChar    = 0o020000
)

// Writer writes entries to an archive in the order they are added.
// Parent directories are not made for an entry: add them first.
type Writer struct {
	w   io.Writer
	n   int64
	ino uint32
	err error
}

// NewWriter starts an archive on w.
func NewWriter(w io.Writer) *Writer { return &Writer{w: w} }

// Dir adds a directory with permissions perm.
func (c *Writer) Dir(name string, perm uint32) error {
	return c.entry(name, TypeDir|perm&0o7777, nil, 0, 0)
}

// File adds a regular file with permissions perm.
func (c *Writer) File(name string, perm uint32, data []byte) error {
	return c.entry(name, TypeFile|perm&0o7777, data, 0, 0)
}

// Symlink adds a symbolic link to target.
func (c *Writer) Symlink(name, target string) error {
	return c.entry(name, TypeSymlink|0o777, []byte(target), 0, 0)
}

// CharDev adds a character device node.
func (c *Writer) CharDev(name string, perm uint32, major, minor int) error {
	return c.entry(name, TypeChar|perm&0o7777, nil, major, minor)
}

// Close writes the trailer; it does not close the underlying writer.
func (c *Writer) Close() error {
	return c.entry("TRAILER!!!", 0, nil, 0, 0)
}

func (c *Writer) entry(name string, mode uint32, data []byte, rmaj, rmin int) error {
	if c.err != nil {
		return c.err
	}
	if name == "" || name[0] == '/' {
		c.err = fmt.Errorf("cpio: entry name %q must be relative and not empty", name)
		return c.err
	}
	c.ino++
	nlink := 1
	if mode&0o170000 == TypeDir {
		nlink = 2
	}
	// magic, ino, mode, uid, gid, nlink, mtime, filesize, devmajor,
	// devminor, rdevmajor, rdevminor, namesize, check
	c.printf("070701%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X",
		c.ino, mode, 0, 0, nlink, 0, len(data), 0, 0, rmaj, rmin, len(name)+1, 0)
	c.write([]byte(name))
	c.write([]byte{0})
	c.pad()
	c.write(data)
	c.pad()
	return c.err
}

func (c *Writer) printf(format string, args ...any) {
	if c.err != nil {
		return
	}
	n, err := fmt.Fprintf(c.w, format, args...)
	c.n += int64(n)
	c.err = err
}

func (c *Writer) write(b []byte) {
	if c.err != nil || len(b) == 0 {
		return
	}
	n, err := c.w.Write(b)
	c.n += int64(n)
	c.err = err
}

func (c *Writer) pad() {
	if r := c.n % 4; r != 0 {
		c.write(make([]byte, 4-r))
	}
}
