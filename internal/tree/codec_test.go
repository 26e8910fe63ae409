package tree

import (
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/rewind-backup/rewind/internal/id"
)

func sampleNodes() []Node {
	var a, b id.ID
	a[0], b[31] = 1, 2
	return []Node{
		{Name: "dir", Type: Dir, Mode: 0o1777, UID: 1000, GID: 100, User: "alice", Group: "users",
			MTime: 1700000000123456789, CTime: -5, ATime: 1, Inode: 42, DeviceID: 2049, Links: 3, Subtree: []id.ID{a, b},
			InodeFlags: 0x10 | 0x40, HasInodeFlags: true},
		{Name: "f\xff\nname with space", Type: File, Mode: 0o4755, Size: 1 << 40,
			Content:    []Chunk{{ID: a, Size: 100}, {Size: 1 << 39}, {ID: b, Size: 7}},
			Xattrs:     []Xattr{{Name: "user.x", Value: []byte{0, 1, 2}}, {Name: "system.posix_acl_access", Value: nil}},
			InodeFlags: 0xffffffff, HasInodeFlags: true},
		{Name: "read, none set", Type: File, HasInodeFlags: true},
		{Name: "l", Type: Symlink, LinkTarget: "/etc/passwd"},
		{Name: "dev", Type: BlockDev, Rdev: 0x0801},
		{Name: "big", Type: File, ContentLists: []id.ID{a}, Flags: FlagChanged | FlagUnreadable, Error: "permission denied"},
		{Name: strings.Repeat("n", 255), Type: FIFO},
	}
}

func TestRoundTrip(t *testing.T) {
	nodes := sampleNodes()
	var blobs [][]byte
	b := Builder{Split: 200, Emit: func(blob []byte) (id.ID, error) {
		blobs = append(blobs, append([]byte(nil), blob...))
		return id.ID{byte(len(blobs))}, nil
	}}
	for i := range nodes {
		if err := b.Add(&nodes[i]); err != nil {
			t.Fatal(err)
		}
	}
	ids, err := b.Finish()
	if err != nil {
		t.Fatal(err)
	}
	if len(ids) < 2 || len(ids) != len(blobs) {
		t.Fatalf("expected a split listing, got %d ids for %d blobs", len(ids), len(blobs))
	}
	var got []Node
	for _, blob := range blobs {
		d, err := NewDecoder(blob)
		if err != nil {
			t.Fatal(err)
		}
		for {
			n, ok, err := d.Next()
			if err != nil {
				t.Fatal(err)
			}
			if !ok {
				break
			}
			got = append(got, n)
		}
	}
	if len(got) != len(nodes) {
		t.Fatalf("decoded %d nodes, want %d", len(got), len(nodes))
	}
	for i := range nodes {
		if !equalNodes(&got[i], &nodes[i]) {
			t.Errorf("node %d differs:\n got %+v\nwant %+v", i, got[i], nodes[i])
		}
	}
}

func TestEmptyDirectory(t *testing.T) {
	var blobs [][]byte
	b := Builder{Emit: func(blob []byte) (id.ID, error) {
		blobs = append(blobs, append([]byte(nil), blob...))
		return id.ID{1}, nil
	}}
	ids, err := b.Finish()
	if err != nil || len(ids) != 1 || len(blobs) != 1 || len(blobs[0]) != 1 {
		t.Fatalf("empty dir: ids %v blobs %v err %v", ids, blobs, err)
	}
}

func TestLongRecordLength(t *testing.T) {
	// A record longer than 16383 bytes needs a three-byte length prefix.
	n := Node{Name: "x", Type: File, Error: strings.Repeat("e", 70000)}
	buf := AppendNode([]byte{KindNodes}, &n)
	d, _ := NewDecoder(buf)
	got, ok, err := d.Next()
	if err != nil || !ok || got.Error != n.Error {
		t.Fatalf("long record: ok %v err %v", ok, err)
	}
	// And a tiny one needs a single byte.
	small := AppendNode([]byte{KindNodes}, &Node{Type: FIFO})
	d, _ = NewDecoder(small)
	if _, ok, err := d.Next(); !ok || err != nil {
		t.Fatalf("short record: ok %v err %v", ok, err)
	}
}

func TestCorrupt(t *testing.T) {
	nodes := sampleNodes()
	buf := []byte{KindNodes}
	for i := range nodes {
		buf = AppendNode(buf, &nodes[i])
	}
	for cut := 1; cut < len(buf); cut += 7 {
		d, err := NewDecoder(buf[:cut])
		if err != nil {
			t.Fatal(err)
		}
		for {
			_, ok, err := d.Next()
			if err != nil || !ok {
				break
			}
		}
	}
	if _, err := NewDecoder([]byte{KindContentList}); err == nil {
		t.Fatal("wrong kind accepted")
	}
	if _, err := DecodeContentList(EncodeContentList([]Chunk{{ID: id.ID{1}, Size: 3}})[:10]); err == nil {
		t.Fatal("truncated content list accepted")
	}
}

