package cli

// S3 Object Lock against a real MinIO, through the rewind binary: an
// attacker with the backup host's credentials and password cannot destroy
// locked snapshots, and recover-versions brings them back; retention keeps
// up with deduplication.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"

	"github.com/rewind-backup/rewind/internal/testutil"
)

func init() {
	schemaTypes["backup.retention"] = reflect.TypeFor[jsonRetention]()
	schemaTypes["retention.summary"] = reflect.TypeFor[jsonRetention]()
	schemaTypes["recover.summary"] = reflect.TypeFor[jsonRecover]()
}

type jsonRetention struct {
	MessageType  string    `json:"message_type"`
	Snapshots    int       `json:"snapshots"`
	Done         int       `json:"snapshots_done"`
	Files        int       `json:"files"`
	Cached       int       `json:"cached"`
	Lookups      int       `json:"lookups"`
	Extended     int       `json:"extended"`
	Failed       int       `json:"failed"`
	MissingBlobs int       `json:"missing_blobs"`
	LockedUntil  time.Time `json:"locked_until"`
}

type jsonRecover struct {
	MessageType      string    `json:"message_type"`
	DryRun           bool      `json:"dry_run"`
	Snapshots        int       `json:"snapshots"`
	At               time.Time `json:"at"`
	Entries          int       `json:"entries"`
	Unchanged        int       `json:"unchanged"`
	Restored         int       `json:"restored"`
	RestoredByDelete int       `json:"restored_by_delete"`
	RestoredByCopy   int       `json:"restored_by_copy"`
	Hidden           int       `json:"hidden"`
	Lost             []string  `json:"lost"`
	Requests         int       `json:"requests"`
	Reads            int       `json:"reads"`
}

// lockedBackup runs `backup --json` on a repository with object lock and
// returns its retention line and summary.
func lockedBackup(t *testing.T, e *env, args ...string) (jsonRetention, jsonBackupSummary) {
	t.Helper()
	r := e.mustRun(append([]string{"backup", "--json"}, args...)...)
	lines := jsonLines(t, r)
	var ret jsonRetention
	var sum jsonBackupSummary
	found := false
	for i, l := range lines {
		switch l.obj["message_type"] {
		case "retention":
			checkDoc(t, "backup.retention", l.raw, &ret)
			found = true
		case "summary":
			if i != len(lines)-1 {
				t.Errorf("backup --json: the summary is not the last line")
			}
			checkDoc(t, "backup.summary", l.raw, &sum)
		}
	}
	if !found {
		t.Fatalf("backup --json on a repository with object lock printed no retention line: %v", r)
	}
	return ret, sum
}

// retainUntil returns the retention dates of the current versions of the
// keys under prefix; keys without one are absent.
func retainUntil(t *testing.T, c *minio.Client, bucket, prefix string) map[string]time.Time {
	t.Helper()
	ctx := context.Background()
	out := map[string]time.Time{}
	for obj := range c.ListObjectsIter(ctx, bucket, minio.ListObjectsOptions{Prefix: prefix, Recursive: true}) {
		if obj.Err != nil {
			t.Fatal(obj.Err)
		}
		mode, until, err := c.GetObjectRetention(ctx, bucket, obj.Key, "")
		if err != nil {
			continue // no retention
		}
		if mode == nil || *mode != minio.Compliance || until == nil {
			t.Errorf("%s: retention %v until %v, want COMPLIANCE", obj.Key, mode, until)
			continue
		}
		out[obj.Key] = *until
	}
	return out
}

// restoreEach restores every snapshot into a folder of its own and
// compares it with the files it was made from.
func restoreEach(t *testing.T, e *env, src string, want map[string]map[string][]byte) {
	t.Helper()
	for id, files := range want {
		target := e.path("restore-" + id[:8])
		e.mustRun("restore", id, "--target", target)
		got := readFiles(t, target+src)
		if len(got) != len(files) {
			t.Errorf("snapshot %s: restored %d files, want %d", id[:8], len(got), len(files))
		}
		for name, data := range files {
			if !bytes.Equal(got[name], data) {
				t.Errorf("snapshot %s: %s restored different (%d bytes, want %d)", id[:8], name, len(got[name]), len(data))
			}
		}
	}
}

