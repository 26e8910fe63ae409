// Package sqlite is rewind's SQLite source: it recognises a SQLite 3
// database by its header (IsDatabase, ParseHeader) and takes a consistent
// copy of a live one through SQLite's online backup API (Capture), with
// the pure Go driver modernc.org/sqlite, so the binary needs no cgo.
//
// The copy is taken inside one read transaction on the source, opened
// read-only: in WAL mode it sees the last commit before it started and
// does not block writers; in rollback-journal mode it holds a shared lock
// while it copies, so writers wait for it (their busy timeout) but no
// commit can tear it. The source is never written, checkpointed or
// switched to another journal mode. The copy keeps the source's page size
// and page order, so versions of one database deduplicate page by page.
package sqlite
