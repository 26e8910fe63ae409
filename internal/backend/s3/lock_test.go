package s3_test

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/zeebo/blake3"

	"github.com/rewind-backup/rewind/internal/backend"
	"github.com/rewind-backup/rewind/internal/backend/s3"
	"github.com/rewind-backup/rewind/internal/testutil"
)

// hashed returns a handle of type t named, as rewind names every file but
// the config, by the BLAKE3-256 of data.
func hashed(t backend.FileType, data []byte) backend.Handle {
	sum := blake3.Sum256(data)
	return backend.Handle{Type: t, Name: hex.EncodeToString(sum[:])}
}

func save(t *testing.T, be backend.Backend, h backend.Handle, data []byte) {
	t.Helper()
	if err := be.Save(context.Background(), h, backend.NewByteReader(data)); err != nil {
		t.Fatalf("Save(%v): %v", h, err)
	}
}

func retention(t *testing.T, be *s3.Backend, h backend.Handle) time.Time {
	t.Helper()
	u, err := be.Retention(context.Background(), h)
	if err != nil {
		t.Fatalf("Retention(%v): %v", h, err)
	}
	return u
}

// liveVersions counts the versions of key that are not delete markers.
func liveVersions(t *testing.T, c *minio.Client, bucket, key string) []string {
	t.Helper()
	var ids []string
	for obj := range c.ListObjectsIter(context.Background(), bucket, minio.ListObjectsOptions{Prefix: key, Recursive: true, WithVersions: true}) {
		if obj.Err != nil {
			t.Fatal(obj.Err)
		}
		if obj.Key == key && !obj.IsDeleteMarker {
			ids = append(ids, obj.VersionID)
		}
	}
	return ids
}

