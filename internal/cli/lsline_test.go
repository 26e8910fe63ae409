package cli

import (
	"errors"
	"testing"
	"time"

	"github.com/rewind-backup/rewind/internal/tree"
	"golang.org/x/sys/unix"
)

func TestLsModeAsGNULs(t *testing.T) {
	for _, c := range []struct {
		typ  tree.Type
		mode uint32
		want string
	}{
		{tree.File, 0o644, "-rw-r--r--"},
		{tree.File, 0o4750, "-rwsr-x---"},
		{tree.File, 0o4640, "-rwSr-----"},
		{tree.File, 0o2755, "-rwxr-sr-x"},
		{tree.File, 0o2745, "-rwxr-Sr-x"},
		{tree.Dir, 0o1755, "drwxr-xr-t"},
		{tree.Dir, 0o1754, "drwxr-xr-T"},
		{tree.Dir, 0o7777, "drwsrwsrwt"},
		{tree.Dir, 0o7000, "d--S--S--T"},
		{tree.CharDev, 0o644, "crw-r--r--"},
		{tree.BlockDev, 0o660, "brw-rw----"},
		{tree.Symlink, 0o777, "lrwxrwxrwx"},
		{tree.FIFO, 0o600, "prw-------"},
		{tree.Socket, 0o755, "srwxr-xr-x"},
		{tree.File, 0, "----------"},
	} {
		if got := lsMode(&tree.Node{Type: c.typ, Mode: c.mode}); got != c.want {
			t.Errorf("%v %o: %q, want %q", c.typ, c.mode, got, c.want)
		}
	}
}

func TestLsLineColumns(t *testing.T) {
	mt := time.Date(2026, 3, 4, 5, 6, 7, 0, time.Local).UnixNano()
	for _, c := range []struct {
		n       tree.Node
		p, want string
		refused error
	}{
		{tree.Node{Type: tree.File, Mode: 0o4750, Links: 2, User: "root", Group: "wheel", Size: 1234, MTime: mt}, "/bin/su",
			"-rwsr-x---   2 root     wheel          1234 2026-03-04 05:06:07 /bin/su", nil},
		{tree.Node{Type: tree.CharDev, Mode: 0o666, Links: 1, UID: 0, GID: 5, Rdev: unix.Mkdev(4095, 1<<20-1), MTime: mt}, "/dev/x",
			"crw-rw-rw-   1 0        5        4095, 1048575 2026-03-04 05:06:07 /dev/x", nil},
		{tree.Node{Type: tree.Symlink, Mode: 0o777, Links: 1, User: "a", Group: "b", MTime: mt, LinkTarget: "t\nx"}, "/l\x01",
			`lrwxrwxrwx   1 a        b                 3 2026-03-04 05:06:07 /l\x01 -> t\nx`, nil},
		{tree.Node{Type: tree.Dir, Mode: 0o755, User: "u", Group: "g", MTime: mt}, "/d/..",
			`drwxr-xr-x   ? u        g                 0 2026-03-04 05:06:07 /d/..  (refused by restore and dump: bad)`, errors.New("bad")},
	} {
		if got := lsLine(c.p, &c.n, c.refused); got != c.want {
			t.Errorf("lsLine:\n%q\nwant\n%q", got, c.want)
		}
	}
}
