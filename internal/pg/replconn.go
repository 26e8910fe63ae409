package pg

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5/pgconn"
)

// ReplConn is a physical replication connection (replication=true): it
// speaks the replication protocol's commands (IDENTIFY_SYSTEM, SHOW,
// CREATE_REPLICATION_SLOT, BASE_BACKUP), not SQL.
type ReplConn struct {
	c *pgconn.PgConn
	// dsn describes where it connects, without the password.
	where string
}

// ConnectReplication opens a replication connection with dsn (as
// Connect: a libpq string or URL, the PG* environment variables fill in
// the rest). The role needs the REPLICATION attribute (or superuser),
// and pg_hba.conf a line for the "replication" database.
func ConnectReplication(ctx context.Context, dsn string) (*ReplConn, error) {
	cfg, err := pgconn.ParseConfig(dsn)
	if err != nil {
		return nil, fmt.Errorf("PostgreSQL connection string: %w", err)
	}
	cfg.RuntimeParams["replication"] = "true"
	where := fmt.Sprintf("host=%s port=%d user=%s", cfg.Host, cfg.Port, cfg.User)
	c, err := pgconn.ConnectConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("open a replication connection to PostgreSQL (%s): %w; %s", where, err, replicationHint(err))
	}
	return &ReplConn{c: c, where: where}, nil
}

// replicationHint says what to change for a refused replication
// connection.
func replicationHint(err error) string {
	msg := err.Error()
	switch {
	case strings.Contains(msg, "must be superuser or replication role"), strings.Contains(msg, "permission denied to start WAL sender"):
		return "the role needs the REPLICATION attribute (ALTER ROLE name REPLICATION) or must be a superuser"
	case strings.Contains(msg, "max_wal_senders"):
		return "the server allows no replication connections: set wal_level = replica and max_wal_senders > 0 in postgresql.conf and restart it"
	case strings.Contains(msg, "pg_hba.conf"):
		return `pg_hba.conf needs a line for the "replication" database for this user and address (e.g. "host replication backup 10.0.0.5/32 scram-sha-256"), then reload the server`
	default:
		return "check --dsn or the PG* environment variables (PGHOST, PGPORT, PGUSER), and that the role may replicate (REPLICATION, pg_hba.conf \"replication\" lines)"
	}
}

// Close ends the connection.
func (r *ReplConn) Close(ctx context.Context) error { return r.c.Close(ctx) }

// query runs one replication command and returns its rows as text (NULL
// as ""), with a nil slice for NULL.
func (r *ReplConn) query(ctx context.Context, cmd string) ([][]*string, error) {
	res, err := r.c.Exec(ctx, cmd).ReadAll()
	if err != nil {
		return nil, err
	}
	var out [][]*string
	for _, rs := range res {
		if rs.Err != nil {
			return nil, rs.Err
		}
		for _, row := range rs.Rows {
			vals := make([]*string, len(row))
			for i, v := range row {
				if v != nil {
					s := string(v)
					vals[i] = &s
				}
			}
			out = append(out, vals)
		}
	}
	return out, nil
}

// show returns a setting through the replication protocol's SHOW.
func (r *ReplConn) show(ctx context.Context, name string) (string, error) {
	rows, err := r.query(ctx, "SHOW "+name)
	if err != nil {
		return "", fmt.Errorf("SHOW %s: %w", name, err)
	}
	if len(rows) != 1 || len(rows[0]) != 1 || rows[0][0] == nil {
		return "", fmt.Errorf("SHOW %s: unexpected answer", name)
	}
	return *rows[0][0], nil
}

// Info reads what a streamed base backup records, through the
// replication connection only (no SQL session, so a role with only
// REPLICATION works): IDENTIFY_SYSTEM's system identifier, and the
// version, wal_level and WAL segment size by SHOW. DataDir is the
// server's data_directory when the role may read it (superuser or
// pg_read_all_settings), else "".
func (r *ReplConn) Info(ctx context.Context) (*Server, error) {
	rows, err := r.query(ctx, "IDENTIFY_SYSTEM")
	if err != nil {
		return nil, fmt.Errorf("IDENTIFY_SYSTEM: %w", err)
	}
	if len(rows) != 1 || len(rows[0]) < 2 || rows[0][0] == nil {
		return nil, errors.New("IDENTIFY_SYSTEM: unexpected answer")
	}
	s := &Server{}
	if s.SystemID, err = strconv.ParseUint(*rows[0][0], 10, 64); err != nil {
		return nil, fmt.Errorf("system identifier %q: %w", *rows[0][0], err)
	}
	v, err := r.show(ctx, "server_version_num")
	if err != nil {
		return nil, err
	}
	if s.Version, err = strconv.Atoi(v); err != nil {
		return nil, fmt.Errorf("server_version_num %q: %w", v, err)
	}
	if s.VersionText, err = r.show(ctx, "server_version"); err != nil {
		return nil, err
	}
	if s.WALLevel, err = r.show(ctx, "wal_level"); err != nil {
		return nil, err
	}
	seg, err := r.show(ctx, "wal_segment_size")
	if err != nil {
		return nil, err
	}
	if s.SegmentSize, err = parseSize(seg); err != nil {
		return nil, fmt.Errorf("wal_segment_size %q: %w", seg, err)
	}
	s.DataDir, _ = r.show(ctx, "data_directory")
	// in_hot_standby (PostgreSQL 14 and later) tells a standby.
	if hs, err := r.show(ctx, "in_hot_standby"); err == nil && hs == "on" {
		s.InRecovery = true
	}
	return s, nil
}
