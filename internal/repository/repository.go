package repository

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"runtime"
	"runtime/debug"
	"time"

	"github.com/klauspost/compress/zstd"
	"github.com/rewind-backup/rewind/internal/backend"
	"github.com/rewind-backup/rewind/internal/chunker"
	"github.com/rewind-backup/rewind/internal/crypto"
	"github.com/rewind-backup/rewind/internal/id"
	"github.com/rewind-backup/rewind/internal/index"
	"github.com/rewind-backup/rewind/internal/pack"
)

// Repository is an open, unlocked repository. Reading methods are safe for
// concurrent use; SaveBlob may be called concurrently between StartWriting
// and Flush.
type Repository struct {
	be      backend.Backend
	key     *crypto.Key
	keyName string
	cfg     Config
	idx     *index.Index
	// indexDamage is what the last LoadIndex could not read (nil: none).
	indexDamage *IndexDamage
	gc          gcState
	chunkers    map[string]*chunker.Chunker
	zenc        *zstd.Encoder
	zdec        *zstd.Decoder
	zblob       *zstd.Decoder // for blobs: output capped at the destination's capacity
	w           *writer
	stats       Stats
	trees       *blobCache
}

// InitOptions tune a new repository. Zero values take the defaults.
type InitOptions struct {
	KDF      crypto.KDFParams
	PackSize int
	Chunkers map[string]chunker.Params
	// Compression is "zstd" (default) or "none".
	Compression string
}

// Init creates a repository on an empty backend, with one key file for
// password.
func Init(ctx context.Context, be backend.Backend, password []byte, opt InitOptions) (*Repository, error) {
	return initWithKey(ctx, be, password, opt, nil)
}

// initWithKey is Init with a given master key; nil makes a random one.
func initWithKey(ctx context.Context, be backend.Backend, password []byte, opt InitOptions, key *crypto.Key) (*Repository, error) {
	if _, err := be.Stat(ctx, backend.Handle{Type: backend.ConfigFile}); err == nil {
		return nil, fmt.Errorf("init %s: %w", be.Location(), ErrRepositoryExists)
	} else if !backend.IsNotExist(err) {
		return nil, fmt.Errorf("init %s: %w", be.Location(), err)
	}
	if key == nil {
		var err error
		if key, err = crypto.NewRandomKey(); err != nil {
			return nil, err
		}
	}
	cfg := Config{
		Version:     FormatVersion,
		Created:     time.Now().UTC(),
		Chunkers:    opt.Chunkers,
		PackSize:    opt.PackSize,
		Compression: opt.Compression,
	}
	if _, err := io.ReadFull(randReader, cfg.ID[:]); err != nil {
		return nil, err
	}
	if cfg.Chunkers == nil {
		cfg.Chunkers = map[string]chunker.Params{ProfileDefault: chunker.DefaultParams, ProfileSmall: chunker.SmallParams}
	}
	if cfg.PackSize == 0 {
		cfg.PackSize = DefaultPackSize
	}
	if cfg.Compression == "" {
		cfg.Compression = "zstd"
	}
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	r, err := newRepository(be, key, cfg)
	if err != nil {
		return nil, err
	}
	keyName, err := r.AddKey(ctx, password, opt.KDF)
	if err != nil {
		return nil, err
	}
	plain, err := json.Marshal(cfg)
	if err != nil {
		return nil, err
	}
	stored, err := json.Marshal(configFile{Version: cfg.Version, Sealed: key.Seal(nil, plain)})
	if err != nil {
		return nil, err
	}
	// Storing the config is what creates the repository, and Save never
	// replaces a file: of two inits racing on one location exactly one
	// stores it. The other takes back the key it stored, which belongs to
	// no repository.
	if err := be.Save(ctx, backend.Handle{Type: backend.ConfigFile}, backend.NewByteReader(stored)); err != nil {
		if !errors.Is(err, backend.ErrExists) {
			return nil, backend.Wrap("save", "config", err)
		}
		h := backend.Handle{Type: backend.KeyFile, Name: keyName.String()}
		if rerr := be.Remove(ctx, h); rerr != nil && !backend.IsNotExist(rerr) {
			return nil, fmt.Errorf("init %s: %w (another init created it at the same time); removing the key stored meanwhile, %s, failed: %w",
				be.Location(), ErrRepositoryExists, h, rerr)
		}
		return nil, fmt.Errorf("init %s: %w (another init created it at the same time)", be.Location(), ErrRepositoryExists)
	}
	return r, nil
}

