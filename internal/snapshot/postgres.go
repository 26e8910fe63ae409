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
	// Delta, for a base backup with a parent, says whether it read only
	// the blocks the WAL names as changed (WAL-delta) and what it saved.
	Delta *PGDelta `json:"delta,omitempty"`
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

// PGDelta records how a base backup used its parent (WAL-delta,
// docs/POSTGRES.md): the WAL from the parent's start LSN (FromLSN) to
// this backup's (ToLSN) named the relation blocks that changed, and only
// those were read of relation files that changed.
type PGDelta struct {
	// Parent is the parent snapshot's ID.
	Parent  string `json:"parent"`
	FromLSN string `json:"from_lsn,omitempty"`
	ToLSN   string `json:"to_lsn"`
	// Used is true when the changed blocks were known; Fallback otherwise
	// says why every changed file was read whole.
	Used     bool   `json:"used"`
	Fallback string `json:"fallback,omitempty"`
	// Records and ChangedBlocks count the WAL records read and the
	// distinct blocks they reference; SegmentsStored and SegmentsLocal
	// the segments read from the repository and from pg_wal.
	Records        int64 `json:"records,omitempty"`
	ChangedBlocks  int64 `json:"changed_blocks,omitempty"`
	SegmentsStored int   `json:"segments_stored,omitempty"`
	SegmentsLocal  int   `json:"segments_local,omitempty"`
	// Files were built from the parent's chunks and their changed blocks;
	// BytesRead were read for them, BytesReused taken from the parent.
	Files       int64 `json:"files,omitempty"`
	BytesRead   int64 `json:"bytes_read,omitempty"`
	BytesReused int64 `json:"bytes_reused,omitempty"`
}
