package cli

import (
	"fmt"
	"strconv"
	"time"

	"github.com/rewind-backup/rewind/internal/tree"
	"golang.org/x/sys/unix"
)

// lsMode is an entry's type and permissions as GNU ls -l shows them:
// "-rwsr-x---", "drwxrwxrwt", "crw-rw----", "lrwxrwxrwx". Set-user-ID,
// set-group-ID and sticky show in the execute places as s or t, or S or T
// when the execute bit under them is clear.
func lsMode(n *tree.Node) string {
	b := []byte("?---------")
	switch n.Type {
	case tree.File:
		b[0] = '-'
	case tree.Dir:
		b[0] = 'd'
	case tree.Symlink:
		b[0] = 'l'
	case tree.CharDev:
		b[0] = 'c'
	case tree.BlockDev:
		b[0] = 'b'
	case tree.FIFO:
		b[0] = 'p'
	case tree.Socket:
		b[0] = 's'
	}
	const rwx = "rwx"
	for i := 0; i < 9; i++ {
		if n.Mode&(1<<(8-i)) != 0 {
			b[1+i] = rwx[i%3]
		}
	}
	special := func(bit uint32, at int, set byte) {
		if n.Mode&bit == 0 {
			return
		}
		if b[at] == 'x' {
			b[at] = set
		} else {
			b[at] = set - 'a' + 'A'
		}
	}
	special(0o4000, 3, 's')
	special(0o2000, 6, 's')
	special(0o1000, 9, 't')
	return string(b)
}

// lsSize is the size column: the byte count, the target's length for a
// symbolic link, or "major, minor" for a device.
func lsSize(n *tree.Node) string {
	if n.Type == tree.CharDev || n.Type == tree.BlockDev {
		return fmt.Sprintf("%d, %d", unix.Major(n.Rdev), unix.Minor(n.Rdev))
	}
	if n.Type == tree.Symlink && n.Size == 0 {
		// lstat's size of a symbolic link is its target's length.
		return strconv.Itoa(len(n.LinkTarget))
	}
	return strconv.FormatUint(n.Size, 10)
}

// lsLine is one entry as ls -l and find -l print it, in the columns of
// GNU ls -l: mode, link count, owner, group (names, or numbers when the
// backup found no name), size or device numbers, modification time,
// path, and " -> target" for a symbolic link. Odd bytes in the path and
// target are escaped (shownPath); an entry whose name restore refuses
// says why.
func lsLine(p string, n *tree.Node, refused error) string {
	owner := n.User
	if owner == "" {
		owner = strconv.FormatUint(uint64(n.UID), 10)
	}
	group := n.Group
	if group == "" {
		group = strconv.FormatUint(uint64(n.GID), 10)
	}
	// A snapshot made without link counts shows "?", as ls does for a
	// count it cannot read.
	links := "?"
	if n.Links > 0 {
		links = strconv.FormatUint(n.Links, 10)
	}
	s := fmt.Sprintf("%s %3s %-8s %-8s %10s %s %s", lsMode(n), links, owner, group, lsSize(n),
		time.Unix(0, n.MTime).Local().Format(timeFormat), shownPath(p))
	if n.Type == tree.Symlink {
		s += " -> " + shownPath(n.LinkTarget)
	}
	if refused != nil {
		s += "  (refused by restore and dump: " + refused.Error() + ")"
	}
	return s
}