// TestObjectLockAttack plays ransomware with the backup host's S3
// credentials and repository password: it forgets every snapshot, prunes,
// deletes every object (and tries to delete every version), and overwrites
// them with junk, some of it locked itself. recover-versions then brings
// the repository back as it was before, every snapshot restores bit for
// bit, and check --read-data passes.
func TestObjectLockAttack(t *testing.T) {
	ctx := context.Background()
	m := testutil.StartMinIO(t)
	client := m.Client(t)

	// Object lock needs a bucket made with it.
	plain := m.NewBucket(t)
	r := s3Env(t, m, plain, "").expectCode(ExitFatal, "init", "--object-lock", "1h")
	if !strings.Contains(string(r.stderr), "Object Lock") {
		t.Errorf("init --object-lock on a bucket without it: %s", r.stderr)
	}
	newEnv(t).with("REWIND_PASSWORD", testPassword).expectCode(ExitFatal, "init", "--repo", t.TempDir(), "--object-lock", "1h")

	const bucket, prefix = "rewind-locked", "web1"
	e := s3Env(t, m, bucket, prefix)
	r = e.mustRun("init", "--object-lock", "1h")
	if !strings.Contains(string(r.stdout), "COMPLIANCE") {
		t.Errorf("init --object-lock does not say so: %s", r.stdout)
	}

	src := e.path("src")
	files := map[string][]byte{"etc/app.conf": []byte("listen 8080\n"), "var/db.bin": randomBytes(21, 3<<20)}
	for i := range 30 {
		files[fmt.Sprintf("www/page%02d.html", i)] = randomBytes(uint64(100+i), 2000+i*100)
	}
	writeFiles(t, src, files)
	want := map[string]map[string][]byte{}
	ret, sum := lockedBackup(t, e, src)
	want[sum.SnapshotID] = readFiles(t, src)
	if ret.Snapshots != 1 || ret.Failed != 0 {
		t.Errorf("first backup: retention %+v", ret)
	}
	writeFiles(t, src, map[string][]byte{"etc/app.conf": []byte("listen 9090\n"), "www/new.html": randomBytes(7, 50_000)})
	ret, sum = lockedBackup(t, e, src)
	want[sum.SnapshotID] = readFiles(t, src)
	if ret.Snapshots != 2 || ret.Failed != 0 || ret.Extended != 0 {
		t.Errorf("second backup: retention %+v; nothing is due an hour early", ret)
	}

	// Everything a restore needs is locked for the retention and a
	// quarter; locks are not.
	now := time.Now()
	locked := retainUntil(t, client, bucket, prefix+"/")
	kinds := map[string]int{}
	for k, u := range locked {
		kinds[strings.SplitN(strings.TrimPrefix(k, prefix+"/"), "/", 2)[0]]++
		if u.Before(now.Add(time.Hour)) || u.After(now.Add(76*time.Minute)) {
			t.Errorf("%s locked until %v", k, u)
		}
	}
	// The backups record the machine's inventory, which recovery needs
	// as much as the snapshot.
	for _, kind := range []string{"config", "keys", "data", "index", "snapshots", "inventory"} {
		if kinds[kind] == 0 {
			t.Errorf("no %s object is locked (locked: %v)", kind, kinds)
		}
	}
	if len(kinds) != 6 {
		t.Errorf("locked objects of kinds %v, want config, keys, data, index, snapshots and inventory only", kinds)
	}

	time.Sleep(50 * time.Millisecond) // keep the attack's times apart from the backup's
	at := time.Now()
	time.Sleep(50 * time.Millisecond)

	// The attack, with rewind and the password...
	for id := range want {
		e.mustRun("forget", id)
	}
	r = e.mustRun("prune")
	if !strings.Contains(string(r.stdout), "S3 object lock") {
		t.Errorf("prune does not say that object lock keeps the packs:\n%s", r.stdout)
	}
	r = e.mustRun("prune")
	if !strings.Contains(string(r.stdout), "S3 object lock") {
		t.Errorf("a second prune does not say that object lock keeps the packs:\n%s", r.stdout)
	}
	// ... then with the S3 API: delete every version it can, hide every
	// key, and overwrite them all with junk.
	keys := map[string][]string{} // key -> its versions
	for obj := range client.ListObjectsIter(ctx, bucket, minio.ListObjectsOptions{Prefix: prefix + "/", Recursive: true, WithVersions: true}) {
		if obj.Err != nil {
			t.Fatal(obj.Err)
		}
		if !obj.IsDeleteMarker {
			keys[obj.Key] = append(keys[obj.Key], obj.VersionID)
		}
	}
	deleted := 0
	for key, versions := range keys {
		for _, v := range versions {
			err := client.RemoveObject(ctx, bucket, key, minio.RemoveObjectOptions{VersionID: v})
			if err == nil {
				deleted++
				if _, ok := locked[key]; ok {
					t.Errorf("the attacker deleted version %s of locked %s", v, key)
				}
			}
		}
		if err := client.RemoveObject(ctx, bucket, key, minio.RemoveObjectOptions{}); err != nil {
			t.Fatalf("delete %s: %v", key, err)
		}
	}
	n := 0
	for key := range keys {
		junk := []byte("your files are encrypted " + key)
		opts := minio.PutObjectOptions{}
		if n%5 == 0 || strings.HasSuffix(key, "/config") {
			// Junk locked itself cannot be deleted: recovery copies.
			opts.Mode, opts.RetainUntilDate = minio.Compliance, time.Now().Add(time.Hour)
		}
		n++
		if _, err := client.PutObject(ctx, bucket, key, bytes.NewReader(junk), int64(len(junk)), opts); err != nil {
			t.Fatalf("overwrite %s: %v", key, err)
		}
	}
	t.Logf("attack: %d keys, %d unlocked versions deleted (locks, prune marks), every key hidden and overwritten", len(keys), deleted)
	e.expectCode(ExitFatal, "snapshots")

	// Recovery.
	r = e.mustRun("recover-versions", "--at", at.UTC().Format(time.RFC3339Nano), "--dry-run")
	for id := range want {
		if !strings.Contains(string(r.stdout), id[:8]) {
			t.Errorf("recover-versions --dry-run does not list snapshot %s:\n%s", id[:8], r.stdout)
		}
	}
	r = e.mustRun("recover-versions", "--at", at.UTC().Format(time.RFC3339Nano), "--json")
	var rec jsonRecover
	checkDoc(t, "recover.summary", bytes.TrimSpace(r.stdout), &rec)
	t.Logf("recover-versions: %+v", rec)
	if rec.Snapshots != len(want) || rec.Restored == 0 || rec.RestoredByCopy == 0 || rec.Hidden == 0 || len(rec.Lost) != 0 || rec.DryRun {
		t.Errorf("recover-versions: %+v", rec)
	}

	var snaps []jsonSnapshot
	decodeStrict(t, e.mustRun("snapshots", "--json").stdout, &snaps)
	if len(snaps) != len(want) {
		t.Fatalf("after recovery: %d snapshots, want %d", len(snaps), len(want))
	}
	for _, s := range snaps {
		if want[s.ID] == nil {
			t.Errorf("after recovery: unknown snapshot %s", s.ID)
		}
	}
	restoreEach(t, e, src, want)
	e.mustRun("check", "--read-data")

	var ext jsonRetention
	checkDoc(t, "retention.summary", bytes.TrimSpace(e.mustRun("retention", "extend", "--json").stdout), &ext)
	if ext.Snapshots != len(want) || ext.Failed != 0 || ext.MissingBlobs != 0 {
		t.Errorf("retention extend after recovery: %+v", ext)
	}
	// Backups go on.
	writeFiles(t, src, map[string][]byte{"www/after.html": randomBytes(8, 10_000)})
	lockedBackup(t, e, src)
}

