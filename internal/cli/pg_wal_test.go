package cli

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/rewind-backup/rewind/internal/testutil"
)

// pgRepo is a repository that a cluster's OS user can use: the rewind
// binary, the repository and its password file in a folder that user
// owns.
type pgRepo struct {
	dir, bin, repo, pwFile string
	uid, gid               int
}

func newPgRepo(t *testing.T) *pgRepo {
	t.Helper()
	_, uid, gid := testutil.PGUser(t)
	dir := testutil.PGOwnedDir(t)
	p := &pgRepo{dir: dir, bin: filepath.Join(dir, "rewind"), repo: filepath.Join(dir, "repo"), pwFile: filepath.Join(dir, "password"), uid: uid, gid: gid}
	bin, err := os.ReadFile(rewindBin)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p.bin, bin, 0o755); err != nil {
		t.Fatal(err)
	}
	initRepo(t, p.repo, testPassword, 0)
	if err := os.WriteFile(p.pwFile, []byte(testPassword+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	p.chown(t)
	return p
}

// chown gives everything in the folder to the cluster's user.
func (p *pgRepo) chown(t *testing.T) {
	t.Helper()
	err := filepath.Walk(p.dir, func(path string, _ os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		return os.Lchown(path, p.uid, p.gid)
	})
	if err != nil {
		t.Fatal(err)
	}
}

// archiveCommand is the archive_command that pushes to the repository.
func (p *pgRepo) archiveCommand() string {
	return fmt.Sprintf("%s pg wal-push --repo %s --password-file %s %%p", p.bin, p.repo, p.pwFile)
}

// env runs rewind as the tests' user on the repository.
func (p *pgRepo) env(t *testing.T) *env {
	return newEnv(t).with("REWIND_REPOSITORY", p.repo, "REWIND_PASSWORD_FILE", p.pwFile)
}

// runAs runs rewind as the cluster's OS user, in dir.
func (p *pgRepo) runAs(t *testing.T, pg *testutil.PG, dir string, args ...string) result {
	t.Helper()
	c := pg.Command(p.bin, append([]string{"--repo", p.repo, "--password-file", p.pwFile}, args...)...)
	c.Dir = dir
	e := newEnv(t)
	return e.exec(c)
}

// storedFiles lists the repository's files of every folder but locks.
func (p *pgRepo) storedFiles(t *testing.T) []string {
	t.Helper()
	var out []string
	err := filepath.Walk(p.repo, func(path string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(p.repo, path)
		if fi.Mode().IsRegular() && !strings.HasPrefix(rel, "locks/") {
			out = append(out, rel)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(out)
	return out
}

// walList returns `pg wal-list --json`.
func walList(t *testing.T, e *env) WALListJSON {
	t.Helper()
	res := e.mustRun("pg", "wal-list", "--json")
	var l WALListJSON
	if err := json.Unmarshal(res.stdout, &l); err != nil {
		t.Fatalf("wal-list --json: %v\n%s", err, res.stdout)
	}
	return l
}

// archivedNames returns the WAL files PostgreSQL reports as archived
// (pg_wal/archive_status/*.done).
func archivedNames(t *testing.T, pg *testutil.PG) []string {
	t.Helper()
	ents, err := os.ReadDir(filepath.Join(pg.DataDir, "pg_wal", "archive_status"))
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range ents {
		if n, ok := strings.CutSuffix(e.Name(), ".done"); ok {
			out = append(out, n)
		}
	}
	sort.Strings(out)
	return out
}

// switchWAL writes a little, then ends the current segment, n times, and
// returns the names of the segments ended.
func switchWAL(t *testing.T, pg *testutil.PG, n int) []string {
	t.Helper()
	var names []string
	pg.Exec(t, "create table if not exists t (v int, pad text)")
	for i := range n {
		pg.Exec(t, fmt.Sprintf("insert into t select g, repeat('x', 100) from generate_series(1, %d) g", 1000*(i+1)))
		names = append(names, pg.QueryValue(t, "select pg_walfile_name(pg_switch_wal())"))
	}
	return names
}

// waitArchived waits until PostgreSQL has archived the segment last, and
// fails the test if an archive_command failed.
func waitArchived(t *testing.T, pg *testutil.PG, last string) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for {
		row := pg.Query(t, "select archived_count, coalesce(last_archived_wal, ''), failed_count, coalesce(last_failed_wal, '') from pg_stat_archiver")[0]
		if row[2] != "0" {
			t.Fatalf("archive_command failed (pg_stat_archiver: %v):\n%s", row, pg.LogTail())
		}
		if row[1] >= last {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("segment %s not archived after 2 minutes (pg_stat_archiver: %v):\n%s", last, row, pg.LogTail())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func TestPgWalArchive(t *testing.T) {
	p := newPgRepo(t)
	pg := testutil.StartPostgres(t, testutil.PGOptions{ArchiveCommand: p.archiveCommand()})
	names := switchWAL(t, pg, 3)
	waitArchived(t, pg, names[len(names)-1])
	e := p.env(t)

	// The WAL index lists exactly what PostgreSQL archived.
	archived := archivedNames(t, pg)
	for _, n := range names {
		if !slices.Contains(archived, n) {
			t.Fatalf("%s not among the archived files %v", n, archived)
		}
	}
	l := walList(t, e)
	if len(l.Clusters) != 1 || l.Clusters[0].Name != "main" {
		t.Fatalf("wal-list: %+v", l)
	}
	cl := l.Clusters[0]
	if cl.SystemID != fmt.Sprint(pg.SystemID(t)) {
		t.Fatalf("stored system identifier %s, cluster has %d", cl.SystemID, pg.SystemID(t))
	}
	var stored []string
	for _, f := range cl.Files {
		stored = append(stored, f.Name)
	}
	if !slices.Equal(stored, archived) {
		t.Fatalf("WAL index lists %v, PostgreSQL archived %v", stored, archived)
	}
	if len(cl.Ranges) != 1 || cl.Ranges[0].First != archived[0] || cl.Ranges[0].Last != archived[len(archived)-1] {
		t.Fatalf("ranges: %+v", cl.Ranges)
	}

	// wal-fetch returns every file byte for byte.
	for _, n := range archived {
		dest := e.path("fetched-" + n)
		e.mustRun("pg", "wal-fetch", n, dest)
		got, err := os.ReadFile(dest)
		if err != nil {
			t.Fatal(err)
		}
		want, err := os.ReadFile(filepath.Join(pg.DataDir, "pg_wal", n))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("wal-fetch %s: %d bytes differ from the segment's %d", n, len(got), len(want))
		}
	}
	// A file that is not stored: exit 1 and no file, the end of the archive.
	dest := e.path("missing")
	r := e.expectCode(1, "pg", "wal-fetch", "0000000100000000000000F0", dest)
	if !strings.Contains(string(r.stderr), "not stored") {
		t.Errorf("wal-fetch of a missing segment: %s", r.stderr)
	}
	if _, err := os.Stat(dest); !os.IsNotExist(err) {
		t.Errorf("wal-fetch of a missing segment left %s: %v", dest, err)
	}

	before := p.storedFiles(t)
	// The same segment pushed again, as the cluster's user: success,
	// nothing stored.
	seg := filepath.Join(pg.DataDir, "pg_wal", names[0])
	r = p.runAs(t, pg, pg.DataDir, "pg", "wal-push", seg)
	if r.code != 0 || !strings.Contains(string(r.stdout), "stored already") {
		t.Fatalf("second push: %v", r)
	}
	if after := p.storedFiles(t); !slices.Equal(before, after) {
		t.Fatalf("a second push of the same segment stored files: before %v, after %v", before, after)
	}

	// Other content under a stored name: refused, nothing stored.
	data, err := os.ReadFile(seg)
	if err != nil {
		t.Fatal(err)
	}
	data[5000] ^= 0xFF
	modDir := testutil.PGOwnedDir(t)
	mod := filepath.Join(modDir, names[0])
	if err := os.WriteFile(mod, data, 0o644); err != nil {
		t.Fatal(err)
	}
	r = p.runAs(t, pg, pg.DataDir, "pg", "wal-push", mod)
	if r.code != 1 || !strings.Contains(string(r.stderr), "stored already with other content") {
		t.Fatalf("push of a modified segment: %v", r)
	}
	if after := p.storedFiles(t); !slices.Equal(before, after) {
		t.Fatalf("a refused push stored files: before %v, after %v", before, after)
	}

	// A segment of another cluster: refused by its system identifier,
	// nothing stored.
	pg2 := testutil.StartPostgres(t, testutil.PGOptions{})
	other := switchWAL(t, pg2, 1)[0]
	r = p.runAs(t, pg2, pg2.DataDir, "pg", "wal-push", filepath.Join(pg2.DataDir, "pg_wal", other))
	want := fmt.Sprintf("is from the cluster with system identifier %d, but this repository's WAL of cluster \"main\" is from system identifier %d", pg2.SystemID(t), pg.SystemID(t))
	if r.code != 1 || !strings.Contains(string(r.stderr), want) || !strings.Contains(string(r.stderr), "nothing stored") {
		t.Fatalf("push from another cluster: want exit 1 and %q, got %v", want, r)
	}
	if after := p.storedFiles(t); !slices.Equal(before, after) {
		t.Fatalf("a push from another cluster stored files: before %v, after %v", before, after)
	}

	// A password file the cluster's user cannot read: said plainly.
	if testutil.IsRoot() {
		rootPw := filepath.Join(p.dir, "root.password")
		if err := os.WriteFile(rootPw, []byte(testPassword), 0o600); err != nil {
			t.Fatal(err)
		}
		c := pg.Command(p.bin, "--repo", p.repo, "--password-file", rootPw, "pg", "wal-push", seg)
		r = newEnv(t).exec(c)
		if r.code == 0 || !strings.Contains(string(r.stderr), "permission denied") || !strings.Contains(string(r.stderr), "rewind runs as OS user postgres") {
			t.Fatalf("push with an unreadable password file: %v", r)
		}
	}

	// The cluster keeps archiving after all that.
	more := switchWAL(t, pg, 1)
	waitArchived(t, pg, more[0])
	e.mustRun("check")
}

// TestPgWalPushCrash kills wal-push at named points and at random moments
// while it stores, then pushes again: every segment ends up stored once,
// with its own content, and check passes.
func TestPgWalPushCrash(t *testing.T) {
	p := newPgRepo(t)
	pg := testutil.StartPostgres(t, testutil.PGOptions{})
	names := switchWAL(t, pg, 4)
	e := p.env(t)
	segs := map[string][]byte{}
	for _, n := range names {
		b, err := os.ReadFile(filepath.Join(pg.DataDir, "pg_wal", n))
		if err != nil {
			t.Fatal(err)
		}
		segs[n] = b
	}
	seg := func(n string) string { return filepath.Join(pg.DataDir, "pg_wal", n) }
	killed := func(r result) bool { return r.code == -1 || r.code == 128+int(syscall.SIGKILL) }

	// At each named point.
	for i, point := range []string{"blobs-saved", "flushed", "indexed"} {
		n := names[i]
		r := e.with(crashHookEnv, point).run("pg", "wal-push", "--pgdata", pg.DataDir, seg(n))
		if !killed(r) {
			t.Fatalf("wal-push with the crash hook at %s was not killed: %v", point, r)
		}
		r = e.run("pg", "wal-push", "--pgdata", pg.DataDir, seg(n))
		if r.code != 0 {
			t.Fatalf("push after a crash at %s: %v", point, r)
		}
		if stored := strings.Contains(string(r.stdout), "stored already"); stored != (point == "indexed") {
			t.Fatalf("push after a crash at %s: %s", point, r.stdout)
		}
	}
	// At random moments.
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 1))
	n := names[3]
	for range 6 {
		c := e.cmd("pg", "wal-push", "--pgdata", pg.DataDir, seg(n))
		c.Stdout, c.Stderr = io.Discard, io.Discard
		if err := c.Start(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Duration(rng.IntN(400)) * time.Millisecond)
		_ = c.Process.Signal(syscall.SIGKILL)
		_ = c.Wait()
	}
	e.mustRun("pg", "wal-push", "--pgdata", pg.DataDir, seg(n))
	for _, n := range names {
		if r := e.mustRun("pg", "wal-push", "--pgdata", pg.DataDir, seg(n)); !strings.Contains(string(r.stdout), "stored already") {
			t.Fatalf("%s: %s", n, r.stdout)
		}
	}

	l := walList(t, e)
	var stored []string
	for _, f := range l.Clusters[0].Files {
		stored = append(stored, f.Name)
	}
	if !slices.Equal(stored, names) {
		t.Fatalf("stored %v, want %v", stored, names)
	}
	for _, n := range names {
		dest := e.path(n)
		e.mustRun("pg", "wal-fetch", n, dest)
		if got, _ := os.ReadFile(dest); !bytes.Equal(got, segs[n]) {
			t.Fatalf("%s fetched back differs", n)
		}
	}
	// No index entry with other content anywhere (wal-list warns of one).
	if r := e.mustRun("pg", "wal-list"); len(r.stderr) != 0 {
		t.Fatalf("wal-list warns: %s", r.stderr)
	}
	if r := e.mustRun("check", "--json"); !strings.Contains(string(r.stdout), fmt.Sprintf(`"wal_files":%d`, len(names))) {
		t.Fatalf("check --json does not count %d WAL files: %s", len(names), r.stdout)
	}
	// prune keeps what the WAL index names.
	e.mustRun("prune")
	e.mustRun("check", "--read-data")
	for _, n := range names {
		e.mustRun("pg", "wal-fetch", n, e.path(n+".after-prune"))
	}
}
