package cli

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/rewind-backup/rewind/internal/rescue"
)

// TestRescueBuildErrors: rescue build's refusals are exit status 1 with
// a message that says what to do: no --out, no kernel, and (when the
// test binary is linked dynamically, as a default go build is with cgo)
// a rewind that cannot run in the image.
func TestRescueBuildErrors(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	r := e.run("rescue", "build")
	if r.code != ExitFatal || !strings.Contains(string(r.stderr), "--out DIR") {
		t.Errorf("without --out: %v", r)
	}
	r = e.run("rescue", "build", "--out", e.path("out"), "--kernel", e.path("no-vmlinuz"), "--modules", e.path("no-modules"))
	if r.code != ExitFatal || !strings.Contains(string(r.stderr), "pass --kernel FILE and --modules DIR") {
		t.Errorf("without a kernel: %v", r)
	}
	if _, err := os.Stat("/bin/busybox"); err != nil {
		return
	}
	kernel := e.path("vmlinuz")
	os.WriteFile(kernel, []byte("kernel"), 0o644)
	os.MkdirAll(e.path("modules", "kernel"), 0o755)
	if err := rescue.CheckStatic(rewindBin); err == nil {
		t.Skip("the test binary is static: TestRescueBoots in internal/rescue builds with it")
	}
	r = e.run("rescue", "build", "--out", e.path("out"), "--kernel", kernel, "--modules", e.path("modules"))
	if r.code != ExitFatal || !strings.Contains(string(r.stderr), "CGO_ENABLED=0 go build -o rewind ./cmd/rewind") {
		t.Errorf("a dynamic rewind: %v", r)
	}
	if _, err := os.Stat(filepath.Join(e.path("out"))); !os.IsNotExist(err) {
		t.Errorf("the output folder was made: %v", err)
	}
}

// The schema of `rescue build --json` is checked against the type the
// command prints (a strict copy here would only repeat it).
func init() {
	schemaTypes["rescue.build"] = reflect.TypeFor[rescueBuildJSON]()
}
