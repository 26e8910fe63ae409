package cli

import (
	"io/fs"
	"path"
	"strconv"
	"time"

	"github.com/rewind-backup/rewind/internal/snapshot"
	"github.com/rewind-backup/rewind/internal/tree"
	"github.com/spf13/cobra"
)

// NodeJSON describes one entry in `ls --json` and `find --json`.
type NodeJSON struct {
	MessageType string    `json:"message_type"`
	SnapshotID  string    `json:"snapshot_id,omitempty"`
	Path        string    `json:"path"`
	Name        string    `json:"name"`
	Type        string    `json:"type"`
	Size        uint64    `json:"size"`
	Mode        string    `json:"mode"`
	UID         uint32    `json:"uid"`
	GID         uint32    `json:"gid"`
	User        string    `json:"user,omitempty"`
	Group       string    `json:"group,omitempty"`
	MTime       time.Time `json:"mtime"`
	LinkTarget  string    `json:"link_target,omitempty"`
	Flags       []string  `json:"flags,omitempty"`
	NameError   string    `json:"name_error,omitempty"`
}

func nodeJSON(msg, p string, n *tree.Node, refused error) NodeJSON {
	j := NodeJSON{MessageType: msg, Path: p, Name: n.Name, Type: n.Type.String(), Size: n.Size,
		Mode: modeString(n), UID: n.UID, GID: n.GID, User: n.User, Group: n.Group,
		MTime: time.Unix(0, n.MTime).UTC(), LinkTarget: n.LinkTarget}
	if n.Flags&tree.FlagChanged != 0 {
		j.Flags = append(j.Flags, "changed-during-backup")
	}
	if n.Flags&tree.FlagUnreadable != 0 {
		j.Flags = append(j.Flags, "unreadable")
	}
	if n.Flags&tree.FlagInFlux != 0 {
		j.Flags = append(j.Flags, "in-flux")
	}
	if refused != nil {
		j.Flags = append(j.Flags, "invalid-name")
		j.NameError = refused.Error()
	}
	return j
}

func modeString(n *tree.Node) string {
	m := fs.FileMode(n.Mode & 0o777)
	if n.Mode&0o4000 != 0 {
		m |= fs.ModeSetuid
	}
	if n.Mode&0o2000 != 0 {
		m |= fs.ModeSetgid
	}
	if n.Mode&0o1000 != 0 {
		m |= fs.ModeSticky
	}
	switch n.Type {
	case tree.Dir:
		m |= fs.ModeDir
	case tree.Symlink:
		m |= fs.ModeSymlink
	case tree.BlockDev:
		m |= fs.ModeDevice
	case tree.CharDev:
		m |= fs.ModeDevice | fs.ModeCharDevice
	case tree.FIFO:
		m |= fs.ModeNamedPipe
	case tree.Socket:
		m |= fs.ModeSocket
	}
	return m.String()
}

// shownPath escapes a snapshot path for text output: bytes that are not
// printable (a newline in a name could forge a line) and backslashes and
// quotes, so that a refused name, shown quoted (snapshot.WalkNames),
// cannot be mistaken for a stored one.
func shownPath(p string) string {
	q := strconv.Quote(p)
	return q[1 : len(q)-1]
}

// shownEntry is a path as ls and find print it, followed for an entry
// whose name restore refuses by why.
func shownEntry(p string, refused error) string {
	if refused != nil {
		return shownPath(p) + "  (refused by restore and dump: " + refused.Error() + ")"
	}
	return shownPath(p)
}

func newLsCmd(g *globals) *cobra.Command {
	var recursive, long bool
	var sf snapFilter
	cmd := &cobra.Command{
		Use:   "ls SNAPSHOT[:PATH]",
		Short: "List a directory inside a snapshot",
		Example: `  rewind ls latest
  rewind ls latest:/etc -l
  rewind ls 4f2a91c3:/home --recursive --json`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			r, sn, p, done, err := g.openSnapshot(ctx, "ls", args[0], sf.filter())
			if err != nil {
				return err
			}
			defer done()
			p = path.Clean("/" + p)
			n, err := snapshot.Lookup(ctx, r, sn, p)
			if err != nil {
				return err
			}
			show := func(q string, n *tree.Node, refused error) {
				switch {
				case g.json:
					j := nodeJSON("node", q, n, refused)
					j.SnapshotID = sn.ID.String()
					g.ui.JSONLine(j)
				case long:
					g.ui.Printf("%s\n", lsLine(q, n, refused))
				default:
					g.ui.Printf("%s\n", shownEntry(q, refused))
				}
			}
			if n.Type != tree.Dir {
				show(p, n, nil)
				return nil
			}
			return snapshot.WalkNames(ctx, r, p, n.Subtree, func(q string, c *tree.Node, refused error) error {
				show(q, c, refused)
				if !recursive && c.Type == tree.Dir {
					return snapshot.ErrSkipDir
				}
				return nil
			})
		},
	}
	cmd.Flags().BoolVarP(&recursive, "recursive", "R", false, "list subdirectories too")
	cmd.Flags().BoolVarP(&long, "long", "l", false, "show mode, owner, size and time")
	sf.add(cmd)
	return cmd
}
