package restorer_test

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/rewind-backup/rewind/internal/fs"
	"github.com/rewind-backup/rewind/internal/restorer"
	"github.com/rewind-backup/rewind/internal/testutil"
)

// sweepFS is one filesystem of the sweep, mounted for the whole test: a
// source tree is built on it, and every source is restored onto it.
type sweepFS struct {
	name string
	mnt  string
}

// sweepFlags are the chattr flags the sweep tries, one entry each; a
// source keeps those its filesystem accepts.
var sweepFlags = []struct {
	letter byte
	bit    uint32
	dir    bool // set on a folder rather than a file
}{
	{'s', 0x1, false}, {'u', 0x2, false}, {'c', 0x4, false}, {'S', flSync, false},
	{'d', flNoDump, false}, {'A', flNoAtime, false}, {'m', 0x400, false}, {'t', 0x8000, false},
	{'C', flNoCow, false}, {'P', 0x20000000, true}, {'D', flDirSync, true}, {'T', 0x20000, true},
	{'a', flAppend, false}, {'i', flImmutable, false}, {'i', flImmutable, true},
}

func flagEntry(letter byte, dir bool) string {
	if dir {
		return fmt.Sprintf("dflag-%c", letter)
	}
	return fmt.Sprintf("flag-%c", letter)
}

// buildSweepSource fills dir with what the sweep restores: many extended
// attributes and large ones in every namespace root may write, access
// and default ACLs, sparse files, and inode flags, each as far as dir's
// filesystem holds it (what it refuses is simply not in the source).
func buildSweepSource(t *testing.T, dir string) {
	t.Helper()
	must(t, os.Mkdir(dir, 0o755))
	file := func(name string, size int) string {
		p := filepath.Join(dir, name)
		writeFile(t, p, randomBytes(uint64(len(name)*31+size), size))
		return p
	}
	trySet := func(p, name string, v []byte) { _ = unix.Lsetxattr(p, name, v, 0) }

	p := file("crowded", 3000)
	for i := range 600 {
		trySet(p, fmt.Sprintf("user.crowd.%03d", i), randomBytes(uint64(i), 32))
	}
	p = file("bulky", 5000)
	trySet(p, "user.huge", randomBytes(1, 40000))
	trySet(p, "user.mid", randomBytes(2, 6000))
	trySet(p, "user.small", []byte("s"))
	p = file("namespaces", 100)
	trySet(p, "trusted.sweep", randomBytes(3, 100))
	trySet(p, "security.sweep", []byte("label"))
	trySet(p, "user.plain", []byte("p"))

	p = file("acl-file", 1000)
	runTool(t, testutil.RequireTool(t, "setfacl"), "-m", "u:1234:rw,g:5678:r,m::rw", p)
	d := filepath.Join(dir, "acl-dir")
	must(t, os.Mkdir(d, 0o750))
	file("acl-dir/inside", 500)
	runTool(t, "setfacl", "-m", "u:1234:rwx", "-m", "d:u:1234:rx", "-m", "d:g::r", d)
	trySet(d, "user.bigdir", randomBytes(4, 20000))

	for i, f := range []sparseFile{
		{"sparse-middle", 2 << 20, [][2]int64{{1 << 20, 64 << 10}}},
		{"sparse-tail", 1536 << 10, [][2]int64{{0, 100 << 10}}},
		{"sparse-none", 1 << 20, nil},
	} {
		writeSparse(t, dir, f, uint64(900+i))
	}

	for _, f := range sweepFlags {
		p := filepath.Join(dir, flagEntry(f.letter, f.dir))
		if f.dir {
			must(t, os.Mkdir(p, 0o755))
			writeFile(t, filepath.Join(p, "inside"), []byte("in a flagged folder"))
		} else if f.bit == flNoCow {
			// No copy on write takes only on an empty file (btrfs).
			writeFile(t, p, nil)
			trySetFlag(p, f.bit)
			fh, err := os.OpenFile(p, os.O_WRONLY, 0)
			must(t, err)
			_, err = fh.Write(randomBytes(5, 3000))
			must(t, err)
			must(t, fh.Close())
			continue
		} else {
			writeFile(t, p, randomBytes(uint64(f.bit), 2000))
		}
		trySetFlag(p, f.bit)
	}
}

// trySetFlag adds flag to p's inode flags if its filesystem lets it, and
// reports whether the flag holds.
func trySetFlag(p string, flag uint32) bool {
	fd, err := unix.Open(p, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		return false
	}
	defer unix.Close(fd)
	cur, err := unix.IoctlGetUint32(fd, unix.FS_IOC_GETFLAGS)
	if err != nil {
		return false
	}
	_ = unix.IoctlSetPointerInt(fd, unix.FS_IOC_SETFLAGS, int(int32(cur|flag)))
	now, err := unix.IoctlGetUint32(fd, unix.FS_IOC_GETFLAGS)
	return err == nil && now&flag != 0
}

