package mysql

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"syscall"
)

// Server is what a backup records of the server it backs up.
type Server struct {
	Version  string
	ServerID uint32
	// UUID is MySQL's @@server_uuid ("" on MariaDB).
	UUID string
	// DataDir is @@datadir without its trailing slash.
	DataDir string
	// LogBin is @@log_bin: the binary log is on.
	LogBin bool
	// UID, GID own the data directory here, Owner and Group are their
	// names; OwnerKnown is false when it could not be read (the backup
	// runs on another machine than the server).
	UID, GID     uint32
	Owner, Group string
	OwnerKnown   bool
}

// ReadServer reads the server's identity over db, and the owner of its
// data directory when it is on this machine.
func ReadServer(ctx context.Context, db *sql.DB) (*Server, error) {
	s := &Server{}
	var logBin int
	row := db.QueryRowContext(ctx, "SELECT @@version, @@server_id, @@datadir, @@log_bin")
	if err := row.Scan(&s.Version, &s.ServerID, &s.DataDir, &logBin); err != nil {
		return nil, fmt.Errorf("mysql: read the server's version, server_id and datadir: %w", err)
	}
	s.LogBin = logBin == 1
	// MySQL has @@server_uuid; MariaDB has not, and SHOW VARIABLES then
	// returns no row rather than an error.
	var name string
	_ = db.QueryRowContext(ctx, "SHOW GLOBAL VARIABLES LIKE 'server_uuid'").Scan(&name, &s.UUID)
	s.DataDir = filepath.Clean(s.DataDir)
	if fi, err := os.Stat(s.DataDir); err == nil {
		if st, ok := fi.Sys().(*syscall.Stat_t); ok {
			s.UID, s.GID, s.OwnerKnown = st.Uid, st.Gid, true
			s.Owner, s.Group = userName(st.Uid), groupName(st.Gid)
		}
	}
	return s, nil
}

func userName(uid uint32) string {
	if u, err := user.LookupId(strconv.FormatUint(uint64(uid), 10)); err == nil {
		return u.Username
	}
	return ""
}

func groupName(gid uint32) string {
	if g, err := user.LookupGroupId(strconv.FormatUint(uint64(gid), 10)); err == nil {
		return g.Name
	}
	return ""
}
