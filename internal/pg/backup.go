package pg

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
)

// Backup is a non-exclusive base backup in progress on one session. The
// session must stay open until Stop: closing it aborts the backup.
type Backup struct {
	c     *Conn
	major int
	// Start is the LSN pg_backup_start returned.
	Start LSN
	// slot is the temporary replication slot that keeps the server from
	// removing WAL the backup needs, "" when none could be made.
	slot string
	// SlotErr says why no slot was made.
	SlotErr error
}

// StopResult is what pg_backup_stop returned.
type StopResult struct {
	// LSN is the end of the backup: replay must reach it for the restored
	// cluster to be consistent.
	LSN LSN
	// Label and TablespaceMap are the contents of backup_label and
	// tablespace_map (empty when the cluster has no tablespaces).
	Label         string
	TablespaceMap string
}

// StartBackup reserves the WAL from now on with a temporary physical
// replication slot (when the role may make one; SlotErr says otherwise)
// and starts a non-exclusive base backup labelled label. fast asks for
// an immediate checkpoint instead of a spread one. srv.Version picks the
// PostgreSQL 15 function names or the older ones.
func (c *Conn) StartBackup(ctx context.Context, srv *Server, label string, fast bool) (*Backup, error) {
	b := &Backup{c: c, major: srv.Major()}
	slot := fmt.Sprintf("rewind_backup_%d", c.c.PgConn().PID())
	if _, err := c.c.Exec(ctx, `SELECT pg_create_physical_replication_slot($1, true, true)`, slot); err != nil {
		b.SlotErr = err
	} else {
		b.slot = slot
	}
	q := `SELECT pg_backup_start($1, $2)::text`
	if b.major < 15 {
		q = `SELECT pg_start_backup($1, $2, false)::text`
	}
	var lsn string
	if err := c.c.QueryRow(ctx, q, label, fast).Scan(&lsn); err != nil {
		b.dropSlot(ctx)
		return nil, fmt.Errorf("start the base backup: %w", err)
	}
	var err error
	if b.Start, err = ParseLSN(lsn); err != nil {
		b.dropSlot(ctx)
		return nil, fmt.Errorf("start the base backup: %w", err)
	}
	return b, nil
}

// Stop ends the backup. waitArchive makes the server wait until the WAL
// up to the stop LSN is archived by archive_command (which never ends
// while archiving fails); without it the WAL is taken from pg_wal by
// CopyWAL. The temporary slot stays until Release, so that the WAL up to
// the stop is still in pg_wal for CopyWAL.
func (b *Backup) Stop(ctx context.Context, waitArchive bool) (*StopResult, error) {
	q := `SELECT lsn::text, labelfile, coalesce(spcmapfile, '') FROM pg_backup_stop($1)`
	if b.major < 15 {
		q = `SELECT lsn::text, labelfile, coalesce(spcmapfile, '') FROM pg_stop_backup(false, $1)`
	}
	var r StopResult
	var lsn string
	if err := b.c.c.QueryRow(ctx, q, waitArchive).Scan(&lsn, &r.Label, &r.TablespaceMap); err != nil {
		return nil, fmt.Errorf("stop the base backup: %w", err)
	}
	var err error
	if r.LSN, err = ParseLSN(lsn); err != nil {
		return nil, fmt.Errorf("stop the base backup: %w", err)
	}
	return &r, nil
}

// Release drops the temporary replication slot: the server may recycle
// the backup's WAL again.
func (b *Backup) Release(ctx context.Context) { b.dropSlot(ctx) }

func (b *Backup) dropSlot(ctx context.Context) {
	if b.slot != "" {
		_, _ = b.c.c.Exec(ctx, `SELECT pg_drop_replication_slot($1)`, b.slot)
		b.slot = ""
	}
}

// CopyWAL copies the WAL segments names from the data directory's pg_wal
// into dir and returns their paths. A segment missing from pg_wal (the
// server recycled it: no slot could reserve it, see Backup.SlotErr) is an
// error that says so.
func CopyWAL(dataDir, dir string, names []string) ([]string, error) {
	var out []string
	for _, name := range names {
		dst := filepath.Join(dir, name)
		if err := copyFile(filepath.Join(dataDir, "pg_wal", name), dst); err != nil {
			if os.IsNotExist(err) {
				return nil, fmt.Errorf("WAL segment %s, needed by the backup, is no longer in pg_wal: the server recycled it during the backup; let rewind make a temporary replication slot (a superuser or a role with REPLICATION, max_replication_slots > 0) or raise wal_keep_size", name)
			}
			return nil, fmt.Errorf("copy WAL segment %s: %w", name, err)
		}
		out = append(out, dst)
	}
	return out, nil
}

func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// LabelName makes a backup label for pg_backup_start: PostgreSQL shows it
// in pg_stat_progress_basebackup and writes it into backup_label, and
// limits it to 1023 bytes and one line.
func LabelName(s string) string {
	s = strings.Map(func(r rune) rune {
		if r == '\n' || r == '\r' {
			return ' '
		}
		return r
	}, s)
	if len(s) > 1000 {
		s = s[:1000]
	}
	return s
}
