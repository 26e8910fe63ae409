package fs

import (
	"net"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/rewind-backup/rewind/internal/testutil"
	"github.com/rewind-backup/rewind/internal/tree"
)

func TestNodeFromStat(t *testing.T) {
	dir := t.TempDir()
	p := func(name string) string { return filepath.Join(dir, name) }
	must(t, os.WriteFile(p("file"), []byte("12345"), 0o600))
	must(t, unix.Chmod(p("file"), 0o4751))
	must(t, os.Link(p("file"), p("link")))
	must(t, os.Mkdir(p("dir"), 0o700))
	must(t, unix.Chmod(p("dir"), 0o1777))
	must(t, os.Symlink("file", p("symlink")))
	must(t, unix.Mkfifo(p("fifo"), 0o600))
	l, err := net.Listen("unix", p("socket"))
	must(t, err)
	defer l.Close()

	tests := []struct {
		name  string
		typ   tree.Type
		mode  uint32
		size  uint64
		links uint64
		rdev  uint64
	}{
		{"file", tree.File, 0o4751, 5, 2, 0},
		{"dir", tree.Dir, 0o1777, 0, 2, 0},
		{"symlink", tree.Symlink, 0o777, 0, 1, 0},
		{"fifo", tree.FIFO, 0o600, 0, 1, 0},
		{"socket", tree.Socket, 0, 0, 1, 0},
	}
	if testutil.IsRoot() {
		must(t, unix.Mknod(p("chr"), unix.S_IFCHR|0o640, int(unix.Mkdev(1, 5))))
		must(t, unix.Mknod(p("blk"), unix.S_IFBLK|0o600, int(unix.Mkdev(259, 1<<19))))
		tests = append(tests,
			struct {
				name  string
				typ   tree.Type
				mode  uint32
				size  uint64
				links uint64
				rdev  uint64
			}{"chr", tree.CharDev, 0o640, 0, 1, unix.Mkdev(1, 5)},
			struct {
				name  string
				typ   tree.Type
				mode  uint32
				size  uint64
				links uint64
				rdev  uint64
			}{"blk", tree.BlockDev, 0o600, 0, 1, unix.Mkdev(259, 1<<19)})
	}
	for _, tt := range tests {
		var st unix.Stat_t
		must(t, unix.Lstat(p(tt.name), &st))
		n := NodeFromStat(tt.name, &st)
		if tt.name == "socket" {
			tt.mode = st.Mode & 0o7777 // depends on the umask
		}
		if n.Name != tt.name || n.Type != tt.typ || n.Mode != tt.mode || n.Size != tt.size ||
			n.Links != tt.links || n.Rdev != tt.rdev {
			t.Errorf("%s: got %v mode %#o size %d links %d rdev %#x, want %v %#o %d %d %#x",
				tt.name, n.Type, n.Mode, n.Size, n.Links, n.Rdev, tt.typ, tt.mode, tt.size, tt.links, tt.rdev)
		}
		if n.UID != uint32(os.Geteuid()) || n.GID != st.Gid || n.Inode != st.Ino || n.DeviceID != st.Dev {
			t.Errorf("%s: owner %d:%d inode %d dev %d, stat says %d:%d %d %d",
				tt.name, n.UID, n.GID, n.Inode, n.DeviceID, st.Uid, st.Gid, st.Ino, st.Dev)
		}
		if n.MTime != st.Mtim.Sec*1e9+st.Mtim.Nsec || n.ATime != st.Atim.Sec*1e9+st.Atim.Nsec ||
			n.CTime != st.Ctim.Sec*1e9+st.Ctim.Nsec {
			t.Errorf("%s: times %d %d %d differ from stat", tt.name, n.MTime, n.ATime, n.CTime)
		}
	}

	// A type Linux does not have.
	if n := NodeFromStat("x", &unix.Stat_t{Mode: 0o170000 | 0o644}); n.Type != 0 || n.Type.String() != "unknown" {
		t.Errorf("unknown type: got %v", n.Type)
	}
}
