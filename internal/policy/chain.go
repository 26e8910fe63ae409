package policy

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/rewind-backup/rewind/internal/backend"
	"github.com/rewind-backup/rewind/internal/id"
	"github.com/rewind-backup/rewind/internal/repository"
)

// Errors of the chain.
var (
	// ErrFork: two valid policy files have the same sequence number, so
	// the admin key signed two different successors of one policy (or,
	// for number 1, two first policies were set independently).
	ErrFork = errors.New("the repository policy is forked")
	// ErrWrongKey: the admin key given is not the one the current policy
	// names.
	ErrWrongKey = errors.New("wrong admin key")
)

// Ignored is a policy file that is not part of the chain, and why.
type Ignored struct {
	File id.ID
	Err  error
}

func (i Ignored) String() string {
	return fmt.Sprintf("policy/%s: %v", i.File, i.Err)
}

// State is the outcome of reading the policy files.
type State struct {
	// Current is the effective policy, the last link of the chain; nil
	// when the repository has no (valid) policy.
	Current *Policy
	// Ignored lists the files that are not part of the chain, by name.
	Ignored []Ignored
}

// MinRetention is the effective minimum retention (0 without a policy).
func (s *State) MinRetention() time.Duration {
	if s.Current == nil {
		return 0
	}
	return s.Current.MinRetention
}

// ForkError names the files that claim the same place in the chain.
type ForkError struct {
	Seq   uint64
	Files []id.ID
}

func (e *ForkError) Error() string {
	names := make([]string, len(e.Files))
	for i, f := range e.Files {
		names[i] = "policy/" + f.String()
	}
	return fmt.Sprintf("%v: %d valid policy files are number %d (%s); remove the one that should not be there from the repository's policy folder by hand",
		ErrFork, len(e.Files), e.Seq, strings.Join(names, ", "))
}

// Unwrap lets errors.Is match ErrFork.
func (e *ForkError) Unwrap() error { return ErrFork }

// Resolve finds the chain among the decoded policy files of repository
// repo. ignored lists files that could not be read at all; Resolve adds
// the files that are not part of the chain, with why.
//
// A file with Seq 1 is valid when its own AdminKey signed it. A file with
// Seq N > 1 is valid when Previous names a valid file with Seq N-1 whose
// AdminKey signed it. When two valid files have the same Seq, Resolve
// fails with a *ForkError: it cannot tell which one the admin meant, and a
// guess could lower the minimum retention.
func Resolve(repo id.ID, files []*Policy, ignored []Ignored) (*State, error) {
	sorted := slices.Clone(files)
	slices.SortStableFunc(sorted, func(a, b *Policy) int {
		if a.Seq != b.Seq {
			if a.Seq < b.Seq {
				return -1
			}
			return 1
		}
		return bytes.Compare(a.File[:], b.File[:])
	})
	st := &State{Ignored: slices.Clone(ignored)}
	valid := map[id.ID]*Policy{}
	bySeq := map[uint64][]*Policy{}
	for _, p := range sorted {
		if err := checkLink(repo, p, valid); err != nil {
			st.Ignored = append(st.Ignored, Ignored{File: p.File, Err: err})
			continue
		}
		valid[p.File] = p
		bySeq[p.Seq] = append(bySeq[p.Seq], p)
		if st.Current == nil || p.Seq > st.Current.Seq {
			st.Current = p
		}
	}
	for _, p := range sorted {
		if same := bySeq[p.Seq]; len(same) > 1 {
			e := &ForkError{Seq: p.Seq}
			for _, q := range same {
				e.Files = append(e.Files, q.File)
			}
			return nil, e
		}
	}
	slices.SortFunc(st.Ignored, func(a, b Ignored) int { return bytes.Compare(a.File[:], b.File[:]) })
	return st, nil
}

