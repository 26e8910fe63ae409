package pg

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"log/slog"
	"path"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/rewind-backup/rewind/internal/archiver"
	"github.com/rewind-backup/rewind/internal/repository"
	"github.com/rewind-backup/rewind/internal/snapshot"
	"github.com/rewind-backup/rewind/internal/tree"
)

// StreamRoot is the snapshot path of a streamed base backup when the
// server does not tell its data directory (a role without
// pg_read_all_settings) and --pgdata names none: one path per cluster,
// so that the next backup finds its parent.
func StreamRoot(systemID uint64) string { return fmt.Sprintf("/postgresql/%d", systemID) }

// PrepareStream opens the replication connection of a streamed base
// backup and reads the server's identity, without touching the
// repository: a refused connection stores nothing. dataDir, when not "",
// is the snapshot's path; otherwise the server's data_directory, or
// StreamRoot.
func PrepareStream(ctx context.Context, opt BackupOptions) (*ReplConn, *Server, string, error) {
	rc, err := ConnectReplication(ctx, opt.DSN)
	if err != nil {
		return nil, nil, "", err
	}
	srv, err := rc.Info(ctx)
	if err == nil && srv.WALLevel == "minimal" {
		err = ErrWALLevelMinimal
	}
	if err == nil && srv.InRecovery {
		err = errors.New("the server is a standby (in recovery): streamed base backups from a standby are not supported yet; back up the primary")
	}
	if err == nil && srv.Major() < 15 {
		err = fmt.Errorf("PostgreSQL %s: streamed base backups need PostgreSQL 15 or later (the BASE_BACKUP of older servers is not supported); back up locally instead (without --stream, on the server's machine)", srv.VersionText)
	}
	if err != nil {
		rc.Close(ctx)
		return nil, nil, "", err
	}
	root := opt.DataDir
	if root == "" {
		root = srv.DataDir
	}
	if root == "" {
		root = StreamRoot(srv.SystemID)
	}
	root = path.Clean("/" + root)
	return rc, srv, root, nil
}

// StreamOptions are the parts of a streamed base backup that a local one
// does not have.
type StreamOptions struct {
	// Checksums is the manifest's checksum algorithm (CRC32C, SHA256, ...);
	// "" is CRC32C.
	Checksums string
	// Corrupt, a test hook, may change the bytes of the file at the path
	// relative to the data directory as they are received.
	Corrupt func(rel string, b []byte)
}

