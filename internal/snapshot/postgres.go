package snapshot

// PGInfo records a PostgreSQL base backup (`rewind pg backup`): the
// snapshot holds the cluster's data directory, with backup_label (and
// tablespace_map) at its root and the WAL from StartLSN to StopLSN in
// pg_wal, so that it restores on its own. LSNs are in PostgreSQL's text
// form ("0/2000028"); the system identifier is a decimal string, since it
// does not fit a JSON number's exact range.
type PGInfo struct {
	// Method is how the backup was taken: "local" (pg_backup_start and
	// pg_backup_stop, reading the data directory) or "stream" (the
	// replication protocol's BASE_BACKUP, pg backup --stream).
	Method string `json:"method"`
	// Version is server_version_num (150004), VersionText server_version.
	Version     int    `json:"version"`
	VersionText string `json:"version_text"`
	SystemID    string `json:"system_identifier"`
	// DataDir is the data directory, also the snapshot's one path.
	DataDir  string `json:"data_directory"`
	Timeline uint32 `json:"timeline"`
	StartLSN string `json:"start_lsn"`
	StopLSN  string `json:"stop_lsn"`
	// Label is the backup's label, as pg_backup_start was given it.
	Label string `json:"label"`
	// WALSegmentSize is wal_segment_size in bytes; WALFiles name the
	// segments in pg_wal the snapshot holds, oldest first.
	WALSegmentSize uint64   `json:"wal_segment_size"`
	WALFiles       []string `json:"wal_files"`
	// TablespaceMap is true when the snapshot holds a tablespace_map.
	TablespaceMap bool `json:"tablespace_map,omitempty"`
	// Amcheck is pg_amcheck's result when it ran before the backup
	// (--amcheck).
	Amcheck *PGAmcheck `json:"amcheck,omitempty"`
	// Copy marks an out-of-band base backup (pg backup --copy): it does
	// not move the WAL retention window, so removing the base backups
	// before it lets no WAL go (docs/POSTGRES.md, Retention).
	Copy bool `json:"copy,omitempty"`
	// Manifest is true when the snapshot holds the server's
	// backup_manifest, every file checked against it as received (a
	// streamed backup).
	Manifest bool `json:"manifest,omitempty"`
}

// PGAmcheck is what pg_amcheck reported before a base backup.
type PGAmcheck struct {
	OK     bool   `json:"ok"`
	Output string `json:"output,omitempty"`
}