// checkLink says why p is not a valid link of the chain, given the valid
// files of lower numbers.
func checkLink(repo id.ID, p *Policy, valid map[id.ID]*Policy) error {
	if err := p.validate(); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	if p.Seq == 1 {
		if !p.VerifiedBy(repo, p.AdminKey) {
			return errors.New("policy 1 is not signed by its own admin key (or belongs to another repository)")
		}
		return nil
	}
	prev, ok := valid[p.Previous]
	switch {
	case !ok:
		return fmt.Errorf("policy %d is not chained: the policy it replaces, %s, is missing or not valid", p.Seq, p.Previous.Short())
	case prev.Seq != p.Seq-1:
		return fmt.Errorf("policy %d is not chained: it replaces %s, which is policy %d", p.Seq, p.Previous.Short(), prev.Seq)
	case !p.VerifiedBy(repo, prev.AdminKey):
		return fmt.Errorf("policy %d is not signed by the admin key of policy %d (%s)", p.Seq, prev.Seq, Fingerprint(prev.AdminKey))
	}
	return nil
}

// Load reads every policy file of r and resolves the chain. A file that
// fails to decrypt, verify or decode is ignored and reported in
// State.Ignored; any other error (the storage failing) is returned, since
// a policy that could not be read might be the current one.
func Load(ctx context.Context, r *repository.Repository) (*State, error) {
	names, err := r.List(ctx, backend.PolicyFile)
	if err != nil {
		return nil, err
	}
	var files []*Policy
	var ignored []Ignored
	for _, name := range names {
		plain, err := r.LoadFile(ctx, backend.PolicyFile, name)
		switch {
		case backend.IsNotExist(err):
			continue // removed since the listing
		case errors.Is(err, repository.ErrCorrupt):
			ignored = append(ignored, Ignored{File: name, Err: err})
			continue
		case err != nil:
			return nil, err
		}
		p, err := Decode(plain)
		if err != nil {
			ignored = append(ignored, Ignored{File: name, Err: err})
			continue
		}
		p.File = name
		files = append(files, p)
	}
	return Resolve(r.Config().ID, files, ignored)
}

// Next makes the policy that follows cur (nil: the first policy), setting
// minRet, signed with key. key must be the admin key of cur; for the first
// policy it becomes the admin key. The admin key stays the same.
func Next(repo id.ID, cur *Policy, minRet time.Duration, key ed25519.PrivateKey, now time.Time) (*Policy, error) {
	pub, ok := key.Public().(ed25519.PublicKey)
	if !ok || len(key) != ed25519.PrivateKeySize {
		return nil, errors.New("admin key: not an Ed25519 private key")
	}
	if minRet < 0 || minRet > MaxMinRetention {
		return nil, fmt.Errorf("minimum retention %v is out of range (0 to %d days)", minRet, MaxMinRetention/(24*time.Hour))
	}
	if minRet%time.Second != 0 {
		return nil, fmt.Errorf("minimum retention %v is not a whole number of seconds", minRet)
	}
	p := &Policy{Seq: 1, MinRetention: minRet, AdminKey: pub, Time: now.UTC().Truncate(time.Second)}
	if cur != nil {
		if !pub.Equal(cur.AdminKey) {
			return nil, fmt.Errorf("%w: policy %d can only be changed with the admin key %s, not %s",
				ErrWrongKey, cur.Seq, Fingerprint(cur.AdminKey), Fingerprint(pub))
		}
		if cur.File.IsNull() {
			return nil, errors.New("the current policy has no file name")
		}
		p.Seq, p.Previous = cur.Seq+1, cur.File
	}
	p.Sign(repo, key)
	return p, nil
}

// Save stores p as a new policy file and sets p.File.
func Save(ctx context.Context, r *repository.Repository, p *Policy) error {
	plain, err := p.Encode()
	if err != nil {
		return err
	}
	name, err := r.SaveJSON(ctx, backend.PolicyFile, rawJSON(plain))
	if err != nil {
		return fmt.Errorf("save policy: %w", err)
	}
	p.File = name
	return nil
}

// rawJSON hands already-encoded JSON to SaveJSON unchanged.
type rawJSON []byte

func (j rawJSON) MarshalJSON() ([]byte, error) { return j, nil }
