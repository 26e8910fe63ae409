package qemu

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os/exec"
	"strconv"
)

// Disk formats qemu-img reads and writes.
const (
	FormatRaw   = "raw"
	FormatQcow2 = "qcow2"
)

// CreateOverlay makes a qcow2 file at path whose reads fall through to
// backing (of backingFormat) and whose writes stay in path: the backing
// file is never written.
func CreateOverlay(ctx context.Context, path, backing, backingFormat string) error {
	_, err := run(ctx, ImgProgram, "create", "-q", "-f", FormatQcow2, "-b", backing, "-F", backingFormat, path)
	return err
}

// Create makes an empty image of format and size bytes at path.
func Create(ctx context.Context, path, format string, size int64) error {
	_, err := run(ctx, ImgProgram, "create", "-q", "-f", format, path, strconv.FormatInt(size, 10))
	return err
}

// Convert copies the disk src (of srcFormat) into a new image dst of
// dstFormat, leaving zero areas unallocated.
func Convert(ctx context.Context, src, srcFormat, dst, dstFormat string) error {
	_, err := run(ctx, ImgProgram, "convert", "-f", srcFormat, "-O", dstFormat, src, dst)
	return err
}

// Compare says whether disks a and b (of the formats given) hold the
// same content; images of different sizes differ.
func Compare(ctx context.Context, a, aFormat, b, bFormat string) (bool, error) {
	_, err := run(ctx, ImgProgram, "compare", "-q", "-s", "-f", aFormat, "-F", bFormat, a, b)
	if err == nil {
		return true, nil
	}
	var ee *exec.ExitError
	if errors.As(err, &ee) && ee.ExitCode() == 1 {
		return false, nil
	}
	return false, err
}

// ImageInfo is what qemu-img info says of an image.
type ImageInfo struct {
	Format          string `json:"format"`
	VirtualSize     int64  `json:"virtual-size"`
	ActualSize      int64  `json:"actual-size"`
	BackingFilename string `json:"backing-filename"`
	DirtyFlag       bool   `json:"dirty-flag"`
	FormatSpecific  struct {
		Type string `json:"type"`
		Data struct {
			Bitmaps []struct {
				Name        string   `json:"name"`
				Granularity int64    `json:"granularity"`
				Flags       []string `json:"flags"`
			} `json:"bitmaps"`
		} `json:"data"`
	} `json:"format-specific"`
}

// Info reads an image's format, sizes, backing file and persistent
// bitmaps. shared opens it without taking QEMU's lock, to read an image
// a running QEMU has open.
func Info(ctx context.Context, path string, shared bool) (*ImageInfo, error) {
	args := []string{"info", "--output=json"}
	if shared {
		args = append(args, "-U")
	}
	out, err := run(ctx, ImgProgram, append(args, path)...)
	if err != nil {
		return nil, err
	}
	return parseInfo(out)
}

func parseInfo(b []byte) (*ImageInfo, error) {
	var info ImageInfo
	if err := json.Unmarshal(b, &info); err != nil {
		return nil, fmt.Errorf("qemu-img info output: %w", err)
	}
	if info.Format == "" || info.VirtualSize < 0 {
		return nil, errors.New("qemu-img info output names no format or a negative size")
	}
	return &info, nil
}