// StreamBackup takes a base backup over the replication connection rc
// (from PrepareStream) with BASE_BACKUP and stores it into r as a
// snapshot of root, the same snapshot a local base backup makes: the
// data directory with backup_label, tablespace_map and the WAL from the
// start to the stop of the backup in pg_wal, plus the server's
// backup_manifest. The tar stream goes straight into the repository,
// each file cut with the small-chunk profile as the local backup's are
// (so that both dedup against each other), and nothing is written to
// disk here. Every file is checked against the manifest as received; a
// difference saves no snapshot.
func StreamBackup(ctx context.Context, r *repository.Repository, rc *ReplConn, srv *Server, root string, opt BackupOptions, sopt StreamOptions) (*BackupResult, error) {
	log := opt.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if sopt.Checksums == "" {
		sopt.Checksums = "CRC32C"
	}
	if _, err := newChecksum(sopt.Checksums); err != nil {
		return nil, err
	}
	info := &snapshot.PGInfo{Method: "stream", Version: srv.Version, VersionText: srv.VersionText,
		SystemID: strconv.FormatUint(srv.SystemID, 10), DataDir: root, WALSegmentSize: srv.SegmentSize, Copy: opt.Copy, Manifest: true}
	if err := amcheckBefore(ctx, srv, opt, log, info); err != nil {
		return nil, err
	}
	// A temporary slot, dropped when the connection ends, keeps the
	// server from recycling the WAL the backup sends at its end.
	var slotErr error
	slot := fmt.Sprintf("rewind_stream_%d", rc.c.PID())
	if _, err := rc.query(ctx, "CREATE_REPLICATION_SLOT "+slot+" TEMPORARY PHYSICAL RESERVE_WAL"); err != nil {
		slotErr = err
		log.Warn("no temporary replication slot keeps the backup's WAL; a checkpoint during the backup may recycle it", "err", err)
	}
	info.Label = LabelName(fmt.Sprintf("rewind %s", time.Now().UTC().Format(time.RFC3339)))

	ao := opt.Archiver
	ao.Tags = appendTag(ao.Tags, Tag)
	before := ao.BeforeSave
	ao.BeforeSave = func(ctx context.Context, sn *snapshot.Snapshot) error {
		sn.Postgres = info
		if before != nil {
			return before(ctx, sn)
		}
		return nil
	}
	a, err := archiver.New(r, ao)
	if err != nil {
		return nil, err
	}
	bb, start, _, tbs, err := startBaseBackup(ctx, rc.c, bbOptions{Label: info.Label, Fast: opt.Fast, Wait: opt.WaitArchive, Checksums: sopt.Checksums})
	if err != nil {
		return nil, streamError(err)
	}
	if len(tbs) > 0 {
		var names []string
		for _, t := range tbs {
			names = append(names, fmt.Sprintf("%s (%s)", t.OID, t.Location))
		}
		return nil, fmt.Errorf("the cluster has tablespaces outside its data directory: %s; rewind's base backups do not include tablespaces yet", strings.Join(names, ", "))
	}
	ents, err := a.NewEntries(ctx, root)
	if err != nil {
		return nil, err
	}
	committed := false
	defer func() {
		if !committed {
			_ = ents.Abort(context.WithoutCancel(ctx))
		}
	}()
	rcv := &receiver{ents: ents, alg: sopt.Checksums, corrupt: sopt.Corrupt, got: map[string]receivedFile{}}
	var manifest []byte
	archives := 0
	for done := false; !done; {
		kind, name, loc, err := bb.next()
		if err != nil {
			return nil, streamError(err)
		}
		switch kind {
		case 'n':
			if loc != "" || archives > 0 {
				return nil, fmt.Errorf("BASE_BACKUP sent a second archive %s (tablespace %q): tablespaces are not supported yet", name, loc)
			}
			archives++
			if err := rcv.tar(ctx, bb); err != nil {
				return nil, streamError(err)
			}
		case 'm':
			if manifest, err = io.ReadAll(io.LimitReader(bb, maxManifest+1)); err != nil {
				return nil, streamError(err)
			}
			if len(manifest) > maxManifest {
				return nil, errors.New("BASE_BACKUP: the backup manifest is larger than 1 GiB")
			}
		case 'c':
			done = true
		}
	}
	stop, _, err := bb.finish()
	if err != nil {
		return nil, streamError(err)
	}
	if len(bb.Notices) > 0 {
		log.Info("the server's notices during BASE_BACKUP", "notices", bb.notices())
	}
	if archives == 0 {
		return nil, errors.New("BASE_BACKUP sent no archive")
	}
	if manifest == nil {
		return nil, errors.New("BASE_BACKUP sent no backup manifest")
	}
	m, err := ParseManifest(manifest)
	if err != nil {
		return nil, fmt.Errorf("%w; no snapshot was saved", err)
	}
	if err := m.Verify(rcv.got); err != nil {
		return nil, fmt.Errorf("%w\nno snapshot was saved; the data already uploaded is kept and reused by the next backup", err)
	}
	if rcv.label == nil {
		return nil, errors.New("BASE_BACKUP sent no backup_label")
	}
	label, err := ParseLabel(string(rcv.label))
	if err != nil {
		return nil, fmt.Errorf("the server's backup label: %w", err)
	}
	if label.StartLSN != start {
		return nil, fmt.Errorf("backup_label starts at %s, BASE_BACKUP said %s", label.StartLSN, start)
	}
	info.Timeline = label.StartTimeline
	info.StartLSN, info.StopLSN = label.StartLSN.String(), stop.String()
	info.TablespaceMap = rcv.tablespaceMap
	names, err := Segments(label.StartTimeline, label.StartLSN, stop, srv.SegmentSize)
	if err != nil {
		return nil, err
	}
	for _, n := range names {
		if !slices.Contains(rcv.wal, n) {
			return nil, fmt.Errorf("BASE_BACKUP did not send WAL segment %s, needed from %s to %s; no snapshot was saved", n, info.StartLSN, info.StopLSN)
		}
	}
	info.WALFiles = names
	// The manifest is kept beside backup_label, where pg_basebackup puts
	// it and pg_verifybackup looks for it.
	mn := tree.Node{Type: tree.File, Mode: 0o600, UID: rcv.labelNode.UID, GID: rcv.labelNode.GID,
		User: rcv.labelNode.User, Group: rcv.labelNode.Group, Links: 1,
		MTime: time.Now().UnixNano()}
	mn.CTime, mn.ATime = mn.MTime, mn.MTime
	if _, err := ents.Add(ctx, "backup_manifest", mn, bytes.NewReader(manifest)); err != nil {
		return nil, err
	}
	committed = true
	sn, err := ents.Commit(ctx)
	if err != nil {
		return nil, err
	}
	return &BackupResult{Snapshot: sn, Archiver: a, SlotErr: slotErr}, nil
}

