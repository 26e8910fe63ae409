package event_test

import (
	"context"
	"testing"
	"time"

	"github.com/rewind-backup/rewind/internal/backend"
	"github.com/rewind-backup/rewind/internal/backend/mem"
	"github.com/rewind-backup/rewind/internal/crypto"
	"github.com/rewind-backup/rewind/internal/event"
	"github.com/rewind-backup/rewind/internal/repository"
)

func newRepo(t *testing.T) (*repository.Repository, backend.Backend) {
	t.Helper()
	be := mem.New()
	r, err := repository.Init(context.Background(), be, []byte("pw"), repository.InitOptions{KDF: crypto.TestKDFParams})
	if err != nil {
		t.Fatal(err)
	}
	return r, be
}

var t0 = time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)

func TestSaveList(t *testing.T) {
	ctx := context.Background()
	r, be := newRepo(t)
	for i, job := range []string{"b", "a", "b"} {
		run := &event.Run{Host: "web1", Job: job, Kind: "files", Trigger: "schedule",
			Start: t0.Add(time.Duration(3-i) * time.Minute), End: t0.Add(time.Hour), Result: event.ResultSuccess, Files: int64(i)}
		if _, err := event.Save(ctx, r, run); err != nil {
			t.Fatal(err)
		}
	}
	all, bad, err := event.List(ctx, r, event.Filter{})
	if err != nil || len(bad) != 0 || len(all) != 3 {
		t.Fatalf("list: %v %v %d", err, bad, len(all))
	}
	for i := 1; i < len(all); i++ {
		if all[i].Start.Before(all[i-1].Start) {
			t.Fatalf("not sorted by start: %v", all)
		}
	}
	bs, _, _ := event.List(ctx, r, event.Filter{Job: "b", Since: t0.Add(2 * time.Minute)})
	if len(bs) != 1 || bs[0].Files != 0 {
		t.Fatalf("filter job+since: %+v", bs)
	}
	if hs, _, _ := event.List(ctx, r, event.Filter{Host: "other"}); len(hs) != 0 {
		t.Fatalf("filter host: %+v", hs)
	}

	// A damaged file is reported, not fatal.
	h := backend.Handle{Type: backend.EventFile, Name: all[0].File.String()}
	if err := be.Remove(ctx, h); err != nil {
		t.Fatal(err)
	}
	if err := be.Save(ctx, h, backend.NewByteReader([]byte("garbage"))); err != nil {
		t.Fatal(err)
	}
	rest, bad, err := event.List(ctx, r, event.Filter{})
	if err != nil || len(bad) != 1 || len(rest) != 2 {
		t.Fatalf("damaged: %v %v %d", err, bad, len(rest))
	}
	if _, err := event.Save(ctx, r, &event.Run{Job: "x"}); err == nil {
		t.Fatal("a run without result saved")
	}
}

func TestExpire(t *testing.T) {
	ctx := context.Background()
	r, _ := newRepo(t)
	now := t0.Add(200 * 24 * time.Hour)
	// 5 old runs of job a, 2 recent; 3 old runs of b.
	save := func(job string, at time.Time) {
		if _, err := event.Save(ctx, r, &event.Run{Host: "h", Job: job, Start: at, End: at, Result: event.ResultSuccess}); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 5 {
		save("a", t0.Add(time.Duration(i)*time.Hour))
	}
	save("a", now.Add(-time.Hour))
	save("a", now.Add(-2*time.Hour))
	for i := range 3 {
		save("b", t0.Add(time.Duration(i)*time.Hour))
	}
	all, _, _ := event.List(ctx, r, event.Filter{})
	// keep last 3: a keeps its 2 recent + 1 old; b keeps all 3.
	exp := event.Expired(all, now, event.KeepFor, 3)
	if len(exp) != 4 {
		t.Fatalf("expired %d, want 4", len(exp))
	}
	for _, e := range exp {
		if e.Job != "a" || now.Sub(e.Start) < event.KeepFor {
			t.Fatalf("expired a kept one: %+v", e)
		}
	}
	// With the real limits nothing goes: fewer than KeepLast.
	n, err := event.Expire(ctx, r, "h", "a", now)
	if err != nil || n != 0 {
		t.Fatalf("expire: %d %v", n, err)
	}
}

func FuzzDecode(f *testing.F) {
	f.Add([]byte(`{"hostname":"h","job":"j","kind":"files","trigger":"schedule","start":"2026-01-02T03:04:05Z","end":"2026-01-02T03:04:06Z","result":"success","files":1,"bytes":2,"bytes_added":3,"attempt":1,"steps":[{"phase":"before","kind":"run","result":"success","duration_ns":5}]}`))
	f.Add([]byte(`{}`))
	f.Add([]byte(`{"job":"x","result":"failed","start":"bad"}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := event.Decode(b)
		if err != nil {
			return
		}
		if r.Job == "" || r.Result == "" || r.Start.IsZero() {
			t.Fatalf("decoded an incomplete event: %+v", r)
		}
	})
}
