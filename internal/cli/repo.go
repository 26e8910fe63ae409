package cli

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/rewind-backup/rewind/internal/backend"
	"github.com/rewind-backup/rewind/internal/backend/local"
	"github.com/rewind-backup/rewind/internal/backend/location"
	"github.com/rewind-backup/rewind/internal/id"
	"github.com/rewind-backup/rewind/internal/lock"
	"github.com/rewind-backup/rewind/internal/repository"
	"github.com/rewind-backup/rewind/internal/snapshot"
)

// dataDir returns rewind's folder in the user's data directory
// ($XDG_DATA_HOME/rewind, else ~/.local/share/rewind).
func dataDir() (string, error) {
	if d := os.Getenv("XDG_DATA_HOME"); d != "" {
		return filepath.Join(d, "rewind"), nil
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return "", fmt.Errorf("find the data directory: %w", err)
	}
	return filepath.Join(home, ".local", "share", "rewind"), nil
}

// defaultRepo returns the default repository folder and its password file.
func defaultRepo() (repo, passwordFile string, err error) {
	d, err := dataDir()
	if err != nil {
		return "", "", err
	}
	return filepath.Join(d, "repo"), filepath.Join(d, "repo.password"), nil
}

// usingDefault reports whether no repository was named.
func (g *globals) usingDefault() bool { return g.repo == "" }

// location resolves --repo, or the default repository.
func (g *globals) location() (location.Location, error) {
	if g.usingDefault() {
		repo, _, err := defaultRepo()
		if err != nil {
			return location.Location{}, err
		}
		return location.Parse(repo)
	}
	return location.Parse(g.repo)
}

// openRepo opens the repository and loads its index.
func (g *globals) openRepo(ctx context.Context, loadIndex bool) (*repository.Repository, error) {
	loc, err := g.location()
	if err != nil {
		return nil, err
	}
	be, err := g.openBackend(ctx, loc)
	if errors.Is(err, local.ErrNoRepository) {
		if g.usingDefault() {
			return nil, withHint(fmt.Errorf("%w: the default repository %s does not exist yet", repository.ErrNoRepository, loc.Path),
				"`rewind backup PATH` creates it; or name another repository with --repo or REWIND_REPOSITORY.")
		}
		return nil, fmt.Errorf("%w: %s", repository.ErrNoRepository, loc)
	}
	if err != nil {
		return nil, err
	}
	// A repository too new for this rewind is refused before asking for
	// a password that could not help.
	if err := repository.CheckFormat(ctx, be); err != nil {
		be.Close()
		return nil, err
	}
	pw, err := g.password(ctx, "Password for "+loc.String()+": ")
	if err != nil {
		be.Close()
		return nil, err
	}
	r, err := repository.Open(ctx, be, pw)
	if err != nil {
		be.Close()
		if errors.Is(err, repository.ErrWrongPassword) {
			err = g.wrongPasswordSource(err)
		}
		return nil, err
	}
	if loadIndex {
		if err := r.LoadIndex(ctx); err != nil {
			r.Close()
			return nil, fmt.Errorf("load index: %w", err)
		}
	}
	return r, nil
}

// openLocked opens the repository, locks it with a lock of kind for
// command, and only then loads the index if loadIndex is set: prune relies
// on every lock holder having locked before it read the index. done
// releases the lock and closes the repository.
func (g *globals) openLocked(ctx context.Context, kind lock.Kind, command string, loadIndex bool) (r *repository.Repository, done func(), err error) {
	r, err = g.openRepo(ctx, false)
	if err != nil {
		return nil, nil, err
	}
	release, err := g.lockRepo(ctx, r, kind, command)
	if err != nil {
		r.Close()
		return nil, nil, err
	}
	done = func() {
		release()
		r.Close()
	}
	if loadIndex {
		if err := r.LoadIndex(ctx); err != nil {
			done()
			return nil, nil, fmt.Errorf("load index: %w", err)
		}
	}
	return r, done, nil
}

// openOrCreateDefault opens the default repository, creating it with a
// generated password file on first use. Other repositories are only
// opened: they are created with `rewind init`. The index is not loaded:
// the caller locks the repository first.
func (g *globals) openOrCreateDefault(ctx context.Context) (*repository.Repository, error) {
	if !g.usingDefault() {
		return g.openRepo(ctx, false)
	}
	repoDir, pwFile, err := defaultRepo()
	if err != nil {
		return nil, err
	}
	if _, err := os.Stat(filepath.Join(repoDir, "config")); err == nil {
		return g.openRepo(ctx, false)
	}
	pw, _, configured, err := g.readPassword(ctx, g.passwordSettings())
	if err != nil {
		return nil, err
	}
	if !configured {
		pw, err = readDefaultPasswordFile(pwFile)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			var created bool
			if pw, created, err = generatePassword(pwFile); err != nil {
				return nil, err
			}
			if created {
				g.ui.Warnf("Created a password for the default repository in %s (mode 0600).\n"+
					"Keep a copy of it somewhere else: without it the backups cannot be read.\n", pwFile)
			}
		case err != nil:
			return nil, err
		}
	}
	be, err := g.createBackend(ctx, location.Location{Scheme: location.Local, Path: repoDir})
	if errors.Is(err, backend.ErrExists) {
		// Another first backup created it meanwhile.
		return g.openRepo(ctx, false)
	}
	if err != nil {
		return nil, fmt.Errorf("create default repository: %w", err)
	}
	r, err := repository.Init(ctx, be, pw, repository.InitOptions{})
	if errors.Is(err, repository.ErrRepositoryExists) {
		be.Close()
		return g.openRepo(ctx, false)
	}
	if err != nil {
		be.Close()
		return nil, err
	}
	g.ui.Infof("Created the default repository at %s\n", repoDir)
	return r, nil
}