func newRepository(be backend.Backend, key *crypto.Key, cfg Config) (*Repository, error) {
	r := &Repository{be: be, key: key, cfg: cfg, idx: index.New(), chunkers: map[string]*chunker.Chunker{}, trees: newBlobCache(32 << 20)}
	for name, p := range cfg.Chunkers {
		c, err := chunker.New(key.ChunkerSecret(), p)
		if err != nil {
			return nil, fmt.Errorf("chunker profile %q: %w", name, err)
		}
		r.chunkers[name] = c
	}
	var err error
	// Level "default" stores about 3% less than "fastest" on a server tree
	// at a CPU cost the parallel pipeline absorbs. No zstd checksum: every
	// blob is authenticated and hashed to its ID already.
	r.zenc, err = zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedDefault), zstd.WithEncoderCRC(false),
		zstd.WithEncoderConcurrency(runtime.GOMAXPROCS(0)), zstd.WithLowerEncoderMem(true),
		zstd.WithWindowSize(2<<20))
	if err != nil {
		return nil, err
	}
	r.zdec, err = zstd.NewReader(nil, zstd.WithDecoderConcurrency(runtime.GOMAXPROCS(0)), zstd.WithDecoderMaxMemory(1<<30))
	if err != nil {
		return nil, err
	}
	// A blob's plain length is known from the index, so a frame that
	// claims more (a corrupt or hostile blob) fails instead of making the
	// decoder allocate what it claims.
	r.zblob, err = zstd.NewReader(nil, zstd.WithDecoderConcurrency(runtime.GOMAXPROCS(0)),
		zstd.WithDecoderMaxMemory(pack.MaxBlobSize), zstd.WithDecodeAllCapLimit(true))
	if err != nil {
		return nil, err
	}
	return r, nil
}

// readConfig reads the stored config and checks its clear version.
func readConfig(ctx context.Context, be backend.Backend) (*configFile, error) {
	var raw []byte
	err := be.Load(ctx, backend.Handle{Type: backend.ConfigFile}, 0, 0, func(rd io.Reader) error {
		var err error
		raw, err = io.ReadAll(io.LimitReader(rd, 1<<20))
		return err
	})
	if backend.IsNotExist(err) {
		return nil, fmt.Errorf("%w: %s", ErrNoRepository, be.Location())
	}
	if err != nil {
		return nil, fmt.Errorf("read the config of %s: %w", be.Location(), backend.Wrap("load", "config", err))
	}
	return parseConfigVersion(raw)
}

// CheckFormat tells, without a password, whether be holds a repository
// this rewind can read: it fails with ErrNoRepository or ErrNewerFormat.
func CheckFormat(ctx context.Context, be backend.Backend) error {
	_, err := readConfig(ctx, be)
	return err
}

// Open opens the repository on be with password. It returns errors
// matching ErrNoRepository, ErrNewerFormat or ErrWrongPassword for those
// cases.
func Open(ctx context.Context, be backend.Backend, password []byte) (*Repository, error) {
	cf, err := readConfig(ctx, be)
	if err != nil {
		return nil, err
	}
	key, keyName, plain, err := findKey(ctx, be, password, cf.Sealed)
	if err != nil {
		return nil, err
	}
	// The key derivation just used 64 MiB that is garbage now; hand it back
	// before the real work starts, so it does not add to the peak.
	runtime.GC()
	debug.FreeOSMemory()
	cfg, err := DecodeConfig(plain, cf.Version)
	if err != nil {
		return nil, err
	}
	r, err := newRepository(be, key, *cfg)
	if err != nil {
		return nil, err
	}
	r.keyName = keyName
	return r, nil
}