// TestObjectLock: a repository created with object lock writes what a
// restore needs with a COMPLIANCE retention of D + D/4 and the rest
// without; a reopened backend finds the setting on the config; a locked
// pack cannot be removed, while a locked snapshot is hidden behind a
// delete marker and its version stays; retention can be extended.
func TestObjectLock(t *testing.T) {
	ctx := context.Background()
	m := testutil.StartMinIO(t)
	client := m.Client(t)
	rng := rand.New(rand.NewPCG(5, 6))

	// An existing bucket without object lock is refused.
	cfg := config(m, m.NewBucket(t), "")
	cfg.ObjectLock = s3.ObjectLock{Retention: time.Hour, Mode: s3.ModeCompliance}
	if _, err := s3.Create(ctx, cfg); err == nil || !strings.Contains(err.Error(), "Object Lock") {
		t.Fatalf("Create with object lock on a bucket without it: %v", err)
	}

	const bucket = "rewind-locked"
	cfg = config(m, bucket, "repo")
	cfg.ObjectLock = s3.ObjectLock{Retention: time.Hour, Mode: s3.ModeCompliance}
	cfg.PartSize = 5 << 20
	cfg.MultipartThreshold = 6 << 20
	be := create(t, cfg)
	defer be.Close()

	before := time.Now()
	conf := backend.Handle{Type: backend.ConfigFile}
	save(t, be, conf, []byte(`{"version":1}`))
	pack := randomData(rng, 3000)
	ph := hashed(backend.PackFile, pack)
	save(t, be, ph, pack)
	big := randomData(rng, 13<<20)
	bh := hashed(backend.PackFile, big)
	if err := be.Save(ctx, bh, backend.NewByteReader(big)); err != nil { // in parts, at once
		t.Fatal(err)
	}
	big2 := randomData(rng, 11<<20)
	bh2 := hashed(backend.PackFile, big2)
	if err := be.Save(ctx, bh2, &streamReader{bytes.NewReader(big2)}); err != nil { // in parts, one by one
		t.Fatal(err)
	}
	snap := randomData(rng, 200)
	sh := hashed(backend.SnapshotFile, snap)
	save(t, be, sh, snap)
	lk := randomData(rng, 100)
	lh := hashed(backend.LockFile, lk)
	save(t, be, lh, lk)
	after := time.Now()

	for _, h := range []backend.Handle{conf, ph, bh, bh2, sh} {
		u := retention(t, be, h)
		lo, hi := before.Add(75*time.Minute), after.Add(75*time.Minute+2*time.Second)
		if u.Before(lo) || u.After(hi) {
			t.Errorf("%v retained until %v, want between %v and %v", h, u, lo, hi)
		}
	}
	if u := retention(t, be, lh); !u.IsZero() {
		t.Errorf("lock file retained until %v, want no retention", u)
	}

	// The setting is read back from the config object on open.
	cfg2 := config(m, bucket, "repo")
	be2, err := s3.Open(ctx, cfg2)
	if err != nil {
		t.Fatal(err)
	}
	defer be2.Close()
	if got := be2.ObjectLock(); got != cfg.ObjectLock {
		t.Errorf("reopened: object lock %+v, want %+v", got, cfg.ObjectLock)
	}
	if got := loadAll(t, be2, bh2); !bytes.Equal(got, big2) {
		t.Error("multipart pack read back different")
	}

	// A locked pack stays, with an error that says why and until when.
	err = be2.Remove(ctx, ph)
	var le *s3.LockedError
	if !errors.Is(err, backend.ErrLocked) || !errors.As(err, &le) || !backend.IsPermanent(err) {
		t.Fatalf("Remove of a locked pack: %v", err)
	}
	if !strings.Contains(err.Error(), "object lock") || le.Until.Before(before.Add(time.Hour)) {
		t.Errorf("Remove of a locked pack: %v (until %v)", err, le.Until)
	}
	if _, err := be2.Stat(ctx, ph); err != nil {
		t.Errorf("locked pack after Remove: %v", err)
	}

	// A snapshot, an index or a key is hidden; its locked version stays
	// and cannot be deleted.
	if err := be2.Remove(ctx, sh); err != nil {
		t.Fatalf("Remove of a locked snapshot: %v", err)
	}
	if _, err := be2.Stat(ctx, sh); !backend.IsNotExist(err) {
		t.Errorf("snapshot after Remove: %v", err)
	}
	key := "repo/snapshots/" + sh.Name
	ids := liveVersions(t, client, bucket, key)
	if len(ids) != 1 {
		t.Fatalf("snapshot after Remove: versions %v", ids)
	}
	if err := client.RemoveObject(ctx, bucket, key, minio.RemoveObjectOptions{VersionID: ids[0]}); err == nil {
		t.Error("deleting the locked version of a snapshot succeeded")
	}
	// An unlocked lock file is removed as before.
	if err := be2.Remove(ctx, lh); err != nil {
		t.Errorf("Remove of a lock file: %v", err)
	}

	// Extension moves the date forward.
	want := time.Now().Add(3 * time.Hour)
	if err := be2.ExtendRetention(ctx, ph, want); err != nil {
		t.Fatal(err)
	}
	if u := retention(t, be2, ph); u.Before(want) {
		t.Errorf("after ExtendRetention to %v: retained until %v", want, u)
	}
}

