package plan

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestBrokenPlans runs every plan of testdata/broken, each of which says
// on its first line, "# want LINE:COL message", the problem it must get.
func TestBrokenPlans(t *testing.T) {
	files, err := filepath.Glob("testdata/broken/*.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if len(files) < 15 {
		t.Fatalf("only %d broken plans", len(files))
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			data, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			first, _, _ := bytes.Cut(data, []byte("\n"))
			var line, col int
			var msg string
			if _, err := fmt.Sscanf(string(first), "# want %d:%d", &line, &col); err != nil {
				t.Fatalf("first line %q: %v", first, err)
			}
			_, msg, _ = strings.Cut(strings.TrimPrefix(string(first), "# want "), " ")
			probs := problemsOf(t, f, data)
			for _, p := range probs {
				if p.Pos.Line == line && p.Pos.Column == col && strings.Contains(p.Msg, msg) && p.Severity == SeverityError {
					if !strings.HasPrefix(p.String(), strings.TrimSuffix(fmt.Sprintf("%s:%d:%d", f, line, col), ":0")+": ") {
						t.Errorf("printed as %q", p.String())
					}
					return
				}
			}
			t.Errorf("want %d:%d %q, got:\n%v", line, col, msg, probs)
		})
	}
}

// problemsOf parses data and checks it statically.
func problemsOf(t *testing.T, name string, data []byte) Problems {
	t.Helper()
	p, err := Parse(name, data)
	var probs Problems
	if err != nil && !errors.As(err, &probs) {
		t.Fatalf("Parse: %v is not Problems", err)
	}
	if p != nil {
		probs = append(probs, p.Check(context.Background(), nil)...)
	}
	return probs
}

func TestIssueExample(t *testing.T) {
	p, err := Load("testdata/issue.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if probs := p.Check(context.Background(), nil); len(probs) > 0 {
		t.Fatalf("static problems:\n%v", probs)
	}
	host, _ := os.Hostname()
	if p.Host != host {
		t.Errorf("host %q, want %q", p.Host, host)
	}
	www, nightly := p.Jobs["www"], p.Jobs["nightly"]
	if www.Name != "www" || www.Repository != "local" || www.RPO.D() != 10*time.Second || www.Retention.KeepWeekly != 5 {
		t.Errorf("www = %+v", www)
	}
	if nightly.Pos != (Pos{Line: 17, Column: 3}) || nightly.RPO.D() != 25*time.Hour || !nightly.OneFileSystem {
		t.Errorf("nightly = %+v", nightly)
	}
	run := nightly.Before[1]
	if run.Kind != StepRun || strings.Join(run.Command, "|") != "/usr/local/bin/check-site|--quick" || run.Pos != (Pos{Line: 26, Column: 9}) {
		t.Errorf("run step = %+v", run)
	}
	if nightly.After[0].Kind != StepStart || nightly.After[0].Arg != "nginx.service" {
		t.Errorf("after = %+v", nightly.After[0])
	}
	if p.Repositories["offsite"].Name != "offsite" || p.Repositories["offsite"].Pos.Line != 5 {
		t.Errorf("offsite = %+v", p.Repositories["offsite"])
	}
}

