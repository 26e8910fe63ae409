package snapshot_test

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/rewind-backup/rewind/internal/id"
	"github.com/rewind-backup/rewind/internal/pack"
	"github.com/rewind-backup/rewind/internal/repository"
	"github.com/rewind-backup/rewind/internal/snapshot"
	"github.com/rewind-backup/rewind/internal/tree"
)

// testTree is a small hand-built snapshot:
//
//	/etc/hosts            file, chunks inline
//	/etc/big              file, chunks in two content-list blobs
//	/home/alice/f000..f059 files, listed in several tree blobs
//	/home/bob             empty directory
//	/link                 symlink to home
type testTree struct {
	sn    *snapshot.Snapshot
	nodes map[string]tree.Node // by path
	paths []string             // in walk order
	big   []tree.Chunk
}

func buildTree(t *testing.T, r *repository.Repository) *testTree {
	t.Helper()
	ctx := context.Background()
	tt := &testTree{nodes: map[string]tree.Node{}}
	r.StartWriting(ctx)
	emit := func(blob []byte) (id.ID, error) {
		i, _, err := r.SaveBlob(ctx, pack.TreeBlob, blob)
		return i, err
	}
	data := func(s string) tree.Chunk {
		i, _, err := r.SaveBlob(ctx, pack.DataBlob, []byte(s))
		if err != nil {
			t.Fatal(err)
		}
		return tree.Chunk{ID: i, Size: uint64(len(s))}
	}
	// dir stores the nodes of one directory, split into blobs of about
	// split bytes, and records them under prefix.
	dir := func(prefix string, split int, nodes []tree.Node) []id.ID {
		b := tree.Builder{Emit: emit, Split: split}
		for k := range nodes {
			if err := b.Add(&nodes[k]); err != nil {
				t.Fatal(err)
			}
			p := prefix + "/" + nodes[k].Name
			tt.nodes[p] = nodes[k]
		}
		ids, err := b.Finish()
		if err != nil {
			t.Fatal(err)
		}
		return ids
	}

	var alice []tree.Node
	for k := range 60 {
		alice = append(alice, tree.Node{Name: fmt.Sprintf("f%03d", k), Type: tree.File, Mode: 0o644, UID: 1000,
			Size: 6, MTime: int64(k), Inode: uint64(k + 10), Content: []tree.Chunk{data(fmt.Sprintf("alice%d", k%10))}})
	}
	aliceTree := dir("/home/alice", 300, alice)
	if len(aliceTree) < 3 {
		t.Fatalf("alice's listing is %d blobs, want several", len(aliceTree))
	}
	bobTree := dir("/home/bob", 0, nil)
	home := dir("/home", 0, []tree.Node{
		{Name: "alice", Type: tree.Dir, Mode: 0o700, UID: 1000, Subtree: aliceTree},
		{Name: "bob", Type: tree.Dir, Mode: 0o700, UID: 1001, Subtree: bobTree},
	})
	tt.big = []tree.Chunk{data("part one "), {Size: 4096}, data("part two "), data("part three")}
	l1, err := emit(tree.EncodeContentList(tt.big[:2]))
	if err != nil {
		t.Fatal(err)
	}
	l2, err := emit(tree.EncodeContentList(tt.big[2:]))
	if err != nil {
		t.Fatal(err)
	}
	etc := dir("/etc", 0, []tree.Node{
		{Name: "big", Type: tree.File, Mode: 0o600, Size: 4096 + 28, ContentLists: []id.ID{l1, l2}},
		{Name: "hosts", Type: tree.File, Mode: 0o644, Size: 9, Content: []tree.Chunk{data("127.0.0.1")}},
	})
	root := dir("", 0, []tree.Node{
		{Name: "etc", Type: tree.Dir, Mode: 0o755, Subtree: etc},
		{Name: "home", Type: tree.Dir, Mode: 0o755, Subtree: home},
		{Name: "link", Type: tree.Symlink, Mode: 0o777, LinkTarget: "home"},
	})
	if err := r.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	tt.sn = save(t, r, root, 0, "h", []string{"/etc", "/home"})
	tt.paths = []string{"/etc", "/etc/big", "/etc/hosts", "/home", "/home/alice"}
	for _, n := range alice {
		tt.paths = append(tt.paths, "/home/alice/"+n.Name)
	}
	tt.paths = append(tt.paths, "/home/bob", "/link")
	return tt
}

