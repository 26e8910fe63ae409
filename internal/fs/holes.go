package fs

import (
	"errors"
	"fmt"
	"io"
	"os"

	"golang.org/x/sys/unix"
)

// Region is a run of a file that holds data: Len bytes from offset Off.
// Whatever lies between regions is a hole that reads as zeros.
type Region struct {
	Off, Len int64
}

// DataRegions lists the data regions of the first size bytes of f, in
// order, using lseek with SEEK_DATA and SEEK_HOLE, so holes are found
// without reading them. A file that is all hole gives no regions. When the
// filesystem cannot tell, the whole file is one region.
//
// Regions are as the filesystem reports them: block-aligned, and a region
// may hold zeros that were written out. f's file offset is restored before
// returning; read the regions with ReadAt.
func DataRegions(f *os.File, size int64) ([]Region, error) {
	if size <= 0 {
		return nil, nil
	}
	var rs []Region
	err := withFd(f, func(fd int) error {
		var err error
		rs, err = dataRegionsFd(fd, size)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("data regions of %q: %w", f.Name(), err)
	}
	return rs, nil
}

// DataRegionsFd is DataRegions for a raw file descriptor.
func DataRegionsFd(fd int, size int64) ([]Region, error) {
	if size <= 0 {
		return nil, nil
	}
	rs, err := dataRegionsFd(fd, size)
	if err != nil {
		return nil, fmt.Errorf("data regions: %w", err)
	}
	return rs, nil
}

func dataRegionsFd(fd int, size int64) (rs []Region, err error) {
	pos, err := unix.Seek(fd, 0, io.SeekCurrent)
	if err != nil {
		return nil, err
	}
	defer func() {
		if _, serr := unix.Seek(fd, pos, io.SeekStart); serr != nil && err == nil {
			err = serr
		}
	}()
	for off := int64(0); off < size; {
		data, err := unix.Seek(fd, off, unix.SEEK_DATA)
		if errors.Is(err, unix.ENXIO) {
			break // no data from off to the end of the file
		}
		if err != nil {
			if off == 0 && (errors.Is(err, unix.EINVAL) || isNotSupported(err)) {
				return []Region{{Off: 0, Len: size}}, nil
			}
			return nil, err
		}
		if data >= size {
			break
		}
		hole, err := unix.Seek(fd, data, unix.SEEK_HOLE)
		if errors.Is(err, unix.ENXIO) {
			break // the file shrank under us: no more data
		}
		if err != nil {
			return nil, err
		}
		if hole <= data {
			hole = size // a filesystem contradicting itself: take the rest as data
		}
		hole = min(hole, size)
		rs = append(rs, Region{Off: data, Len: hole - data})
		off = hole
	}
	return rs, nil
}

// withFd runs fn with f's descriptor without switching it to blocking mode
// as f.Fd would.
func withFd(f *os.File, fn func(fd int) error) error {
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var ferr error
	if err := rc.Control(func(fd uintptr) { ferr = fn(int(fd)) }); err != nil {
		return err
	}
	return ferr
}
