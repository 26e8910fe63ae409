package restorer_test

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/rewind-backup/rewind/internal/id"
	"github.com/rewind-backup/rewind/internal/pack"
	"github.com/rewind-backup/rewind/internal/repository"
	"github.com/rewind-backup/rewind/internal/restorer"
	"github.com/rewind-backup/rewind/internal/snapshot"
	"github.com/rewind-backup/rewind/internal/tree"
)

// treeWriter stores hand-made listings and contents, as an attacker who
// holds the repository key could.
type treeWriter struct {
	t   *testing.T
	ctx context.Context
	r   *repository.Repository
}

func (w treeWriter) dir(nodes ...tree.Node) []id.ID {
	w.t.Helper()
	b := tree.Builder{Emit: func(blob []byte) (id.ID, error) {
		i, _, err := w.r.SaveBlob(w.ctx, pack.TreeBlob, blob)
		return i, err
	}}
	for i := range nodes {
		must(w.t, b.Add(&nodes[i]))
	}
	ids, err := b.Finish()
	must(w.t, err)
	return ids
}

func (w treeWriter) file(name, content string) tree.Node {
	w.t.Helper()
	i, _, err := w.r.SaveBlob(w.ctx, pack.DataBlob, []byte(content))
	must(w.t, err)
	return tree.Node{Name: name, Type: tree.File, Mode: 0o644, Size: uint64(len(content)),
		Content: []tree.Chunk{{ID: i, Size: uint64(len(content))}}, MTime: time.Now().UnixNano()}
}

func (w treeWriter) subdir(name string, nodes ...tree.Node) tree.Node {
	w.t.Helper()
	return tree.Node{Name: name, Type: tree.Dir, Mode: 0o755, Subtree: w.dir(nodes...)}
}

// TestMaliciousSnapshot restores a snapshot built by hand to escape the
// target: entries named "..", ".", "a/b" and "", an absolute symlink
// followed by a folder of the same name with a file in it, a symlink to
// ".." followed by a folder and a file of its name. Every one of those
// (the second and third entries of a name included) must be refused and
// reported while the legitimate entries around them
// are restored, including a 255-byte name at the end of a path of about
// 3,850 bytes. Nothing may appear outside the target, with or without
// Overwrite.
func TestMaliciousSnapshot(t *testing.T) {
	ctx := context.Background()
	base := t.TempDir()
	outside := filepath.Join(base, "outside")
	writeFile(t, filepath.Join(outside, "sentinel"), []byte("untouched"))

	r := newTestRepo(t)
	w := treeWriter{t, ctx, r}
	r.StartWriting(ctx)
	// Fourteen folders with 255-byte names, and a file with one.
	long := func(c byte) string { return strings.Repeat(string(c), 255) }
	deep := w.file(long('z'), "deep content")
	deepPath := []string{"deep"}
	for i := 13; i >= 0; i-- {
		deep = w.subdir(long('a'+byte(i)), deep)
	}
	for i := range 14 {
		deepPath = append(deepPath, long('a'+byte(i)))
	}
	deepPath = append(deepPath, long('z'))

	root := w.dir(
		w.subdir("..", w.file("escaped-dotdot", "x")),
		w.file(".", "dot"),
		w.subdir("a"),
		w.file("a/b", "slash"),
		w.file("", "empty name"),
		w.subdir("deep", deep),
		tree.Node{Name: "evil", Type: tree.Symlink, LinkTarget: outside},
		w.subdir("evil", w.file("planted", "through an absolute symlink")),
		w.file("ok", "fine"),
		tree.Node{Name: "up", Type: tree.Symlink, LinkTarget: ".."},
		w.subdir("up", w.file("planted", "through a symlink to ..")),
		w.file("up", "over a symlink to .."),
	)
	must(t, r.Flush(ctx))
	sn := &snapshot.Snapshot{Time: time.Now(), Tree: root, Paths: []string{"/"}, Hostname: "attacker"}
	must(t, snapshot.Save(ctx, r, sn))

	target := filepath.Join(base, "target")
	for _, overwrite := range []bool{false, true} {
		st, err := restore(t, r, sn, "/", restorer.Options{Target: target, Overwrite: overwrite})
		if err == nil {
			t.Fatalf("overwrite=%v: restore reported no error", overwrite)
		}
		// Refused: "..", ".", "a/b", "" by name; the second "evil" and
		// both later "up"s as second entries of a name (fs.Listing), so
		// that the symlinks stay as stored, with or without Overwrite.
		refused := []string{`"..": a directory`, `".": a directory`, `"a/b": contains`, `"": empty`,
			`"evil": same name`, `"up": same name`}
		for _, want := range refused {
			if !strings.Contains(errorsText(st), want) {
				t.Errorf("overwrite=%v: no error for %s in:\n%s", overwrite, want, errorsText(st))
			}
		}
		if len(st.Errors) != 7 {
			t.Errorf("overwrite=%v: %d errors, want 7:\n%s", overwrite, len(st.Errors), errorsText(st))
		}
		for _, e := range st.Errors {
			if !strings.HasPrefix(e.Path, `/"`) || !strings.HasSuffix(e.Path, `"`) {
				t.Errorf("overwrite=%v: refused entry reported as %q, want its quoted name", overwrite, e.Path)
			}
		}

		if got := names(t, base); !slices.Equal(got, []string{"outside", "target"}) {
			t.Errorf("overwrite=%v: %s holds %q after the restore", overwrite, base, got)
		}
		if got := names(t, outside); !slices.Equal(got, []string{"sentinel"}) {
			t.Errorf("overwrite=%v: %s holds %q after the restore", overwrite, outside, got)
		}
		if b, err := os.ReadFile(filepath.Join(outside, "sentinel")); err != nil || string(b) != "untouched" {
			t.Errorf("overwrite=%v: sentinel now %q, %v", overwrite, b, err)
		}
		if got := names(t, target); !slices.Equal(got, []string{"a", "deep", "evil", "ok", "up"}) {
			t.Errorf("overwrite=%v: target holds %q", overwrite, got)
		}
		if got := names(t, filepath.Join(target, "a")); len(got) != 0 {
			t.Errorf("overwrite=%v: target/a holds %q", overwrite, got)
		}
		if b, err := os.ReadFile(filepath.Join(target, "ok")); err != nil || string(b) != "fine" {
			t.Errorf("overwrite=%v: ok holds %q, %v", overwrite, b, err)
		}
		if l, err := os.Readlink(filepath.Join(target, "evil")); err != nil || l != outside {
			t.Errorf("overwrite=%v: evil is %q, %v; want the symlink as stored", overwrite, l, err)
		}
		if l, err := os.Readlink(filepath.Join(target, "up")); err != nil || l != ".." {
			t.Errorf("overwrite=%v: up is %q, %v; want the symlink to .. as stored", overwrite, l, err)
		}
		p := filepath.Join(append([]string{target}, deepPath...)...)
		if b, err := os.ReadFile(p); err != nil || string(b) != "deep content" {
			t.Errorf("overwrite=%v: %d-byte path holds %q, %v", overwrite, len(p), b, err)
		}
	}
}