// TestObjectLockExtension: a pack that a new snapshot shares with an old
// one has its retention extended once it is due (the retention is 8 s
// here, so the pack written by the first backup is due 2 s later), and a
// run right after extends nothing and asks the server nothing: the dates
// are in the cache.
func TestObjectLockExtension(t *testing.T) {
	m := testutil.StartMinIO(t)
	client := m.Client(t)
	const bucket, prefix = "rewind-extend", "host"
	e := s3Env(t, m, bucket, prefix)
	e.mustRun("init", "--object-lock", "8s")

	src := e.path("src")
	writeFiles(t, src, map[string][]byte{"a.bin": randomBytes(1, 200_000), "b.txt": []byte("hello\n")})
	first, _ := lockedBackup(t, e, src)
	if first.Extended != 0 || first.Failed != 0 {
		t.Errorf("first backup: retention %+v", first)
	}
	before := retainUntil(t, client, bucket, prefix+"/")
	time.Sleep(4 * time.Second) // the quarter of the retention, and a margin

	writeFiles(t, src, map[string][]byte{"c.txt": []byte("new\n")})
	ret, sum := lockedBackup(t, e, src)
	if sum.FilesUnchanged != 2 {
		t.Fatalf("second backup: %d files unchanged, want 2 (deduplicated)", sum.FilesUnchanged)
	}
	after := retainUntil(t, client, bucket, prefix+"/")
	moved, packs := 0, 0
	for key, u := range before {
		v, ok := after[key]
		switch {
		case !ok:
			t.Errorf("%s: no retention after the second backup", key)
		case v.Before(u):
			t.Errorf("%s: retention went back from %v to %v", key, u, v)
		case v.After(u):
			moved++
			if strings.Contains(key, "/data/") {
				packs++
			}
			if need := sum.BackupStart.Add(8 * time.Second); v.Before(need) {
				t.Errorf("%s extended to %v, before %v", key, v, need)
			}
		}
	}
	t.Logf("second backup: retention %+v; %d objects of the first backup extended, %d of them packs", ret, moved, packs)
	if packs == 0 {
		t.Error("no pack of the first backup, which the second one reuses, was extended")
	}
	if moved != ret.Extended || ret.Failed != 0 {
		t.Errorf("second backup says it extended %d objects (%d failed); %d dates moved", ret.Extended, ret.Failed, moved)
	}
	if k := prefix + "/config"; !after[k].After(before[k]) {
		t.Errorf("config not extended: %v, then %v", before[k], after[k])
	}

	// Nothing is due right after, and the cache knows it.
	var again jsonRetention
	checkDoc(t, "retention.summary", bytes.TrimSpace(e.mustRun("retention", "extend", "--json").stdout), &again)
	if again.Extended != 0 || again.Lookups != 0 || again.Failed != 0 || again.Done != again.Snapshots {
		t.Errorf("retention extend right after a backup: %+v, want no requests", again)
	}
	cache := filepath.Join(e.path("home"), ".cache", "rewind")
	if r := e.mustRun("retention", "extend"); !strings.Contains(string(r.stdout), "0 retention requests") {
		t.Errorf("retention extend says %s (cache in %s)", r.stdout, cache)
	}
	var out map[string]any
	if err := json.Unmarshal(bytes.TrimSpace(e.mustRun("retention", "extend", "--json").stdout), &out); err != nil || out["message_type"] != "summary" {
		t.Errorf("retention extend --json: %v %v", out, err)
	}
}
