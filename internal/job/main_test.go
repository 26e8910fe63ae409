package job

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rewind-backup/rewind/internal/backend/local"
	"github.com/rewind-backup/rewind/internal/crypto"
	"github.com/rewind-backup/rewind/internal/event"
	"github.com/rewind-backup/rewind/internal/plan"
	"github.com/rewind-backup/rewind/internal/repository"
)

// rewindBin is the rewind binary built once for the tests.
var rewindBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "rewind-job-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	rewindBin = filepath.Join(dir, "rewind")
	build := exec.Command("go", "build", "-o", rewindBin, "../../cmd/rewind")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build rewind:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

const testPassword = "job test password"

// testRepo creates a repository with cheap key derivation in a new folder
// under dir (a t.TempDir() when ""), and returns it as a plan entry.
func testRepo(t *testing.T, dir, name string) *plan.Repository {
	t.Helper()
	if dir == "" {
		dir = t.TempDir()
	}
	ctx := context.Background()
	loc := filepath.Join(dir, name)
	be, err := local.Create(ctx, loc)
	if err != nil {
		t.Fatal(err)
	}
	r, err := repository.Init(ctx, be, []byte(testPassword), repository.InitOptions{KDF: crypto.TestKDFParams})
	if err != nil {
		t.Fatal(err)
	}
	r.Close()
	pw := filepath.Join(t.TempDir(), "password")
	if err := os.WriteFile(pw, []byte(testPassword+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return &plan.Repository{Name: name, Location: loc, PasswordFile: pw}
}

// newRunner returns a runner of a plan with the given repositories (the
// first is the jobs' default) and the job.
func newRunner(t *testing.T, j *plan.Job, repos ...*plan.Repository) *Runner {
	t.Helper()
	p := &plan.Plan{Host: "testhost", Repositories: map[string]*plan.Repository{}, Jobs: map[string]*plan.Job{j.Name: j}}
	for _, r := range repos {
		p.Repositories[r.Name] = r
	}
	if j.Repository == "" {
		j.Repository = repos[0].Name
	}
	return &Runner{Bin: rewindBin, Plan: p, Log: slog.New(slog.NewTextHandler(testWriter{t}, nil))}
}

// testWriter sends the runner's log to the test's log.
type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// rewind runs the test binary against repo and returns its stdout.
func rewind(t *testing.T, repo *plan.Repository, args ...string) []byte {
	t.Helper()
	full := append([]string{"--repo", repo.Location, "--password-file", repo.PasswordFile}, args...)
	cmd := exec.Command(rewindBin, full...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("rewind %s: %v: %s", strings.Join(args, " "), err, stderr.String())
	}
	return out
}

// snapshotInfo is what the tests read of `snapshots --json`.
type snapshotInfo struct {
	ID        string   `json:"id"`
	Paths     []string `json:"paths"`
	Tags      []string `json:"tags"`
	Inventory string   `json:"inventory"`
}

func snapshots(t *testing.T, repo *plan.Repository) []snapshotInfo {
	t.Helper()
	var sns []snapshotInfo
	if err := json.Unmarshal(rewind(t, repo, "snapshots", "--json"), &sns); err != nil {
		t.Fatal(err)
	}
	return sns
}

// sh is a run step of a shell command line (the tests' own commands;
// the runner itself never uses a shell).
func sh(script string) *plan.Step {
	return &plan.Step{Kind: plan.StepRun, Command: plan.Command{"sh", "-c", script}}
}

// orderLog is a file that steps append lines to, to show what ran in
// which order.
type orderLog string

func newOrderLog(t *testing.T) orderLog { return orderLog(filepath.Join(t.TempDir(), "order.log")) }

// step returns a run step that appends word to the log.
func (l orderLog) step(word string) *plan.Step {
	return &plan.Step{Kind: plan.StepRun, Command: plan.Command{"sh", "-c", `echo "$1" >> "$2"`, "sh", word, string(l)}}
}

func (l orderLog) lines(t *testing.T) []string {
	t.Helper()
	b, err := os.ReadFile(string(l))
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	return strings.Fields(string(b))
}

// stepResults lists the record's steps as "phase kind result".
func stepResults(rec *event.Run) []string {
	var out []string
	for _, s := range rec.Steps {
		out = append(out, s.Phase+" "+s.Kind+" "+s.Result)
	}
	return out
}

// writeWithin writes a file in dir and fails the test if that does not
// finish in time: a frozen filesystem blocks writes.
func writeWithin(t *testing.T, dir string, d time.Duration) {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- os.WriteFile(filepath.Join(dir, "after-thaw"), []byte("writable"), 0o644) }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(d):
		t.Fatalf("%s is still frozen: a write did not finish in %s", dir, d)
	}
}

func mustLook(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		t.Fatal(err)
	}
	return p
}
