package repository

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/rewind-backup/rewind/internal/chunker"
	"github.com/rewind-backup/rewind/internal/id"
)

// FormatVersion is the repository format this rewind writes and the newest
// it reads.
const FormatVersion = 1

// Chunker profile names. A stream picks one by what it is (see
// archiver.ChooseProfile); the repository stores the numbers of each.
const (
	ProfileDefault = "default"
	ProfileSmall   = "small"
)

// DefaultPackSize is the size at which a pack is closed and stored.
const DefaultPackSize = 16 << 20

// Config is the repository's settings, fixed at init.
type Config struct {
	Version  int                       `json:"version"`
	ID       id.ID                     `json:"id"`
	Created  time.Time                 `json:"created"`
	Chunkers map[string]chunker.Params `json:"chunkers"`
	PackSize int                       `json:"pack_size"`
	// Compression is "zstd" (level 3, "default") or "none".
	Compression string `json:"compression"`
}

// configFile is the stored form: the version in the clear, so that an old
// client can refuse a newer repository before it needs a password, and the
// whole config sealed with the master key.
type configFile struct {
	Version int    `json:"version"`
	Sealed  []byte `json:"sealed"`
}

func (c *Config) validate() error {
	if c.Version > FormatVersion {
		return fmt.Errorf("%w: version %d (this rewind reads up to %d); upgrade rewind", ErrNewerFormat, c.Version, FormatVersion)
	}
	if c.Version < 1 {
		return fmt.Errorf("%w: config has version %d", ErrCorrupt, c.Version)
	}
	for _, name := range []string{ProfileDefault, ProfileSmall} {
		p, ok := c.Chunkers[name]
		if !ok {
			return fmt.Errorf("%w: config has no %q chunker profile", ErrCorrupt, name)
		}
		if err := p.Validate(); err != nil {
			return fmt.Errorf("%w: config: %w", ErrCorrupt, err)
		}
	}
	if c.PackSize < 1<<20 || c.PackSize > 512<<20 {
		return fmt.Errorf("%w: config: pack size %d out of range", ErrCorrupt, c.PackSize)
	}
	if c.Compression != "zstd" && c.Compression != "none" {
		return fmt.Errorf("%w: config: unknown compression %q", ErrCorrupt, c.Compression)
	}
	return nil
}

// parseConfigVersion reads the clear part of a stored config.
func parseConfigVersion(b []byte) (*configFile, error) {
	var cf configFile
	if err := json.Unmarshal(b, &cf); err != nil {
		return nil, fmt.Errorf("%w: config: %w", ErrCorrupt, err)
	}
	if cf.Version > FormatVersion {
		return nil, fmt.Errorf("%w: version %d (this rewind reads up to %d); upgrade rewind to use it", ErrNewerFormat, cf.Version, FormatVersion)
	}
	if cf.Version < 1 {
		return nil, fmt.Errorf("%w: config has version %d", ErrCorrupt, cf.Version)
	}
	return &cf, nil
}

// DecodeConfig parses and validates the plaintext JSON of a config.
func DecodeConfig(b []byte, outerVersion int) (*Config, error) {
	var c Config
	if err := json.Unmarshal(b, &c); err != nil {
		return nil, fmt.Errorf("%w: config: %w", ErrCorrupt, err)
	}
	if c.Version != outerVersion {
		return nil, fmt.Errorf("%w: config version %d does not match its clear version %d", ErrCorrupt, c.Version, outerVersion)
	}
	if err := c.validate(); err != nil {
		return nil, err
	}
	return &c, nil
}
