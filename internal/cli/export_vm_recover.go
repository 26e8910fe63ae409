package cli

import (
	"context"
	"errors"

	"github.com/rewind-backup/rewind/internal/inventory"
	"github.com/rewind-backup/rewind/internal/recovery"
	"github.com/rewind-backup/rewind/internal/repository"
	"github.com/rewind-backup/rewind/internal/snapshot"
)

// recoverOnto rebuilds the snapshot's machine onto target.
func recoverOnto(ctx context.Context, g *globals, r *repository.Repository, sn *snapshot.Snapshot, doc *inventory.Document, t recovery.Target) (*recovery.Report, error) {
	return nil, errors.New("recovery.Recover is not merged yet")
}