func TestLookup(t *testing.T) {
	ctx := context.Background()
	r, _ := newRepo(t)
	tt := buildTree(t, r)

	for _, p := range []string{"/", "", ".", "/..", "//"} {
		n, err := snapshot.Lookup(ctx, r, tt.sn, p)
		if err != nil || n.Type != tree.Dir || !slices.Equal(n.Subtree, tt.sn.Tree) {
			t.Fatalf("root as %q: %+v, %v", p, n, err)
		}
	}
	for p, want := range tt.nodes {
		n, err := snapshot.Lookup(ctx, r, tt.sn, p)
		if err != nil {
			t.Fatalf("%s: %v", p, err)
		}
		if !reflect.DeepEqual(*n, want) {
			t.Fatalf("%s:\n%+v\nwant\n%+v", p, *n, want)
		}
	}
	// Unclean paths name the same nodes.
	for p, want := range map[string]string{
		"home/alice/f059":          "/home/alice/f059",
		"/home//alice/./f000/":     "/home/alice/f000",
		"/etc/../home/bob":         "/home/bob",
		"/../../etc/hosts":         "/etc/hosts",
		"/home/alice/f030/../f031": "/home/alice/f031",
	} {
		n, err := snapshot.Lookup(ctx, r, tt.sn, p)
		if err != nil || !reflect.DeepEqual(*n, tt.nodes[want]) {
			t.Fatalf("%s: got %+v, %v; want %s", p, n, err, want)
		}
	}
	for _, p := range []string{"/nope", "/home/carol", "/home/alice/f060", "/home/alice/f0", "/home/bob/x", "/ETC"} {
		if _, err := snapshot.Lookup(ctx, r, tt.sn, p); !errors.Is(err, snapshot.ErrPathNotFound) || !strings.Contains(err.Error(), tt.sn.ID.Short()) {
			t.Errorf("%s: got %v, want ErrPathNotFound naming the snapshot", p, err)
		}
	}
	// Files and symlinks have no children; symlinks are not followed.
	for _, p := range []string{"/etc/hosts/x", "/link/alice", "/home/alice/f001/a/b"} {
		_, err := snapshot.Lookup(ctx, r, tt.sn, p)
		if !errors.Is(err, snapshot.ErrPathNotFound) || !strings.Contains(err.Error(), "not a directory") {
			t.Errorf("%s: got %v, want a not-a-directory error", p, err)
		}
	}
}

