package cli

// rewind copy, run as a user would: real repositories on disk and on a
// real MinIO server, the binary killed with SIGKILL midway.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/rewind-backup/rewind/internal/backend/local"
	"github.com/rewind-backup/rewind/internal/crypto"
	"github.com/rewind-backup/rewind/internal/repository"
	"github.com/rewind-backup/rewind/internal/testutil"
)

type jsonCopySnapshot struct {
	MessageType string `json:"message_type"`
	SourceID    string `json:"source_id"`
	SnapshotID  string `json:"snapshot_id"`
	Status      string `json:"status"`
	DataBlobs   int64  `json:"data_blobs"`
	TreeBlobs   int64  `json:"tree_blobs"`
	BytesAdded  int64  `json:"bytes_added"`
}

type jsonCopySummary struct {
	MessageType      string      `json:"message_type"`
	SnapshotsCopied  int         `json:"snapshots_copied"`
	SnapshotsSkipped int         `json:"snapshots_skipped"`
	DataBlobs        int64       `json:"data_blobs"`
	TreeBlobs        int64       `json:"tree_blobs"`
	BytesAdded       int64       `json:"bytes_added"`
	BytesAddedPacked int64       `json:"bytes_added_packed"`
	Mode             string      `json:"mode"`
	DurationSeconds  float64     `json:"duration_seconds"`
	SourceBackend    jsonBackend `json:"source_backend"`
	Backend          jsonBackend `json:"backend"`
}

func init() {
	schemaTypes["copy.snapshot"] = reflect.TypeFor[jsonCopySnapshot]()
	schemaTypes["copy.summary"] = reflect.TypeFor[jsonCopySummary]()
}

// copyJSON checks the lines of `copy --json` against docs/JSON.md and
// returns them.
func copyJSON(t *testing.T, r result) ([]jsonCopySnapshot, jsonCopySummary) {
	t.Helper()
	lines := jsonLines(t, r)
	if len(lines) == 0 {
		t.Fatalf("copy --json printed nothing: %v", r)
	}
	var sns []jsonCopySnapshot
	for _, l := range lines[:len(lines)-1] {
		var s jsonCopySnapshot
		checkDoc(t, "copy.snapshot", l.raw, &s)
		if s.MessageType != "snapshot" || (s.Status != "copied" && s.Status != "already_copied") {
			t.Errorf("copy --json: unexpected line %s", l.raw)
		}
		sns = append(sns, s)
	}
	var sum jsonCopySummary
	checkDoc(t, "copy.summary", lines[len(lines)-1].raw, &sum)
	if sum.MessageType != "summary" || sum.SnapshotsCopied+sum.SnapshotsSkipped != len(sns) {
		t.Errorf("copy --json summary %+v after %d snapshot lines", sum, len(sns))
	}
	return sns, sum
}

// logCopy reports what a copy moved.
func logCopy(t *testing.T, what string, s jsonCopySummary) {
	t.Helper()
	t.Logf("%s (%s): %d copied, %d skipped, %d data + %d tree blobs, %d bytes; source: %d requests, %d bytes down; destination: %d requests (%d saves), %d bytes up",
		what, s.Mode, s.SnapshotsCopied, s.SnapshotsSkipped, s.DataBlobs, s.TreeBlobs, s.BytesAdded,
		s.SourceBackend.Total(), s.SourceBackend.BytesDown, s.Backend.Total(), s.Backend.Requests.Save, s.Backend.BytesUp)
}

// Total is the number of requests of every type.
func (b jsonBackend) Total() int64 {
	r := b.Requests
	return r.Save + r.Load + r.Stat + r.Remove + r.List
}

// copySource makes a source repository with two snapshots of a data set
// of about size bytes, and returns the sandbox (REWIND_FROM_* point at
// the source) and the data folder.
func copySource(t *testing.T, size int, packSize int) (*env, string) {
	t.Helper()
	e := newEnv(t)
	srcRepo := e.path("src-repo")
	initRepo(t, srcRepo, testPassword, packSize)
	e = e.with("REWIND_FROM_REPOSITORY", srcRepo, "REWIND_FROM_PASSWORD", testPassword)
	data := e.path("data")
	files := map[string][]byte{
		"etc/app.conf":    []byte("listen 8080\n"),
		"var/log/app.log": []byte(strings.Repeat("GET / 200\n", 20000)),
		"empty":           {},
	}
	for i := range 8 {
		files[fmt.Sprintf("big/%d.bin", i)] = randomBytes(uint64(1000+i), size/10)
	}
	for i := range 100 {
		files[fmt.Sprintf("www/%02d/page%d.html", i%7, i)] = randomBytes(uint64(i), size/10/100)
	}
	writeFiles(t, data, files)
	src := e.with("REWIND_REPOSITORY", srcRepo, "REWIND_PASSWORD", testPassword)
	src.mustRun("backup", "--tag", "first", data)
	writeFiles(t, data, map[string][]byte{"etc/app.conf": []byte("listen 9090\n"), "big/new.bin": randomBytes(77, size/10)})
	src.mustRun("backup", "--tag", "second", data)
	return e, data
}

