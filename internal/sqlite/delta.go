package sqlite

// Reading only the pages that can differ from the parent's version
// (docs/SQLITE.md, "Reading only the changed pages").
//
// In WAL mode the database file is written only by checkpoints, and a
// checkpoint copies only committed frames of the current -wal
// generation, which stay in the -wal, unchanged, until the -wal is
// restarted; a restart gives the -wal new salts. So when the -wal has
// the salts it had when the parent's version was read in place, every
// page that can differ between that version and this one has a frame in
// the -wal now: the pages the parent took from frames (still there),
// the pages this version takes from frames, and the pages checkpoints
// wrote into the database file since (copied from frames still there).
// Every other page is the database file's, and that page of the file
// has not been written since the parent read it. Anything else is read
// whole, with the reason.

import (
	"encoding/hex"

	"github.com/rewind-backup/rewind/internal/archiver"
	"github.com/rewind-backup/rewind/internal/snapshot"
)

// Reasons a version is read whole although its parent captured it.
const (
	FallbackMethod   = "parent version not read in place"
	FallbackMode     = "not in WAL mode"
	FallbackPageSize = "page size changed"
	FallbackNoSalts  = "parent recorded no -wal generation"
	FallbackNoWAL    = "no valid -wal now"
	FallbackRestart  = "-wal restarted since the parent's capture"
	FallbackShrank   = "database smaller than the parent's version"
)

// SaltsHex is how a capture records the -wal generation (SQLiteCapture.WALSalts).
func (ip *InPlace) SaltsHex() string {
	if ip.Mode != ModeWAL || !ip.HasSalts {
		return ""
	}
	return hex.EncodeToString(ip.Salts[:])
}

// ChangedSince returns the byte ranges of this version that can differ
// from prev's, a version of the same database file read in place: one
// range per page named by a frame of the -wal (the caller checks that
// the file is the same one, by inode). Bytes past prev's size are not
// named: the caller reads them. A non-empty fallback means the ranges
// are not known and the version must be read whole.
func (ip *InPlace) ChangedSince(prev *snapshot.SQLiteCapture) (ranges []archiver.ByteRange, fallback string) {
	switch {
	case prev.Method != MethodReadTx:
		return nil, FallbackMethod
	case ip.Mode != ModeWAL || prev.Mode != string(ModeWAL):
		return nil, FallbackMode
	case prev.PageSize != ip.PageSize:
		return nil, FallbackPageSize
	case prev.WALSalts == "":
		return nil, FallbackNoSalts
	case !ip.HasSalts:
		return nil, FallbackNoWAL
	case prev.WALSalts != ip.SaltsHex():
		return nil, FallbackRestart
	case prev.Pages > ip.Pages:
		return nil, FallbackShrank
	}
	ps := int64(ip.PageSize)
	ranges = make([]archiver.ByteRange, 0, len(ip.walPages))
	for _, pg := range ip.walPages {
		if pg == 0 {
			continue
		}
		ranges = append(ranges, archiver.ByteRange{Off: int64(pg-1) * ps, Len: ps})
	}
	return ranges, ""
}