// keepable works out, with plain system calls on a probe entry in the
// target filesystem, which of a source entry's attributes and inode flags
// the target can hold when they are set as a restore sets them: the
// attributes in name order on an entry with the same content, then each
// flag after the content.
func keepable(t *testing.T, probeDir string, src string, e *entry) (xattrs map[string]bool, flags uint32) {
	t.Helper()
	p := filepath.Join(probeDir, fmt.Sprintf("probe-%d", len(mustReadDir(t, probeDir))))
	want := inodeFlagsOf(t, src) & fs.KeptInodeFlags
	if e.typ() == unix.S_IFDIR {
		must(t, os.Mkdir(p, 0o700))
	} else {
		// No copy on write is set while the file is empty, as a
		// restore does.
		must(t, os.WriteFile(p, nil, 0o600))
		if want&flNoCow != 0 && trySetFlag(p, flNoCow) {
			flags |= flNoCow
		}
		must(t, os.WriteFile(p, e.data, 0o600))
	}
	xattrs = map[string]bool{}
	names := make([]string, 0, len(e.xattrs))
	for name := range e.xattrs {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		xattrs[name] = unix.Lsetxattr(p, name, []byte(e.xattrs[name]), 0) == nil
	}
	for bit := uint32(1); bit != 0; bit <<= 1 {
		if want&bit != 0 && bit != flNoCow && trySetFlag(p, bit) {
			flags |= bit
		}
	}
	clearInodeFlags(t, p, flImmutable|flAppend)
	return xattrs, flags
}

func mustReadDir(t *testing.T, dir string) []os.DirEntry {
	t.Helper()
	ents, err := os.ReadDir(dir)
	must(t, err)
	return ents
}

// sweepRow is what one restore kept: one line of the sweep's table.
type sweepRow struct {
	from, onto                  string
	xattrs, xattrsKept          int
	acls, aclsKept              int
	flags, flagsKept, flagsLost string
	sparse, sparseExact         int
	warnings                    int
}

// TestRestoreAcrossFilesystems is the cross-filesystem fault sweep: it
// builds a source tree on each of ext4, XFS and btrfs with all the
// extended attributes (many, large, every namespace), ACLs, holes and
// inode flags that filesystem holds, backs each up, and restores each
// onto each filesystem, itself included. For every entry, everything the
// target can hold (worked out independently on a probe entry) must come
// back exactly, and everything it cannot must be named in a warning of
// the restore's result, which then ends in ErrNotAllKept (exit 3); never
// a silent loss, a failed entry or a stopped restore. It logs a table of
// what each target kept of each source.
func TestRestoreAcrossFilesystems(t *testing.T) {
	testutil.RequireRoot(t)
	filesystems := []*sweepFS{
		{name: "ext4", mnt: testutil.Ext4(t)},
		{name: "xfs", mnt: testutil.XFS(t)},
		{name: "btrfs", mnt: testutil.LoopFS(t, "btrfs", 128<<20)},
	}
	r := newTestRepo(t)
	type source struct {
		fs      *sweepFS
		dir     string
		entries map[string]*entry
		flags   map[string]uint32
	}
	var sources []source
	for _, f := range filesystems {
		dir := filepath.Join(f.mnt, "src")
		buildSweepSource(t, dir)
		s := source{fs: f, dir: dir, entries: captureTree(t, dir), flags: map[string]uint32{}}
		for rel := range s.entries {
			if e := s.entries[rel]; e.typ() == unix.S_IFREG || e.typ() == unix.S_IFDIR {
				s.flags[rel] = inodeFlagsOf(t, filepath.Join(dir, rel)) & fs.KeptInodeFlags
			}
		}
		sources = append(sources, s)
	}
	defer func() {
		for _, s := range sources {
			for rel, fl := range s.flags {
				if fl&(flImmutable|flAppend) != 0 {
					clearInodeFlags(t, filepath.Join(s.dir, rel), flImmutable|flAppend)
				}
			}
		}
	}()

	var rows []sweepRow
	for _, s := range sources {
		sn, _ := backup(t, r, s.dir)
		for _, onto := range filesystems {
			t.Run(s.fs.name+"-onto-"+onto.name, func(t *testing.T) {
				target := filepath.Join(onto.mnt, "from-"+s.fs.name)
				probes := filepath.Join(onto.mnt, "probes-from-"+s.fs.name)
				must(t, os.Mkdir(probes, 0o755))
				st, err := restore(t, r, sn, s.dir, restorer.Options{Target: target, Owner: true})
				defer func() {
					for rel, fl := range s.flags {
						if fl&(flImmutable|flAppend) != 0 {
							clearInodeFlags(t, filepath.Join(target, rel), flImmutable|flAppend)
						}
					}
				}()
				if st == nil {
					t.Fatalf("restore: %v", err)
				}
				if len(st.Errors) > 0 {
					t.Errorf("entries failed:\n%s", errorsText(st))
				}
				switch {
				case len(st.Warnings) == 0 && err != nil:
					t.Errorf("restore without warnings: %v", err)
				case len(st.Warnings) > 0 && !errors.Is(err, restorer.ErrNotAllKept):
					t.Errorf("restore with %d warnings returned %v, want ErrNotAllKept", len(st.Warnings), err)
				}
				row := sweepRow{from: s.fs.name, onto: onto.name, warnings: len(st.Warnings)}
				checkSweep(t, s.dir, target, probes, s.entries, s.flags, st, &row)
				rows = append(rows, row)
			})
		}
	}
	logSweep(t, rows)
}

