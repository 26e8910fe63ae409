package mysql

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strconv"
	"sync"
	"time"

	"github.com/rewind-backup/rewind/internal/archiver"
	"github.com/rewind-backup/rewind/internal/repository"
	"github.com/rewind-backup/rewind/internal/snapshot"
)

// DumpPath is where a logical backup keeps the dump in its snapshot.
const DumpPath = "/mysql/dump.sql"

// LogicalBackup stores a dump of every database (mariadb-dump
// --single-transaction) as the one file DumpPath of a new snapshot,
// streamed (nothing is written to disk), and records the binlog position
// and GTID of the dump's consistent point, read from the comments
// mariadb-dump writes. A dump that fails or does not end with its
// "Dump completed" line saves no snapshot.
func LogicalBackup(ctx context.Context, r *repository.Repository, p *Prepared, opt BackupOptions) (*BackupResult, error) {
	bin, err := FindDump(opt.Dump)
	if err != nil {
		return nil, err
	}
	srv := p.Server
	info := &snapshot.MySQLInfo{Method: snapshot.MySQLLogical, ServerVersion: srv.Version, ServerID: srv.ServerID,
		ServerUUID: srv.UUID, DataDir: srv.DataDir, BackupStart: time.Now().UTC(), DumpPath: DumpPath}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	run, err := startDump(ctx, bin, opt.Conn, srv.LogBin)
	if err != nil {
		return nil, err
	}
	defer run.stop()
	watch := &dumpWatcher{}
	ao := opt.Archiver
	ao.Tags = appendTag(ao.Tags, snapshot.TagMySQL)
	beforeCommit, beforeSave := ao.BeforeCommit, ao.BeforeSave
	ao.BeforeCommit = func(ctx context.Context) error {
		// The whole dump is stored; it is kept only if mariadb-dump then
		// exits with status 0 and the dump ends as a whole one does.
		if err := run.wait(); err != nil {
			return fmt.Errorf("%w\nno snapshot was saved", err)
		}
		pos, err := watch.result()
		if err != nil {
			return err
		}
		info.BinlogFile, info.BinlogPos, info.GTID, info.Tool = pos.File, pos.Pos, pos.GTID, pos.Tool
		info.BackupEnd = pos.At.UTC()
		if srv.LogBin && pos.File == "" {
			return errors.New("mariadb-dump wrote no binlog position (--master-data): no snapshot was saved")
		}
		if beforeCommit != nil {
			return beforeCommit(ctx)
		}
		return nil
	}
	ao.BeforeSave = func(ctx context.Context, sn *snapshot.Snapshot) error {
		sn.MySQL = info
		if beforeSave != nil {
			return beforeSave(ctx, sn)
		}
		return nil
	}
	a, err := archiver.New(r, ao)
	if err != nil {
		return nil, err
	}
	sn, err := a.SnapshotStream(ctx, io.TeeReader(run.stdout, watch), archiver.StreamOptions{Name: DumpPath, Mode: 0o600})
	if err != nil {
		if werr := run.wait(); werr != nil {
			var te *ToolError
			if errors.As(werr, &te) && te.Code > 0 {
				return nil, fmt.Errorf("%w\nno snapshot was saved", werr)
			}
		}
		return nil, err
	}
	return &BackupResult{Snapshot: sn, Archiver: a}, nil
}

// DumpPosition is what a dump's comments say of it.
type DumpPosition struct {
	// File and Pos are the binlog position of the dump's consistent
	// point (--master-data=2: "-- CHANGE MASTER TO MASTER_LOG_FILE='f',
	// MASTER_LOG_POS=n;"), GTID the gtid_slave_pos line --gtid adds at
	// the end ("-- SET GLOBAL gtid_slave_pos='0-1-42';").
	File string
	Pos  uint64
	GTID string
	// Tool is "mariadb-dump 10.19 (10.11.6-MariaDB)" from the first line.
	Tool string
	// Complete: the dump ends with "-- Dump completed".
	Complete bool
	// At is when the position line was read: the consistent time, near
	// enough (the transaction starts right before it is written).
	At time.Time
}

var (
	dumpChangeMaster = regexp.MustCompile(`^-- CHANGE MASTER TO MASTER_LOG_FILE='([^']+)', MASTER_LOG_POS=([0-9]+);`)
	dumpGTID         = regexp.MustCompile(`^-- SET GLOBAL gtid_slave_pos='([0-9,\- ]*)';`)
	dumpHead         = regexp.MustCompile(`^-- (?:MariaDB|MySQL) dump ([0-9.]+)\s+Distrib ([^,\s]+)`)
)

// dumpWatcher reads the comment lines of a dump as it streams past,
// keeping only the start of each line (a dump's INSERT lines are long).
type dumpWatcher struct {
	mu      sync.Mutex
	line    []byte
	pos     DumpPosition
	lastEnd bool // the last line was "-- Dump completed ..."
}

const watchLine = 512

func (w *dumpWatcher) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	n := len(p)
	for len(p) > 0 {
		i := bytes.IndexByte(p, '\n')
		part := p
		if i >= 0 {
			part = p[:i]
		}
		if room := watchLine - len(w.line); room > 0 {
			w.line = append(w.line, part[:min(room, len(part))]...)
		}
		if i < 0 {
			break
		}
		w.endLine()
		p = p[i+1:]
	}
	return n, nil
}

func (w *dumpWatcher) endLine() {
	l := w.line
	w.line = w.line[:0]
	if len(l) == 0 {
		return
	}
	w.lastEnd = false
	if l[0] != '-' {
		return
	}
	s := string(l)
	if m := dumpChangeMaster.FindStringSubmatch(s); m != nil && w.pos.File == "" {
		w.pos.File = m[1]
		w.pos.Pos, _ = strconv.ParseUint(m[2], 10, 64)
		w.pos.At = time.Now()
	} else if m := dumpGTID.FindStringSubmatch(s); m != nil {
		w.pos.GTID = m[1]
	} else if m := dumpHead.FindStringSubmatch(s); m != nil && w.pos.Tool == "" {
		w.pos.Tool = fmt.Sprintf("mariadb-dump %s (%s)", m[1], m[2])
	} else if bytes.HasPrefix(l, []byte("-- Dump completed")) {
		w.lastEnd = true
	}
}

// result is what the dump said, once it has ended.
func (w *dumpWatcher) result() (DumpPosition, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.line) > 0 {
		w.endLine()
	}
	p := w.pos
	p.Complete = w.lastEnd
	if !p.Complete {
		return p, errors.New("the dump does not end with mariadb-dump's \"-- Dump completed\" line: it is incomplete; no snapshot was saved")
	}
	if p.At.IsZero() {
		p.At = time.Now()
	}
	return p, nil
}

// ParseDumpPosition reads the position comments of a whole dump (for
// tests and tools; LogicalBackup reads them as the dump streams).
func ParseDumpPosition(dump []byte) (DumpPosition, error) {
	w := &dumpWatcher{}
	w.Write(dump)
	return w.result()
}