// Config returns the repository's settings.
func (r *Repository) Config() Config { return r.cfg }

// Backend returns the storage the repository lives on.
func (r *Repository) Backend() backend.Backend { return r.be }

// Index returns the in-memory index.
func (r *Repository) Index() *index.Index { return r.idx }

// Key returns the master key.
func (r *Repository) Key() *crypto.Key { return r.key }

// KeyName returns the name of the key file that opened the repository.
func (r *Repository) KeyName() string { return r.keyName }

// Chunker returns the chunker of a profile (ProfileDefault, ProfileSmall).
func (r *Repository) Chunker(profile string) *chunker.Chunker { return r.chunkers[profile] }

// Close releases resources. It does not flush: call Flush first.
func (r *Repository) Close() error {
	r.zenc.Close()
	r.zdec.Close()
	r.zblob.Close()
	return r.be.Close()
}

// SaveJSON seals v as JSON and stores it as a file of type t named after
// the hash of its stored bytes.
func (r *Repository) SaveJSON(ctx context.Context, t backend.FileType, v any) (id.ID, error) {
	plain, err := json.Marshal(v)
	if err != nil {
		return id.ID{}, err
	}
	return r.saveSealed(ctx, t, plain)
}

func (r *Repository) saveSealed(ctx context.Context, t backend.FileType, plain []byte) (id.ID, error) {
	sealed := r.key.Seal(nil, plain)
	fid := crypto.FileID(sealed)
	h := backend.Handle{Type: t, Name: fid.String()}
	if err := r.be.Save(ctx, h, backend.NewByteReader(sealed)); err != nil {
		return id.ID{}, backend.Wrap("save", h.String(), err)
	}
	return fid, nil
}

// LoadFile reads and decrypts a stored file, checking that its bytes hash
// to its name.
func (r *Repository) LoadFile(ctx context.Context, t backend.FileType, name id.ID) ([]byte, error) {
	h := backend.Handle{Type: t, Name: name.String()}
	var sealed []byte
	err := r.be.Load(ctx, h, 0, 0, func(rd io.Reader) error {
		var err error
		sealed, err = io.ReadAll(rd)
		return err
	})
	if err != nil {
		return nil, backend.Wrap("load", h.String(), err)
	}
	if crypto.FileID(sealed) != name {
		return nil, &CorruptError{Op: "load", Object: h.String(), Err: errors.New("content does not match its name (truncated, altered or renamed)")}
	}
	plain, err := r.key.Open(nil, sealed)
	if err != nil {
		return nil, &CorruptError{Op: "decrypt", Object: h.String(), Err: err}
	}
	return plain, nil
}

// LoadJSON loads a file stored by SaveJSON into v.
func (r *Repository) LoadJSON(ctx context.Context, t backend.FileType, name id.ID, v any) error {
	plain, err := r.LoadFile(ctx, t, name)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(plain, v); err != nil {
		return &CorruptError{Op: "decode", Object: backend.Handle{Type: t, Name: name.String()}.String(), Err: err}
	}
	return nil
}

// List returns the IDs of all files of type t. Names that are not IDs are
// skipped.
func (r *Repository) List(ctx context.Context, t backend.FileType) ([]id.ID, error) {
	var ids []id.ID
	err := r.be.List(ctx, t, func(fi backend.FileInfo) error {
		if i, err := id.Parse(fi.Name); err == nil {
			ids = append(ids, i)
		}
		return nil
	})
	return ids, backend.Wrap("list", t.String(), err)
}

// CorruptError names a stored object that failed verification.
type CorruptError struct {
	Op     string
	Object string
	Err    error
}

func (e *CorruptError) Error() string {
	return fmt.Sprintf("%s %s: %v", e.Op, e.Object, e.Err)
}

// Unwrap lets errors.Is match ErrCorrupt and the cause.
func (e *CorruptError) Unwrap() []error { return []error{ErrCorrupt, e.Err} }
