package repository

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/rewind-backup/rewind/internal/backend"
	"github.com/rewind-backup/rewind/internal/backend/local"
	"github.com/rewind-backup/rewind/internal/backend/mem"
	"github.com/rewind-backup/rewind/internal/crypto"
)

// TestInitRace runs several inits on one folder at once, each with its own
// password, round after round: exactly one creates the repository, every
// other says a repository exists and leaves no key behind, and a loser's
// password is then a wrong password, not corrupt data.
func TestInitRace(t *testing.T) {
	const rounds, racers = 25, 4
	ctx := context.Background()
	lostLate := 0 // losers that had stored a key before they lost
	for round := range rounds {
		dir := filepath.Join(t.TempDir(), "repo")
		errs := make([]error, racers)
		var start, wg sync.WaitGroup
		start.Add(1)
		for i := range racers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				start.Wait()
				be, err := local.Create(ctx, dir)
				if err != nil {
					errs[i] = err
					return
				}
				defer be.Close()
				r, err := Init(ctx, be, racePassword(round, i), InitOptions{KDF: crypto.TestKDFParams})
				if err != nil {
					errs[i] = err
					return
				}
				closeCodecs(r)
			}()
		}
		start.Done()
		wg.Wait()
		winner := -1
		for i, err := range errs {
			switch {
			case err == nil && winner >= 0:
				t.Fatalf("round %d: racers %d and %d both created the repository", round, winner, i)
			case err == nil:
				winner = i
			case errors.Is(err, ErrRepositoryExists):
				if strings.Contains(err.Error(), "same time") {
					lostLate++
				}
			case errors.Is(err, backend.ErrExists): // local.Create saw the config
			default:
				t.Fatalf("round %d: racer %d: %v, want a repository that already exists", round, i, err)
			}
		}
		if winner < 0 {
			t.Fatalf("round %d: no racer created the repository: %v", round, errs)
		}
		keys, err := os.ReadDir(filepath.Join(dir, "keys"))
		if err != nil {
			t.Fatal(err)
		}
		if len(keys) != 1 {
			t.Fatalf("round %d: %d key files, want only the winner's", round, len(keys))
		}
		for i := range racers {
			r, err := openLocal(t, dir, racePassword(round, i))
			switch {
			case i == winner && err != nil:
				t.Fatalf("round %d: the winner's password: %v", round, err)
			case i == winner:
				closeCodecs(r)
			case !errors.Is(err, ErrWrongPassword) || errors.Is(err, ErrCorrupt):
				t.Fatalf("round %d: loser %d's password: %v, want a wrong password", round, i, err)
			}
		}
	}
	t.Logf("%d of %d losers had stored a key before losing", lostLate, rounds*(racers-1))
}

func racePassword(round, i int) []byte { return []byte(fmt.Sprintf("racer %d of round %d", i, round)) }

// orphanKey returns the key file of a repository created elsewhere with
// password: a key no repository on be knows, as a lost init leaves.
func orphanKey(t *testing.T, password []byte) (string, []byte) {
	t.Helper()
	other := mem.New()
	r, err := Init(context.Background(), other, password, InitOptions{KDF: crypto.TestKDFParams})
	if err != nil {
		t.Fatal(err)
	}
	closeCodecs(r)
	h := backend.Handle{Type: backend.KeyFile, Name: r.KeyName()}
	return r.KeyName(), memRead(t, other, h)
}

// TestOrphanKey stores keys of other repositories beside the real one:
// opened with the orphan's password, the repository says wrong password
// and names the orphan; opened with the real password it opens, even when
// an orphan with the same password is tried first.
func TestOrphanKey(t *testing.T) {
	ctx := context.Background()
	r, be := newMemRepo(t)
	real := r.KeyName()

	other := []byte("the password of an init that lost")
	name, raw := orphanKey(t, other)
	memReplace(t, be, backend.Handle{Type: backend.KeyFile, Name: name}, raw)
	_, err := Open(ctx, be, other)
	if !errors.Is(err, ErrWrongPassword) || errors.Is(err, ErrCorrupt) {
		t.Fatalf("orphan's password: %v, want a wrong password", err)
	}
	if !strings.Contains(err.Error(), "keys/"+name) {
		t.Errorf("the error does not name the orphan key keys/%s: %v", name, err)
	}
	if _, err := Open(ctx, be, []byte("neither password")); !errors.Is(err, ErrWrongPassword) {
		t.Fatalf("an unknown password: %v, want a wrong password", err)
	}

	// Orphans made with the real password, until one sorts before the
	// real key, so that it is tried first.
	before := false
	for n := 0; n < 40 && !before; n++ {
		name, raw := orphanKey(t, testPassword)
		memReplace(t, be, backend.Handle{Type: backend.KeyFile, Name: name}, raw)
		before = name < real
	}
	if !before {
		t.Fatal("no orphan key sorts before the real one")
	}
	r2, err := Open(ctx, be, testPassword)
	if err != nil {
		t.Fatalf("the real password with orphans of the same password: %v", err)
	}
	defer closeCodecs(r2)
	if r2.KeyName() != real {
		t.Errorf("opened with key %s, want the repository's own key %s", r2.KeyName(), real)
	}
	if r2.Config().ID != r.Config().ID {
		t.Error("opened another repository's config")
	}
}
