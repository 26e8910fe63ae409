package mysql

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/rewind-backup/rewind/internal/archiver"
	"github.com/rewind-backup/rewind/internal/mysql/xbstream"
	"github.com/rewind-backup/rewind/internal/repository"
	"github.com/rewind-backup/rewind/internal/snapshot"
	"github.com/rewind-backup/rewind/internal/tree"
)

// BackupOptions control `rewind mysql backup`.
type BackupOptions struct {
	// Conn is the resolved connection (ConnOptions.Resolve).
	Conn ConnOptions
	// MariaBackup is the mariabackup program ("": FindMariaBackup); Dump
	// mariadb-dump ("": FindDump).
	MariaBackup, Dump string
	// Archiver are the snapshot's options (hostname, tags, parent,
	// progress, hooks); the tag "mysql" and the MySQL record are added.
	Archiver archiver.Options
	Logger   *slog.Logger
	// Filter, a test hook, may wrap mariabackup's output before it is
	// decoded (to damage it).
	Filter func(io.Reader) io.Reader
}

// BackupResult is a finished backup.
type BackupResult struct {
	Snapshot *snapshot.Snapshot
	Archiver *archiver.Archiver
}

// Prepared is a server checked before the repository is opened: it
// answered the login, and (for a physical backup) mariabackup is here.
type Prepared struct {
	Server *Server
	// MariaBackup is the program's path and Tool its version text
	// (physical backups only).
	MariaBackup, Tool string
}

// PrepareBackup logs in to the server, reads what the backup records of
// it, and finds mariabackup (unless logical), without touching the
// repository: a wrong password or a missing program stores nothing.
func PrepareBackup(ctx context.Context, opt BackupOptions, logical bool) (*Prepared, error) {
	p := &Prepared{}
	if !logical {
		bin, err := FindMariaBackup(opt.MariaBackup)
		if err != nil {
			return nil, err
		}
		if p.Tool, err = MariaBackupVersion(ctx, bin); err != nil {
			return nil, err
		}
		p.MariaBackup = bin
	}
	db, err := Open(ctx, opt.Conn)
	if err != nil {
		return nil, err
	}
	defer db.Close()
	if p.Server, err = ReadServer(ctx, db); err != nil {
		return nil, err
	}
	if logical {
		if _, err := FindDump(opt.Dump); err != nil {
			return nil, err
		}
	} else {
		if err := readableDir(p.Server.DataDir); err != nil {
			return nil, fmt.Errorf("the server's data directory %s cannot be read here (%v): a physical backup runs on the server's machine, as root or the server's OS user; use --logical for a server elsewhere", p.Server.DataDir, err)
		}
	}
	return p, nil
}

// readableDir checks that dir's listing can be read here.
func readableDir(dir string) error {
	f, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer f.Close()
	if _, err := f.Readdirnames(1); err != nil && err != io.EOF {
		return err
	}
	return nil
}

// BinlogInfo is the consistent point mariabackup wrote into
// xtrabackup_binlog_info (mariadb_backup_binlog_info from 11.x):
// "FILE\tPOS\tGTID".
type BinlogInfo struct {
	File string
	Pos  uint64
	GTID string
}

// binlogInfoNames are the files mariabackup records the binlog position in.
var binlogInfoNames = []string{"mariadb_backup_binlog_info", "xtrabackup_binlog_info"}

// ParseBinlogInfo reads mariabackup's binlog info file; empty content
// (a server without a binary log) is no position and no error.
func ParseBinlogInfo(b []byte) (BinlogInfo, error) {
	line, _, _ := strings.Cut(strings.TrimSpace(string(b)), "\n")
	if line == "" {
		return BinlogInfo{}, nil
	}
	f := strings.Split(line, "\t")
	if len(f) < 2 {
		return BinlogInfo{}, fmt.Errorf("mariabackup's binlog info %q: want FILE, TAB, POSITION[, TAB, GTID]", line)
	}
	pos, err := strconv.ParseUint(strings.TrimSpace(f[1]), 10, 64)
	if err != nil || f[0] == "" {
		return BinlogInfo{}, fmt.Errorf("mariabackup's binlog info %q: no binlog file and position", line)
	}
	bi := BinlogInfo{File: strings.TrimSpace(f[0]), Pos: pos}
	if len(f) > 2 {
		bi.GTID = strings.TrimSpace(f[2])
	}
	return bi, nil
}