// TestObjectLockExpired: once its retention has passed, a pack's version
// is deleted (its space freed), and a version below it that would become
// current is hidden too.
func TestObjectLockExpired(t *testing.T) {
	ctx := context.Background()
	m := testutil.StartMinIO(t)
	client := m.Client(t)
	rng := rand.New(rand.NewPCG(7, 8))
	const bucket = "rewind-expiring"
	cfg := config(m, bucket, "")
	// Long enough that the remove below comes before it ends even on a
	// loaded machine; the test waits for it to pass.
	cfg.ObjectLock = s3.ObjectLock{Retention: 5 * time.Second, Mode: s3.ModeCompliance}
	be := create(t, cfg)
	defer be.Close()

	save(t, be, backend.Handle{Type: backend.ConfigFile}, []byte("config"))
	a, b := randomData(rng, 1000), randomData(rng, 1000)
	ah, bh := hashed(backend.PackFile, a), hashed(backend.PackFile, b)
	save(t, be, ah, a)
	save(t, be, bh, b)
	// b is overwritten behind rewind's back, without a retention.
	bkey := "data/" + bh.Name[:2] + "/" + bh.Name
	if _, err := client.PutObject(ctx, bucket, bkey, bytes.NewReader([]byte("junk")), 4, minio.PutObjectOptions{}); err != nil {
		t.Fatal(err)
	}

	until := retention(t, be, ah)
	err := be.Remove(ctx, ah)
	switch {
	case errors.Is(err, backend.ErrLocked):
	case time.Now().After(until):
		// The machine was too slow to try before the date: what follows
		// still checks the removal after it.
		t.Logf("the retention (until %v) passed before the first Remove could be tried: %v", until, err)
	default:
		t.Fatalf("Remove before %v: %v", until, err)
	}
	time.Sleep(time.Until(until) + time.Second) // wait for the date, not for speed
	for _, h := range []backend.Handle{ah, bh} {
		if err := be.Remove(ctx, h); err != nil {
			t.Fatalf("Remove(%v) after the retention: %v", h, err)
		}
		if _, err := be.Stat(ctx, h); !backend.IsNotExist(err) {
			t.Errorf("Stat(%v) after Remove: %v", h, err)
		}
	}
	if ids := liveVersions(t, client, bucket, "data/"+ah.Name[:2]+"/"+ah.Name); len(ids) != 0 {
		t.Errorf("pack a after Remove: versions %v left", ids)
	}
	if ids := liveVersions(t, client, bucket, bkey); len(ids) != 1 {
		t.Errorf("pack b after Remove: versions %v, want the original one behind a delete marker", ids)
	}
}

