package mysql

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rewind-backup/rewind/internal/testutil"
)

func TestOptionFileGroupsAndIncludes(t *testing.T) {
	dir := t.TempDir()
	inc := filepath.Join(dir, "conf.d")
	if err := os.Mkdir(inc, 0o755); err != nil {
		t.Fatal(err)
	}
	must := func(p, s string) {
		if err := os.WriteFile(p, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	must(filepath.Join(inc, "50-client.cnf"), "[client]\nport = 3307\n")
	must(filepath.Join(inc, "ignored.txt"), "[client]\nport = 9\n")
	main := filepath.Join(dir, "my.cnf")
	must(main, "# comment\n[mysqld]\nsocket=/wrong.sock\n[client]\nuser = backup # the backup user\npassword = \"p#ss w\\tord\"\nsocket=/run/x.sock\n!includedir "+inc+"\n[mariadb-client]\nuser=later\n")
	o, err := (ConnOptions{DefaultsFile: main}).Resolve()
	if err != nil {
		t.Fatal(err)
	}
	if o.User != "later" || o.Password != "p#ss w\tord" || o.Socket != "/run/x.sock" || o.Port != 3307 {
		t.Fatalf("resolved %+v", o)
	}
	// Flags win over the file.
	o, err = (ConnOptions{DefaultsFile: main, User: "flag", Socket: "/s"}).Resolve()
	if err != nil || o.User != "flag" || o.Socket != "/s" {
		t.Fatalf("flags: %+v %v", o, err)
	}
	if _, err := (ConnOptions{DefaultsFile: filepath.Join(dir, "missing.cnf")}).Resolve(); err == nil {
		t.Fatal("a missing --defaults-file was accepted")
	}
	must(main, "[client\nuser=x\n")
	if _, err := (ConnOptions{DefaultsFile: main}).Resolve(); err == nil || !strings.Contains(err.Error(), "line 1") {
		t.Fatalf("broken header: %v", err)
	}
	// An include loop ends with an error, not a stack overflow.
	must(main, "!include "+main+"\n")
	if _, err := (ConnOptions{DefaultsFile: main}).Resolve(); err == nil {
		t.Fatal("include loop accepted")
	}
}

func TestClientArgsKeepPasswordOffTheCommandLine(t *testing.T) {
	o := ConnOptions{Host: "db1", Port: 3310, User: "u", Password: "secret", DefaultsFile: "/etc/x.cnf"}
	args := o.ClientArgs()
	if args[0] != "--defaults-file=/etc/x.cnf" || strings.Contains(strings.Join(args, " "), "secret") {
		t.Fatalf("args %v", args)
	}
	if env := o.ClientEnv(); len(env) != 1 || env[0] != "MYSQL_PWD=secret" {
		t.Fatalf("env %v", env)
	}
}

func TestOpenRealServer(t *testing.T) {
	m := testutil.StartMariaDB(t, testutil.MariaDBOptions{})
	ctx := context.Background()
	o, err := (ConnOptions{Socket: m.Socket, User: "rewind", PasswordFile: m.PasswordFile(t), DefaultsFile: m.ConfigFile}).Resolve()
	if err != nil {
		t.Fatal(err)
	}
	db, err := Open(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	db.Close()
	// Over TCP too.
	o2 := o
	o2.Host, o2.Port = "127.0.0.1", m.Port
	db, err = Open(ctx, o2)
	if err != nil {
		t.Fatal(err)
	}
	db.Close()
	o.Password = "wrong"
	_, err = Open(ctx, o)
	if err == nil || !strings.Contains(err.Error(), "refused user \"rewind\"") {
		t.Fatalf("wrong password: %v", err)
	}
	_, err = Open(ctx, ConnOptions{Socket: filepath.Join(t.TempDir(), "none.sock"), User: "root"})
	if err == nil || !strings.Contains(err.Error(), "is it running?") {
		t.Fatalf("no server: %v", err)
	}
}

func FuzzParseOptions(f *testing.F) {
	f.Add("[client]\nuser=a\npassword='x'\n")
	f.Add("[client]\n!include /nonexistent\nport=1 # c\n")
	f.Add("[mysql]\nsocket=\"/a b\\s\"\n[mysqld]\nx=y")
	f.Fuzz(func(t *testing.T, text string) {
		opts := Options{}
		_ = parseOptions("fuzz.cnf", text, opts, maxIncludeDepth) // no includes followed past the bound
	})
}
