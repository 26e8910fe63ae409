package repository

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"maps"

	"github.com/rewind-backup/rewind/internal/backend"
	"github.com/rewind-backup/rewind/internal/crypto"
	"golang.org/x/crypto/argon2"
	"golang.org/x/crypto/chacha20poly1305"
)

// InitSharingChunking creates a repository like Init whose chunking and
// blob IDs are those of src, so that `rewind copy` between the two moves
// blobs by ID and the same file content gives the same blobs in both:
//
//   - the chunker profiles (opt.Chunkers is ignored) and the chunker
//     secret, which keys the gear table (docs/FORMAT.md §5): with the
//     profiles alone the same data would be cut at other places;
//   - the ID key, which keys blob IDs (§3, §6): with another one the same
//     chunk would have another ID, and every copied blob would have to be
//     read and hashed again.
//
// The encryption key is new and random: nothing stored in one repository
// opens with the other's master key. Pack size and compression come from
// opt, as for Init.
func InitSharingChunking(ctx context.Context, be backend.Backend, password []byte, opt InitOptions, src *Repository) (*Repository, error) {
	material, err := keyMaterial(src.key)
	if err != nil {
		return nil, fmt.Errorf("read the chunker secret and ID key of %s: %w", src.be.Location(), err)
	}
	defer clear(material)
	// Offsets as in docs/FORMAT.md §3: encryption key, ID key, chunker
	// secret, 32 bytes each.
	if _, err := rand.Read(material[:crypto.KeySize]); err != nil {
		return nil, err
	}
	key, err := crypto.KeyFromMaterial(material)
	if err != nil {
		return nil, err
	}
	opt.Chunkers = maps.Clone(src.cfg.Chunkers)
	return initWithKey(ctx, be, password, opt, key)
}

// SharesBlobIDs reports whether r and o compute the same ID for the same
// content, that is whether they have the same ID key.
func (r *Repository) SharesBlobIDs(o *Repository) bool {
	probe := []byte("rewind: do these repositories share their ID key?")
	return r.key.BlobID(probe) == o.key.BlobID(probe)
}

// SharesChunking reports whether r and o cut the same data into the same
// chunks: the same chunker secret and the same profiles.
func (r *Repository) SharesChunking(o *Repository) bool {
	return r.key.ChunkerSecret() == o.key.ChunkerSecret() && maps.Equal(r.cfg.Chunkers, o.cfg.Chunkers)
}

// keyMaterial returns the 96-byte serialized master key. package crypto
// hands it out only inside a key file, so this wraps it under a throwaway
// password with the cheapest KDF setting and opens the key file the way
// docs/FORMAT.md §3 describes.
func keyMaterial(k *crypto.Key) ([]byte, error) {
	pw := make([]byte, 32)
	if _, err := rand.Read(pw); err != nil {
		return nil, err
	}
	kf, err := crypto.WrapKey(k, pw, crypto.TestKDFParams)
	if err != nil {
		return nil, err
	}
	p := kf.Params
	wk := argon2.IDKey(pw, kf.Salt, p.Time, p.MemoryKiB, p.Threads, crypto.KeySize)
	defer clear(wk)
	aead, err := chacha20poly1305.NewX(wk)
	if err != nil {
		return nil, err
	}
	if len(kf.Data) < crypto.NonceSize {
		return nil, errors.New("wrapped key too short")
	}
	m, err := aead.Open(nil, kf.Data[:crypto.NonceSize], kf.Data[crypto.NonceSize:], nil)
	if err != nil {
		return nil, fmt.Errorf("open the wrapped key: %w", err)
	}
	if len(m) != crypto.MaterialSize {
		return nil, fmt.Errorf("key material is %d bytes, want %d", len(m), crypto.MaterialSize)
	}
	return m, nil
}
