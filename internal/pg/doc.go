// Package pg is rewind's PostgreSQL source: it talks to a server with
// github.com/jackc/pgx/v5 (its version, system identifier, data directory,
// wal_level and tablespaces), takes non-exclusive base backups on one
// session kept open (pg_backup_start / pg_backup_stop), finds the WAL a
// base backup needs in pg_wal, runs pg_amcheck and pg_ctl (one small
// wrapper each), and writes the recovery configuration of a restored data
// directory.
//
// What it reads and writes on disk follows PostgreSQL's documentation of
// continuous archiving ("Making a Base Backup Using the Low Level API"):
// the files a base backup leaves out (Excludes), backup_label and
// tablespace_map at the data directory's root, recovery.signal and the
// recovery settings in postgresql.auto.conf.
package pg
