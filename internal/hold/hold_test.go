package hold_test

import (
	"context"
	"crypto/sha256"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/rewind-backup/rewind/internal/backend"
	"github.com/rewind-backup/rewind/internal/backend/fault"
	"github.com/rewind-backup/rewind/internal/backend/mem"
	"github.com/rewind-backup/rewind/internal/crypto"
	"github.com/rewind-backup/rewind/internal/hold"
	"github.com/rewind-backup/rewind/internal/id"
	"github.com/rewind-backup/rewind/internal/repository"
)

func newRepo(t *testing.T, be backend.Backend) *repository.Repository {
	t.Helper()
	r, err := repository.Init(context.Background(), be, []byte("pw"), repository.InitOptions{KDF: crypto.TestKDFParams})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// snapID makes a snapshot ID from a name.
func snapID(name string) id.ID { return id.ID(sha256.Sum256([]byte(name))) }

var when = time.Date(2026, 3, 1, 2, 0, 0, 0, time.UTC)

func list(t *testing.T, r *repository.Repository) *hold.Set {
	t.Helper()
	s, err := hold.List(context.Background(), r)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// holdFiles counts the files in holds/.
func holdFiles(t *testing.T, be backend.Backend) int {
	t.Helper()
	n := 0
	if err := be.List(context.Background(), backend.HoldFile, func(backend.FileInfo) error { n++; return nil }); err != nil {
		t.Fatal(err)
	}
	return n
}

func TestProtectListUnprotect(t *testing.T) {
	ctx := context.Background()
	be := mem.New()
	r := newRepo(t, be)
	a, b := snapID("a"), snapID("b")

	s := list(t, r)
	if len(s.BySnapshot) != 0 || s.Protected(a) {
		t.Fatalf("new repository has holds: %+v", s)
	}
	h, created, err := hold.Protect(ctx, r, s, hold.Hold{Snapshot: a, Time: when, Host: "web1", User: "root", Reason: "litigation 17"})
	if err != nil || !created || h.File.IsNull() {
		t.Fatalf("protect: %v created %v file %v", err, created, h.File)
	}
	// Protecting again, even with another reason, keeps the one hold.
	h2, created, err := hold.Protect(ctx, r, list(t, r), hold.Hold{Snapshot: a, Time: when.Add(time.Hour), Reason: "again"})
	if err != nil || created || h2.File != h.File || h2.Reason != "litigation 17" {
		t.Fatalf("second protect: %v created %v hold %+v", err, created, h2)
	}
	if n := holdFiles(t, be); n != 1 {
		t.Fatalf("%d hold files after protecting twice, want 1", n)
	}
	if _, _, err := hold.Protect(ctx, r, list(t, r), hold.Hold{Snapshot: b, Time: when}); err != nil {
		t.Fatal(err)
	}

	s = list(t, r)
	got := s.BySnapshot[a]
	if len(got) != 1 || got[0].File != h.File || got[0].Host != "web1" || got[0].User != "root" || !got[0].Time.Equal(when) {
		t.Fatalf("holds of a: %+v", got)
	}
	if !s.Protected(a) || !s.Protected(b) || s.Protected(snapID("c")) {
		t.Errorf("protected: a %v b %v c %v", s.Protected(a), s.Protected(b), s.Protected(snapID("c")))
	}
	if r := s.Reasons(a); len(r) != 1 || r[0] != "litigation 17" {
		t.Errorf("reasons of a: %q", r)
	}
	if err := s.CheckReadable(); err != nil {
		t.Errorf("CheckReadable: %v", err)
	}

	removed, err := hold.Unprotect(ctx, r, s, a)
	if err != nil || len(removed) != 1 {
		t.Fatalf("unprotect: %v, removed %d", err, len(removed))
	}
	s = list(t, r)
	if s.Protected(a) || !s.Protected(b) {
		t.Errorf("after unprotect a: a %v b %v", s.Protected(a), s.Protected(b))
	}
	if removed, err := hold.Unprotect(ctx, r, s, a); err != nil || len(removed) != 0 {
		t.Errorf("unprotect of an unprotected snapshot: %v, removed %d", err, len(removed))
	}
}

// TestUnprotectRemovesEveryHold: two clients that protected a snapshot
// at once each wrote a hold; unprotect lifts both.
func TestUnprotectRemovesEveryHold(t *testing.T) {
	ctx := context.Background()
	be := mem.New()
	r := newRepo(t, be)
	a, b := snapID("a"), snapID("b")
	for _, h := range []hold.Hold{{Snapshot: a, Reason: "one"}, {Snapshot: a, Reason: "two"}, {Snapshot: b, Reason: "other"}} {
		// Each with a set of its own, as two processes would see.
		if _, _, err := hold.Protect(ctx, r, &hold.Set{BySnapshot: map[id.ID][]hold.Hold{}}, h); err != nil {
			t.Fatal(err)
		}
	}
	s := list(t, r)
	if len(s.BySnapshot[a]) != 2 {
		t.Fatalf("holds of a: %+v", s.BySnapshot[a])
	}
	removed, err := hold.Unprotect(ctx, r, s, a)
	if err != nil || len(removed) != 2 {
		t.Fatalf("unprotect: %v, removed %d", err, len(removed))
	}
	if n := holdFiles(t, be); n != 1 {
		t.Errorf("%d hold files left, want b's", n)
	}
	if s := list(t, r); s.Protected(a) || !s.Protected(b) {
		t.Errorf("after unprotect: %+v", s.BySnapshot)
	}
}

func TestUnreadableHold(t *testing.T) {
	ctx := context.Background()
	be := mem.New()
	r := newRepo(t, be)
	if _, _, err := hold.Protect(ctx, r, list(t, r), hold.Hold{Snapshot: snapID("a")}); err != nil {
		t.Fatal(err)
	}
	// Bytes that do not decrypt, under a name that matches them.
	junk := []byte("this was a hold before the disk ate it, or never was one")
	junkName := crypto.FileID(junk)
	if err := be.Save(ctx, backend.Handle{Type: backend.HoldFile, Name: junkName.String()}, backend.NewByteReader(junk)); err != nil {
		t.Fatal(err)
	}
	// A sealed file that names no snapshot.
	empty, err := r.SaveJSON(ctx, backend.HoldFile, map[string]string{"reason": "who knows"})
	if err != nil {
		t.Fatal(err)
	}

	s := list(t, r)
	if !s.Protected(snapID("a")) {
		t.Error("the readable hold was lost")
	}
	if len(s.Unreadable) != 2 {
		t.Fatalf("unreadable: %+v, want 2", s.Unreadable)
	}
	err = s.CheckReadable()
	if !errors.Is(err, hold.ErrUnreadable) {
		t.Fatalf("CheckReadable: %v", err)
	}
	for _, want := range []string{"holds/" + junkName.String(), "holds/" + empty.String(), "no snapshot can be removed", "delete them"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("CheckReadable error lacks %q: %v", want, err)
		}
	}
}

func TestListStorageErrorIsNotUnreadable(t *testing.T) {
	ctx := context.Background()
	fb := fault.New(mem.New())
	r := newRepo(t, fb)
	if _, _, err := hold.Protect(ctx, r, list(t, r), hold.Hold{Snapshot: snapID("a")}); err != nil {
		t.Fatal(err)
	}
	boom := errors.New("connection reset")
	fb.FailNth(fault.Load, 1, backend.Permanent(boom))
	if _, err := hold.List(ctx, r); !errors.Is(err, boom) {
		t.Fatalf("List with a failing storage: %v, want the storage's error", err)
	}
}

func TestDecode(t *testing.T) {
	good := `{"snapshot":"` + snapID("a").String() + `","time":"2026-03-01T02:00:00Z","host":"h","user":"u","reason":"r","until":"later"}`
	h, err := hold.Decode([]byte(good))
	if err != nil || h.Snapshot != snapID("a") || h.Reason != "r" {
		t.Fatalf("Decode: %+v, %v", h, err)
	}
	for _, bad := range []string{`{}`, `null`, `{"snapshot":"abc"}`, `{"snapshot":null}`, `[]`, ``} {
		if _, err := hold.Decode([]byte(bad)); err == nil {
			t.Errorf("Decode(%s) accepted", bad)
		}
	}
}
