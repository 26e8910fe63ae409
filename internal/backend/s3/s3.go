package s3

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path"
	"strings"
	"sync/atomic"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"

	"github.com/rewind-backup/rewind/internal/backend"
)

// ErrNoRepository means the bucket, or the prefix in it, holds no
// repository (no config object), or the bucket does not exist.
var ErrNoRepository = errors.New("no repository found")

// errNoBucket is wrapped in the errors of requests to a missing bucket.
var errNoBucket = errors.New("bucket does not exist")

// errClosed is returned by every method called after Close.
var errClosed = backend.Permanent(errors.New("backend is closed"))

// Defaults for the zero fields of Config.
const (
	DefaultPartSize           = 16 << 20
	DefaultMultipartThreshold = 64 << 20
	DefaultPartUploads        = 4
	DefaultConnections        = 16
	// minPartSize is the smallest part S3 accepts but for the last one.
	minPartSize = 5 << 20
)

// Bucket lookup styles for Config.BucketLookup.
const (
	LookupAuto = "auto" // virtual-host style where the endpoint is known to support it (AWS), else path
	LookupPath = "path" // https://host/bucket/key
	LookupDNS  = "dns"  // https://bucket.host/key (virtual-host style)
)

// Config says where a repository is and how to talk to the server.
type Config struct {
	// Endpoint is the server as host or host:port.
	Endpoint string
	// TLS selects https; false is plain http (a local MinIO).
	TLS bool
	// Bucket is the bucket name.
	Bucket string
	// Prefix is the key prefix of the repository, without leading or
	// trailing slash; empty for the whole bucket.
	Prefix string

	// Region is the bucket's region. Empty: asked from the server (one
	// GetBucketLocation request, falling back to us-east-1).
	Region string
	// BucketLookup is LookupAuto (or empty), LookupPath or LookupDNS.
	BucketLookup string
	// CACertFile names a PEM file of certificates to trust for https, in
	// addition to the system's.
	CACertFile string
	// Creds are the credentials; nil takes them from the environment
	// (EnvCredentials).
	Creds *credentials.Credentials

	// PartSize is the size of the parts of a multipart upload (at least
	// 5 MiB).
	PartSize int64
	// MultipartThreshold is the size above which Save uploads in parts.
	MultipartThreshold int64
	// PartUploads is how many parts of one object go up at once.
	PartUploads int
	// Connections is how many idle connections to the server are kept.
	Connections int
	// NoConditionalWrites makes Save check for an existing object with a
	// HEAD instead of a conditional PUT, for servers that ignore
	// If-None-Match (see the package documentation for the race).
	NoConditionalWrites bool

	// Logger receives warnings, such as the switch to unconditional
	// writes. nil: slog.Default().
	Logger *slog.Logger

	// ObjectLock, given to Create, makes a repository whose objects are
	// locked (docs/OBJECT-LOCK.md): the bucket must have S3 Object Lock
	// (Create makes a missing bucket with it), and the setting is
	// recorded on the config object. Open ignores this field and reads
	// the setting from the config object instead.
	ObjectLock ObjectLock
	// VersionsAt, when set, makes the backend a read-only view of the
	// repository as it was at that time, read from the bucket's object
	// versions (see versions.go): for recovery after the current
	// versions were deleted or overwritten.
	VersionsAt time.Time
	// Now is the clock for retention dates; nil: time.Now.
	Now func() time.Time
}

// EnvCredentials returns the credentials of the standard AWS environment:
// AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and AWS_SESSION_TOKEN, else the
// profile AWS_PROFILE (default "default") of the shared credentials file
// AWS_SHARED_CREDENTIALS_FILE (default ~/.aws/credentials, merged with
// ~/.aws/config). With neither, requests are sent unsigned (anonymous).
func EnvCredentials() *credentials.Credentials {
	return credentials.NewChainCredentials([]credentials.Provider{
		&credentials.EnvAWS{},
		&credentials.FileAWSCredentials{},
	})
}

