package rescue

import (
	"bytes"
	"compress/gzip"
	"os"
	"path"
	"path/filepath"
	"slices"
	"sort"
	"strings"

	"github.com/rewind-backup/rewind/internal/cpio"
)

// entry is one file, link or device of the initramfs.
type entry struct {
	mode   uint32 // cpio type bits and permissions
	data   []byte
	target string // of a symlink
	major  int
	minor  int
}

// image is the initramfs being assembled, by path without the leading
// "/". Parent directories are made when it is written.
type image struct {
	entries map[string]entry
	// usrMerged maps the top folders that are links into /usr on the
	// host (bin -> usr/bin); files are stored at their /usr paths and
	// the links are made in the image too, as on the host.
	usrMerged map[string]string
	size      int64
	pending   []string // busybox applet links to make where no tool is
}

func newImage() *image {
	im := &image{entries: map[string]entry{}, usrMerged: map[string]string{}}
	for _, top := range []string{"bin", "sbin", "lib", "lib64"} {
		if t, err := os.Readlink("/" + top); err == nil && strings.HasPrefix(strings.TrimPrefix(t, "/"), "usr/") {
			im.usrMerged[top] = strings.TrimPrefix(t, "/")
		}
	}
	return im
}

// canon is where p (absolute or relative to /) is stored in the image.
func (im *image) canon(p string) string {
	p = strings.TrimPrefix(path.Clean("/"+p), "/")
	top, rest, _ := strings.Cut(p, "/")
	if t, ok := im.usrMerged[top]; ok {
		if rest == "" {
			return t
		}
		return t + "/" + rest
	}
	return p
}

// has reports whether the image holds something at p.
func (im *image) has(p string) bool {
	_, ok := im.entries[im.canon(p)]
	return ok
}

func (im *image) file(p string, perm uint32, data []byte) {
	c := im.canon(p)
	if old, ok := im.entries[c]; ok {
		im.size -= int64(len(old.data))
	}
	im.entries[c] = entry{mode: cpio.TypeFile | perm, data: data}
	im.size += int64(len(data))
}

func (im *image) dir(p string, perm uint32) {
	im.entries[im.canon(p)] = entry{mode: cpio.TypeDir | perm}
}

func (im *image) symlink(p, target string) {
	im.entries[im.canon(p)] = entry{mode: cpio.TypeSymlink | 0o777, target: target}
}

func (im *image) charDev(p string, perm uint32, major, minor int) {
	im.entries[im.canon(p)] = entry{mode: cpio.TypeChar | perm, major: major, minor: minor}
}

// chmod sets the permissions of what is at p.
func (im *image) chmod(p string, perm uint32) {
	c := im.canon(p)
	if e, ok := im.entries[c]; ok {
		e.mode = e.mode&0o170000 | perm
		im.entries[c] = e
	}
}

// copyFile stores the host file src (following links) at dst with its
// permissions.
func (im *image) copyFile(src, dst string) error {
	b, err := os.ReadFile(src)
	if err != nil {
		return err
	}
	st, err := os.Stat(src)
	if err != nil {
		return err
	}
	im.file(dst, uint32(st.Mode().Perm()), b)
	return nil
}

// copyLib stores a shared library at its path; a symbolic link (the
// loader's /lib64/ld-linux-x86-64.so.2, libfoo.so.1 -> libfoo.so.1.2)
// becomes a link to the file, stored once at its real path.
func (im *image) copyLib(p string) error {
	if im.has(p) {
		return nil
	}
	fi, err := os.Lstat(p)
	if err != nil {
		return err
	}
	if fi.Mode()&os.ModeSymlink == 0 {
		return im.copyFile(p, p)
	}
	real, err := filepath.EvalSymlinks(p)
	if err != nil {
		return err
	}
	if !im.has(real) {
		if err := im.copyFile(real, real); err != nil {
			return err
		}
	}
	im.symlink(p, "/"+im.canon(real))
	return nil
}

// copyTree stores the host folder src and everything under it at the
// same place, and returns the ELF programs among the files.
func (im *image) copyTree(src string) ([]string, error) {
	var progs []string
	err := filepath.WalkDir(src, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		switch {
		case d.IsDir() && slices.Contains(GrubSkip, p):
			return filepath.SkipDir
		case d.IsDir():
			im.dir(p, 0o755)
		case d.Type()&os.ModeSymlink != 0:
			t, err := os.Readlink(p)
			if err != nil {
				return err
			}
			im.symlink(p, t)
		case d.Type().IsRegular():
			if info, err := d.Info(); err == nil && info.Mode()&0o111 != 0 && IsELF(p) {
				progs = append(progs, p)
			}
			return im.copyFile(p, p)
		}
		return nil
	})
	return progs, err
}

// cpioGzip writes the image as a gzipped newc cpio archive, each folder
// before what it holds.
func (im *image) cpioGzip() ([]byte, error) {
	var out bytes.Buffer
	z, _ := gzip.NewWriterLevel(&out, gzip.DefaultCompression)
	w := cpio.NewWriter(z)
	for top, t := range im.usrMerged {
		if _, ok := im.entries[top]; !ok {
			im.entries[top] = entry{mode: cpio.TypeSymlink | 0o777, target: t}
		}
	}
	names := make([]string, 0, len(im.entries))
	for n := range im.entries {
		names = append(names, n)
	}
	sort.Strings(names)
	made := map[string]bool{}
	var parents func(p string)
	parents = func(p string) {
		d := path.Dir(p)
		if d == "." || made[d] {
			return
		}
		parents(d)
		made[d] = true
		if e, ok := im.entries[d]; ok && e.mode&0o170000 == cpio.TypeDir {
			w.Dir(d, e.mode&0o7777)
		} else {
			w.Dir(d, 0o755)
		}
	}
	for _, n := range names {
		if made[n] {
			continue
		}
		parents(n)
		e := im.entries[n]
		switch e.mode & 0o170000 {
		case cpio.TypeDir:
			made[n] = true
			w.Dir(n, e.mode&0o7777)
		case cpio.TypeSymlink:
			w.Symlink(n, e.target)
		case cpio.TypeChar:
			w.CharDev(n, e.mode&0o7777, e.major, e.minor)
		default:
			w.File(n, e.mode&0o7777, e.data)
		}
	}
	if err := w.Close(); err != nil {
		return nil, err
	}
	if err := z.Close(); err != nil {
		return nil, err
	}
	return out.Bytes(), nil
}
