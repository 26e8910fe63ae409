package wal

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// SpoolDirName is the prefetch spool's folder beside the destination of
// restore_command (%p, in pg_wal): PostgreSQL ignores it, and a base
// backup leaves pg_wal's contents out.
const SpoolDirName = ".rewind-prefetch"

// Stale spool files: a file older than SpoolMaxAge is removed by the
// next wal-fetch, as is a temporary file older than spoolTempAge (a
// prefetch that was killed).
const (
	SpoolMaxAge  = time.Hour
	spoolTempAge = 10 * time.Minute
)

// Spool holds WAL segments wal-fetch prefetched, each as NAME.SHA256: a
// segment read from the repository and checked against its content
// hash, written under a temporary name, synced and renamed, so that a
// file with a segment's name is complete. The SHA-256 of its bytes in the
// name lets a later wal-fetch check it without opening the repository
// (and deriving the key). A file is removed when it is served, when it
// fails its check, and when it is stale: for a segment before the one
// asked for, or older than SpoolMaxAge. At most the prefetch count of
// segments are in it, plus stale ones until the next wal-fetch.
type Spool struct {
	Dir string
}

// OpenSpool makes the spool folder dir if needed (mode 0700).
func OpenSpool(dir string) (*Spool, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("prefetch spool: %w", err)
	}
	return &Spool{Dir: dir}, nil
}

// entries returns the spooled files (not temporary ones) of name.
func (s *Spool) entries(name string) []string {
	m, _ := filepath.Glob(filepath.Join(s.Dir, name+".*"))
	return m
}

// Has reports whether segment name is spooled.
func (s *Spool) Has(name string) bool { return len(s.entries(name)) > 0 }

// Take gives dest the spooled segment name, as restore_command writes it
// (whole or absent), when its bytes match the hash in its file name; it
// reports false when the segment is not spooled, or was damaged (then
// it is removed, and the caller fetches it from the repository).
//
// The spooled file stays until Clean is called for a later segment:
// PostgreSQL may ask for the same segment again (it re-reads the segment
// it was in when it reaches a record that continues past it, or when
// recovery ends), and the second request is served from the spool too.
// On the same filesystem (pg_wal) dest is a hard link made under a
// temporary name and renamed into place, so nothing is copied;
// PostgreSQL only reads restored segments (it copies one when it must
// write to it). Elsewhere (--spool on another filesystem) it is a copy.
func (s *Spool) Take(name, dest string) (bool, error) {
	for _, p := range s.entries(name) {
		data, ok := s.check(p, name)
		if !ok {
			continue
		}
		tmp := dest + ".rewind-link"
		_ = os.Remove(tmp)
		if err := os.Link(p, tmp); err == nil {
			if err := os.Rename(tmp, dest); err == nil {
				return true, nil
			}
			_ = os.Remove(tmp)
		}
		if err := WriteFile(dest, data); err != nil {
			return false, err
		}
		return true, nil
	}
	return false, nil
}

// check reads the spooled file p of name and checks its bytes against
// the hash in its file name; a damaged or unreadable one is removed.
func (s *Spool) check(p, name string) ([]byte, bool) {
	want := strings.TrimPrefix(filepath.Base(p), name+".")
	data, err := os.ReadFile(p)
	if err != nil {
		os.Remove(p)
		return nil, false
	}
	sum := sha256.Sum256(data)
	if hex.EncodeToString(sum[:]) != want {
		os.Remove(p)
		return nil, false
	}
	return data, true
}

// Put spools segment name with its bytes data, already checked against
// the stored content hash.
func (s *Spool) Put(name string, data []byte) error {
	sum := sha256.Sum256(data)
	return WriteFile(filepath.Join(s.Dir, name+"."+hex.EncodeToString(sum[:])), data)
}

// keepBehind is how many spooled segments before the one asked for
// Clean keeps: PostgreSQL asks again for a segment it has passed (at the
// end of recovery it re-reads the one holding the last record it
// replayed, which can be the segment before the one it stopped in).
const keepBehind = 2

// Clean removes stale files: segments that sort before current (on its
// timeline and earlier ones, which recovery has passed) except the
// keepBehind nearest ones, files older than SpoolMaxAge and temporary
// files older than spoolTempAge. It returns how many it removed.
func (s *Spool) Clean(current string, now time.Time) int {
	ents, err := os.ReadDir(s.Dir)
	if err != nil {
		return 0
	}
	// The segments before current, newest first: the first keepBehind
	// of them stay.
	var behind []string
	for _, e := range ents {
		seg, _, _ := strings.Cut(e.Name(), ".")
		if !strings.HasPrefix(e.Name(), ".rewind-") && len(seg) == len(current) && seg < current && !slices.Contains(behind, seg) {
			behind = append(behind, seg)
		}
	}
	slices.Sort(behind)
	slices.Reverse(behind)
	keep := behind[:min(keepBehind, len(behind))]
	n := 0
	for _, e := range ents {
		fi, err := e.Info()
		if err != nil {
			continue
		}
		age := now.Sub(fi.ModTime())
		name := e.Name()
		var stale bool
		if strings.HasPrefix(name, ".rewind-") {
			stale = age > spoolTempAge
		} else {
			seg, _, _ := strings.Cut(name, ".")
			stale = age > SpoolMaxAge || (len(seg) == len(current) && seg < current && !slices.Contains(keep, seg))
		}
		if stale && os.Remove(filepath.Join(s.Dir, name)) == nil {
			n++
		}
	}
	return n
}

// Remove removes the spool folder and what is in it (recovery is over).
func (s *Spool) Remove() error {
	err := os.RemoveAll(s.Dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	return err
}
