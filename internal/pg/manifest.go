package pg

import (
	"bytes"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"hash/crc32"
	"slices"
	"strings"
)

// A backup manifest (PostgreSQL 13 and later; pg_verifybackup reads the
// same): a JSON object listing every file of the backup but the WAL, with
// its size and checksum, the WAL ranges the backup needs, and a SHA-256
// of the manifest itself.

// Manifest is what rewind reads from a backup manifest.
type Manifest struct {
	Version int            `json:"PostgreSQL-Backup-Manifest-Version"`
	Files   []ManifestFile `json:"Files"`
	WAL     []struct {
		Timeline uint32 `json:"Timeline"`
		Start    string `json:"Start-LSN"`
		End      string `json:"End-LSN"`
	} `json:"WAL-Ranges"`
	Checksum string `json:"Manifest-Checksum"`
}

// ManifestFile is one file of a manifest. Path is set from Encoded-Path
// (hex) for names that are not UTF-8.
type ManifestFile struct {
	Path        string `json:"Path"`
	EncodedPath string `json:"Encoded-Path"`
	Size        int64  `json:"Size"`
	Algorithm   string `json:"Checksum-Algorithm"`
	Checksum    string `json:"Checksum"`
}

// maxManifest bounds the manifest held in memory: about 200 bytes a
// file, so a cluster of millions of files.
const maxManifest = 1 << 30

// ParseManifest decodes a backup manifest and checks its own checksum
// (a SHA-256 of everything up to the newline before the
// Manifest-Checksum line).
func ParseManifest(data []byte) (*Manifest, error) {
	var m Manifest
	if err := json.Unmarshal(data, &m); err != nil {
		return nil, fmt.Errorf("backup manifest: %w", err)
	}
	if m.Version != 1 && m.Version != 2 {
		return nil, fmt.Errorf("backup manifest: version %d, rewind reads versions 1 and 2", m.Version)
	}
	end := bytes.LastIndexByte(bytes.TrimRight(data, "\n"), '\n')
	if end < 0 || m.Checksum == "" {
		return nil, errors.New("backup manifest: no Manifest-Checksum line")
	}
	sum := sha256.Sum256(data[:end+1])
	if !strings.EqualFold(hex.EncodeToString(sum[:]), m.Checksum) {
		return nil, fmt.Errorf("backup manifest: its checksum %s does not match its content (%x): the manifest was damaged in transfer", m.Checksum, sum)
	}
	for i := range m.Files {
		f := &m.Files[i]
		if f.Path == "" && f.EncodedPath != "" {
			b, err := hex.DecodeString(f.EncodedPath)
			if err != nil {
				return nil, fmt.Errorf("backup manifest: Encoded-Path %q: %w", f.EncodedPath, err)
			}
			f.Path = string(b)
		}
		if f.Path == "" {
			return nil, fmt.Errorf("backup manifest: file %d has no path", i)
		}
	}
	return &m, nil
}

// newChecksum returns the hash of a manifest checksum algorithm; nil for
// NONE.
func newChecksum(alg string) (hash.Hash, error) {
	switch strings.ToUpper(alg) {
	case "CRC32C":
		return &crc32c{h: crc32.New(crc32.MakeTable(crc32.Castagnoli))}, nil
	case "SHA224":
		return sha256.New224(), nil
	case "SHA256":
		return sha256.New(), nil
	case "SHA384":
		return sha512.New384(), nil
	case "SHA512":
		return sha512.New(), nil
	case "NONE", "":
		return nil, nil
	}
	return nil, fmt.Errorf("backup manifest: unknown checksum algorithm %q", alg)
}

// crc32c writes its sum as PostgreSQL does: the four bytes of the
// uint32 in the server's memory order, little-endian on the machines
// PostgreSQL runs on.
type crc32c struct{ h hash.Hash32 }

func (c *crc32c) Write(p []byte) (int, error) { return c.h.Write(p) }
func (c *crc32c) Sum(b []byte) []byte         { return binary.LittleEndian.AppendUint32(b, c.h.Sum32()) }
func (c *crc32c) Reset()                      { c.h.Reset() }
func (c *crc32c) Size() int                   { return 4 }
func (c *crc32c) BlockSize() int              { return c.h.BlockSize() }

// receivedFile is a file as it arrived: its size and checksum by the
// algorithm the backup asked for.
type receivedFile struct {
	Size     int64
	Checksum string
}

// Verify checks the files received against the manifest: every file it
// lists arrived, with its size and checksum, and every file that arrived
// (but the WAL in pg_wal, which manifests leave out) is listed. It
// returns every difference, at most 20 named.
func (m *Manifest) Verify(got map[string]receivedFile) error {
	var bad []string
	listed := make(map[string]bool, len(m.Files))
	for _, f := range m.Files {
		listed[f.Path] = true
		r, ok := got[f.Path]
		switch {
		case !ok:
			bad = append(bad, fmt.Sprintf("%s: listed in the manifest, not received", f.Path))
		case r.Size != f.Size:
			bad = append(bad, fmt.Sprintf("%s: %d bytes received, the manifest says %d", f.Path, r.Size, f.Size))
		case f.Checksum != "" && !strings.EqualFold(r.Checksum, f.Checksum):
			bad = append(bad, fmt.Sprintf("%s: %s checksum %s as received, the manifest says %s", f.Path, f.Algorithm, r.Checksum, f.Checksum))
		}
	}
	for p := range got {
		if !listed[p] && !strings.HasPrefix(p, "pg_wal/") {
			bad = append(bad, fmt.Sprintf("%s: received, not in the manifest", p))
		}
	}
	if len(bad) == 0 {
		return nil
	}
	slices.Sort(bad)
	n := len(bad)
	if n > 20 {
		bad = append(bad[:20], fmt.Sprintf("and %d more", n-20))
	}
	what := "differences"
	if n == 1 {
		what = "difference"
	}
	return fmt.Errorf("%w: %d %s:\n  %s", ErrManifestMismatch, n, what, strings.Join(bad, "\n  "))
}

// ErrManifestMismatch: the files received do not match the backup
// manifest; no snapshot was saved.
var ErrManifestMismatch = errors.New("the streamed base backup does not match its manifest")
