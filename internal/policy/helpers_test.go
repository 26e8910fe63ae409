package policy_test

import (
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"testing"
	"time"

	"github.com/rewind-backup/rewind/internal/backend"
	"github.com/rewind-backup/rewind/internal/backend/mem"
	"github.com/rewind-backup/rewind/internal/crypto"
	"github.com/rewind-backup/rewind/internal/policy"
	"github.com/rewind-backup/rewind/internal/repository"
)

// newRepo returns a repository in memory on be (a new mem backend when
// be is nil).
func newRepo(t testing.TB, be backend.Backend) *repository.Repository {
	t.Helper()
	if be == nil {
		be = mem.New()
	}
	r, err := repository.Init(context.Background(), be, []byte("pw"), repository.InitOptions{KDF: crypto.TestKDFParams})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// testKey makes a deterministic admin key from a name.
func testKey(name string) ed25519.PrivateKey {
	seed := sha256.Sum256([]byte("rewind policy test key " + name))
	return ed25519.NewKeyFromSeed(seed[:])
}

// t0 is the time of the first policy in the tests; policy n is made n
// hours later.
var t0 = time.Date(2026, 3, 1, 2, 0, 0, 0, time.UTC)

const day = 24 * time.Hour

// setNext makes and stores the policy after cur, signed by key.
func setNext(t *testing.T, r *repository.Repository, cur *policy.Policy, minRet time.Duration, key ed25519.PrivateKey) *policy.Policy {
	t.Helper()
	seq := uint64(1)
	if cur != nil {
		seq = cur.Seq + 1
	}
	p, err := policy.Next(r.Config().ID, cur, minRet, key, t0.Add(time.Duration(seq)*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if err := policy.Save(context.Background(), r, p); err != nil {
		t.Fatal(err)
	}
	return p
}

// forge stores p as it is, signed by key: what a client without the
// admin key, or a careless one, could write.
func forge(t *testing.T, r *repository.Repository, p *policy.Policy, key ed25519.PrivateKey) *policy.Policy {
	t.Helper()
	p.Sign(r.Config().ID, key)
	if err := policy.Save(context.Background(), r, p); err != nil {
		t.Fatal(err)
	}
	return p
}

// load resolves the chain, failing the test on an error.
func load(t *testing.T, r *repository.Repository) *policy.State {
	t.Helper()
	st, err := policy.Load(context.Background(), r)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// ignoredNames lists the names of the ignored files.
func ignoredNames(st *policy.State) map[string]string {
	out := map[string]string{}
	for _, ig := range st.Ignored {
		out[ig.File.String()] = ig.Err.Error()
	}
	return out
}

// pub returns key's public half.
func pub(key ed25519.PrivateKey) ed25519.PublicKey { return key.Public().(ed25519.PublicKey) }
