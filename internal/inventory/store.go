package inventory

import (
	"context"
	"errors"
	"fmt"

	"github.com/rewind-backup/rewind/internal/backend"
	"github.com/rewind-backup/rewind/internal/id"
	"github.com/rewind-backup/rewind/internal/repository"
	"github.com/rewind-backup/rewind/internal/snapshot"
)

// Save stores d as a new sealed file in the inventory/ folder and returns
// its name.
func Save(ctx context.Context, r *repository.Repository, d *Document) (id.ID, error) {
	i, err := r.SaveJSON(ctx, backend.InventoryFile, d)
	if err != nil {
		return id.ID{}, fmt.Errorf("save inventory: %w", err)
	}
	return i, nil
}

// Load reads and decodes the inventory file name.
func Load(ctx context.Context, r *repository.Repository, name id.ID) (*Document, error) {
	plain, err := r.LoadFile(ctx, backend.InventoryFile, name)
	if err != nil {
		return nil, fmt.Errorf("load inventory %s: %w", name.Short(), err)
	}
	d, err := Decode(plain)
	if err != nil {
		return nil, &repository.CorruptError{Op: "decode", Object: "inventory/" + name.String(), Err: err}
	}
	return d, nil
}

// Exists reports whether the inventory file name is stored.
func Exists(ctx context.Context, r *repository.Repository, name id.ID) (bool, error) {
	h := backend.Handle{Type: backend.InventoryFile, Name: name.String()}
	_, err := r.Backend().Stat(ctx, h)
	if backend.IsNotExist(err) {
		return false, nil
	}
	if err != nil {
		return false, backend.Wrap("stat", h.String(), err)
	}
	return true, nil
}

// Store saves d unless prev, the stored inventory named prevID, has the
// same content; it returns the name to record in the snapshot and
// whether a new file was written. prev may be nil. A prev whose file has
// gone since it was read (a prune removed it) is not reused.
func Store(ctx context.Context, r *repository.Repository, d *Document, prev *Document, prevID id.ID) (id.ID, bool, error) {
	if prev != nil && SameContent(prev, d) {
		ok, err := Exists(ctx, r, prevID)
		if err != nil {
			return id.ID{}, false, err
		}
		if ok {
			return prevID, false, nil
		}
	}
	i, err := Save(ctx, r, d)
	return i, err == nil, err
}

// Latest finds the inventory of the newest snapshot of host that has one
// among sns (sorted oldest first, as snapshot.List returns them).
func Latest(sns []*snapshot.Snapshot, host string) (id.ID, bool) {
	for i := len(sns) - 1; i >= 0; i-- {
		if sn := sns[i]; sn.Hostname == host && sn.Inventory != nil {
			return *sn.Inventory, true
		}
	}
	return id.ID{}, false
}

// Record stores d for a snapshot about to be saved and returns the name
// to put in its Inventory field: the inventory of the host's newest
// snapshot when it has the same content (isNew false), else a new file.
// A previous inventory that cannot be read is reported to warn and a new
// file is stored. sns are the repository's snapshots when the caller has
// listed them already, under the lock it holds (a backup listing them to
// find its parent); nil lists them.
func Record(ctx context.Context, r *repository.Repository, d *Document, sns []*snapshot.Snapshot, warn func(error)) (name id.ID, isNew bool, err error) {
	if sns == nil {
		if sns, err = snapshot.List(ctx, r, func(id.ID, error) {}); err != nil {
			return id.ID{}, false, err
		}
	}
	var prev *Document
	prevID, ok := Latest(sns, d.Host)
	if ok {
		if prev, err = Load(ctx, r, prevID); err != nil {
			if ctx.Err() != nil {
				return id.ID{}, false, ctx.Err()
			}
			if warn != nil {
				warn(err)
			}
			prev = nil
		}
	}
	return Store(ctx, r, d, prev, prevID)
}

// ErrNone: the snapshot asked for has no inventory.
var ErrNone = errors.New("no inventory")

// OfSnapshot resolves ref ("latest", "", an ID or a unique ID prefix) to
// a snapshot and loads its inventory. "latest" and "" mean the newest
// snapshot of host that has an inventory (any host when host is "").
func OfSnapshot(ctx context.Context, r *repository.Repository, ref, host string) (*snapshot.Snapshot, *Document, error) {
	var sn *snapshot.Snapshot
	if ref == "" || ref == "latest" {
		sns, err := snapshot.List(ctx, r, func(id.ID, error) {})
		if err != nil {
			return nil, nil, err
		}
		for i := len(sns) - 1; i >= 0; i-- {
			if sns[i].Inventory != nil && (host == "" || sns[i].Hostname == host) {
				sn = sns[i]
				break
			}
		}
		if sn == nil {
			if host != "" {
				return nil, nil, fmt.Errorf("%w: no snapshot of host %q has one (back up files from it, or name a snapshot)", ErrNone, host)
			}
			return nil, nil, fmt.Errorf("%w: no snapshot has one", ErrNone)
		}
	} else {
		var err error
		if sn, err = snapshot.Find(ctx, r, ref, snapshot.Filter{}); err != nil {
			return nil, nil, err
		}
		if sn.Inventory == nil {
			return nil, nil, fmt.Errorf("%w: snapshot %s has none (made with --stdin or --no-inventory, or by an older rewind)", ErrNone, sn.ID.Short())
		}
	}
	d, err := Load(ctx, r, *sn.Inventory)
	if err != nil {
		return nil, nil, err
	}
	return sn, d, nil
}
