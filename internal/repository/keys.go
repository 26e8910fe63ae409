package repository

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/rewind-backup/rewind/internal/backend"
	"github.com/rewind-backup/rewind/internal/crypto"
	"github.com/rewind-backup/rewind/internal/id"
)

// KeyInfo describes one key file, for `rewind key list`.
type KeyInfo struct {
	ID       id.ID     `json:"id"`
	Current  bool      `json:"current"`
	Created  time.Time `json:"created"`
	Hostname string    `json:"hostname"`
	Username string    `json:"username"`
}

func loadKeyFile(ctx context.Context, be backend.Backend, name string) (*crypto.KeyFile, error) {
	var raw []byte
	err := be.Load(ctx, backend.Handle{Type: backend.KeyFile, Name: name}, 0, 0, func(rd io.Reader) error {
		var err error
		raw, err = io.ReadAll(io.LimitReader(rd, 1<<20))
		return err
	})
	if err != nil {
		return nil, backend.Wrap("load", "keys/"+name, err)
	}
	if i, err := id.Parse(name); err == nil && crypto.FileID(raw) != i {
		return nil, &CorruptError{Op: "read", Object: "keys/" + name, Err: errors.New("content does not match its name (altered or renamed)")}
	}
	kf, err := crypto.ParseKeyFile(raw)
	if err != nil {
		return nil, &CorruptError{Op: "parse", Object: "keys/" + name, Err: err}
	}
	return kf, nil
}

// VerifyKeyFile checks, without a password, that the key file name hashes
// to its name and decodes. The error names the file (keys/<name>).
func (r *Repository) VerifyKeyFile(ctx context.Context, name string) error {
	_, err := loadKeyFile(ctx, r.be, name)
	return err
}

// findKey tries every key file with password and returns the first key
// whose master key opens the sealed config, with the config's plaintext.
//
// A key file that opens with the password but whose master key does not
// open the config belongs to no repository here: an init that lost a race
// for the same location, or crashed before storing its config, leaves one
// behind. It is passed over, and if no other key opens, the password is
// wrong for this repository: that is what the user must hear, not that
// stored data is corrupt. Only when every key opens with the password and
// none opens the config is the config taken for damaged.
func findKey(ctx context.Context, be backend.Backend, password, sealedConfig []byte) (*crypto.Key, string, []byte, error) {
	var names []string
	err := be.List(ctx, backend.KeyFile, func(fi backend.FileInfo) error {
		names = append(names, fi.Name)
		return nil
	})
	if err != nil {
		return nil, "", nil, backend.Wrap("list", backend.KeyFile.String(), err)
	}
	if len(names) == 0 {
		return nil, "", nil, fmt.Errorf("%w: the repository has no key files", ErrCorrupt)
	}
	slices.Sort(names)
	var errs []error
	var foreign []string
	tried, refused := 0, 0
	for _, name := range names {
		kf, err := loadKeyFile(ctx, be, name)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		tried++
		key, err := kf.Unwrap(password)
		if err != nil {
			if errors.Is(err, crypto.ErrWrongPassword) {
				refused++
			} else {
				errs = append(errs, fmt.Errorf("keys/%s: %w", name, err))
			}
			continue
		}
		plain, err := key.Open(nil, sealedConfig)
		if err != nil {
			foreign = append(foreign, "keys/"+name)
			continue
		}
		return key, name, plain, nil
	}
	if tried == 0 {
		// No key file could be tried: the password was never checked, so
		// blaming it would send the user the wrong way.
		return nil, "", nil, fmt.Errorf("no key file could be read: %w", errors.Join(errs...))
	}
	if len(foreign) > 0 && refused == 0 {
		// Every key opens with the password and none opens the config:
		// the repository's own key is among them, so the config is what
		// is damaged.
		return nil, "", nil, fmt.Errorf("%w: config does not decrypt with the master key of %s", ErrCorrupt, strings.Join(foreign, ", "))
	}
	werr := ErrWrongPassword
	if len(foreign) > 0 {
		werr = fmt.Errorf("%w (the password opens %s, which does not open this repository's config: "+
			"a key left by an init that lost a race for this location or was interrupted, or the config is damaged)", ErrWrongPassword, strings.Join(foreign, ", "))
	}
	if len(errs) > 0 {
		return nil, "", nil, fmt.Errorf("%w (and some key files could not be read: %w)", werr, errors.Join(errs...))
	}
	return nil, "", nil, werr
}

// AddKey stores a new key file that opens the repository with password.
func (r *Repository) AddKey(ctx context.Context, password []byte, kdf crypto.KDFParams) (id.ID, error) {
	if len(password) == 0 {
		return id.ID{}, errors.New("the password is empty")
	}
	if kdf == (crypto.KDFParams{}) {
		kdf = crypto.DefaultKDFParams
	}
	kf, err := crypto.WrapKey(r.key, password, kdf)
	if err != nil {
		return id.ID{}, err
	}
	raw, err := json.Marshal(kf)
	if err != nil {
		return id.ID{}, err
	}
	name := crypto.FileID(raw)
	h := backend.Handle{Type: backend.KeyFile, Name: name.String()}
	if err := r.be.Save(ctx, h, backend.NewByteReader(raw)); err != nil {
		return id.ID{}, backend.Wrap("save", h.String(), err)
	}
	if r.keyName == "" {
		r.keyName = name.String()
	}
	return name, nil
}

// ListKeys describes every key file.
func (r *Repository) ListKeys(ctx context.Context) ([]KeyInfo, error) {
	ids, err := r.List(ctx, backend.KeyFile)
	if err != nil {
		return nil, err
	}
	var out []KeyInfo
	for _, i := range ids {
		kf, err := loadKeyFile(ctx, r.be, i.String())
		if err != nil {
			return nil, err
		}
		out = append(out, KeyInfo{ID: i, Current: i.String() == r.keyName, Created: kf.Created, Hostname: kf.Hostname, Username: kf.Username})
	}
	return out, nil
}

// RemoveKey deletes a key file. The key that opened the repository cannot
// be removed, so that the last working password is never lost.
func (r *Repository) RemoveKey(ctx context.Context, name id.ID) error {
	if name.String() == r.keyName {
		return errors.New("refusing to remove the key in use; open the repository with another password to remove this one")
	}
	h := backend.Handle{Type: backend.KeyFile, Name: name.String()}
	if err := r.be.Remove(ctx, h); err != nil {
		return backend.Wrap("remove", h.String(), err)
	}
	return nil
}

// ChangePassword replaces the key in use by a new key file for password.
// The new key is stored before the old one is removed.
func (r *Repository) ChangePassword(ctx context.Context, password []byte, kdf crypto.KDFParams) (id.ID, error) {
	old := r.keyName
	r.keyName = ""
	name, err := r.AddKey(ctx, password, kdf)
	if err != nil {
		r.keyName = old
		return id.ID{}, err
	}
	r.keyName = name.String()
	if old != "" && old != name.String() {
		if err := r.be.Remove(ctx, backend.Handle{Type: backend.KeyFile, Name: old}); err != nil {
			return name, fmt.Errorf("new key %s stored, but removing the old key failed: %w", name.Short(), err)
		}
	}
	return name, nil
}
