package location

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"github.com/rewind-backup/rewind/internal/backend"
	"github.com/rewind-backup/rewind/internal/backend/local"
	"github.com/rewind-backup/rewind/internal/backend/s3"
)

// Options are the settings of providers that an address does not carry.
// The zero value is a fine default.
type Options struct {
	// S3Region is the region of the bucket; empty asks the server.
	S3Region string
	// S3BucketLookup is "auto" (or empty), "path" or "dns" (virtual-host
	// style).
	S3BucketLookup string
	// S3NoConditionalWrites checks for an existing object before each
	// write instead of sending If-None-Match (see package s3).
	S3NoConditionalWrites bool
	// CACert names a PEM file of CA certificates to trust for https.
	CACert string
	// Logger receives the providers' warnings; nil: slog.Default().
	Logger *slog.Logger
}

// Open opens the existing repository at loc. When loc holds no
// repository, the error matches IsNoRepository (for a local folder it
// wraps local.ErrNoRepository). Schemes that are recognised but not built
// yet fail with an error wrapping errors.ErrUnsupported.
func Open(ctx context.Context, loc Location, opts Options) (backend.Backend, error) {
	switch loc.Scheme {
	case Local:
		be, err := local.Open(ctx, loc.Path)
		if err != nil {
			return nil, err // not a typed nil in the interface
		}
		return be, nil
	case S3:
		be, err := s3.Open(ctx, s3Config(loc, opts))
		if err != nil {
			return nil, err
		}
		return be, nil
	case REST:
		return nil, notSupported(loc)
	}
	return nil, fmt.Errorf("open repository: %w %q", ErrUnknownScheme, loc.Scheme)
}

// Create makes the storage of a new repository at loc: a local folder, or
// for s3 the bucket if it is missing. See Open for the errors of
// unsupported schemes.
func Create(ctx context.Context, loc Location, opts Options) (backend.Backend, error) {
	switch loc.Scheme {
	case Local:
		be, err := local.Create(ctx, loc.Path)
		if err != nil {
			return nil, err // not a typed nil in the interface
		}
		return be, nil
	case S3:
		be, err := s3.Create(ctx, s3Config(loc, opts))
		if err != nil {
			return nil, err
		}
		return be, nil
	case REST:
		return nil, notSupported(loc)
	}
	return nil, fmt.Errorf("create repository: %w %q", ErrUnknownScheme, loc.Scheme)
}

// IsNoRepository reports whether err from Open means that the location
// holds no repository.
func IsNoRepository(err error) bool {
	return errors.Is(err, local.ErrNoRepository) || errors.Is(err, s3.ErrNoRepository)
}

// IsRemote reports whether loc is reached over the network, where
// transient errors are worth retrying.
func (l Location) IsRemote() bool { return l.Scheme == S3 || l.Scheme == REST }

// s3Config turns an s3 location and the options into the provider's
// configuration. Credentials come from the environment (s3.EnvCredentials).
func s3Config(loc Location, opts Options) s3.Config {
	return s3.Config{
		Endpoint:            loc.Endpoint,
		TLS:                 loc.TLS,
		Bucket:              loc.Bucket,
		Prefix:              loc.Prefix,
		Region:              opts.S3Region,
		BucketLookup:        opts.S3BucketLookup,
		CACertFile:          opts.CACert,
		NoConditionalWrites: opts.S3NoConditionalWrites,
		Logger:              opts.Logger,
	}
}

func notSupported(loc Location) error {
	return backend.Permanent(fmt.Errorf("repository %s: the %s scheme is recognised but not supported in this version: %w",
		loc, loc.Scheme, errors.ErrUnsupported))
}