func TestWalk(t *testing.T) {
	ctx := context.Background()
	r, _ := newRepo(t)
	tt := buildTree(t, r)

	// Keep every node: none may change when later blobs are loaded.
	var paths []string
	kept := map[string]*tree.Node{}
	err := snapshot.Walk(ctx, r, "/", tt.sn.Tree, func(p string, n *tree.Node) error {
		paths = append(paths, p)
		kept[p] = n
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(paths, tt.paths) {
		t.Fatalf("walk order:\n%v\nwant\n%v", paths, tt.paths)
	}
	for p, n := range kept {
		if !reflect.DeepEqual(*n, tt.nodes[p]) {
			t.Fatalf("%s changed after the walk went on:\n%+v\nwant\n%+v", p, *n, tt.nodes[p])
		}
	}

	// ErrSkipDir skips a directory's children, not its siblings.
	paths = nil
	err = snapshot.Walk(ctx, r, "/", tt.sn.Tree, func(p string, n *tree.Node) error {
		paths = append(paths, p)
		if p == "/home/alice" || p == "/etc/hosts" {
			return snapshot.ErrSkipDir
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	want := slices.DeleteFunc(slices.Clone(tt.paths), func(p string) bool { return strings.HasPrefix(p, "/home/alice/") })
	if !slices.Equal(paths, want) {
		t.Fatalf("walk with skip:\n%v\nwant\n%v", paths, want)
	}

	// Any other error ends the walk and is returned as is.
	stop := errors.New("enough")
	n := 0
	err = snapshot.Walk(ctx, r, "/", tt.sn.Tree, func(p string, _ *tree.Node) error {
		n++
		if p == "/home/alice/f010" {
			return stop
		}
		return nil
	})
	if err != stop || n != 5+11 {
		t.Fatalf("walk ended with %v after %d nodes", err, n)
	}

	// A walk from a subdirectory, with a relative prefix.
	alice, err := snapshot.Lookup(ctx, r, tt.sn, "/home/alice")
	if err != nil {
		t.Fatal(err)
	}
	paths = nil
	err = snapshot.Walk(ctx, r, "x", alice.Subtree, func(p string, _ *tree.Node) error {
		paths = append(paths, p)
		return nil
	})
	if err != nil || len(paths) != 60 || paths[0] != "x/f000" || paths[59] != "x/f059" {
		t.Fatalf("walk below alice: %d paths from %v, %v", len(paths), paths[:min(len(paths), 1)], err)
	}
}

func TestEachNode(t *testing.T) {
	ctx := context.Background()
	r, _ := newRepo(t)
	tt := buildTree(t, r)
	alice, err := snapshot.Lookup(ctx, r, tt.sn, "/home/alice")
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	err = snapshot.EachNode(ctx, r, alice.Subtree, func(n *tree.Node) error {
		names = append(names, n.Name)
		return nil
	})
	if err != nil || len(names) != 60 || !slices.IsSorted(names) {
		t.Fatalf("%d names, sorted %v, %v", len(names), slices.IsSorted(names), err)
	}
	bob, err := snapshot.Lookup(ctx, r, tt.sn, "/home/bob")
	if err != nil {
		t.Fatal(err)
	}
	err = snapshot.EachNode(ctx, r, bob.Subtree, func(n *tree.Node) error {
		return fmt.Errorf("empty directory has %q", n.Name)
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestLoadContent(t *testing.T) {
	ctx := context.Background()
	r, _ := newRepo(t)
	tt := buildTree(t, r)
	hosts, err := snapshot.Lookup(ctx, r, tt.sn, "/etc/hosts")
	if err != nil {
		t.Fatal(err)
	}
	cs, err := snapshot.LoadContent(ctx, r, hosts)
	if err != nil || !slices.Equal(cs, hosts.Content) {
		t.Fatalf("inline content: %v, %v", cs, err)
	}
	big, err := snapshot.Lookup(ctx, r, tt.sn, "/etc/big")
	if err != nil {
		t.Fatal(err)
	}
	cs, err = snapshot.LoadContent(ctx, r, big)
	if err != nil || !slices.Equal(cs, tt.big) {
		t.Fatalf("content lists: %v, %v; want %v", cs, err, tt.big)
	}
	var content []byte
	for _, c := range cs {
		if c.IsHole() {
			content = append(content, make([]byte, c.Size)...)
			continue
		}
		b, err := r.LoadBlob(ctx, pack.DataBlob, c.ID, nil)
		if err != nil {
			t.Fatal(err)
		}
		content = append(content, b...)
	}
	if uint64(len(content)) != big.Size || !strings.HasPrefix(string(content), "part one ") || !strings.HasSuffix(string(content), "part two part three") {
		t.Fatalf("big has %d bytes: %.20q", len(content), content)
	}

	// A content list that is a node list, and one that is missing.
	bad := *big
	bad.ContentLists = tt.sn.Tree
	if _, err := snapshot.LoadContent(ctx, r, &bad); !errors.Is(err, tree.ErrCorrupt) || !strings.Contains(err.Error(), "big") {
		t.Fatalf("node list as content list: got %v, want tree.ErrCorrupt naming the file", err)
	}
	bad.ContentLists = []id.ID{{1}}
	if _, err := snapshot.LoadContent(ctx, r, &bad); !errors.Is(err, repository.ErrBlobNotFound) {
		t.Fatalf("missing content list: got %v, want ErrBlobNotFound", err)
	}
}

// TestBrokenTrees points snapshots at trees that are missing or not node
// lists: walking them fails with an error, never a panic.
func TestBrokenTrees(t *testing.T) {
	ctx := context.Background()
	r, _ := newRepo(t)
	tt := buildTree(t, r)
	r.StartWriting(ctx)
	garbage, _, err := r.SaveBlob(ctx, pack.TreeBlob, []byte{tree.KindNodes, 0xff, 0xff, 0xff, 0xff, 0xff})
	if err != nil {
		t.Fatal(err)
	}
	list, _, err := r.SaveBlob(ctx, pack.TreeBlob, tree.EncodeContentList(tt.big))
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	for name, c := range map[string]struct {
		root []id.ID
		want error
	}{
		"missing tree":           {[]id.ID{{9}}, repository.ErrBlobNotFound},
		"bad record":             {[]id.ID{garbage}, tree.ErrCorrupt},
		"content list as tree":   {[]id.ID{list}, tree.ErrCorrupt},
		"good then missing tree": {append(slices.Clone(tt.sn.Tree), id.ID{9}), repository.ErrBlobNotFound},
	} {
		sn := *tt.sn
		sn.Tree = c.root
		err := snapshot.Walk(ctx, r, "/", sn.Tree, func(string, *tree.Node) error { return nil })
		if !errors.Is(err, c.want) {
			t.Errorf("%s: walk: got %v, want %v", name, err, c.want)
		}
		if _, err := snapshot.Lookup(ctx, r, &sn, "/zzz"); !errors.Is(err, c.want) {
			t.Errorf("%s: lookup: got %v, want %v", name, err, c.want)
		}
	}
}
