package label_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/rewind-backup/rewind/internal/backend"
	"github.com/rewind-backup/rewind/internal/backend/mem"
	"github.com/rewind-backup/rewind/internal/crypto"
	"github.com/rewind-backup/rewind/internal/label"
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

func list(t *testing.T, r *repository.Repository) *label.Set {
	t.Helper()
	s, err := label.List(context.Background(), r)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

var when = time.Date(2026, 11, 22, 10, 31, 5, 123456789, time.UTC)

func names(ls []label.Label) []string {
	var out []string
	for _, l := range ls {
		out = append(out, l.Name)
	}
	return out
}

func TestMarkListUnmark(t *testing.T) {
	ctx := context.Background()
	r, be := newRepo(t)
	s := list(t, r)
	if len(s.Labels) != 0 || len(s.Unreadable) != 0 {
		t.Fatalf("new repository has labels: %+v", s)
	}
	// Marked out of time order; listed in it.
	later, err := label.Mark(ctx, r, s, label.Label{Name: "after", Time: when.Add(time.Hour), Note: "n", Host: "web1", User: "alice"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := label.Mark(ctx, r, s, label.Label{Name: "before nginx upgrade", Time: when.In(time.FixedZone("X", 3600))}); err != nil {
		t.Fatal(err)
	}
	s = list(t, r)
	if got := names(s.Labels); strings.Join(got, "|") != "before nginx upgrade|after" {
		t.Fatalf("labels %q, want oldest first", got)
	}
	l, ok := s.Lookup("before nginx upgrade")
	if !ok || !l.Time.Equal(when) || l.Time.Location() != time.UTC {
		t.Errorf("lookup: %+v %v; want the time in UTC", l, ok)
	}
	if a := s.Labels[1]; a.File != later.File || a.Note != "n" || a.Host != "web1" || a.User != "alice" {
		t.Errorf("stored label %+v, marked %+v", a, later)
	}

	// A name in use is refused, and nothing is stored.
	if _, err := label.Mark(ctx, r, s, label.Label{Name: "after", Time: when}); !errors.Is(err, label.ErrExists) {
		t.Errorf("second mark of a name: %v, want ErrExists", err)
	}
	if n := count(t, be); n != 2 {
		t.Errorf("%d label files, want 2", n)
	}

	// Two clients that marked the same name at once: both go on unmark,
	// and Lookup gives the newer.
	dup := label.Label{Name: "after", Time: when.Add(2 * time.Hour), Host: "web2"}
	if _, err := r.SaveJSON(ctx, backend.LabelFile, &dup); err != nil {
		t.Fatal(err)
	}
	s = list(t, r)
	if l, _ := s.Lookup("after"); l.Host != "web2" {
		t.Errorf("lookup of a doubled name gives %+v, want the newer", l)
	}
	removed, err := label.Unmark(ctx, r, s, "after")
	if err != nil || len(removed) != 2 {
		t.Fatalf("unmark: %d removed, %v", len(removed), err)
	}
	if got := names(s.Labels); len(got) != 1 || got[0] != "before nginx upgrade" {
		t.Errorf("set after unmark: %q", got)
	}
	if got := names(list(t, r).Labels); len(got) != 1 || got[0] != "before nginx upgrade" {
		t.Errorf("stored after unmark: %q", got)
	}
	if _, err := label.Unmark(ctx, r, s, "after"); !errors.Is(err, label.ErrNotFound) {
		t.Errorf("unmark of a missing label: %v", err)
	}
	// The name is free again.
	if _, err := label.Mark(ctx, r, s, label.Label{Name: "after", Time: when}); err != nil {
		t.Errorf("mark after unmark: %v", err)
	}
}

func count(t *testing.T, be backend.Backend) int {
	t.Helper()
	n := 0
	if err := be.List(context.Background(), backend.LabelFile, func(backend.FileInfo) error { n++; return nil }); err != nil {
		t.Fatal(err)
	}
	return n
}

func TestUnreadableLabels(t *testing.T) {
	ctx := context.Background()
	r, be := newRepo(t)
	s := list(t, r)
	if _, err := label.Mark(ctx, r, s, label.Label{Name: "ok", Time: when}); err != nil {
		t.Fatal(err)
	}
	// A file whose bytes do not match its name, and a sealed file that
	// names no moment.
	bad := strings.Repeat("ab", 32)
	if err := be.Save(ctx, backend.Handle{Type: backend.LabelFile, Name: bad}, backend.NewByteReader([]byte("garbage"))); err != nil {
		t.Fatal(err)
	}
	if _, err := r.SaveJSON(ctx, backend.LabelFile, map[string]string{"label": "no time"}); err != nil {
		t.Fatal(err)
	}
	s = list(t, r)
	if len(s.Labels) != 1 || len(s.Unreadable) != 2 {
		t.Fatalf("%d labels, %d unreadable; want 1 and 2", len(s.Labels), len(s.Unreadable))
	}
	err := s.CheckReadable()
	if !errors.Is(err, label.ErrUnreadable) || !strings.Contains(err.Error(), "labels/"+bad) {
		t.Errorf("CheckReadable: %v", err)
	}
	if err := (&label.Set{}).CheckReadable(); err != nil {
		t.Errorf("CheckReadable of a sound set: %v", err)
	}
}

func TestValidName(t *testing.T) {
	for _, ok := range []string{"before nginx upgrade", "release-42", "été", "a"} {
		if err := label.ValidName(ok); err != nil {
			t.Errorf("ValidName(%q): %v", ok, err)
		}
	}
	for _, bad := range []string{"", " x", "x ", "-15m", "a\nb", "tab\there", "\xff", strings.Repeat("x", label.MaxNameLen+1)} {
		if err := label.ValidName(bad); !errors.Is(err, label.ErrBadName) {
			t.Errorf("ValidName(%q) = %v, want ErrBadName", bad, err)
		}
	}
	r, _ := newRepo(t)
	if _, err := label.Mark(context.Background(), r, &label.Set{}, label.Label{Name: "-x", Time: when}); !errors.Is(err, label.ErrBadName) {
		t.Errorf("Mark of a bad name: %v", err)
	}
}
