package snapshot

import (
	"context"
	"errors"
	"fmt"

	"github.com/rewind-backup/rewind/internal/repository"
	"github.com/rewind-backup/rewind/internal/tree"
)

// What a snapshot says about a file the backup could not read.
//
// A file node flagged tree.FlagUnreadable records the file's metadata as
// lstat saw it (its Size included) and no content: its chunk list is empty
// and means nothing. Its content is unknown, not empty. Every reader that
// presents file content (restore, dump, diff, versions, the coming mount)
// gets it through ReadableContent, which refuses such a node with a
// *NotBackedUpError, so that none of them can present zeros, or nothing, as
// what the file held.

// ErrNotBackedUp matches every *NotBackedUpError.
var ErrNotBackedUp = errors.New("content not backed up")

// NotBackedUpError says that a file's content is not in the snapshot
// because the backup could not read it.
type NotBackedUpError struct {
	// Reason is the read error the backup recorded.
	Reason string
}

func (e *NotBackedUpError) Error() string {
	if e.Reason == "" {
		return "content not backed up: the backup could not read this file"
	}
	return "content not backed up: the backup could not read this file (" + e.Reason + ")"
}

// Is makes errors.Is(err, ErrNotBackedUp) true.
func (e *NotBackedUpError) Is(target error) bool { return target == ErrNotBackedUp }

// NotBackedUp reports whether n is a file whose content the backup could
// not read.
func NotBackedUp(n *tree.Node) bool {
	return n.Type == tree.File && n.Flags&tree.FlagUnreadable != 0
}

// ReadableContent returns the chunks of a file's content for a reader to
// present, or a *NotBackedUpError for a file whose content the backup
// could not read. Use LoadContent only to account for the blobs a node
// references.
func ReadableContent(ctx context.Context, r *repository.Repository, n *tree.Node) ([]tree.Chunk, error) {
	if NotBackedUp(n) {
		return nil, &NotBackedUpError{Reason: n.Error}
	}
	if n.Type != tree.File {
		return nil, fmt.Errorf("%q is a %s, not a file", n.Name, n.Type)
	}
	return LoadContent(ctx, r, n)
}
