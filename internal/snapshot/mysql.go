package snapshot

import "time"

// MySQLInfo records a MariaDB/MySQL backup (`rewind mysql backup`). A
// physical backup ("physical", mariabackup --backup --stream) holds the
// server's data directory at its path, as mariabackup streamed it (not yet
// prepared: a restore runs mariabackup --prepare); a logical one
// ("logical", mariadb-dump) holds one file, the SQL dump, at DumpPath.
// The consistent point is where the backup's data stops: GTID is
// gtid_binlog_pos there ("0-1-42", several domains comma-separated), and
// BinlogFile/BinlogPos the binlog position there; all three are empty
// when the server had no binary log (a point-in-time restore then cannot
// go past the backup).
type MySQLInfo struct {
	// Method is "physical" or "logical".
	Method string `json:"method"`
	// ServerVersion is @@version ("10.11.6-MariaDB-0+deb12u1-log").
	ServerVersion string `json:"server_version"`
	ServerID      uint32 `json:"server_id"`
	// ServerUUID is @@server_uuid where the server has one (MySQL).
	ServerUUID string `json:"server_uuid,omitempty"`
	// DataDir is @@datadir without its trailing slash; for a physical
	// backup, also the snapshot's one path.
	DataDir    string `json:"datadir"`
	GTID       string `json:"gtid,omitempty"`
	BinlogFile string `json:"binlog_file,omitempty"`
	BinlogPos  uint64 `json:"binlog_pos,omitempty"`
	// BackupStart is when the backup began; BackupEnd the consistent
	// time (when the server's data was the backup's).
	BackupStart time.Time `json:"backup_start"`
	BackupEnd   time.Time `json:"backup_end"`
	// Tool is the program and its version ("mariabackup 10.11.6").
	Tool string `json:"tool"`
	// DumpPath is the dump's path in the snapshot (logical only).
	DumpPath string `json:"dump_path,omitempty"`
	// UID and GID own the data directory on the server (the mysql
	// user); a restore gives the restored files to them unless told
	// otherwise (physical only).
	UID uint32 `json:"uid,omitempty"`
	GID uint32 `json:"gid,omitempty"`
}

// TagMySQL is the tag every `rewind mysql backup` snapshot carries.
const TagMySQL = "mysql"

// MySQL methods.
const (
	MySQLPhysical = "physical"
	MySQLLogical  = "logical"
)
