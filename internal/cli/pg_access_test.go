package cli

import (
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/rewind-backup/rewind/internal/testutil"
)

// TestPgMixedUsers: root makes the repository and runs pg backup and
// backup, the postgres user runs wal-push as archive_command. Without group
// access the push is refused with the path, its owner and mode and what to
// run; after `rewind chmod --group-access --group postgres` both users
// work in turn, and root's prune and check pass afterwards.
func TestPgMixedUsers(t *testing.T) {
	if !testutil.IsRoot() {
		t.Skip("needs root and the postgres OS user")
	}
	pgUser, uid, gid := testutil.PGUser(t)
	dir := testutil.PGOwnedDir(t)
	p := &pgRepo{dir: dir, bin: filepath.Join(dir, "rewind"), repo: filepath.Join(dir, "repo"), pwFile: filepath.Join(dir, "password"), uid: uid, gid: gid}
	bin, err := os.ReadFile(rewindBin)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p.bin, bin, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p.pwFile, []byte(testPassword+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	e := p.env(t)
	e.mustRun("init")

	pg := testutil.StartPostgres(t, testutil.PGOptions{Settings: map[string]string{"archive_mode": "on", "archive_command": "''"}})
	e.mustRun("pg", "backup", "--dsn", pg.DSN(), "--fast")
	names := switchWAL(t, pg, 2)
	seg := filepath.Join(pg.DataDir, "pg_wal", names[0])

	// Root's private repository: the postgres user is told what to do.
	if err := os.Chown(p.pwFile, -1, gid); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(p.pwFile, 0o440); err != nil {
		t.Fatal(err)
	}
	r := p.runAs(t, pg, pg.DataDir, "pg", "wal-push", seg)
	for _, want := range []string{"permission denied", "rewind runs as OS user " + pgUser, p.repo + " is owned by root:root with mode 0700",
		"rewind chmod --repo " + p.repo + " --group-access --group " + pgUser} {
		if r.code != 1 || !strings.Contains(string(r.stderr), want) {
			t.Fatalf("push into root's private repository: want exit 1 and %q, got %v", want, r)
		}
	}

	// Shared with the postgres group.
	e.mustRun("chmod", "--group-access", "--group", pgUser)
	pg.Exec(t, "alter system set archive_command = '"+p.archiveCommand()+"'")
	pg.QueryValue(t, "select pg_reload_conf()")
	waitArchived(t, pg, names[len(names)-1])

	// Root again: a base backup, a file backup, then postgres archives
	// more, then root prunes and checks.
	e.mustRun("pg", "backup", "--dsn", pg.DSN(), "--fast")
	src := filepath.Join(e.dir, "src")
	if err := os.MkdirAll(src, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(src, "f"), []byte("some file"), 0o600); err != nil {
		t.Fatal(err)
	}
	e.mustRun("backup", src)
	more := switchWAL(t, pg, 2)
	waitArchived(t, pg, more[len(more)-1])
	e.mustRun("prune")
	e.mustRun("check", "--read-data")
	e.mustRun("pg", "check")
	more = switchWAL(t, pg, 1)
	waitArchived(t, pg, more[0])
	if r := p.runAs(t, pg, pg.DataDir, "pg", "check"); r.code != 0 {
		t.Fatalf("pg check as %s: %v", pgUser, r)
	}

	// Whoever wrote them, the repository's files and folders are the
	// group's, files 0440 and folders 02770.
	err = filepath.WalkDir(p.repo, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := os.Lstat(path)
		if err != nil {
			return err
		}
		want := fs.FileMode(0o440)
		if d.IsDir() {
			want = 0o770 | fs.ModeSetgid | fs.ModeDir
		}
		if fi.Mode() != want || fi.Sys().(*syscall.Stat_t).Gid != uint32(gid) {
			t.Errorf("%s: mode %v group %d, want %v group %d", path, fi.Mode(), fi.Sys().(*syscall.Stat_t).Gid, want, gid)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestPgRootInUsersRepository: root writing into a private repository
// the postgres user owns leaves every file to that user, so the cluster's
// archive_command goes on working without a chown.
func TestPgRootInUsersRepository(t *testing.T) {
	if !testutil.IsRoot() {
		t.Skip("needs root and the postgres OS user")
	}
	p := newPgRepo(t)
	pg := testutil.StartPostgres(t, testutil.PGOptions{ArchiveCommand: p.archiveCommand()})
	e := p.env(t)
	e.mustRun("pg", "backup", "--dsn", pg.DSN(), "--fast")
	names := switchWAL(t, pg, 2)
	waitArchived(t, pg, names[len(names)-1])
	e.mustRun("prune")
	err := filepath.WalkDir(p.repo, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := os.Lstat(path)
		if err != nil {
			return err
		}
		if st := fi.Sys().(*syscall.Stat_t); int(st.Uid) != p.uid {
			t.Errorf("%s: owned by uid %d, want %d", path, st.Uid, p.uid)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	more := switchWAL(t, pg, 1)
	waitArchived(t, pg, more[0])
}
