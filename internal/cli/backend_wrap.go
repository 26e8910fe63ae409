package cli

import (
	"context"
	"errors"
	"fmt"
	"os"

	"github.com/rewind-backup/rewind/internal/backend"
	"github.com/rewind-backup/rewind/internal/backend/counting"
	"github.com/rewind-backup/rewind/internal/backend/limit"
	"github.com/rewind-backup/rewind/internal/backend/location"
	"github.com/rewind-backup/rewind/internal/backend/readonly"
	"github.com/rewind-backup/rewind/internal/backend/retry"
	"github.com/rewind-backup/rewind/internal/repository"
	"github.com/spf13/pflag"
)

// backendFlags are the global flags that shape how rewind talks to the
// storage, and the counters of the backend once it is open.
type backendFlags struct {
	limitUpload   int // KiB/s; 0: no limit
	limitDownload int // KiB/s
	readOnly      bool
	caCert        string
	s3Region      string
	s3Lookup      string
	s3NoCondPut   bool

	// counter counts the requests of the open backend; nil before.
	counter counting.Counter
}

// addBackendFlags registers the flags of b on the root command.
func addBackendFlags(f *pflag.FlagSet, b *backendFlags) {
	f.IntVar(&b.limitUpload, "limit-upload", 0, "limit uploads to the repository to `KiB/s` (0: no limit)")
	f.IntVar(&b.limitDownload, "limit-download", 0, "limit downloads from the repository to `KiB/s` (0: no limit)")
	f.BoolVar(&b.readOnly, "read-only", false, "refuse every write to the repository (reading commands need --no-lock with it)")
	f.StringVar(&b.caCert, "cacert", os.Getenv("REWIND_CACERT"), "also trust the CA certificates in PEM `file` for https repositories (env REWIND_CACERT)")
	f.StringVar(&b.s3Region, "s3-region", firstEnv("AWS_REGION", "AWS_DEFAULT_REGION"), "`region` of the S3 bucket; empty asks the server (env AWS_REGION, AWS_DEFAULT_REGION)")
	f.StringVar(&b.s3Lookup, "s3-bucket-lookup", envOr("REWIND_S3_BUCKET_LOOKUP", "auto"), "S3 addressing `style`: auto, path or dns (virtual-host) (env REWIND_S3_BUCKET_LOOKUP)")
	f.BoolVar(&b.s3NoCondPut, "s3-no-conditional-writes", os.Getenv("REWIND_S3_NO_CONDITIONAL_WRITES") == "1",
		"check for an existing object before each upload instead of a conditional PUT, for S3 servers that ignore If-None-Match (env REWIND_S3_NO_CONDITIONAL_WRITES=1)")
}

func firstEnv(names ...string) string {
	for _, n := range names {
		if v := os.Getenv(n); v != "" {
			return v
		}
	}
	return ""
}

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

// locationOptions are the provider settings the flags give.
func (g *globals) locationOptions() location.Options {
	return location.Options{
		S3Region:              g.backend.s3Region,
		S3BucketLookup:        g.backend.s3Lookup,
		S3NoConditionalWrites: g.backend.s3NoCondPut,
		CACert:                g.backend.caCert,
		Logger:                g.log,
	}
}

// openBackend opens the storage of the existing repository at loc, wrapped
// as wrapBackend says. A local folder without a repository gives an error
// wrapping local.ErrNoRepository, for the caller to word; a remote
// location without one gives repository.ErrNoRepository with the reason.
func (g *globals) openBackend(ctx context.Context, loc location.Location) (backend.Backend, error) {
	if err := g.checkBackendFlags(); err != nil {
		return nil, err
	}
	be, err := location.Open(ctx, loc, g.locationOptions())
	if err != nil {
		if loc.Scheme != location.Local && location.IsNoRepository(err) {
			return nil, fmt.Errorf("%w: %v", repository.ErrNoRepository, err)
		}
		return nil, err
	}
	return g.wrapBackend(loc, be), nil
}

// createBackend makes the storage of a new repository at loc, wrapped as
// wrapBackend says.
func (g *globals) createBackend(ctx context.Context, loc location.Location) (backend.Backend, error) {
	if err := g.checkBackendFlags(); err != nil {
		return nil, err
	}
	if g.backend.readOnly {
		return nil, errors.New("cannot create a repository with --read-only")
	}
	be, err := location.Create(ctx, loc, g.locationOptions())
	if err != nil {
		return nil, err
	}
	return g.wrapBackend(loc, be), nil
}

// wrapBackend puts the wrappers around the provider be, innermost first:
//
//	location -> counting -> limit -> retry -> readonly
//
// counting sits right on the provider, so that it counts every attempt
// that reaches it; limit below retry makes retried attempts wait for
// their slot and bandwidth like any other; readonly outermost refuses a
// write before it is tried. limit is only added when a limit is set, and
// retry only for remote repositories (a local filesystem's errors do not
// pass by waiting). counting keeps a local backend's ability to adopt
// temporary pack files; the other wrappers drop it, which is what a
// bandwidth limit wants.
func (g *globals) wrapBackend(loc location.Location, be backend.Backend) backend.Backend {
	c := counting.New(be)
	g.backend.counter = c
	be = c
	if g.backend.limitUpload > 0 || g.backend.limitDownload > 0 {
		be = limit.New(be, limit.Config{UploadKiB: g.backend.limitUpload, DownloadKiB: g.backend.limitDownload})
	}
	if loc.IsRemote() {
		be = retry.New(be, retry.Config{Logger: g.log})
	}
	if g.backend.readOnly {
		be = readonly.New(be)
	}
	return be
}

// checkBackendFlags rejects flag values that make no sense.
func (g *globals) checkBackendFlags() error {
	if g.backend.limitUpload < 0 || g.backend.limitDownload < 0 {
		return errors.New("--limit-upload and --limit-download take a rate in KiB/s, 0 or more")
	}
	return nil
}

// backendStats returns what the open backend counted so far, for the
// "backend" object of JSON summaries; nil when no backend was opened.
func (g *globals) backendStats() *backendSummary {
	if g.backend.counter == nil {
		return nil
	}
	s := g.backend.counter.Snapshot()
	return &s
}

// backendSummary is the "backend" object of JSON summaries
// (docs/JSON.md): requests by type and bytes moved.
type backendSummary = counting.Stats
