// Package repotest makes real repositories for tests of the layers above
// the repository.
package repotest

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/rewind-backup/rewind/internal/backend/local"
	"github.com/rewind-backup/rewind/internal/crypto"
	"github.com/rewind-backup/rewind/internal/repository"
)

// Password is the test repositories' password.
const Password = "pw"

// Reopener makes a local repository in a temporary folder (with the
// fast test KDF) and returns a function that opens it anew with its
// index loaded, as each CLI command does; each repository it opens is
// closed when the test ends.
func Reopener(t testing.TB) func() *repository.Repository {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "repo")
	ctx := context.Background()
	be, err := local.Create(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := repository.Init(ctx, be, []byte(Password), repository.InitOptions{KDF: crypto.TestKDFParams}); err != nil {
		t.Fatal(err)
	}
	return func() *repository.Repository {
		be, err := local.Open(ctx, dir)
		if err != nil {
			t.Fatal(err)
		}
		r, err := repository.Open(ctx, be, []byte(Password))
		if err != nil {
			t.Fatal(err)
		}
		if err := r.LoadIndex(ctx); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { r.Close() })
		return r
	}
}
