package policy_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/rewind-backup/rewind/internal/backend"
	"github.com/rewind-backup/rewind/internal/backend/fault"
	"github.com/rewind-backup/rewind/internal/backend/mem"
	"github.com/rewind-backup/rewind/internal/crypto"
	"github.com/rewind-backup/rewind/internal/id"
	"github.com/rewind-backup/rewind/internal/policy"
	"github.com/rewind-backup/rewind/internal/repository"
)

func TestNoPolicy(t *testing.T) {
	r := newRepo(t, nil)
	st := load(t, r)
	if st.Current != nil || len(st.Ignored) != 0 || st.MinRetention() != 0 {
		t.Fatalf("empty repository: %+v", st)
	}
}

func TestValidChain(t *testing.T) {
	r := newRepo(t, nil)
	admin := testKey("admin")
	p1 := setNext(t, r, nil, 30*day, admin)
	if st := load(t, r); st.Current == nil || st.Current.File != p1.File || st.MinRetention() != 30*day {
		t.Fatalf("after policy 1: %+v", st.Current)
	}
	p2 := setNext(t, r, p1, 7*day, admin)
	p3 := setNext(t, r, p2, 90*day, admin)
	st := load(t, r)
	if len(st.Ignored) != 0 {
		t.Errorf("ignored: %v", st.Ignored)
	}
	c := st.Current
	if c == nil || c.File != p3.File || c.Seq != 3 || c.Previous != p2.File || st.MinRetention() != 90*day {
		t.Fatalf("current %+v, want policy 3 (%s) with 90d", c, p3.File.Short())
	}
	if !c.AdminKey.Equal(admin.Public()) || !c.Time.Equal(t0.Add(3*time.Hour)) {
		t.Errorf("policy 3 key %x time %v", c.AdminKey, c.Time)
	}
	if p2.Previous != p1.File || p1.Seq != 1 || !p1.Previous.IsNull() {
		t.Errorf("links: p1 %+v p2 %+v", p1, p2)
	}
}

func TestWrongSigner(t *testing.T) {
	r := newRepo(t, nil)
	admin, other := testKey("admin"), testKey("other")
	p1 := setNext(t, r, nil, 30*day, admin)

	// rewind itself refuses to sign with a key the policy does not name.
	_, err := policy.Next(r.Config().ID, p1, 0, other, t0)
	if !errors.Is(err, policy.ErrWrongKey) {
		t.Fatalf("Next with another key: %v, want ErrWrongKey", err)
	}

	// A client that writes the file anyway, signed with its own key
	// (which it also names as the new admin key), is ignored.
	bad := forge(t, r, &policy.Policy{Seq: 2, Previous: p1.File, MinRetention: 0, AdminKey: pub(other), Time: t0}, other)
	st := load(t, r)
	if st.Current == nil || st.Current.File != p1.File || st.MinRetention() != 30*day {
		t.Fatalf("current %+v, want policy 1", st.Current)
	}
	why, ok := ignoredNames(st)[bad.File.String()]
	if !ok || !strings.Contains(why, "not signed by the admin key of policy 1") {
		t.Errorf("forged policy 2: ignored %v", st.Ignored)
	}
}

func TestMissingLink(t *testing.T) {
	be := mem.New()
	r := newRepo(t, be)
	admin := testKey("admin")
	p1 := setNext(t, r, nil, 30*day, admin)
	p2 := setNext(t, r, p1, 60*day, admin)
	p3 := setNext(t, r, p2, 90*day, admin)
	if err := be.Remove(context.Background(), backend.Handle{Type: backend.PolicyFile, Name: p2.File.String()}); err != nil {
		t.Fatal(err)
	}
	st := load(t, r)
	if st.Current == nil || st.Current.File != p1.File {
		t.Fatalf("current %+v, want policy 1 once policy 2 is gone", st.Current)
	}
	why, ok := ignoredNames(st)[p3.File.String()]
	if !ok || !strings.Contains(why, "not chained") {
		t.Errorf("policy 3 without its predecessor: ignored %v", st.Ignored)
	}
}

