package cli

// Damaged repositories and racing inits on a real MinIO server: the same
// code paths as on a local folder, through the S3 backend's conditional
// writes and object reads.

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"strings"
	"sync"
	"testing"

	"github.com/minio/minio-go/v7"

	"github.com/rewind-backup/rewind/internal/testutil"
)

// TestS3InitConcurrentProcesses races `rewind init` processes on one S3
// location, round after round: one wins, the others exit 1 saying the
// repository exists, and exactly one key object is left.
func TestS3InitConcurrentProcesses(t *testing.T) {
	m := testutil.StartMinIO(t)
	bucket := m.NewBucket(t)
	for round := range 5 {
		prefix := fmt.Sprintf("race/%d", round)
		e := s3Env(t, m, bucket, prefix)
		pw := func(i int) string { return fmt.Sprintf("s3 password %d of round %d", i, round) }
		results := make([]result, 3)
		var wg sync.WaitGroup
		for i := range results {
			c := e.with("REWIND_PASSWORD", pw(i)).cmd("init")
			wg.Add(1)
			go func() {
				defer wg.Done()
				results[i] = e.exec(c)
			}()
		}
		wg.Wait()
		winner := -1
		for i, r := range results {
			switch {
			case r.code == ExitOK && winner >= 0:
				t.Fatalf("round %d: two inits succeeded:\n%v\n%v", round, results[winner], r)
			case r.code == ExitOK:
				winner = i
			case r.code != ExitFatal || !strings.Contains(string(r.stderr), "a repository already exists there"):
				t.Fatalf("round %d: a losing init: %v", round, r)
			}
		}
		if winner < 0 {
			t.Fatalf("round %d: no init succeeded: %v", round, results)
		}
		if keys := bucketKeys(t, m, bucket, prefix+"/keys/"); len(keys) != 1 {
			t.Fatalf("round %d: %d key objects, want only the winner's", round, len(keys))
		}
		e.with("REWIND_PASSWORD", pw(winner)).mustRun("snapshots")
		r := e.with("REWIND_PASSWORD", pw((winner+1)%len(results))).expectCode(ExitBadPassword, "snapshots")
		if strings.Contains(string(r.stderr), "corrupt") {
			t.Fatalf("round %d: the loser's password is reported as corruption: %v", round, r)
		}
	}
}

// TestS3DamagedIndex truncates one index object of an S3 repository:
// check names it and repair index, restores come back exactly, prune
// refuses, and repair index makes the repository pass check.
func TestS3DamagedIndex(t *testing.T) {
	m := testutil.StartMinIO(t)
	bucket := m.NewBucket(t)
	const prefix = "damaged/index"
	e := s3Env(t, m, bucket, prefix)
	e.mustRun("init")
	var srcs, snaps []string
	for k := range 2 {
		src := e.path(fmt.Sprintf("src%d", k))
		writeFiles(t, src, map[string][]byte{"a.bin": randomBytes(uint64(400+k), 150<<10), "b/c.txt": []byte(strings.Repeat("s3 ", 300+k))})
		r := e.mustRun("backup", "--json", src)
		lines := jsonLines(t, r)
		var sum jsonBackupSummary
		decodeStrict(t, lines[len(lines)-1].raw, &sum)
		srcs, snaps = append(srcs, src), append(snaps, sum.SnapshotID)
	}
	ctx := context.Background()
	cl := m.Client(t)
	var victim string
	for key := range bucketKeys(t, m, bucket, prefix+"/index/") {
		victim = key
		break
	}
	obj, err := cl.GetObject(ctx, bucket, victim, minio.GetObjectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	data, err := io.ReadAll(obj)
	obj.Close()
	if err != nil {
		t.Fatal(err)
	}
	cut := data[:len(data)/2]
	if _, err := cl.PutObject(ctx, bucket, victim, bytes.NewReader(cut), int64(len(cut)), minio.PutObjectOptions{}); err != nil {
		t.Fatal(err)
	}
	name := "index/" + victim[strings.LastIndex(victim, "/")+1:]

	r := e.expectCode(ExitFatal, "check", "--read-data")
	if !strings.Contains(string(r.stdout), name) || !strings.Contains(string(r.stdout), "rewind repair index") {
		t.Fatalf("check does not name %s and repair index: %v", name, r)
	}
	for k, sn := range snaps {
		target := e.path(fmt.Sprintf("restore%d", k))
		e.mustRun("restore", sn, "--target", target)
		sameFiles(t, srcs[k], target+srcs[k])
	}
	before := bucketKeys(t, m, bucket, prefix+"/data/")
	r = e.expectCode(ExitFatal, "prune")
	if !strings.Contains(string(r.stderr), "rewind repair index") {
		t.Errorf("prune does not say why it refuses: %v", r)
	}
	if after := bucketKeys(t, m, bucket, prefix+"/data/"); len(after) != len(before) {
		t.Fatalf("prune changed the packs: %d before, %d after", len(before), len(after))
	}
	e.mustRun("repair", "index")
	e.mustRun("check", "--read-data")
}
