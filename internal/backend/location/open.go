package location

import (
	"context"
	"errors"
	"fmt"

	"github.com/rewind-backup/rewind/internal/backend"
	"github.com/rewind-backup/rewind/internal/backend/local"
)

// Open opens the existing repository at loc. For a local folder without a
// repository the error wraps local.ErrNoRepository. Schemes that are
// recognised but not built yet fail with an error wrapping
// errors.ErrUnsupported.
func Open(ctx context.Context, loc Location) (backend.Backend, error) {
	switch loc.Scheme {
	case Local:
		be, err := local.Open(ctx, loc.Path)
		if err != nil {
			return nil, err // not a typed nil in the interface
		}
		return be, nil
	case S3, REST:
		return nil, notSupported(loc)
	}
	return nil, fmt.Errorf("open repository: %w %q", ErrUnknownScheme, loc.Scheme)
}

// Create makes the storage of a new repository at loc; see Open for the
// errors of unsupported schemes.
func Create(ctx context.Context, loc Location) (backend.Backend, error) {
	switch loc.Scheme {
	case Local:
		be, err := local.Create(ctx, loc.Path)
		if err != nil {
			return nil, err // not a typed nil in the interface
		}
		return be, nil
	case S3, REST:
		return nil, notSupported(loc)
	}
	return nil, fmt.Errorf("create repository: %w %q", ErrUnknownScheme, loc.Scheme)
}

func notSupported(loc Location) error {
	return backend.Permanent(fmt.Errorf("repository %s: the %s scheme is recognised but not supported in this version: %w",
		loc, loc.Scheme, errors.ErrUnsupported))
}
