package cli

// A repository on a real MinIO server, driven through the rewind binary
// as a user would: the address in REWIND_REPOSITORY, the credentials in
// the AWS environment variables.

import (
	"context"
	"encoding/json"
	"fmt"
	"path"
	"strings"
	"testing"

	"github.com/minio/minio-go/v7"

	"github.com/rewind-backup/rewind/internal/testutil"
)

// s3Env returns a sandbox whose repository is bucket/prefix on m.
func s3Env(t *testing.T, m *testutil.MinIO, bucket, prefix string) *env {
	kv := []string{"REWIND_REPOSITORY", m.URL(bucket, prefix), "REWIND_PASSWORD", testPassword}
	for _, v := range m.Env() {
		k, val, _ := strings.Cut(v, "=")
		kv = append(kv, k, val)
	}
	return newEnv(t).with(kv...)
}

// bucketKeys lists the keys under prefix in bucket, with their sizes.
func bucketKeys(t *testing.T, m *testutil.MinIO, bucket, prefix string) map[string]int64 {
	t.Helper()
	out := map[string]int64{}
	for obj := range m.Client(t).ListObjectsIter(context.Background(), bucket, minio.ListObjectsOptions{Prefix: prefix, Recursive: true}) {
		if obj.Err != nil {
			t.Fatal(obj.Err)
		}
		out[obj.Key] = obj.Size
	}
	return out
}

// logBackend reports what a backup asked of the storage.
func logBackend(t *testing.T, what string, s jsonBackupSummary) {
	t.Helper()
	r := s.Backend.Requests
	t.Logf("%s: %d files, %d bytes read, %d added packed; requests save %d, load %d, stat %d, remove %d, list %d; %d bytes up, %d down",
		what, s.TotalFiles, s.BytesRead, s.DataAddedPacked, r.Save, r.Load, r.Stat, r.Remove, r.List, s.Backend.BytesUp, s.Backend.BytesDown)
}

func TestS3RoundTrip(t *testing.T) {
	m := testutil.StartMinIO(t)
	const bucket, prefix = "rewind-cli", "hosts/web1"
	e := s3Env(t, m, bucket, prefix)

	// init creates the missing bucket.
	r := e.mustRun("init", "--json")
	if !strings.Contains(string(r.stdout), `"repository":"`+m.URL(bucket, prefix)+`"`) {
		t.Errorf("init --json does not name the repository: %s", r.stdout)
	}
	e.expectCode(ExitFatal, "init")

	src := e.path("src")
	files := map[string][]byte{
		"big.bin":         randomBytes(1, 40<<20),
		"empty":           {},
		"etc/app.conf":    []byte("listen 8080\n"),
		"var/log/app.log": []byte(strings.Repeat("GET / 200\n", 5000)),
	}
	for i := range 200 {
		files[fmt.Sprintf("www/page%03d.html", i)] = randomBytes(uint64(100+i), 100+i*300)
	}
	writeFiles(t, src, files)

	first := checkBackupJSON(t, e.mustRun("backup", "--json", src))
	logBackend(t, "first backup", first)
	up := first.Backend.BytesUp
	if up < first.DataAddedPacked || up > first.DataAddedPacked+first.DataAddedPacked/20+(1<<20) {
		t.Errorf("first backup sent %d bytes for %d bytes of new packed data", up, first.DataAddedPacked)
	}
	if first.Backend.Requests.Save < 3 || first.Backend.Requests.Load == 0 {
		t.Errorf("first backup requests %+v: want saves of packs, index and snapshot, and loads of keys and config", first.Backend.Requests)
	}

	second := checkBackupJSON(t, e.mustRun("backup", "--json", src))
	logBackend(t, "unchanged backup", second)
	if second.FilesUnchanged != second.TotalFiles || second.Backend.BytesUp > 1<<20 {
		t.Errorf("second backup of unchanged files: %d of %d unchanged, %d bytes sent", second.FilesUnchanged, second.TotalFiles, second.Backend.BytesUp)
	}

	writeFiles(t, src, map[string][]byte{"etc/app.conf": []byte("listen 9090\n"), "www/new.html": randomBytes(7, 50_000)})
	third := checkBackupJSON(t, e.mustRun("backup", "--json", src))
	logBackend(t, "backup with 2 changed files", third)
	if third.FilesNew != 1 || third.FilesChanged != 1 {
		t.Errorf("third backup: %d new, %d changed; want 1 and 1", third.FilesNew, third.FilesChanged)
	}

	target := e.path("restore")
	e.mustRun("restore", "latest", "--target", target)
	sameFiles(t, src, target+src)
	e.mustRun("check", "--read-data")

	r = e.mustRun("forget", "--keep-last", "1")
	var snaps []jsonSnapshot
	decodeStrict(t, e.mustRun("snapshots", "--json").stdout, &snaps)
	if len(snaps) != 1 {
		t.Errorf("after forget --keep-last 1: %d snapshots\n%v", len(snaps), r)
	}
	// The old app.conf is now unreferenced: prune deletes what only the
	// forgotten snapshots used, on S3 too, and the rest still restores.
	pr := pruneSummary(t, e.mustRun("prune", "--max-unused", "0%", "--json"))
	t.Logf("prune on S3: %+v", pr)
	if pr.PacksCondemned == 0 || pr.PacksDeleted != pr.PacksCondemned || pr.Backend.Requests.Remove == 0 {
		t.Errorf("prune on S3 deleted nothing: %+v", pr)
	}
	e.mustRun("check", "--read-data")
	target2 := e.path("restore2")
	e.mustRun("restore", "latest", "--target", target2)
	sameFiles(t, src, target2+src)

	// The objects are where docs/S3.md says, under the prefix.
	keys := bucketKeys(t, m, bucket, "")
	counts := map[string]int{}
	for k := range keys {
		rel, ok := strings.CutPrefix(k, prefix+"/")
		if !ok {
			t.Errorf("key %s outside the prefix %s", k, prefix)
			continue
		}
		dir := path.Dir(rel)
		if strings.HasPrefix(dir, "data/") {
			if path.Base(rel)[:2] != path.Base(dir) {
				t.Errorf("pack %s in the wrong folder", k)
			}
			dir = "data"
		}
		counts[dir]++
	}
	for _, d := range []string{".", "keys", "data", "index", "snapshots"} {
		if counts[d] == 0 {
			t.Errorf("no key in %s/%s (keys by folder: %v)", prefix, d, counts)
		}
	}
	if counts["."] != 1 || counts["snapshots"] != 1 {
		t.Errorf("keys by folder: %v; want the config and 1 snapshot", counts)
	}
}