// initSharing creates, in process with cheap key derivation, a repository
// in dir that shares the chunking and IDs of the repository in from, as
// init --copy-chunker-params-from does.
func initSharing(t *testing.T, dir, from string, packSize int) {
	t.Helper()
	ctx := context.Background()
	sbe, err := local.Open(ctx, from)
	if err != nil {
		t.Fatal(err)
	}
	src, err := repository.Open(ctx, sbe, []byte(testPassword))
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	be, err := local.Create(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	r, err := repository.InitSharingChunking(ctx, be, []byte(testPassword),
		repository.InitOptions{KDF: crypto.TestKDFParams, PackSize: packSize}, src)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
}

// listRepo lists a repository's files but its locks, with their sizes.
func listRepo(t *testing.T, dir string) map[string]int64 {
	t.Helper()
	out := map[string]int64{}
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		if strings.HasPrefix(rel, "locks/") {
			return nil
		}
		fi, err := d.Info()
		if err == nil {
			out[rel] = fi.Size()
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestCopyLocal: init --copy-chunker-params-from, a copy, a restore of the
// copy byte for byte, a second copy that transfers nothing, the source
// left untouched, and a copy into a repository with its own keys.
func TestCopyLocal(t *testing.T) {
	t.Parallel()
	e, data := copySource(t, 8<<20, 0)
	srcRepo := e.vars["REWIND_FROM_REPOSITORY"]
	before := listRepo(t, srcRepo)

	dstRepo := e.path("dst-repo")
	dst := e.with("REWIND_REPOSITORY", dstRepo, "REWIND_PASSWORD", "another password")
	r := dst.mustRun("init", "--copy-chunker-params-from", srcRepo, "--json")
	if !strings.Contains(string(r.stdout), `"message_type":"initialized"`) {
		t.Errorf("init --json: %s", r.stdout)
	}
	dst.without("REWIND_FROM_PASSWORD").expectCode(ExitBadPassword, "init", "--repo", e.path("other"),
		"--copy-chunker-params-from", srcRepo, "--from-password-command", "echo wrong")
	if _, err := os.Stat(e.path("other", "config")); err == nil {
		t.Error("init with a wrong source password created the repository")
	}

	sns, first := copyJSON(t, dst.mustRun("copy", "--json"))
	logCopy(t, "first copy", first)
	if first.SnapshotsCopied != 2 || first.Mode != "by_id" || first.DataBlobs == 0 {
		t.Fatalf("first copy: %+v", first)
	}
	var srcSnaps, dstSnaps []jsonSnapshot
	checkDoc(t, "snapshot", e.with("REWIND_REPOSITORY", srcRepo, "REWIND_PASSWORD", testPassword).mustRun("snapshots", "--json").stdout, &srcSnaps)
	raw := dst.mustRun("snapshots", "--json").stdout
	checkDoc(t, "snapshot", raw, &dstSnaps)
	if len(dstSnaps) != 2 || len(srcSnaps) != 2 {
		t.Fatalf("%d snapshots copied of %d", len(dstSnaps), len(srcSnaps))
	}
	for i, d := range dstSnaps {
		s := srcSnaps[i]
		if d.CopiedFrom != s.ID || sns[i].SourceID != s.ID || sns[i].SnapshotID != d.ID || !d.Time.Equal(s.Time) ||
			strings.Join(d.Tags, ",") != strings.Join(s.Tags, ",") || strings.Join(d.Tree, ",") != strings.Join(s.Tree, ",") {
			t.Errorf("copy %d: %+v of %+v", i, d, s)
		}
	}
	if dstSnaps[1].Parent != dstSnaps[0].ID {
		t.Errorf("the second copy's parent is %q, want the first copy %s", dstSnaps[1].Parent, dstSnaps[0].ID)
	}
	target := e.path("restore")
	dst.mustRun("restore", "latest", "--target", target)
	sameFiles(t, data, target+data)
	dst.mustRun("check", "--read-data")

	_, second := copyJSON(t, dst.mustRun("copy", "--json"))
	logCopy(t, "second copy", second)
	if second.SnapshotsCopied != 0 || second.SnapshotsSkipped != 2 || second.DataBlobs+second.TreeBlobs != 0 ||
		second.Backend.Requests.Save != 1 || second.SourceBackend.BytesDown > first.SourceBackend.BytesDown/100 {
		t.Errorf("second copy: %+v", second)
	}
	if after := listRepo(t, srcRepo); !reflect.DeepEqual(before, after) {
		t.Errorf("copy changed the source repository: %d files before, %d after", len(before), len(after))
	}

	// A destination with its own keys and default chunking: the first
	// snapshot only, named by a prefix, and re-hashed.
	own := e.path("own-repo")
	initRepo(t, own, testPassword, 0)
	ownEnv := e.with("REWIND_REPOSITORY", own, "REWIND_PASSWORD", testPassword)
	sns, sum := copyJSON(t, ownEnv.mustRun("copy", "--json", srcSnaps[0].ID[:10]))
	logCopy(t, "copy into a repository with its own keys", sum)
	if sum.Mode != "rehash" || len(sns) != 1 || sns[0].SourceID != srcSnaps[0].ID {
		t.Fatalf("copy of one snapshot: %+v %+v", sns, sum)
	}
	// Restoring the first snapshot gives the data as it was then.
	ownEnv.mustRun("restore", sns[0].SnapshotID, "--target", e.path("restore-own"))
	got := readFiles(t, e.path("restore-own")+data)
	if string(got["etc/app.conf"]) != "listen 8080\n" || len(got) != len(readFiles(t, data))-1 {
		t.Errorf("the copied first snapshot restores %d files, app.conf %q", len(got), got["etc/app.conf"])
	}
	ownEnv.mustRun("check", "--read-data")

	// Wrong or missing source settings.
	dst.without("REWIND_FROM_REPOSITORY").expectCode(ExitFatal, "copy")
	dst.with("REWIND_FROM_PASSWORD", "wrong").expectCode(ExitBadPassword, "copy")
	dst.with("REWIND_FROM_REPOSITORY", e.path("nothing")).expectCode(ExitNoRepo, "copy")
	dst.with("REWIND_FROM_REPOSITORY", dstRepo, "REWIND_FROM_PASSWORD", "another password").expectCode(ExitFatal, "copy")
}

// TestCopyToS3 copies to a MinIO bucket: a second copy moves next to
// nothing, and a copy after a small change moves little.
func TestCopyToS3(t *testing.T) {
	t.Parallel()
	m := testutil.StartMinIO(t)
	e, data := copySource(t, 16<<20, 0)
	s3 := s3Env(t, m, "rewind-copy", "offsite").with(
		"REWIND_FROM_REPOSITORY", e.vars["REWIND_FROM_REPOSITORY"], "REWIND_FROM_PASSWORD", testPassword)
	s3.mustRun("init", "--copy-chunker-params-from", e.vars["REWIND_FROM_REPOSITORY"])

	_, first := copyJSON(t, s3.mustRun("copy", "--json"))
	logCopy(t, "first copy to S3", first)
	if first.SnapshotsCopied != 2 || first.Backend.BytesUp < first.BytesAddedPacked {
		t.Fatalf("first copy sent %d bytes for %d bytes of packed blobs: %+v", first.Backend.BytesUp, first.BytesAddedPacked, first)
	}

	_, second := copyJSON(t, s3.mustRun("copy", "--json"))
	logCopy(t, "second copy to S3", second)
	if second.SnapshotsSkipped != 2 || second.DataBlobs+second.TreeBlobs != 0 ||
		second.Backend.BytesUp*100 >= first.Backend.BytesUp || second.Backend.Requests.Save != 1 || // the lock
		second.SourceBackend.BytesDown*100 >= first.SourceBackend.BytesDown {
		t.Errorf("second copy moved too much: %+v (first %+v)", second, first)
	}

	// One changed file: a third snapshot, of which only the new chunks
	// travel.
	writeFiles(t, data, map[string][]byte{"www/03/page3.html": randomBytes(5000, 30_000)})
	e.with("REWIND_REPOSITORY", e.vars["REWIND_FROM_REPOSITORY"], "REWIND_PASSWORD", testPassword).mustRun("backup", data)
	_, third := copyJSON(t, s3.mustRun("copy", "--json"))
	logCopy(t, "copy after one changed file", third)
	if third.SnapshotsCopied != 1 || third.Backend.BytesUp*20 >= first.Backend.BytesUp || third.SourceBackend.BytesDown*20 >= first.SourceBackend.BytesDown {
		t.Errorf("copy of a snapshot with one changed file moved too much: %+v", third)
	}

	target := e.path("restore")
	s3.mustRun("restore", "latest", "--target", target)
	sameFiles(t, data, target+data)
	s3.mustRun("check", "--read-data")
}

// TestCopySIGKILL kills a real `rewind copy` once it has stored some
// packs, then runs it again: the rerun completes the copy, uploads less
// than a whole copy does, and the destination checks clean and restores
// byte for byte.
func TestCopySIGKILL(t *testing.T) {
	t.Parallel()
	const packSize = 1 << 20
	e, data := copySource(t, 40<<20, 0)
	srcRepo := e.vars["REWIND_FROM_REPOSITORY"]

	// A whole copy into a fresh repository, for reference.
	ref := e.path("ref-repo")
	initSharing(t, ref, srcRepo, packSize)
	_, full := copyJSON(t, e.with("REWIND_REPOSITORY", ref, "REWIND_PASSWORD", testPassword).mustRun("copy", "--json"))
	logCopy(t, "whole copy", full)

	dstRepo := e.path("dst-repo")
	initSharing(t, dstRepo, srcRepo, packSize)
	dst := e.with("REWIND_REPOSITORY", dstRepo, "REWIND_PASSWORD", testPassword)
	c := dst.cmd("copy")
	var out bytes.Buffer
	c.Stdout, c.Stderr = &out, &out
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- c.Wait() }()
	// Kill it once a few packs are stored: a condition, not a delay.
	var killedAt int
	var err error
wait:
	for {
		select {
		case err = <-done:
			break wait
		case <-time.After(2 * time.Millisecond):
			if _, n := packBytes(t, dstRepo); n >= 6 {
				killedAt = n
				if err := c.Process.Signal(syscall.SIGKILL); err != nil && !errors.Is(err, os.ErrProcessDone) {
					t.Fatal(err)
				}
				err = <-done
				break wait
			}
		}
	}
	if ee, ok := err.(*exec.ExitError); !ok || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
		t.Fatalf("the copy was not killed midway (%v): %s", err, out.Bytes())
	}
	stored, n := packBytes(t, dstRepo)
	t.Logf("killed after %d packs were stored; %d packs, %d bytes at the end", killedAt, n, stored)
	if names, _ := os.ReadDir(filepath.Join(dstRepo, "snapshots")); len(names) != 0 {
		t.Fatalf("a killed copy left %d snapshots", len(names))
	}
	dst.mustRun("check", "--read-data")

	sns, resumed := copyJSON(t, dst.mustRun("copy", "--json"))
	logCopy(t, "resumed copy", resumed)
	if resumed.SnapshotsCopied != 2 || len(sns) != 2 {
		t.Fatalf("resumed copy: %+v", resumed)
	}
	if resumed.Backend.BytesUp >= full.Backend.BytesUp || resumed.DataBlobs >= full.DataBlobs || resumed.BytesAddedPacked+stored/2 > full.BytesAddedPacked {
		t.Errorf("the resumed copy sent %d bytes (%d blobs, %d packed) after %d bytes were stored; a whole copy sends %d (%d blobs, %d packed)",
			resumed.Backend.BytesUp, resumed.DataBlobs, resumed.BytesAddedPacked, stored, full.Backend.BytesUp, full.DataBlobs, full.BytesAddedPacked)
	}
	var chk jsonCheckSummary
	lines := jsonLines(t, dst.mustRun("check", "--read-data", "--json"))
	checkDoc(t, "check.summary", lines[len(lines)-1].raw, &chk)
	if !chk.OK || len(chk.UnindexedPacks) != 0 || chk.Snapshots != 2 {
		t.Errorf("check after the resumed copy: %+v", chk)
	}
	target := e.path("restore")
	dst.mustRun("restore", "latest", "--target", target)
	sameFiles(t, data, target+data)
}
