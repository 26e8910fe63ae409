package pg

import (
	"path/filepath"
	"strings"
)

// contentsLeftOut are the folders of a data directory whose contents a
// base backup leaves out while keeping the folder itself, as PostgreSQL
// documents and pg_basebackup does: pg_wal (the WAL a backup needs is
// added after the backup stops), and folders the server rebuilds or
// empties at start.
var contentsLeftOut = []string{
	"pg_wal", "pg_replslot", "pg_dynshmem", "pg_notify", "pg_serial",
	"pg_snapshots", "pg_stat_tmp", "pg_subtrans",
}

// filesLeftOut are files at the data directory's root a base backup
// leaves out: those of the running server, and a stale label or
// tablespace map (the backup adds its own).
var filesLeftOut = []string{
	"postmaster.pid", "postmaster.opts", "backup_label", "backup_label.old",
	"tablespace_map", "tablespace_map.old", "recovery.signal", "standby.signal",
}

// Excludes returns the archiver's exclude patterns for a base backup of
// the data directory dataDir (docs/POSTGRES.md lists them).
func Excludes(dataDir string) []string {
	d := escapePattern(filepath.Clean(dataDir))
	var out []string
	for _, name := range contentsLeftOut {
		out = append(out, d+"/"+name+"/*")
	}
	for _, name := range filesLeftOut {
		out = append(out, d+"/"+name)
	}
	// Temporary files and relation cache files anywhere below.
	return append(out, "pgsql_tmp*", "pg_internal.init")
}

// escapePattern makes a path match itself as an exclude pattern.
func escapePattern(p string) string {
	var b strings.Builder
	for _, r := range p {
		if strings.ContainsRune(`*?[]\`, r) {
			b.WriteByte('\\')
		}
		b.WriteRune(r)
	}
	return b.String()
}