// generatePassword writes 32 random bytes, base64-encoded, to a new file
// with mode 0600, and returns them. The file appears whole or not at all:
// it is written and synced under a temporary name, then linked to its
// name, which fails if the name exists. When another first run made the
// file meanwhile, its password is returned instead (created false), so
// that both use the one repository.
func generatePassword(file string) (pw []byte, created bool, err error) {
	dir := filepath.Dir(file)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, false, fmt.Errorf("create %s: %w", dir, err)
	}
	raw := make([]byte, 32)
	if _, err := rand.Read(raw); err != nil {
		return nil, false, err
	}
	pw = []byte(base64.RawURLEncoding.EncodeToString(raw))
	f, err := os.CreateTemp(dir, ".repo.password-")
	if err != nil {
		return nil, false, fmt.Errorf("write password file: %w", err)
	}
	tmp := f.Name()
	defer os.Remove(tmp)
	_, err = f.Write(append(pw, '\n'))
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, false, fmt.Errorf("write password file: %w", err)
	}
	if err := os.Link(tmp, file); errors.Is(err, fs.ErrExist) {
		// Another first backup made it meanwhile: use its password.
		pw, err := readDefaultPasswordFile(file)
		return pw, false, err
	} else if err != nil {
		return nil, false, fmt.Errorf("write password file: %w", err)
	}
	if err := syncDir(dir); err != nil {
		return nil, false, fmt.Errorf("write password file: %w", err)
	}
	return pw, true, nil
}

// syncDir makes the entries of a folder durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}

// openSnapshot opens the repository with a Shared lock for command and
// with its index, and resolves "SNAPSHOT[:PATH]" (the path defaults to
// "/"). The caller calls done, which releases the lock and closes the
// repository.
func (g *globals) openSnapshot(ctx context.Context, command, arg string, f snapshot.Filter) (r *repository.Repository, sn *snapshot.Snapshot, p string, done func(), err error) {
	r, done, err = g.openLocked(ctx, lock.Shared, command, true)
	if err != nil {
		return nil, nil, "", nil, err
	}
	ref, p := snapshot.SplitRef(arg)
	sn, err = snapshot.Find(ctx, r, ref, f)
	if err != nil {
		done()
		return nil, nil, "", nil, err
	}
	if p == "" {
		p = "/"
	}
	return r, sn, p, done, nil
}

// listSnapshots loads every readable snapshot, warning about the others.
func (g *globals) listSnapshots(ctx context.Context, r *repository.Repository) ([]*snapshot.Snapshot, error) {
	return snapshot.List(ctx, r, func(i id.ID, err error) {
		g.ui.Warnf("snapshot %s cannot be read: %v\n", i.Short(), err)
		if errors.Is(err, repository.ErrCorrupt) {
			g.ui.Warnf("(`rewind repair snapshots --forget %s` records the loss and removes it)\n", i.Short())
		}
	})
}

// openForBackup opens the repository a backup stores into: the default
// one is created on first use (not by a dry run, which writes nothing);
// a shared lock is taken for command before the index is read (prune
// relies on it); and the packs a killed backup stored without an index
// are indexed, so that this backup reuses their blobs instead of storing
// them again (a dry run counts them as new). Packs that cannot be read
// are left out and logged. done releases the lock and closes the
// repository.
func (g *globals) openForBackup(ctx context.Context, command string, dryRun bool) (r *repository.Repository, lk *lock.Lock, done func(), err error) {
	if dryRun {
		r, err = g.openRepo(ctx, false)
	} else {
		r, err = g.openOrCreateDefault(ctx)
	}
	if err != nil {
		return nil, nil, nil, err
	}
	lk, err = g.takeLock(ctx, r, lock.Shared, command)
	if err != nil {
		r.Close()
		return nil, nil, nil, err
	}
	done = func() {
		g.releaseLock(ctx, lk)
		r.Close()
	}
	if err := r.LoadIndex(ctx); err != nil {
		done()
		return nil, nil, nil, fmt.Errorf("load index: %w", err)
	}
	if dryRun {
		return r, lk, done, nil
	}
	recovered, skipped, err := r.IndexUnindexedPacks(ctx)
	if err != nil {
		done()
		return nil, nil, nil, fmt.Errorf("index packs of interrupted backups: %w", err)
	}
	for _, p := range skipped {
		g.log.Warn("unreadable pack left out of the index", "pack", p.Pack.String(), "err", p.Err)
	}
	if recovered > 0 {
		g.log.Info("indexed packs left by an interrupted backup", "packs", recovered)
	}
	return r, lk, done, nil
}
