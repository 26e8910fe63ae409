package recovery

import (
	"bufio"
	"fmt"
	"io"
	"path"
	"strconv"
	"strings"
	"unicode"
)

// Mapping is what `rewind recover --map FILE` reads: which target disk
// each recorded disk goes to, and partitions given another size. The
// file is lines of text; "#" starts a comment:
//
//	# recorded disk -> target disk
//	sda -> /dev/vdb
//	/dev/nvme0n1 -> /dev/sdc
//	# a partition given a size (the last partition of a disk still
//	# takes what is left unless it is named here)
//	sda2 size=20GiB
//
// Names are kernel names or /dev paths; sizes are bytes or a number with
// K, M, G, T (powers of 1024, "KiB" and "KB" alike).
type Mapping struct {
	// Disks maps a recorded disk's name ("sda") to a target's path.
	Disks map[string]string `json:"disks"`
	// Sizes maps a recorded partition's name ("sda2") to its new size in
	// bytes.
	Sizes map[string]int64 `json:"sizes,omitempty"`
}

// ParseMapping reads a mapping file.
func ParseMapping(r io.Reader) (*Mapping, error) {
	m := &Mapping{Disks: map[string]string{}, Sizes: map[string]int64{}}
	targets := map[string]string{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 64<<10)
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		if i := strings.IndexByte(line, '#'); i >= 0 {
			line = line[:i]
		}
		line = strings.TrimSpace(line)
		if line == "" {
			continue
		}
		bad := func(format string, args ...any) error {
			return fmt.Errorf("map line %d %q: %s", n, line, fmt.Sprintf(format, args...))
		}
		if src, dst, ok := strings.Cut(line, "->"); ok {
			src, dst = devName(strings.TrimSpace(src)), strings.TrimSpace(dst)
			if src == "" || dst == "" || strings.ContainsFunc(src+dst, unicode.IsSpace) {
				return nil, bad(`want "RECORDED-DISK -> /dev/TARGET"`)
			}
			if !strings.HasPrefix(dst, "/") {
				return nil, bad("the target %q must be a path such as /dev/vdb", dst)
			}
			if _, dup := m.Disks[src]; dup {
				return nil, bad("disk %s is mapped twice", src)
			}
			if prev, dup := targets[dst]; dup {
				return nil, bad("target %s already takes disk %s", dst, prev)
			}
			m.Disks[src], targets[dst] = dst, src
			continue
		}
		fs := strings.Fields(line)
		if len(fs) != 2 || !strings.HasPrefix(fs[1], "size=") {
			return nil, bad(`want "RECORDED-DISK -> /dev/TARGET" or "PARTITION size=SIZE"`)
		}
		size, err := ParseSize(strings.TrimPrefix(fs[1], "size="))
		if err != nil {
			return nil, bad("%v", err)
		}
		part := devName(fs[0])
		if _, dup := m.Sizes[part]; dup {
			return nil, bad("partition %s is sized twice", part)
		}
		m.Sizes[part] = size
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read map: %w", err)
	}
	return m, nil
}

// devName is the kernel name of a device given as a name or /dev path.
func devName(s string) string {
	if strings.HasPrefix(s, "/dev/") {
		return path.Base(s)
	}
	return s
}

// ParseSize reads "512", "20G", "20GiB", "1.5T" into bytes. A size must
// be positive.
func ParseSize(s string) (int64, error) {
	t := strings.TrimSuffix(strings.TrimSuffix(strings.ToUpper(strings.TrimSpace(s)), "B"), "I")
	mult := int64(1)
	if t != "" {
		if i := strings.IndexByte("KMGT", t[len(t)-1]); i >= 0 {
			mult = int64(1) << (10 * (i + 1))
			t = t[:len(t)-1]
		}
	}
	f, err := strconv.ParseFloat(t, 64)
	if err != nil || f <= 0 || f*float64(mult) >= 1<<62 || t != strings.TrimSpace(t) {
		return 0, fmt.Errorf("size %q: want a positive number of bytes, or with K, M, G or T", s)
	}
	return int64(f * float64(mult)), nil
}