// Backup takes a physical backup of the server p describes: mariabackup
// --backup --stream=xbstream, its output decoded as it comes
// (xbstream.Files) and each file stored into a new snapshot at its place
// under the server's data directory (archiver.Entries), so that nothing
// but mariabackup's own small files touches the disk. Files get the
// owner and mode they have in the data directory (the server's user,
// 0660/0700 for what mariabackup adds). A failure of mariabackup or
// damage in the stream saves no snapshot.
func Backup(ctx context.Context, r *repository.Repository, p *Prepared, opt BackupOptions) (*BackupResult, error) {
	log := opt.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	srv := p.Server
	info := &snapshot.MySQLInfo{Method: snapshot.MySQLPhysical, ServerVersion: srv.Version, ServerID: srv.ServerID,
		ServerUUID: srv.UUID, DataDir: srv.DataDir, Tool: p.Tool, BackupStart: time.Now().UTC()}
	if srv.OwnerKnown {
		info.UID, info.GID = srv.UID, srv.GID
	}
	ao := opt.Archiver
	ao.Tags = appendTag(ao.Tags, snapshot.TagMySQL)
	before := ao.BeforeSave
	ao.BeforeSave = func(ctx context.Context, sn *snapshot.Snapshot) error {
		sn.MySQL = info
		if before != nil {
			return before(ctx, sn)
		}
		return nil
	}
	a, err := archiver.New(r, ao)
	if err != nil {
		return nil, err
	}
	tmp, err := os.MkdirTemp("", "rewind-mariabackup-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(tmp)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	run, err := startTool(ctx, p.MariaBackup, backupStreamArgs(opt.Conn, srv.DataDir, tmp), opt.Conn.ClientEnv())
	if err != nil {
		return nil, err
	}
	defer run.stop()
	ents, err := a.NewEntries(ctx, srv.DataDir)
	if err != nil {
		return nil, err
	}
	committed := false
	defer func() {
		if !committed {
			_ = ents.Abort(context.WithoutCancel(ctx))
		}
	}()
	st := &streamStore{ents: ents, srv: srv, dirs: map[string]bool{}, names: map[uint32]string{}, groups: map[uint32]string{}}
	var in io.Reader = run.stdout
	if opt.Filter != nil {
		in = opt.Filter(in)
	}
	var binlog []byte
	var binlogAt time.Time
	derr := xbstream.Files(in, tmp, func(rel string, content io.Reader) error {
		isInfo := false
		for _, n := range binlogInfoNames {
			isInfo = isInfo || rel == n
		}
		var keep bytes.Buffer
		if isInfo {
			content = io.TeeReader(content, &capped{b: &keep, max: 64 << 10})
		}
		if err := st.add(ctx, rel, content); err != nil {
			return err
		}
		if isInfo {
			binlog, binlogAt = keep.Bytes(), time.Now()
		}
		return nil
	})
	if derr != nil {
		if ctx.Err() != nil {
			return nil, fmt.Errorf("%w; no snapshot was saved", context.Cause(ctx))
		}
		// mariabackup's own failure explains a stream that stopped short
		// better than the decoder does.
		run.stop()
		var te *ToolError
		if werr := run.wait(); errors.As(werr, &te) && te.Code > 0 {
			return nil, fmt.Errorf("%w\nno snapshot was saved", werr)
		}
		var xe *xbstream.Error
		if errors.As(derr, &xe) {
			derr = fmt.Errorf("mariabackup's stream: %w", derr)
		}
		return nil, fmt.Errorf("%w\nno snapshot was saved; the data already uploaded is kept and reused by the next backup", derr)
	}
	if err := run.wait(); err != nil {
		return nil, fmt.Errorf("%w\nno snapshot was saved", err)
	}
	log.Debug("mariabackup finished", "stderr", run.stderr.lastLines(5))
	if st.files == 0 {
		return nil, errors.New("mariabackup streamed no files; no snapshot was saved")
	}
	if _, ok := st.seen["xtrabackup_checkpoints"]; !ok {
		return nil, errors.New("mariabackup's stream has no xtrabackup_checkpoints: it is not a complete backup; no snapshot was saved")
	}
	bi, err := ParseBinlogInfo(binlog)
	if err != nil {
		return nil, err
	}
	info.BinlogFile, info.BinlogPos, info.GTID = bi.File, bi.Pos, bi.GTID
	if binlogAt.IsZero() {
		binlogAt = time.Now()
	}
	info.BackupEnd = binlogAt.UTC()
	if bi.File == "" && srv.LogBin {
		log.Warn("mariabackup recorded no binlog position although the server has the binary log on")
	}
	if err := st.addDirs(ctx); err != nil {
		return nil, err
	}
	committed = true
	sn, err := ents.Commit(ctx)
	if err != nil {
		return nil, err
	}
	return &BackupResult{Snapshot: sn, Archiver: a}, nil
}

// streamStore adds the files of mariabackup's stream to a snapshot of the
// data directory, with the metadata they have there.
type streamStore struct {
	ents   *archiver.Entries
	srv    *Server
	files  int
	seen   map[string]bool
	dirs   map[string]bool // directories that hold a file, by relative path
	names  map[uint32]string
	groups map[uint32]string
	mu     sync.Mutex
}

func (s *streamStore) add(ctx context.Context, rel string, content io.Reader) error {
	if s.seen == nil {
		s.seen = map[string]bool{}
	}
	s.seen[rel] = true
	for d := path.Dir(rel); d != "."; d = path.Dir(d) {
		s.dirs[d] = true
	}
	n := s.node(rel, tree.File, 0o660)
	if _, err := s.ents.Add(ctx, rel, n, content); err != nil {
		return err
	}
	s.files++
	return nil
}

// addDirs adds the data directory and the folders the files are in,
// with their metadata here (0700 and the server's user for one that is
// not).
func (s *streamStore) addDirs(ctx context.Context) error {
	if _, err := s.ents.Add(ctx, "", s.node("", tree.Dir, 0o700), nil); err != nil {
		return err
	}
	for d := range s.dirs {
		if _, err := s.ents.Add(ctx, d, s.node(d, tree.Dir, 0o700), nil); err != nil {
			return err
		}
	}
	return nil
}

// node is the metadata of rel: as it is in the data directory when it
// is there, else mode and the data directory's owner.
func (s *streamStore) node(rel string, typ tree.Type, mode uint32) tree.Node {
	now := time.Now().UnixNano()
	n := tree.Node{Type: typ, Mode: mode, MTime: now, CTime: now, ATime: now, Links: 1}
	if typ == tree.Dir {
		n.Links = 2
	}
	if s.srv.OwnerKnown {
		n.UID, n.GID, n.User, n.Group = s.srv.UID, s.srv.GID, s.srv.Owner, s.srv.Group
	}
	fi, err := os.Lstat(filepath.Join(s.srv.DataDir, filepath.FromSlash(rel)))
	if err != nil || (typ == tree.Dir) != fi.IsDir() {
		return n
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return n
	}
	n.Mode = uint32(fi.Mode().Perm())
	n.MTime = fi.ModTime().UnixNano()
	n.UID, n.GID = st.Uid, st.Gid
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.names[st.Uid]; !ok {
		s.names[st.Uid] = userName(st.Uid)
	}
	if _, ok := s.groups[st.Gid]; !ok {
		s.groups[st.Gid] = groupName(st.Gid)
	}
	n.User, n.Group = s.names[st.Uid], s.groups[st.Gid]
	return n
}

// capped keeps the first max bytes written to it.
type capped struct {
	b   *bytes.Buffer
	max int
}

func (c *capped) Write(p []byte) (int, error) {
	if room := c.max - c.b.Len(); room > 0 {
		c.b.Write(p[:min(room, len(p))])
	}
	return len(p), nil
}

func appendTag(tags []string, t string) []string {
	for _, x := range tags {
		if x == t {
			return tags
		}
	}
	return append(append([]string(nil), tags...), t)
}
