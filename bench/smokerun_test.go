package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// runSmokeSection builds the harness and runs `bench -smoke -NAME only`
// (with RWBENCH_REWIND's binary when set), failing the test when it
// fails; it returns what the run printed.
func runSmokeSection(t *testing.T, name string) string {
	t.Helper()
	bench := filepath.Join(t.TempDir(), "bench")
	if out, err := exec.Command("go", "build", "-o", bench, ".").CombinedOutput(); err != nil {
		t.Fatalf("build the harness: %v\n%s", err, out)
	}
	args := []string{"-smoke", "-" + name, "only"}
	if bin := os.Getenv("RWBENCH_REWIND"); bin != "" {
		args = append(args, "-rewind", bin)
	}
	var stdout, stderr bytes.Buffer
	cmd := exec.Command(bench, args...)
	cmd.Env = append(os.Environ(), "TMPDIR="+t.TempDir())
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("bench -smoke -%s only: %v\nstderr:\n%s", name, err, tail(stderr.String(), 60))
	}
	out := stdout.String()
	t.Logf("bench -smoke -%s only printed:\n%s", name, out)
	return out
}
