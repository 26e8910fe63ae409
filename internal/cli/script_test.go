package cli

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/rogpeppe/go-internal/testscript"
)

// TestScripts runs the scripts in testdata/script: each runs the rewind
// binary (built by TestMain) as a user would and compares what it prints
// with golden text, so that a change of the output is reviewed as text.
//
// Besides testscript's own commands the scripts have:
//   - exitcode N PROG ARGS...: run PROG, which must exit with status N;
//     its stdout and stderr are then checked as after exec.
//   - scrub FILE: write the last stdout and stderr, with what differs from
//     run to run replaced, to FILE (then `cmp FILE want`): $WORK, object
//     IDs (<id>, <ID> for 64 digits), times (<time>), durations (<dur>),
//     rates (<rate>) and the sizes a backup added (<size>).
//
// Every script has TZ=UTC, its own HOME and XDG directories under $WORK,
// and rewind on its PATH; it sets REWIND_PASSWORD itself.
func TestScripts(t *testing.T) {
	t.Parallel()
	// Work directories at a fixed depth below /, whatever TMPDIR is: a
	// backup counts the directories above the paths it backs up.
	root, err := os.MkdirTemp("/tmp", "rewind-script-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(root) })
	testscript.Run(t, testscript.Params{
		Dir:         filepath.Join("testdata", "script"),
		WorkdirRoot: root,
		// REWIND_UPDATE_SCRIPTS=1 rewrites the golden files from what the
		// commands print now: review the diff before committing it.
		UpdateScripts: os.Getenv("REWIND_UPDATE_SCRIPTS") == "1",
		Setup: func(env *testscript.Env) error {
			env.Setenv("PATH", filepath.Dir(rewindBin)+string(os.PathListSeparator)+env.Getenv("PATH"))
			env.Setenv("TZ", "UTC")
			env.Setenv("HOME", filepath.Join(env.WorkDir, "home"))
			env.Setenv("XDG_DATA_HOME", filepath.Join(env.WorkDir, "home", "data"))
			env.Setenv("XDG_CACHE_HOME", filepath.Join(env.WorkDir, "home", "cache"))
			env.Setenv("XDG_STATE_HOME", filepath.Join(env.WorkDir, "home", "state"))
			env.Setenv("XDG_CONFIG_HOME", filepath.Join(env.WorkDir, "home", "config"))
			return nil
		},
		Cmds: map[string]func(ts *testscript.TestScript, neg bool, args []string){
			"exitcode": scriptExitCode,
			"scrub":    scriptScrub,
		},
	})
}

func scriptExitCode(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) < 2 {
		ts.Fatalf("usage: exitcode N PROG ARGS...")
	}
	want, err := strconv.Atoi(args[0])
	if err != nil {
		ts.Fatalf("exitcode: %v", err)
	}
	err = ts.Exec(args[1], args[2:]...)
	got := 0
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		got = ee.ExitCode()
	case err != nil:
		ts.Fatalf("exitcode: %v", err)
	}
	if got != want {
		ts.Fatalf("%s exited with status %d, want %d", args[1], got, want)
	}
}

var scrubRules = []struct {
	re   *regexp.Regexp
	with string
}{
	{regexp.MustCompile(`\b[0-9a-f]{64}\b`), "<ID>"},
	// What a backup adds depends on the encoding of times (the source's
	// mtimes) and compression.
	{regexp.MustCompile(`added \d+(\.\d+)? [KMGT]?i?B \(\d+(\.\d+)? [KMGT]?i?B stored\)`), "added <size> (<size> stored)"},
	{regexp.MustCompile(`\b[0-9a-f]{8}\b`), "<id>"},
	{regexp.MustCompile(`\d{4}-\d\d-\d\d[ T]\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)?`), "<time>"},
	{regexp.MustCompile(`\(\d+(\.\d+)? [KMGT]?i?B/s\)`), "(<rate>)"},
	{regexp.MustCompile(`\b\d+(\.\d+)?(ns|µs|ms|s|m)\b`), "<dur>"},
}

func scriptScrub(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 1 {
		ts.Fatalf("usage: scrub FILE")
	}
	s := ts.ReadFile("stdout") + ts.ReadFile("stderr")
	s = strings.ReplaceAll(s, ts.Getenv("WORK"), "$WORK")
	for _, r := range scrubRules {
		s = r.re.ReplaceAllString(s, r.with)
	}
	if err := os.WriteFile(ts.MkAbs(args[0]), []byte(s), 0o644); err != nil {
		ts.Fatalf("scrub: %v", err)
	}
}