// checkSweep compares every restored entry with its source and the probe
// verdicts, and fills row.
func checkSweep(t *testing.T, src, target, probes string, entries map[string]*entry, flags map[string]uint32, st *restorer.Stats, row *sweepRow) {
	t.Helper()
	warned := map[string]string{}
	for _, w := range st.Warnings {
		rel := strings.TrimPrefix(strings.TrimPrefix(w.Path, src), "/")
		warned[rel] += w.Error + "\n"
	}
	rels := make([]string, 0, len(entries))
	for rel := range entries {
		rels = append(rels, rel)
	}
	slices.Sort(rels)
	srcXFS := row.from == "xfs"
	var lostFlags, keptFlags strings.Builder
	for _, rel := range rels {
		want := entries[rel]
		got := capture(t, filepath.Join(target, rel))
		if got.typ() != want.typ() || got.perm() != want.perm() || string(got.data) != string(want.data) || got.st.Mtim != want.st.Mtim {
			t.Errorf("%s: restored as type %o mode %o, %d bytes, mtime %v; want %o %o, %d bytes, %v",
				rel, got.typ(), got.perm(), len(got.data), got.st.Mtim, want.typ(), want.perm(), len(want.data), want.st.Mtim)
			continue
		}
		dropDerived(want.xattrs, nil, srcXFS)
		dropDerived(got.xattrs, want.xattrs, row.onto == "xfs")
		canX, canF := keepable(t, probes, filepath.Join(src, rel), want)
		msg := warned[rel]
		delete(warned, rel)
		var missing []string
		for name, v := range want.xattrs {
			isACL := strings.HasPrefix(name, "system.posix_acl_")
			row.xattrs++
			if isACL {
				row.acls++
			}
			g, ok := got.xattrs[name]
			switch {
			case ok && g == v:
				row.xattrsKept++
				if isACL {
					row.aclsKept++
				}
				if !canX[name] {
					t.Errorf("%s: xattr %s restored, though a probe could not set it", rel, name)
				}
			case ok:
				t.Errorf("%s: xattr %s restored with another value", rel, name)
			case canX[name]:
				t.Errorf("%s: xattr %s (%d bytes) lost, though the target holds it", rel, name, len(v))
			default:
				missing = append(missing, name)
			}
		}
		for name := range got.xattrs {
			if _, ok := want.xattrs[name]; !ok {
				t.Errorf("%s: xattr %s restored but not in the source", rel, name)
			}
		}
		if len(missing) > 0 && want.acl != got.acl {
			t.Logf("%s: ACL differs where the target refused attributes:\n%s\nwant\n%s", rel, got.acl, want.acl)
		} else if want.acl != got.acl {
			t.Errorf("%s: ACL\n%s\nwant\n%s", rel, got.acl, want.acl)
		}
		slices.Sort(missing)
		if len(missing) > 0 {
			if !strings.Contains(msg, fmt.Sprintf("%q", missing[0])) {
				t.Errorf("%s: %d attributes lost (%s, ...) without a warning naming them: %q", rel, len(missing), missing[0], msg)
			}
			if more := len(missing) - 8; more > 0 && !strings.Contains(msg, fmt.Sprintf("and %d more", more)) {
				t.Errorf("%s: warning %q does not count the %d attributes it does not name", rel, msg, more)
			}
		}

		if wf, ok := flags[rel]; ok {
			gf := inodeFlagsOf(t, filepath.Join(target, rel)) & fs.KeptInodeFlags
			if gf != wf&canF {
				t.Errorf("%s: inode flags %#x restored, want %#x of the source's %#x", rel, gf, wf&canF, wf)
			}
			lost := wf &^ gf
			for _, name := range fs.InodeFlagNames(lost) {
				if !strings.Contains(msg, "inode flag "+name) {
					t.Errorf("%s: inode flag %s lost without a warning naming it: %q", rel, name, msg)
				}
			}
			if wf != 0 {
				row.flags += fs.InodeFlagLetters(wf)
				keptFlags.WriteString(fs.InodeFlagLetters(wf & gf))
				lostFlags.WriteString(fs.InodeFlagLetters(lost))
			}
		}
		if len(missing) == 0 && (flags[rel]&^canF) == 0 && msg != "" {
			t.Errorf("%s: warning %q, but everything was kept", rel, msg)
		}

		if strings.HasPrefix(rel, "sparse-") {
			row.sparse++
			careful := filepath.Join(probes, "careful-"+rel)
			copySparse(t, filepath.Join(src, rel), careful)
			ga, ca := allocationOf(t, filepath.Join(target, rel)), allocationOf(t, careful)
			if !slices.Equal(got.regions, want.regions) || ga.blocks != ca.blocks {
				t.Errorf("%s: restored with data %v, %d KiB allocated; source %v, careful copy %d KiB",
					rel, got.regions, ga.blocks/2, want.regions, ca.blocks/2)
			} else {
				row.sparseExact++
			}
		}
	}
	for rel, msg := range warned {
		t.Errorf("warning for %s, which is not in the source: %q", rel, msg)
	}
	row.flagsKept = strings.ReplaceAll(keptFlags.String(), "-", "")
	if row.flagsKept == "" {
		row.flagsKept = "-"
	}
	row.flags = strings.ReplaceAll(row.flags, "-", "")
	row.flagsLost = strings.ReplaceAll(lostFlags.String(), "-", "")
	if row.flagsLost == "" {
		row.flagsLost = "-"
	}
}

