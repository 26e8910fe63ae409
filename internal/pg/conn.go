package pg

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// ErrWALLevelMinimal refuses a server whose WAL cannot restore a base
// backup.
var ErrWALLevelMinimal = errors.New("wal_level is minimal: a base backup cannot be restored from its WAL; set wal_level = replica (or logical) in postgresql.conf and restart the server")

// Conn is one session with a server. A base backup runs on one Conn,
// which must stay open from its start to its stop.
type Conn struct {
	c *pgx.Conn
}

// Connect opens a session. An empty dsn takes everything from the usual
// PG* environment variables (PGHOST, PGPORT, PGUSER, PGDATABASE,
// PGPASSWORD, PGPASSFILE, ...), as libpq does; a dsn is a libpq
// connection string ("host=/run/postgresql user=postgres") or URL
// ("postgres://user@host:5432/db"), over which the variables fill in what
// it leaves out.
func Connect(ctx context.Context, dsn string) (*Conn, error) {
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		return nil, fmt.Errorf("PostgreSQL connection string: %w", err)
	}
	c, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("connect to PostgreSQL (%s): %w; check --dsn or the PG* environment variables (PGHOST, PGPORT, PGUSER)", describe(cfg), err)
	}
	return &Conn{c: c}, nil
}

// describe names where a configuration connects, without its password.
func describe(cfg *pgx.ConnConfig) string {
	return fmt.Sprintf("host=%s port=%d user=%s dbname=%s", cfg.Host, cfg.Port, cfg.User, cfg.Database)
}

// Close ends the session.
func (c *Conn) Close(ctx context.Context) error { return c.c.Close(ctx) }

// Tablespace is a tablespace outside the data directory (pg_default and
// pg_global are not listed).
type Tablespace struct {
	OID      uint32 `json:"oid"`
	Name     string `json:"name"`
	Location string `json:"location"`
}

// Server is what rewind needs to know about a server before a backup.
type Server struct {
	// Version is server_version_num (150004 for 15.4); VersionText the
	// server_version string.
	Version     int
	VersionText string
	SystemID    uint64
	DataDir     string
	WALLevel    string
	// SegmentSize is wal_segment_size in bytes.
	SegmentSize uint64
	InRecovery  bool
	Tablespaces []Tablespace
}

// Major is the major version (15 for 150004).
func (s *Server) Major() int { return s.Version / 10000 }

// Info reads the server's version, identity, data directory, wal_level,
// WAL segment size, whether it is a standby, and its tablespaces.
// data_directory needs superuser or pg_read_all_settings.
func (c *Conn) Info(ctx context.Context) (*Server, error) {
	s := &Server{}
	var versionNum, segSize string
	err := c.c.QueryRow(ctx, `SELECT current_setting('server_version_num'), current_setting('server_version'),
		current_setting('data_directory'), current_setting('wal_level'), current_setting('wal_segment_size'),
		pg_is_in_recovery()`).
		Scan(&versionNum, &s.VersionText, &s.DataDir, &s.WALLevel, &segSize, &s.InRecovery)
	if err != nil {
		return nil, fmt.Errorf("read the server's settings (needs a superuser, or a role with pg_read_all_settings and EXECUTE on pg_control_system): %w", err)
	}
	if s.Version, err = strconv.Atoi(versionNum); err != nil {
		return nil, fmt.Errorf("server_version_num %q: %w", versionNum, err)
	}
	var sysid string
	if err := c.c.QueryRow(ctx, `SELECT (pg_control_system()).system_identifier::text`).Scan(&sysid); err != nil {
		return nil, fmt.Errorf("read the system identifier: %w", err)
	}
	if s.SystemID, err = strconv.ParseUint(sysid, 10, 64); err != nil {
		return nil, fmt.Errorf("system identifier %q: %w", sysid, err)
	}
	if s.SegmentSize, err = parseSize(segSize); err != nil {
		return nil, fmt.Errorf("wal_segment_size %q: %w", segSize, err)
	}
	rows, err := c.c.Query(ctx, `SELECT oid::int8, spcname, pg_tablespace_location(oid) FROM pg_tablespace
		WHERE spcname NOT IN ('pg_default', 'pg_global') ORDER BY oid`)
	if err != nil {
		return nil, fmt.Errorf("list tablespaces: %w", err)
	}
	for rows.Next() {
		var t Tablespace
		var oid int64
		if err := rows.Scan(&oid, &t.Name, &t.Location); err != nil {
			rows.Close()
			return nil, fmt.Errorf("list tablespaces: %w", err)
		}
		t.OID = uint32(oid)
		s.Tablespaces = append(s.Tablespaces, t)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list tablespaces: %w", err)
	}
	return s, nil
}

// parseSize reads a size setting as current_setting shows it: "16MB",
// "1GB", "8kB", or a bare number of bytes.
func parseSize(s string) (uint64, error) {
	units := []struct {
		suffix string
		mul    uint64
	}{{"kB", 1 << 10}, {"MB", 1 << 20}, {"GB", 1 << 30}, {"TB", 1 << 40}, {"B", 1}}
	for _, u := range units {
		if n, ok := strings.CutSuffix(s, u.suffix); ok {
			v, err := strconv.ParseUint(strings.TrimSpace(n), 10, 64)
			return v * u.mul, err
		}
	}
	return strconv.ParseUint(s, 10, 64)
}

// CheckBackupable refuses a server whose base backup rewind cannot take
// or restore yet, saying what to do.
func (s *Server) CheckBackupable() error {
	if s.WALLevel == "minimal" {
		return ErrWALLevelMinimal
	}
	if s.InRecovery {
		return errors.New("the server is a standby (in recovery): base backups from a standby are not supported yet; back up the primary")
	}
	if s.Major() < 10 {
		return fmt.Errorf("PostgreSQL %s is too old: rewind backs up PostgreSQL 10 and later", s.VersionText)
	}
	if len(s.Tablespaces) > 0 {
		var names []string
		for _, t := range s.Tablespaces {
			names = append(names, fmt.Sprintf("%s (%s)", t.Name, t.Location))
		}
		return fmt.Errorf("the cluster has tablespaces outside its data directory: %s; rewind's base backups do not include tablespaces yet", strings.Join(names, ", "))
	}
	return nil
}

// isUndefinedFunction reports a call of a function the server lacks.
func isUndefinedFunction(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && pe.Code == "42883"
}
