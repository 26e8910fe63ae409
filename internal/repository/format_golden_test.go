package repository_test

import (
	"bytes"
	"encoding/hex"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/rewind-backup/rewind/internal/id"
	"github.com/rewind-backup/rewind/internal/tree"
)

// goldenID returns a fixed ID derived from s.
func goldenID(s string) id.ID {
	var i id.ID
	copy(i[:], seeded(s, id.Size))
	return i
}

// goldenNodes uses every field of a node, with values that need
// multi-byte varints, negative times and non-UTF-8 names.
func goldenNodes() []tree.Node {
	return []tree.Node{
		{Name: "dir", Type: tree.Dir, Mode: 0o1777, UID: 1000, GID: 100, User: "alice", Group: "users",
			MTime: 1700000000123456789, CTime: -5, ATime: 1, Inode: 42, DeviceID: 2049, Links: 3,
			Subtree: []id.ID{goldenID("sub1"), goldenID("sub2")}},
		{Name: "file\xff\n with space", Type: tree.File, Mode: 0o4755, UID: 1 << 31, GID: 0, Size: 1 << 40,
			MTime: -1 << 62, Inode: 1<<64 - 1, Links: 1,
			Content: []tree.Chunk{{ID: goldenID("c1"), Size: 100}, {Size: 1 << 39}, {ID: goldenID("c2"), Size: 7}},
			Xattrs:  []tree.Xattr{{Name: "user.x", Value: []byte{0, 1, 2}}, {Name: "security.selinux", Value: []byte("system_u:object_r:etc_t:s0")}},
			Flags:   tree.FlagChanged},
		{Name: "link", Type: tree.Symlink, Mode: 0o777, LinkTarget: "../etc/passwd"},
		{Name: "sda", Type: tree.BlockDev, Mode: 0o660, Rdev: 0x0801},
		{Name: "tty", Type: tree.CharDev, Mode: 0o620, Rdev: 0x0400},
		{Name: "fifo", Type: tree.FIFO, Mode: 0o600},
		{Name: "sock", Type: tree.Socket, Mode: 0o755},
		{Name: "huge", Type: tree.File, Size: 1 << 50, ContentLists: []id.ID{goldenID("list")},
			Flags: tree.FlagUnreadable | tree.FlagInFlux, Error: "read: input/output error"},
	}
}

// TestGoldenTreeEncoding pins the tree blob encoding (docs/FORMAT.md,
// "Trees"): a node list and a content list. Regenerate with
// go test -run TestGoldenTreeEncoding -update, only for a new format
// version.
func TestGoldenTreeEncoding(t *testing.T) {
	nodes := goldenNodes()
	blob := []byte{tree.KindNodes}
	for k := range nodes {
		blob = tree.AppendNode(blob, &nodes[k])
	}
	chunks := []tree.Chunk{{ID: goldenID("a"), Size: 1}, {Size: 1 << 30}, {ID: goldenID("b"), Size: 8 << 20}}
	list := tree.EncodeContentList(chunks)

	for _, g := range []struct {
		file string
		got  []byte
	}{
		{"tree-nodes-v1.golden", blob},
		{"tree-contentlist-v1.golden", list},
	} {
		want := golden(t, g.file, g.got)
		if !bytes.Equal(g.got, want) {
			t.Errorf("%s: encoding changed:\ngot  %x\nwant %x", g.file, g.got, want)
		}
	}

	// The golden bytes decode to the same values, whatever the encoder
	// does now.
	d, err := tree.NewDecoder(golden(t, "tree-nodes-v1.golden", nil))
	if err != nil {
		t.Fatal(err)
	}
	for k := 0; ; k++ {
		n, ok, err := d.Next()
		if err != nil {
			t.Fatalf("node %d: %v", k, err)
		}
		if !ok {
			if k != len(nodes) {
				t.Fatalf("decoded %d nodes, want %d", k, len(nodes))
			}
			break
		}
		if !reflect.DeepEqual(n, nodes[k]) {
			t.Errorf("node %d:\n%+v\nwant\n%+v", k, n, nodes[k])
		}
	}
	cs, err := tree.DecodeContentList(golden(t, "tree-contentlist-v1.golden", nil))
	if err != nil || !reflect.DeepEqual(cs, chunks) {
		t.Fatalf("content list: %+v, %v", cs, err)
	}
}

// golden returns the bytes of a hex golden file in testdata, first writing
// got there if -update is set and got is not nil.
func golden(t *testing.T, name string, got []byte) []byte {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update && got != nil {
		var sb strings.Builder
		for b := got; len(b) > 0; {
			n := min(len(b), 32)
			sb.WriteString(hex.EncodeToString(b[:n]) + "\n")
			b = b[n:]
		}
		if err := os.WriteFile(path, []byte(sb.String()), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	b, err := hex.DecodeString(strings.Join(strings.Fields(string(raw)), ""))
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return b
}

// TestGoldenTreeInodeFlags pins the optional inode flags field (tag 23),
// added within format version 1: nodes without flags encode exactly as in
// tree-nodes-v1.golden, which readers from before the field still read
// (they skip tag 23 as any unknown tag). Regenerate with
// go test -run TestGoldenTreeInodeFlags -update, only for a new format
// version.
func TestGoldenTreeInodeFlags(t *testing.T) {
	nodes := []tree.Node{
		{Name: "etc", Type: tree.Dir, Mode: 0o755, Links: 2, Subtree: []id.ID{goldenID("etc")},
			InodeFlags: 0x10 | 0x10000, HasInodeFlags: true}, // immutable, dirsync
		{Name: "audit.log", Type: tree.File, Mode: 0o600, Size: 5, Links: 1,
			Content: []tree.Chunk{{ID: goldenID("log"), Size: 5}}, InodeFlags: 0x20 | 0x40 | 0x80, HasInodeFlags: true}, // append, nodump, noatime
		{Name: "vm.img", Type: tree.File, Mode: 0o644, Size: 1 << 30, Links: 1,
			Content: []tree.Chunk{{Size: 1 << 30}}, InodeFlags: 0x800000, HasInodeFlags: true}, // nocow
		{Name: "plain", Type: tree.File, Mode: 0o644, Links: 1, HasInodeFlags: true}, // read, none set
	}
	blob := []byte{tree.KindNodes}
	for k := range nodes {
		blob = tree.AppendNode(blob, &nodes[k])
	}
	want := golden(t, "tree-nodes-inodeflags.golden", blob)
	if !bytes.Equal(blob, want) {
		t.Errorf("encoding changed:\ngot  %x\nwant %x", blob, want)
	}
	d, err := tree.NewDecoder(want)
	if err != nil {
		t.Fatal(err)
	}
	for k := range nodes {
		n, ok, err := d.Next()
		if err != nil || !ok || !reflect.DeepEqual(n, nodes[k]) {
			t.Fatalf("node %d: %+v, %v, %v; want %+v", k, n, ok, err, nodes[k])
		}
	}
}