// streamError adds what to do to errors BASE_BACKUP is known for.
func streamError(err error) error {
	msg := err.Error()
	switch {
	case strings.Contains(msg, "requested WAL segment") && strings.Contains(msg, "removed"):
		return fmt.Errorf("%w; the server recycled WAL the backup needs: allow a temporary replication slot (max_replication_slots > 0) or raise wal_keep_size", err)
	case strings.Contains(msg, "wal_level"):
		return fmt.Errorf("%w; set wal_level = replica in postgresql.conf and restart the server", err)
	}
	return err
}

// receiver stores the entries of base.tar and records, per regular
// file, its size and checksum as received, the WAL segments, and the
// label.
type receiver struct {
	ents          *archiver.Entries
	alg           string
	corrupt       func(string, []byte)
	got           map[string]receivedFile
	wal           []string
	label         []byte
	labelNode     tree.Node
	tablespaceMap bool
}

// tar stores every entry of the tar stream rd.
func (rc *receiver) tar(ctx context.Context, rd io.Reader) error {
	tr := tar.NewReader(rd)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("BASE_BACKUP: the base archive: %w", err)
		}
		rel := strings.TrimSuffix(path.Clean(strings.TrimPrefix(h.Name, "./")), "/")
		n := tree.Node{Mode: uint32(h.Mode) & 0o7777, UID: uint32(h.Uid), GID: uint32(h.Gid),
			User: h.Uname, Group: h.Gname, MTime: h.ModTime.UnixNano(), Links: 1}
		n.CTime, n.ATime = n.MTime, n.MTime
		switch h.Typeflag {
		case tar.TypeDir:
			n.Type, n.Links = tree.Dir, 2
		case tar.TypeReg, tar.TypeRegA:
			n.Type, n.Size = tree.File, uint64(h.Size)
		case tar.TypeSymlink:
			n.Type, n.LinkTarget = tree.Symlink, h.Linkname
		default:
			return fmt.Errorf("BASE_BACKUP: the base archive holds %s of tar type %q, which a data directory does not", h.Name, h.Typeflag)
		}
		if n.Type != tree.File {
			if _, err := rc.ents.Add(ctx, rel, n, nil); err != nil {
				return err
			}
			continue
		}
		sum, err := newChecksum(rc.alg)
		if err != nil {
			return err
		}
		var content io.Reader = tr
		if rc.corrupt != nil {
			content = &corrupter{r: content, rel: rel, f: rc.corrupt}
		}
		if sum != nil {
			content = io.TeeReader(content, sum)
		}
		var label bytes.Buffer
		if rel == "backup_label" {
			content = io.TeeReader(content, &cappedBuffer{b: &label, max: 1 << 20})
		}
		size, err := rc.ents.Add(ctx, rel, n, content)
		if err != nil {
			return err
		}
		if size != h.Size {
			return fmt.Errorf("BASE_BACKUP: %s: %d bytes received, the archive's header says %d", rel, size, h.Size)
		}
		f := receivedFile{Size: size}
		if sum != nil {
			f.Checksum = hex.EncodeToString(sum.Sum(nil))
		}
		rc.got[rel] = f
		switch dir, base := path.Split(rel); {
		case rel == "backup_label":
			rc.label, rc.labelNode = label.Bytes(), n
		case rel == "tablespace_map":
			rc.tablespaceMap = true
		case dir == "pg_wal/" && isSegmentName(base):
			rc.wal = append(rc.wal, base)
		}
	}
}

// isSegmentName reports a WAL segment's 24 hex digit name.
func isSegmentName(s string) bool {
	if len(s) != 24 {
		return false
	}
	_, err := hex.DecodeString(s)
	return err == nil
}

// corrupter hands the bytes it reads to a test hook.
type corrupter struct {
	r   io.Reader
	rel string
	f   func(string, []byte)
}

func (c *corrupter) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	if n > 0 {
		c.f(c.rel, p[:n])
	}
	return n, err
}

// cappedBuffer keeps the first max bytes written to it.
type cappedBuffer struct {
	b   *bytes.Buffer
	max int
}

func (l *cappedBuffer) Write(p []byte) (int, error) {
	if room := l.max - l.b.Len(); room > 0 {
		l.b.Write(p[:min(room, len(p))])
	}
	return len(p), nil
}

var _ hash.Hash = (*crc32c)(nil)