// Backend is a repository in an S3 bucket. It is safe for concurrent use.
type Backend struct {
	client    *minio.Client
	core      minio.Core
	transport *http.Transport
	cfg       Config
	log       *slog.Logger
	closed    atomic.Bool
	// unconditional is set once conditional PUTs are off: by Config, or
	// because the server rejected one.
	unconditional atomic.Bool
	// lock is the repository's object lock, set by Create and Open before
	// the backend is shared.
	lock ObjectLock
	// warnedVersionDelete is set once the credentials were found unable to
	// delete object versions.
	warnedVersionDelete atomic.Bool
	// view is the versions view when cfg.VersionsAt is set.
	view *view
}

var _ backend.Backend = (*Backend)(nil)

// New returns a backend for cfg without any request to the server.
func New(cfg Config) (*Backend, error) {
	if cfg.Endpoint == "" || cfg.Bucket == "" {
		return nil, backend.Permanent(errors.New("s3: endpoint and bucket are required"))
	}
	cfg.Prefix = strings.Trim(cfg.Prefix, "/")
	if cfg.PartSize == 0 {
		cfg.PartSize = DefaultPartSize
	}
	if cfg.PartSize < minPartSize {
		return nil, backend.Permanent(fmt.Errorf("s3: part size %d below the S3 minimum of 5 MiB", cfg.PartSize))
	}
	if cfg.MultipartThreshold == 0 {
		cfg.MultipartThreshold = DefaultMultipartThreshold
	}
	if cfg.PartUploads <= 0 {
		cfg.PartUploads = DefaultPartUploads
	}
	if cfg.Connections <= 0 {
		cfg.Connections = DefaultConnections
	}
	if cfg.Creds == nil {
		cfg.Creds = EnvCredentials()
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	var lookup minio.BucketLookupType
	switch cfg.BucketLookup {
	case "", LookupAuto:
		lookup = minio.BucketLookupAuto
	case LookupPath:
		lookup = minio.BucketLookupPath
	case LookupDNS:
		lookup = minio.BucketLookupDNS
	default:
		return nil, backend.Permanent(fmt.Errorf("s3: unknown bucket lookup %q (want %s, %s or %s)", cfg.BucketLookup, LookupAuto, LookupPath, LookupDNS))
	}

	tr, err := minio.DefaultTransport(cfg.TLS)
	if err != nil {
		return nil, fmt.Errorf("s3: transport: %w", err)
	}
	tr.MaxIdleConnsPerHost = cfg.Connections
	if cfg.CACertFile != "" {
		if !cfg.TLS {
			return nil, backend.Permanent(fmt.Errorf("s3: a CA certificate (%s) was given for a plain http address", cfg.CACertFile))
		}
		pool, err := loadCACert(cfg.CACertFile)
		if err != nil {
			return nil, err
		}
		tr.TLSClientConfig.RootCAs = pool
	}
	client, err := minio.New(cfg.Endpoint, &minio.Options{
		Creds:        cfg.Creds,
		Secure:       cfg.TLS,
		Transport:    tr,
		Region:       cfg.Region,
		BucketLookup: lookup,
		// One attempt per request: the retry wrapper owns retrying.
		MaxRetries: 1,
	})
	if err != nil {
		return nil, backend.Permanent(fmt.Errorf("s3: %w", err))
	}
	client.SetAppInfo("rewind", "")
	b := &Backend{client: client, core: minio.Core{Client: client}, transport: tr, cfg: cfg, log: cfg.Logger}
	b.unconditional.Store(cfg.NoConditionalWrites)
	if !cfg.VersionsAt.IsZero() {
		b.view = &view{at: cfg.VersionsAt}
	}
	return b, nil
}

// loadCACert returns the system's certificate pool with the PEM
// certificates of file added.
func loadCACert(file string) (*x509.CertPool, error) {
	pem, err := os.ReadFile(file)
	if err != nil {
		return nil, backend.Permanent(fmt.Errorf("s3: read CA certificate: %w", err))
	}
	pool, err := x509.SystemCertPool()
	if err != nil {
		pool = x509.NewCertPool()
	}
	if !pool.AppendCertsFromPEM(pem) {
		return nil, backend.Permanent(fmt.Errorf("s3: %s holds no PEM certificate", file))
	}
	return pool, nil
}

// Open opens the repository of cfg: its config object must exist.
// Otherwise the error wraps ErrNoRepository. The HEAD of the config object
// that checks this also reads the repository's object lock setting.
func Open(ctx context.Context, cfg Config) (*Backend, error) {
	b, err := New(cfg)
	if err != nil {
		return nil, err
	}
	err = b.readLockSetting(ctx)
	if errors.Is(err, errNoBucket) {
		return nil, backend.Permanent(fmt.Errorf("open repository %s: %w: bucket %s does not exist", b.Location(), ErrNoRepository, b.cfg.Bucket))
	}
	if backend.IsNotExist(err) {
		return nil, backend.Permanent(fmt.Errorf("open repository %s: %w", b.Location(), b.whyNoConfig(ctx)))
	}
	if err != nil {
		return nil, fmt.Errorf("open repository %s: %w", b.Location(), err)
	}
	return b, nil
}

// whyNoConfig tells a missing bucket from a bucket without a repository.
func (b *Backend) whyNoConfig(ctx context.Context) error {
	if ok, err := b.client.BucketExists(ctx, b.cfg.Bucket); err == nil && !ok {
		return fmt.Errorf("%w: bucket %s does not exist", ErrNoRepository, b.cfg.Bucket)
	}
	return ErrNoRepository
}

// Create prepares a new repository: it creates the bucket if it is missing
// (which needs the permission to) and fails with ErrExists if a config is
// already stored under the prefix. The config itself is written later,
// with Save.
func Create(ctx context.Context, cfg Config) (*Backend, error) {
	b, err := New(cfg)
	if err != nil {
		return nil, err
	}
	ok, err := b.client.BucketExists(ctx, cfg.Bucket)
	if err != nil {
		return nil, b.wrapErr("create repository: look up bucket", cfg.Bucket, err)
	}
	if b.view != nil {
		return nil, backend.Permanent(fmt.Errorf("create repository %s: a view of object versions is read-only", b.Location()))
	}
	b.lock = cfg.ObjectLock
	switch {
	case b.lock.Enabled():
		if err := b.prepareLock(ctx, ok); err != nil {
			return nil, err
		}
	case !ok:
		err := b.client.MakeBucket(ctx, cfg.Bucket, minio.MakeBucketOptions{Region: cfg.Region})
		if err != nil && !isCode(err, "BucketAlreadyOwnedByYou") {
			return nil, backend.Permanent(fmt.Errorf("create repository %s: bucket %s does not exist and could not be created: %w",
				b.Location(), cfg.Bucket, b.wrapErr("create bucket", cfg.Bucket, err)))
		}
		b.log.Info("created bucket", "bucket", cfg.Bucket, "endpoint", cfg.Endpoint)
	}
	_, err = b.Stat(ctx, backend.Handle{Type: backend.ConfigFile})
	switch {
	case err == nil:
		return nil, backend.Permanent(fmt.Errorf("create repository %s: config already exists: %w", b.Location(), backend.ErrExists))
	case !backend.IsNotExist(err):
		return nil, fmt.Errorf("create repository %s: %w", b.Location(), err)
	}
	return b, nil
}

// Location returns the address of the repository, as s3:URL.
func (b *Backend) Location() string {
	scheme := "http"
	if b.cfg.TLS {
		scheme = "https"
	}
	s := "s3:" + scheme + "://" + b.cfg.Endpoint + "/" + b.cfg.Bucket
	if b.cfg.Prefix != "" {
		s += "/" + b.cfg.Prefix
	}
	return s
}

// Close drops idle connections. Every later call fails.
func (b *Backend) Close() error {
	if !b.closed.Swap(true) {
		b.transport.CloseIdleConnections()
	}
	return nil
}

// key returns the object key of h, which must be valid.
func (b *Backend) key(h backend.Handle) string {
	switch h.Type {
	case backend.ConfigFile:
		return b.join("config")
	case backend.PackFile:
		return b.join(h.Type.String(), h.Name[:2], h.Name)
	}
	return b.join(h.Type.String(), h.Name)
}

// join joins elem below the prefix.
func (b *Backend) join(elem ...string) string {
	if b.cfg.Prefix != "" {
		elem = append([]string{b.cfg.Prefix}, elem...)
	}
	return path.Join(elem...)
}

// check returns the error that stops op on h before any request: a closed
// backend, a done context or an invalid handle.
func (b *Backend) check(ctx context.Context, op string, h backend.Handle) error {
	if b.closed.Load() {
		return backend.Wrap(op, h.String(), errClosed)
	}
	if err := ctx.Err(); err != nil {
		return backend.Wrap(op, h.String(), err)
	}
	if err := h.Valid(); err != nil {
		return backend.Permanent(fmt.Errorf("%s: %w", op, err))
	}
	return nil
}

// s3Error returns the server's error answer in err, if it is one.
func s3Error(err error) (minio.ErrorResponse, bool) {
	var resp minio.ErrorResponse
	ok := errors.As(err, &resp)
	return resp, ok
}

// isCode reports whether err is a server answer with the S3 error code.
func isCode(err error, code string) bool {
	resp, ok := s3Error(err)
	return ok && resp.Code == code
}

// isStatus reports whether err is a server answer with the HTTP status.
func isStatus(err error, status int) bool {
	resp, ok := s3Error(err)
	return ok && resp.StatusCode == status
}

// isCertError reports whether err is the failure to verify the server's
// TLS certificate, which retrying cannot fix.
func isCertError(err error) bool {
	var verr *tls.CertificateVerificationError
	var uerr x509.UnknownAuthorityError
	var herr x509.HostnameError
	var cerr x509.CertificateInvalidError
	return errors.As(err, &verr) || errors.As(err, &uerr) || errors.As(err, &herr) || errors.As(err, &cerr)
}

// serverError words an error answer of the server for people: its S3 code,
// HTTP status and message. It unwraps to the minio.ErrorResponse.
type serverError struct{ resp minio.ErrorResponse }

func (e *serverError) Error() string {
	s := fmt.Sprintf("S3 %s (HTTP %d %s)", e.resp.Code, e.resp.StatusCode, http.StatusText(e.resp.StatusCode))
	if e.resp.Message != "" {
		s += ": " + e.resp.Message
	}
	return s
}

func (e *serverError) Unwrap() error { return e.resp }

// transientCodes are 4xx answers that S3 documents as worth retrying.
var transientCodes = map[string]bool{
	"RequestTimeout":             true, // 400: the connection was idle too long
	"IncompleteBody":             true, // 400: the body was cut short
	"ConditionalRequestConflict": true, // 409: a racing conditional write
	"OperationAborted":           true, // 409
	"SlowDown":                   true, // 503 on AWS, 429 elsewhere
}

// wrapErr adds op and name to an error of minio-go and maps it to the
// backend's error kinds: a missing key to ErrNotExist, answers that
// retrying cannot change to Permanent ones, anything else (5xx, network)
// as it is.
func (b *Backend) wrapErr(op, name string, err error) error {
	if isCertError(err) {
		return backend.Permanent(backend.Wrap(op, name, fmt.Errorf("%w (give the CA certificate with --cacert or REWIND_CACERT)", err)))
	}
	resp, ok := s3Error(err)
	if !ok || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return backend.Wrap(op, name, err)
	}
	serr := &serverError{resp: resp}
	switch {
	case resp.Code == "NoSuchBucket":
		return backend.Permanent(backend.Wrap(op, name, fmt.Errorf("bucket %s: %w (%w)", b.cfg.Bucket, errNoBucket, serr)))
	case resp.StatusCode == http.StatusNotFound:
		return backend.Wrap(op, name, fmt.Errorf("%w (%w)", backend.ErrNotExist, serr))
	case transientCodes[resp.Code], resp.StatusCode == http.StatusTooManyRequests:
		return backend.Wrap(op, name, serr)
	case (resp.Code == "AuthorizationHeaderMalformed" || resp.Code == "InvalidRegion") && resp.Region != "" && b.cfg.Region == "":
		// The region was guessed (GetBucketLocation was not allowed)
		// and the server named the right one, which minio-go now uses:
		// another attempt will succeed.
		return backend.Wrap(op, name, fmt.Errorf("wrong region guessed, the bucket is in %s: %w", resp.Region, serr))
	case resp.StatusCode >= 400 && resp.StatusCode < 500, resp.StatusCode == http.StatusNotImplemented:
		return backend.Permanent(backend.Wrap(op, name, serr))
	}
	return backend.Wrap(op, name, serr)
}