// TestInodeFlagsField checks the optional inode flags field (tag 23): a
// node without flags encodes as before it existed, one with flags decodes
// to them, and a value past 32 bits or of the wrong wire type is corrupt.
func TestInodeFlagsField(t *testing.T) {
	n := Node{Name: "f", Type: File, Size: 3}
	plain := AppendNode(nil, &n)
	n.InodeFlags, n.HasInodeFlags = 0x800010, true
	flagged := AppendNode(nil, &n)
	want := appendVarint(append([]byte(nil), plain[1:]...), tagInodeFlags, 0x800010)
	if plain[0] != byte(len(plain)-1) || flagged[0] != byte(len(want)) || string(flagged[1:]) != string(want) {
		t.Fatalf("encoding with flags %x, want the plain record %x followed by tag 23", flagged, plain)
	}
	got, err := DecodeNode(flagged[1:])
	if err != nil || got.InodeFlags != n.InodeFlags || !got.HasInodeFlags {
		t.Fatalf("decoded flags %#x (read %v), %v; want %#x", got.InodeFlags, got.HasInodeFlags, err, n.InodeFlags)
	}
	// Flags read and found clear are written, as a zero.
	n.InodeFlags = 0
	clear := AppendNode(nil, &n)
	if got, err := DecodeNode(clear[1:]); err != nil || !got.HasInodeFlags || got.InodeFlags != 0 || len(clear) != len(plain)+3 {
		t.Errorf("flags read as none: %x decodes to %+v, %v", clear, got, err)
	}
	if got, _ := DecodeNode(plain[1:]); got.HasInodeFlags {
		t.Error("a node without tag 23 decodes as having had its flags read")
	}
	for name, rec := range map[string][]byte{
		"over 32 bits": appendVarint(append([]byte(nil), plain[1:]...), tagInodeFlags, 1<<32),
		"bytes wire":   appendBytes(append([]byte(nil), plain[1:]...), tagInodeFlags, "\x10"),
	} {
		if _, err := DecodeNode(rec); !errors.Is(err, ErrCorrupt) {
			t.Errorf("%s: %v, want ErrCorrupt", name, err)
		}
	}
	// A field from a still newer writer is skipped, as tag 23 is by
	// readers older than it.
	if got, err := DecodeNode(appendVarint(append([]byte(nil), plain[1:]...), tagInodeFlags+1, 5)); err != nil || got.Name != "f" {
		t.Errorf("unknown tag 24: %+v, %v", got, err)
	}
}

func TestContentList(t *testing.T) {
	cs := []Chunk{{ID: id.ID{9}, Size: 65536}, {Size: 1 << 40}}
	got, err := DecodeContentList(EncodeContentList(cs))
	if err != nil || !reflect.DeepEqual(got, cs) {
		t.Fatalf("got %v %v", got, err)
	}
}

func FuzzTree(f *testing.F) {
	nodes := sampleNodes()
	buf := []byte{KindNodes}
	for i := range nodes {
		buf = AppendNode(buf, &nodes[i])
	}
	f.Add(buf)
	f.Add([]byte{KindNodes})
	f.Add(EncodeContentList([]Chunk{{ID: id.ID{1}, Size: 5}}))
	f.Fuzz(func(t *testing.T, data []byte) {
		_, _ = DecodeContentList(data)
		d, err := NewDecoder(data)
		if err != nil {
			return
		}
		var decoded []Node
		for {
			n, ok, err := d.Next()
			if err != nil || !ok {
				break
			}
			decoded = append(decoded, n)
		}
		// Whatever decodes must re-encode and decode to the same nodes.
		re := []byte{KindNodes}
		for i := range decoded {
			re = AppendNode(re, &decoded[i])
		}
		d2, _ := NewDecoder(re)
		for i := range decoded {
			n, ok, err := d2.Next()
			if err != nil || !ok {
				t.Fatalf("re-encoded node %d does not decode: %v", i, err)
			}
			if n.Name != decoded[i].Name || n.Size != decoded[i].Size || len(n.Content) != len(decoded[i].Content) ||
				n.InodeFlags != decoded[i].InodeFlags || n.HasInodeFlags != decoded[i].HasInodeFlags {
				t.Fatalf("node %d changed on re-encoding", i)
			}
		}
	})
}

// equalNodes compares field by field, treating nil and empty slices alike.
func equalNodes(a, b *Node) bool {
	ca, cb := *a, *b
	ca.Xattrs, cb.Xattrs, ca.Content, cb.Content = nil, nil, nil, nil
	ca.Subtree, cb.Subtree, ca.ContentLists, cb.ContentLists = nil, nil, nil, nil
	if !reflect.DeepEqual(ca, cb) || len(a.Xattrs) != len(b.Xattrs) || len(a.Content) != len(b.Content) ||
		len(a.Subtree) != len(b.Subtree) || len(a.ContentLists) != len(b.ContentLists) {
		return false
	}
	for i := range a.Xattrs {
		if a.Xattrs[i].Name != b.Xattrs[i].Name || string(a.Xattrs[i].Value) != string(b.Xattrs[i].Value) {
			return false
		}
	}
	for i := range a.Content {
		if a.Content[i] != b.Content[i] {
			return false
		}
	}
	for i := range a.Subtree {
		if a.Subtree[i] != b.Subtree[i] {
			return false
		}
	}
	for i := range a.ContentLists {
		if a.ContentLists[i] != b.ContentLists[i] {
			return false
		}
	}
	return true
}
