package archiver

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/rewind-backup/rewind/internal/id"
	"github.com/rewind-backup/rewind/internal/pack"
	"github.com/rewind-backup/rewind/internal/repository"
	"github.com/rewind-backup/rewind/internal/snapshot"
	"github.com/rewind-backup/rewind/internal/testutil"
	"github.com/rewind-backup/rewind/internal/tree"
)

// withoutInodeFlags stores a copy of sn's trees with no node's inode
// flags read, as a rewind from before they were captured wrote them, and
// returns it as an unsaved snapshot to use as a parent.
func withoutInodeFlags(t *testing.T, r *repository.Repository, sn *snapshot.Snapshot) *snapshot.Snapshot {
	t.Helper()
	ctx := context.Background()
	var rewrite func(ids []id.ID) []id.ID
	rewrite = func(ids []id.ID) []id.ID {
		var nodes []tree.Node
		err := snapshot.EachNode(ctx, r, ids, func(n *tree.Node) error {
			c := *n
			c.InodeFlags, c.HasInodeFlags = 0, false
			if c.Type == tree.Dir {
				c.Subtree = rewrite(c.Subtree)
			}
			nodes = append(nodes, c)
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		b := tree.Builder{Emit: func(blob []byte) (id.ID, error) {
			i, _, err := r.SaveBlob(ctx, pack.TreeBlob, blob)
			return i, err
		}}
		for i := range nodes {
			if err := b.Add(&nodes[i]); err != nil {
				t.Fatal(err)
			}
		}
		out, err := b.Finish()
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	r.StartWriting(ctx)
	old := *sn
	old.Tree = rewrite(sn.Tree)
	if err := r.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	return &old
}

// TestInodeFlagsCaptured backs up files and a folder with chattr flags on
// ext4: a changed file and folder get theirs read; an unchanged one keeps
// its parent snapshot's; and against a parent from before flags were
// captured, the unchanged file and folder get them read, not the
// parent's absence of them.
func TestInodeFlagsCaptured(t *testing.T) {
	testutil.RequireRoot(t)
	src := filepath.Join(testutil.Ext4(t), "src")
	const noDump, noAtime, dirSync = 0x40, 0x80, 0x10000
	want := map[string]uint32{"kept": noDump | noAtime, "plain": 0, "dir": dirSync | noDump}
	if err := os.MkdirAll(filepath.Join(src, "dir"), 0o755); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(src, "kept"), randomBytes(1, 3000))
	writeFile(t, filepath.Join(src, "plain"), randomBytes(2, 3000))
	for name, f := range want {
		fd, err := unix.Open(filepath.Join(src, name), unix.O_RDONLY|unix.O_NONBLOCK, 0)
		if err != nil {
			t.Fatal(err)
		}
		cur, err := unix.IoctlGetUint32(fd, unix.FS_IOC_GETFLAGS)
		if err == nil {
			err = unix.IoctlSetPointerInt(fd, unix.FS_IOC_SETFLAGS, int(int32(cur|f)))
		}
		unix.Close(fd)
		if err != nil {
			t.Fatal(err)
		}
	}
	r := newTestRepo(t, "")
	check := func(sn *snapshot.Snapshot, what string) {
		t.Helper()
		for name, f := range want {
			n := lookup(t, r, sn, filepath.Join(src, name))
			if !n.HasInodeFlags || n.InodeFlags != f {
				t.Errorf("%s: %s has inode flags %#x (read %v), want %#x", what, name, n.InodeFlags, n.HasInodeFlags, f)
			}
		}
	}
	sn1, _ := backup(t, r, Options{}, src)
	check(sn1, "first backup")
	sn2, _ := backup(t, r, Options{Parent: sn1}, src)
	check(sn2, "unchanged backup")
	if sn2.Summary.BytesRead != 0 {
		t.Errorf("unchanged backup read %d bytes", sn2.Summary.BytesRead)
	}
	old := withoutInodeFlags(t, r, sn1)
	if n := lookup(t, r, old, filepath.Join(src, "kept")); n.HasInodeFlags {
		t.Fatal("the rewritten parent still has inode flags")
	}
	sn3, _ := backup(t, r, Options{Parent: old}, src)
	check(sn3, "backup against a parent without inode flags")
	if sn3.Summary.BytesRead != 0 || sn3.Summary.FilesUnchanged != 2 {
		t.Errorf("backup against a parent without inode flags read %d bytes, %d files unchanged; want 0 and 2",
			sn3.Summary.BytesRead, sn3.Summary.FilesUnchanged)
	}
}
