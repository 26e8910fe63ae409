package cli

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// sqlDump writes n rows of a pg_dump-like text dump, reproducibly for seed.
func sqlDump(seed uint64, n int) []byte {
	rng := rand.New(rand.NewPCG(seed, 1))
	var b bytes.Buffer
	b.WriteString("--\n-- PostgreSQL database dump\n--\n\nSET statement_timeout = 0;\n\n")
	b.WriteString("COPY public.orders (id, customer, amount, note) FROM stdin;\n")
	for i := range n {
		fmt.Fprintf(&b, "%d\tcustomer-%d\t%d.%02d\tnote %x\n", i, rng.IntN(5000), rng.IntN(100000), rng.IntN(100), rng.Uint64())
	}
	b.WriteString("\\.\n\n--\n-- PostgreSQL database dump complete\n--\n")
	return b.Bytes()
}

// TestBackupStdin: a dump piped into backup --stdin comes back from dump
// byte for byte, under the name given; a second dump that differs a little
// adds little; an empty stream is an empty file.
func TestBackupStdin(t *testing.T) {
	e := newRepo(t, 0)
	data := sqlDump(1, 60000)
	c := e.cmd("backup", "--stdin", "--stdin-filename", "/db/app.sql", "--json")
	c.Stdin = bytes.NewReader(data)
	r := e.exec(c)
	if r.code != 0 {
		t.Fatalf("backup --stdin: %v", r)
	}
	lines := jsonLines(t, r)
	var sum jsonBackupSummary
	decodeStrict(t, lines[len(lines)-1].raw, &sum)
	if sum.TotalBytes != int64(len(data)) || sum.TotalFiles != 1 {
		t.Errorf("summary: %d files, %d bytes; want 1 file of %d bytes", sum.TotalFiles, sum.TotalBytes, len(data))
	}
	got := e.mustRun("dump", "latest:/db/app.sql")
	if !bytes.Equal(got.stdout, data) {
		t.Fatalf("dump gave %d bytes, not the %d piped in", len(got.stdout), len(data))
	}
	var sns []jsonSnapshot
	decodeStrict(t, e.mustRun("snapshots", "--json").stdout, &sns)
	if len(sns) != 1 || len(sns[0].Paths) != 1 || sns[0].Paths[0] != "/db/app.sql" {
		t.Errorf("snapshot paths: %+v", sns)
	}
	target := e.path("restored")
	e.mustRun("restore", "latest", "--target", target)
	if b, err := os.ReadFile(filepath.Join(target, "db", "app.sql")); err != nil || !bytes.Equal(b, data) {
		t.Errorf("restore of the stream: %d bytes, %v", len(b), err)
	}
	if fi, err := os.Stat(filepath.Join(target, "db", "app.sql")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("stream file mode: %v, %v; want 0600", fi.Mode(), err)
	}

	// The next night's dump: a few rows changed in the middle.
	next := bytes.Replace(data, []byte("customer-17\t"), []byte("customer-17-renamed\t"), 3)
	c = e.cmd("backup", "--stdin", "--stdin-filename", "/db/app.sql", "--json")
	c.Stdin = bytes.NewReader(next)
	r = e.exec(c)
	lines = jsonLines(t, r)
	decodeStrict(t, lines[len(lines)-1].raw, &sum)
	if sum.DataAdded > int64(len(data))/3 {
		t.Errorf("a dump that changed in three rows added %d of %d bytes", sum.DataAdded, len(data))
	}
	if got := e.mustRun("dump", "latest:/db/app.sql"); !bytes.Equal(got.stdout, next) {
		t.Errorf("second dump does not come back")
	}

	c = e.cmd("backup", "--stdin")
	c.Stdin = bytes.NewReader(nil)
	e.exec(c)
	if got := e.mustRun("dump", "latest:/stdin"); len(got.stdout) != 0 {
		t.Errorf("empty stream dumped as %d bytes", len(got.stdout))
	}
	for _, bad := range []string{"/", "..", "/a/../.."} {
		c = e.cmd("backup", "--stdin", "--stdin-filename", bad)
		c.Stdin = bytes.NewReader(data)
		if r := e.exec(c); r.code != ExitFatal || !strings.Contains(string(r.stderr), "stream name") {
			t.Errorf("--stdin-filename %q: %v", bad, r)
		}
	}
	e.mustRun("check", "--read-data")
}

// TestBackupStdinFromCommand: a command's output is stored when it
// exits 0; when it fails, is killed, or cannot start, no snapshot is saved,
// the exit status is 1 and the message says why, with its last stderr
// lines.
func TestBackupStdinFromCommand(t *testing.T) {
	e := newRepo(t, 0)
	data := sqlDump(2, 30000)
	dumpFile := e.path("dump.sql")
	if err := os.WriteFile(dumpFile, data, 0o600); err != nil {
		t.Fatal(err)
	}
	e.mustRun("backup", "--stdin-from-command", "--stdin-filename", "/db/app.sql", "--", "cat", dumpFile)
	if got := e.mustRun("dump", "latest:/db/app.sql"); !bytes.Equal(got.stdout, data) {
		t.Fatalf("dump of the command's output: %d bytes, want %d", len(got.stdout), len(data))
	}

	cases := []struct {
		name string
		argv []string
		want []string
	}{
		{"exits 3 after some output", []string{"sh", "-c", "cat \"$0\"; echo 'pg_dump: error: connection to server lost' >&2; exit 3", dumpFile},
			[]string{"exited with status 3", "connection to server lost"}},
		{"killed", []string{"sh", "-c", "echo partial; kill -9 $$"}, []string{"killed by signal"}},
		{"silent failure", []string{"false"}, []string{"exited with status 1", "wrote nothing to standard error"}},
		{"no such program", []string{"/nonexistent/pg_dump"}, []string{"start command /nonexistent/pg_dump"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := snapshotCount(t, e)
			r := e.run(append([]string{"backup", "--stdin-from-command", "--"}, tc.argv...)...)
			if r.code != ExitFatal {
				t.Fatalf("want exit 1, got %v", r)
			}
			for _, w := range tc.want {
				if !strings.Contains(string(r.stderr), w) {
					t.Errorf("message lacks %q:\n%s", w, r.stderr)
				}
			}
			if n := snapshotCount(t, e); n != before {
				t.Errorf("a failed command left a snapshot: %d snapshots, was %d", n, before)
			}
		})
	}
	r := e.run("backup", "--stdin-from-command")
	if r.code != ExitFatal || !strings.Contains(string(r.stderr), "after --") {
		t.Errorf("no command: %v", r)
	}
	e.mustRun("check", "--read-data")
}