func TestSingleRepositoryDefault(t *testing.T) {
	p, err := Parse("x.yaml", []byte("host: web1\nrepositories:\n  only: {location: /r, password_file: /p}\njobs:\n  a: {kind: check}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if p.Jobs["a"].Repository != "only" || p.Host != "web1" {
		t.Errorf("job = %+v, host %q", p.Jobs["a"], p.Host)
	}
}

func TestDuration(t *testing.T) {
	for in, want := range map[string]time.Duration{
		"90s": 90 * time.Second, "1h30m": 90 * time.Minute, "2d": 48 * time.Hour, "1w": 7 * 24 * time.Hour,
		"1d12h": 36 * time.Hour, "0": 0, "1.5d": 36 * time.Hour,
	} {
		d, err := ParseDuration(in)
		if err != nil || d.D() != want {
			t.Errorf("ParseDuration(%q) = %v, %v; want %v", in, d.D(), err, want)
		}
		back, err := ParseDuration(d.String())
		if err != nil || back != d {
			t.Errorf("%q: String %q reads back as %v, %v", in, d.String(), back, err)
		}
	}
	for _, bad := range []string{"", "-1h", "1y", "h", "10", "1d-2h"} {
		if _, err := ParseDuration(bad); err == nil {
			t.Errorf("ParseDuration(%q) succeeded", bad)
		}
	}
}

func TestSplitCommand(t *testing.T) {
	for in, want := range map[string]string{
		`pg_dumpall -U postgres`:    "pg_dumpall|-U|postgres",
		`sh -c 'echo "$HOME" > /x'`: `sh|-c|echo "$HOME" > /x`,
		`a "b c" d\ e`:              "a|b c|d e",
		`echo "a \"q\" \n"`:         `echo|a "q" \n`,
		`  spaced    out  `:         "spaced|out",
		`mixed"quo"'ted'`:           "mixedquoted",
		`empty "" ''`:               "empty||",
	} {
		c, err := SplitCommand(in)
		if err != nil || strings.Join(c, "|") != want {
			t.Errorf("SplitCommand(%q) = %q, %v; want %q", in, c, err, want)
		}
		back, err := SplitCommand(c.String())
		if err != nil || strings.Join(back, "|") != want {
			t.Errorf("%q: String %q splits back to %q, %v", in, c.String(), back, err)
		}
	}
	for _, bad := range []string{`"open`, `'open`, `trailing\`} {
		if _, err := SplitCommand(bad); err == nil {
			t.Errorf("SplitCommand(%q) succeeded", bad)
		}
	}
}

func TestSequence(t *testing.T) {
	p, err := Parse("x.yaml", []byte(`repositories: {r: {location: /r, password_file: /p}}
jobs:
  j:
    kind: files
    paths: [/srv/data]
    before:
      - stop: app.service
      - stop: db.service
      - fsfreeze: /srv
      - btrfs_snapshot: /srv
    after:
      - restart: db.service
      - run: notify-done
      - run: cleanup
        always: true
    on_failure:
      - run: page-someone
`))
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, s := range p.Jobs["j"].Sequence() {
		line := s.Phase + " " + s.Describe()
		if s.RunsOnFailure {
			line += " !"
		}
		got = append(got, line)
	}
	want := []string{
		"before systemctl stop app.service",
		"before systemctl stop db.service",
		"before fsfreeze --freeze /srv",
		"before btrfs read-only snapshot of /srv (the job reads from it)",
		"main rewind backup",
		"after remove the btrfs snapshot of /srv !",
		"after fsfreeze --unfreeze /srv !",
		"after systemctl start app.service !",
		"after systemctl restart db.service !",
		"after run notify-done",
		"after run cleanup !",
		"on_failure run page-someone !",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("sequence:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// osEnv is the real machine for the Env checks, without systemd or
// repositories.
type osEnv struct{ opened []string }

func (osEnv) PathExists(p string) error {
	_, err := os.Lstat(p)
	return err
}

func (osEnv) CommandExists(name string) error {
	_, err := exec.LookPath(name)
	return err
}

func (osEnv) UnitKnown(context.Context, string) error {
	return fmt.Errorf("%w: no systemd", ErrUncheckable)
}

func (e *osEnv) OpenRepository(_ context.Context, r *Repository) error {
	e.opened = append(e.opened, r.Name)
	if _, err := os.Stat(filepath.Join(r.Location, "config")); err != nil {
		return errors.New("no repository there")
	}
	return nil
}

func TestCheckEnv(t *testing.T) {
	dir := t.TempDir()
	for _, f := range []string{"pw", "data/a", "repo/config"} {
		os.MkdirAll(filepath.Dir(filepath.Join(dir, f)), 0o755)
		os.WriteFile(filepath.Join(dir, f), nil, 0o600)
	}
	plan := fmt.Sprintf(`repositories:
  good: {location: %[1]s/repo, password_file: %[1]s/pw}
  bad: {location: %[1]s/nothing, password_file: %[1]s/pw}
  nopw: {location: %[1]s/repo, password_file: %[1]s/missing-pw}
jobs:
  files:
    kind: files
    repository: good
    paths: [%[1]s/data, %[1]s/absent, relative]
    before:
      - stop: nginx.service
      - run: [sh, -c, "true"]
      - run: no-such-command-rewind
  dump:
    kind: stdin-command
    repository: good
    command: /no/such/pg_dumpall --clean
`, dir)
	p, err := Parse("env.yaml", []byte(plan))
	if err != nil {
		t.Fatal(err)
	}
	env := &osEnv{}
	probs := p.Check(context.Background(), env)
	lines := strings.Split(plan, "\n")
	// at is the position of the first text in line n (1-based).
	at := func(n int, text string) string {
		return fmt.Sprintf("%d:%d", n, strings.Index(lines[n-1], text)+1)
	}
	want := []string{
		at(3, dir+"/nothing") + " error repositories.bad.location",
		at(4, dir+"/missing-pw") + " error repositories.nopw.password_file",
		at(9, dir+"/absent") + " error jobs.files.paths[1]",
		at(9, "relative") + " error jobs.files.paths[2]",
		at(11, "nginx.service") + " warning jobs.files.before[0].stop",
		at(13, "no-such-command-rewind") + " error jobs.files.before[2].run",
		at(17, "/no/such") + " error jobs.dump.command",
	}
	var got []string
	for _, pr := range probs {
		got = append(got, fmt.Sprintf("%d:%d %s %s", pr.Pos.Line, pr.Pos.Column, pr.Severity, pr.Field))
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("problems:\n%s\nwant:\n%s\n%v", strings.Join(got, "\n"), strings.Join(want, "\n"), probs)
	}
	if strings.Join(env.opened, ",") != "bad,good" {
		t.Errorf("opened %v; a repository whose password file is missing must not be opened", env.opened)
	}
	if probs.Errors() != 6 || probs.Err() == nil {
		t.Errorf("Errors() = %d", probs.Errors())
	}
}

func FuzzParse(f *testing.F) {
	for _, name := range []string{"testdata/issue.yaml", "testdata/broken/two-actions.yaml", "testdata/broken/rpo-unmet.yaml"} {
		data, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := Parse("fuzz.yaml", data)
		var probs Problems
		if err != nil && !errors.As(err, &probs) {
			t.Fatalf("error %T is not Problems", err)
		}
		if p != nil {
			p.Check(context.Background(), nil)
			for _, j := range p.Jobs {
				j.Sequence()
			}
		}
	})
}