// TestVersionsRecover: after an attacker deletes, overwrites (with and
// without a retention of their own) and adds files with the repository's
// credentials, a view at a time before the attack reads the repository as
// it was, and Recover makes that state current again. A view at a time
// after an overwrite finds the good version by its hash.
func TestVersionsRecover(t *testing.T) {
	ctx := context.Background()
	m := testutil.StartMinIO(t)
	client := m.Client(t)
	rng := rand.New(rand.NewPCG(9, 10))
	const bucket, prefix = "rewind-attacked", "r"
	cfg := config(m, bucket, prefix)
	lock := s3.ObjectLock{Retention: time.Hour, Mode: s3.ModeCompliance}
	cfg.ObjectLock = lock
	be := create(t, cfg)

	conf := backend.Handle{Type: backend.ConfigFile}
	confData := []byte(`{"version":1,"sealed":"..."}`)
	save(t, be, conf, confData)
	files := map[backend.Handle][]byte{conf: confData}
	for _, ft := range []backend.FileType{backend.PackFile, backend.PackFile, backend.PackFile, backend.IndexFile, backend.SnapshotFile, backend.KeyFile} {
		data := randomData(rng, 500+rng.IntN(5000))
		h := hashed(ft, data)
		save(t, be, h, data)
		files[h] = data
	}
	lk := randomData(rng, 100)
	save(t, be, hashed(backend.LockFile, lk), lk)
	be.Close()
	var p []backend.Handle
	for h := range files {
		if h.Type == backend.PackFile {
			p = append(p, h)
		}
	}
	keyOf := func(h backend.Handle) string {
		switch h.Type {
		case backend.ConfigFile:
			return prefix + "/config"
		case backend.PackFile:
			return prefix + "/data/" + h.Name[:2] + "/" + h.Name
		}
		return prefix + "/" + h.Type.String() + "/" + h.Name
	}

	time.Sleep(50 * time.Millisecond) // keep the times of listings apart
	at := time.Now()
	time.Sleep(50 * time.Millisecond)

	// The attack, with the same credentials.
	junk := func(key string, opts minio.PutObjectOptions) {
		t.Helper()
		if _, err := client.PutObject(ctx, bucket, key, bytes.NewReader([]byte("encrypted by ransomware")), 23, opts); err != nil {
			t.Fatalf("overwrite %s: %v", key, err)
		}
	}
	for h := range files {
		key := keyOf(h)
		for _, id := range liveVersions(t, client, bucket, key) {
			if err := client.RemoveObject(ctx, bucket, key, minio.RemoveObjectOptions{VersionID: id}); err == nil {
				t.Errorf("the attacker deleted version %s of %s", id, key)
			}
		}
		if err := client.RemoveObject(ctx, bucket, key, minio.RemoveObjectOptions{}); err != nil {
			t.Fatalf("delete %s: %v", key, err)
		}
	}
	junk(keyOf(p[0]), minio.PutObjectOptions{})
	junk(keyOf(p[1]), minio.PutObjectOptions{Mode: minio.Compliance, RetainUntilDate: time.Now().Add(time.Hour)})
	junk(keyOf(conf), minio.PutObjectOptions{})
	added := randomData(rng, 300)
	addedH := hashed(backend.SnapshotFile, added)
	junk(keyOf(addedH), minio.PutObjectOptions{})
	after := time.Now()

	// The view before the attack.
	vcfg := config(m, bucket, prefix)
	vcfg.VersionsAt = at
	view, err := s3.Open(ctx, vcfg)
	if err != nil {
		t.Fatalf("open the view at %v: %v", at, err)
	}
	if got := view.ObjectLock(); got != lock {
		t.Errorf("view: object lock %+v, want %+v", got, lock)
	}
	for h, data := range files {
		if got := loadAll(t, view, h); !bytes.Equal(got, data) {
			t.Errorf("view: %v differs", h)
		}
	}
	if _, err := view.Stat(ctx, addedH); !backend.IsNotExist(err) {
		t.Errorf("view: a snapshot added after the time: %v", err)
	}
	var listed int
	if err := view.List(ctx, backend.PackFile, func(backend.FileInfo) error { listed++; return nil }); err != nil || listed != 3 {
		t.Errorf("view lists %d packs (%v), want 3", listed, err)
	}
	if err := view.Save(ctx, addedH, backend.NewByteReader(added)); err == nil || !backend.IsPermanent(err) {
		t.Errorf("Save on a view: %v", err)
	}

	// A view after the overwrite of p[0] (two versions up to then, one of
	// them junk) finds the good one by its hash; p[2], deleted then, is
	// absent.
	lcfg := config(m, bucket, prefix)
	lcfg.VersionsAt = after
	late, err := s3.Open(ctx, lcfg)
	if err != nil {
		t.Fatal(err)
	}
	if got := loadAll(t, late, p[0]); !bytes.Equal(got, files[p[0]]) {
		t.Error("late view: the overwritten pack is not the original")
	}
	if _, err := late.Stat(ctx, p[2]); !backend.IsNotExist(err) {
		t.Errorf("late view: a pack deleted before the time: %v", err)
	}
	late.Close()

	dry, err := view.Recover(ctx, true)
	if err != nil {
		t.Fatal(err)
	}
	if dry.Restored != len(files) || dry.Hidden != 1 || dry.Requests != 0 {
		t.Errorf("dry run: %+v, want %d restored, 1 hidden, no requests", dry, len(files))
	}
	res, err := view.Recover(ctx, false)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("recover: %+v", res)
	if res.Restored != len(files) || res.ByCopy != 1 || res.Hidden != 1 || len(res.Lost) != 0 {
		t.Errorf("recover: %+v, want %d restored (1 by copy), 1 hidden", res, len(files))
	}
	view.Close()
	// Running it again changes nothing.
	view, err = s3.Open(ctx, vcfg)
	if err != nil {
		t.Fatal(err)
	}
	again, err := view.Recover(ctx, false)
	view.Close()
	if err != nil || again.Restored != 0 || again.Hidden != 0 || again.Requests != 0 {
		t.Errorf("recover again: %+v, %v; want nothing to do", again, err)
	}

	// Normal operation resumes.
	nb, err := s3.Open(ctx, config(m, bucket, prefix))
	if err != nil {
		t.Fatal(err)
	}
	defer nb.Close()
	if got := nb.ObjectLock(); got != lock {
		t.Errorf("after recovery: object lock %+v, want %+v", got, lock)
	}
	for h, data := range files {
		if got := loadAll(t, nb, h); !bytes.Equal(got, data) {
			t.Errorf("after recovery: %v differs", h)
		}
	}
	if u := retention(t, nb, p[1]); u.Before(time.Now().Add(time.Hour)) {
		t.Errorf("copied pack retained until %v only", u)
	}
	if _, err := nb.Stat(ctx, addedH); !backend.IsNotExist(err) {
		t.Errorf("after recovery: a snapshot added by the attacker: %v", err)
	}

}