func TestFork(t *testing.T) {
	r := newRepo(t, nil)
	admin := testKey("admin")
	p1 := setNext(t, r, nil, 30*day, admin)
	a := setNext(t, r, p1, 60*day, admin)
	// The admin signs a second successor of policy 1 (two admins at
	// once, say): both are valid, and rewind refuses to pick one.
	b, err := policy.Next(r.Config().ID, p1, 1*day, admin, t0.Add(5*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if err := policy.Save(context.Background(), r, b); err != nil {
		t.Fatal(err)
	}
	_, err = policy.Load(context.Background(), r)
	var fe *policy.ForkError
	if !errors.Is(err, policy.ErrFork) || !errors.As(err, &fe) {
		t.Fatalf("fork: %v, want a ForkError", err)
	}
	if fe.Seq != 2 || len(fe.Files) != 2 || !(fe.Files[0] == a.File && fe.Files[1] == b.File || fe.Files[0] == b.File && fe.Files[1] == a.File) {
		t.Errorf("fork names %+v, want %s and %s at 2", fe, a.File.Short(), b.File.Short())
	}
	if !strings.Contains(err.Error(), "policy/"+a.File.String()) || !strings.Contains(err.Error(), "by hand") {
		t.Errorf("fork message does not name the files or say what to do: %v", err)
	}
}

func TestForkOfFirstPolicy(t *testing.T) {
	r := newRepo(t, nil)
	p1 := setNext(t, r, nil, 30*day, testKey("admin"))
	setNext(t, r, p1, 60*day, testKey("admin"))
	// Another client sets a first policy of its own (trust on first use
	// cannot tell it from the real one). The chain is refused rather than
	// one picked: picking the longer one would let that client build a
	// longer chain of its own.
	setNext(t, r, nil, 0, testKey("intruder"))
	_, err := policy.Load(context.Background(), r)
	var fe *policy.ForkError
	if !errors.As(err, &fe) || fe.Seq != 1 {
		t.Fatalf("second policy 1: %v, want a fork at 1", err)
	}
}

func TestForgedSuccessorDoesNotFork(t *testing.T) {
	// The brief's rule "the one whose chain is valid wins": of two files
	// numbered 2, the one not signed by the admin key is ignored.
	r := newRepo(t, nil)
	admin := testKey("admin")
	p1 := setNext(t, r, nil, 30*day, admin)
	good := setNext(t, r, p1, 40*day, admin)
	bad := forge(t, r, &policy.Policy{Seq: 2, Previous: p1.File, AdminKey: pub(admin), Time: t0}, testKey("other"))
	st := load(t, r)
	if st.Current == nil || st.Current.File != good.File {
		t.Fatalf("current %+v, want the admin's policy 2", st.Current)
	}
	if _, ok := ignoredNames(st)[bad.File.String()]; !ok {
		t.Errorf("forged policy 2 not reported: %v", st.Ignored)
	}
}

func TestReplayWithHigherSeq(t *testing.T) {
	r := newRepo(t, nil)
	admin := testKey("admin")
	p1 := setNext(t, r, nil, 1*day, admin)
	p2 := setNext(t, r, p1, 2*day, admin)
	p3 := setNext(t, r, p2, 90*day, admin)

	// An old policy with a low retention, its number raised past the
	// current one so that it would look newest, with its signature kept:
	// the signature covers the number.
	old := *p2
	old.Seq = 7
	replayed := saveAsIs(t, r, &old)
	// The same, pointing at policy 3 so that the link looks right.
	old2 := *p2
	old2.Seq, old2.Previous = 4, p3.File
	relinked := saveAsIs(t, r, &old2)
	// A policy 4 signed by the admin but replacing policy 1: numbers and
	// links must agree.
	skipped := forge(t, r, &policy.Policy{Seq: 4, Previous: p1.File, MinRetention: day, AdminKey: pub(admin), Time: t0}, admin)

	st := load(t, r)
	if st.Current == nil || st.Current.File != p3.File || st.MinRetention() != 90*day {
		t.Fatalf("current %+v, want policy 3 with 90d", st.Current)
	}
	ig := ignoredNames(st)
	for name, f := range map[string]*policy.Policy{"replayed": replayed, "relinked": relinked, "skipped": skipped} {
		if _, ok := ig[f.File.String()]; !ok {
			t.Errorf("%s policy %d not ignored: %v", name, f.Seq, st.Ignored)
		}
	}
	if why := ig[skipped.File.String()]; !strings.Contains(why, "which is policy 1") {
		t.Errorf("skipped link: %q", why)
	}
}

func TestTamperedAndForeignFiles(t *testing.T) {
	be := mem.New()
	r := newRepo(t, be)
	admin := testKey("admin")
	p1 := setNext(t, r, nil, 30*day, admin)

	// The minimum retention changed after signing.
	tampered := *p1
	tampered.MinRetention = 0
	saveAsIs(t, r, &tampered)
	// A policy made for another repository, with the same admin key.
	other := newRepo(t, nil)
	foreign, err := policy.Next(other.Config().ID, p1, 0, admin, t0.Add(9*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if err := policy.Save(context.Background(), r, foreign); err != nil {
		t.Fatal(err)
	}
	// Bytes that are no sealed object, under a valid name.
	junk := []byte("not a policy at all, not even sealed, but long enough to try")
	junkName := crypto.FileID(junk)
	if err := be.Save(context.Background(), backend.Handle{Type: backend.PolicyFile, Name: junkName.String()}, backend.NewByteReader(junk)); err != nil {
		t.Fatal(err)
	}

	st := load(t, r)
	if st.Current == nil || st.Current.File != p1.File || st.MinRetention() != 30*day {
		t.Fatalf("current %+v, want policy 1", st.Current)
	}
	ig := ignoredNames(st)
	if len(ig) != 3 {
		t.Errorf("ignored %v, want the tampered, foreign and junk files", st.Ignored)
	}
	if why := ig[junkName.String()]; !strings.Contains(why, "decrypt") {
		t.Errorf("junk file: %q", why)
	}
	if why := ig[foreign.File.String()]; !strings.Contains(why, "not signed") {
		t.Errorf("foreign policy: %q", why)
	}
}

func TestLoadStorageErrorIsNotIgnored(t *testing.T) {
	fb := fault.New(mem.New())
	r := newRepo(t, fb)
	setNext(t, r, nil, 30*day, testKey("admin"))
	boom := errors.New("connection reset")
	fb.FailNth(fault.Load, 1, backend.Permanent(boom))
	_, err := policy.Load(context.Background(), r)
	if !errors.Is(err, boom) {
		t.Fatalf("load with a failing storage: %v, want the storage's error", err)
	}
}

func TestNextRefusesBadValues(t *testing.T) {
	repo := id.ID{1}
	admin := testKey("admin")
	for _, d := range []time.Duration{-time.Second, policy.MaxMinRetention + time.Second, 1500 * time.Millisecond} {
		if _, err := policy.Next(repo, nil, d, admin, t0); err == nil {
			t.Errorf("Next accepted minimum retention %v", d)
		}
	}
	p, err := policy.Next(repo, nil, 0, admin, t0.Add(1500*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	if !p.Time.Equal(t0.Add(time.Second)) {
		t.Errorf("time %v not truncated to seconds", p.Time)
	}
	if !p.VerifiedBy(repo, pub(admin)) || p.VerifiedBy(id.ID{2}, pub(admin)) {
		t.Error("signature does not bind the repository")
	}
}

// TestResolveOrderDoesNotMatter: the chain does not depend on the order
// in which the files are listed.
func TestResolveOrderDoesNotMatter(t *testing.T) {
	repo := id.ID{7}
	admin := testKey("admin")
	var chain []*policy.Policy
	var cur *policy.Policy
	for i := range 5 {
		p, err := policy.Next(repo, cur, time.Duration(i)*day, admin, t0)
		if err != nil {
			t.Fatal(err)
		}
		p.File = id.ID{byte(0xf0 - i)} // later links sort first by name
		chain = append(chain, p)
		cur = p
	}
	rev := []*policy.Policy{chain[4], chain[3], chain[2], chain[1], chain[0]}
	for _, files := range [][]*policy.Policy{chain, rev} {
		st, err := policy.Resolve(repo, files, nil)
		if err != nil {
			t.Fatal(err)
		}
		if st.Current != chain[4] || len(st.Ignored) != 0 {
			t.Errorf("current %+v ignored %v", st.Current, st.Ignored)
		}
	}
}

// saveAsIs stores p without signing it again.
func saveAsIs(t *testing.T, r *repository.Repository, p *policy.Policy) *policy.Policy {
	t.Helper()
	if err := policy.Save(context.Background(), r, p); err != nil {
		t.Fatal(err)
	}
	return p
}