// TestS3Errors checks what a user sees for a repository that is not
// there, wrong credentials and --read-only.
func TestS3Errors(t *testing.T) {
	m := testutil.StartMinIO(t)
	bucket := m.NewBucket(t)
	e := s3Env(t, m, bucket, "repo")
	src := e.path("src")
	writeFiles(t, src, map[string][]byte{"a": []byte("a")})

	r := e.expectCode(ExitNoRepo, "snapshots")
	if !strings.Contains(string(r.stderr), "no repository") {
		t.Errorf("snapshots without a repository: %v", r)
	}
	r = s3Env(t, m, "rewind-no-such-bucket", "").expectCode(ExitNoRepo, "snapshots")
	if !strings.Contains(string(r.stderr), "bucket rewind-no-such-bucket does not exist") {
		t.Errorf("snapshots in a missing bucket: %v", r)
	}

	e.mustRun("init")
	// Wrong credentials are not retried: the error comes at once and
	// names the cause.
	r = e.with("AWS_SECRET_ACCESS_KEY", "wrong").expectCode(ExitFatal, "backup", src)
	if !strings.Contains(string(r.stderr), "SignatureDoesNotMatch") || strings.Contains(string(r.stderr), "retrying") {
		t.Errorf("backup with a wrong secret: %v", r)
	}

	r = e.expectCode(ExitFatal, "backup", "--read-only", src)
	if !strings.Contains(string(r.stderr), "read-only mode") {
		t.Errorf("backup --read-only: %v", r)
	}
	e.mustRun("backup", src)
	r = e.mustRun("snapshots", "--json", "--read-only", "--no-lock")
	var snaps []json.RawMessage
	if err := json.Unmarshal(r.stdout, &snaps); err != nil || len(snaps) != 1 {
		t.Errorf("snapshots --read-only: %v, %v", err, r)
	}
	if n := len(bucketKeys(t, m, bucket, "repo/locks/")); n != 0 {
		t.Errorf("%d lock files left", n)
	}
}