// dropDerived removes the attributes a filesystem derives from others:
// XFS lists each ACL a second time under its own name (which rewind
// leaves out, docs/RESTORE.md), and btrfs shows the compress flag as
// btrfs.compression, which is dropped unless src (the source's
// attributes, for a restored entry) has it.
func dropDerived(xs, src map[string]string, xfs bool) {
	for alias, acl := range map[string]string{
		"trusted.SGI_ACL_FILE":    "system.posix_acl_access",
		"trusted.SGI_ACL_DEFAULT": "system.posix_acl_default",
	} {
		if _, ok := xs[acl]; ok && xfs {
			delete(xs, alias)
		}
	}
	if _, ok := src["btrfs.compression"]; src != nil && !ok {
		delete(xs, "btrfs.compression")
	}
}

// copySparse copies src to dst as a careful copy would: size first, then
// only the data runs.
func copySparse(t *testing.T, src, dst string) {
	t.Helper()
	in, err := os.Open(src)
	must(t, err)
	defer in.Close()
	fi, err := in.Stat()
	must(t, err)
	f := sparseFile{name: filepath.Base(dst), size: fi.Size()}
	for _, r := range dataRegions(t, in, fi.Size()) {
		f.regions = append(f.regions, [2]int64{r[0], r[1] - r[0]})
	}
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644)
	must(t, err)
	defer out.Close()
	must(t, out.Truncate(f.size))
	for _, r := range f.regions {
		b := make([]byte, r[1])
		_, err := in.ReadAt(b, r[0])
		must(t, err)
		_, err = out.WriteAt(b, r[0])
		must(t, err)
	}
}

func logSweep(t *testing.T, rows []sweepRow) {
	var b strings.Builder
	fmt.Fprintf(&b, "\n%-6s -> %-6s  %-13s  %-7s  %-14s  %-14s  %-7s  %s\n",
		"from", "onto", "xattrs kept", "ACLs", "flags", "flags lost", "sparse", "warnings")
	for _, r := range rows {
		fmt.Fprintf(&b, "%-6s -> %-6s  %5d / %-5d  %d / %-3d  %-14s  %-14s  %d / %-3d  %d\n",
			r.from, r.onto, r.xattrsKept, r.xattrs, r.aclsKept, r.acls, r.flags, r.flagsLost, r.sparseExact, r.sparse, r.warnings)
	}
	b.WriteString("(xattrs count ACLs; every loss is named in a warning, checked above)")
	t.Log(b.String())
}
