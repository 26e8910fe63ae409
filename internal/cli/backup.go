package cli

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/rewind-backup/rewind/internal/archiver"
	"github.com/rewind-backup/rewind/internal/filter"
	"github.com/rewind-backup/rewind/internal/id"
	"github.com/rewind-backup/rewind/internal/repair"
	"github.com/rewind-backup/rewind/internal/repository"
	"github.com/rewind-backup/rewind/internal/snapshot"
	"github.com/rewind-backup/rewind/internal/sqlite"
	"github.com/rewind-backup/rewind/internal/ui"
	"github.com/spf13/cobra"
)

type backupOpts struct {
	tags          []string
	host          string
	excludes      []string
	excludeFiles  []string
	excludeCaches bool
	excludeNodump bool
	ifPresent     []string
	largerThan    string
	oneFS         bool
	crossSubvols  bool
	readFrom      []string
	parent        string
	force         bool
	dryRun        bool
	noInventory   bool
	sqlite        string
	stream        streamOpts
	img           imageOpts
	list          listOpts
	sys           sysrootOpts
}

func newBackupCmd(g *globals) *cobra.Command {
	o := &backupOpts{}
	cmd := &cobra.Command{
		Use:   "backup {PATH... | --files-from FILE | --stdin | --stdin-from-command -- CMD ARGS... | --device DEV | --image FILE | --system-root DIR [PATH...]}",
		Short: "Back up files and directories into a new snapshot",
		Long: `Back up PATHs into a new snapshot. Files whose size, mtime, ctime and inode
are the same as in the previous snapshot of the same host and paths are not
read again. Without --repo, the default repository is used and created on
first use.

With --stdin, standard input is stored as one file of the snapshot, at
--stdin-filename (default /stdin). With --stdin-from-command, the command
after -- is run (directly, not through a shell) and its standard output is
stored; if it exits with a status other than 0, no snapshot is saved, and
the message gives its status and the last lines of its standard error.

With --device DEV or --image FILE, a block device or disk image file is
stored whole as one file, in fixed blocks (--block-size, 64 KiB) at device
offsets: blocks of zeros, and free space of an ext2/3/4 or XFS filesystem
(read from its own block bitmaps or free-space trees), are holes, not read or stored; blocks that
did not change since the last backup of the same device are not stored
again. Back up a device that is not mounted, mounted read-only, or a
snapshot of it (LVM): a mounted filesystem changes while it is read.
Restore with restore --device or --image (docs/IMAGES.md).

With --files-from FILE, the paths listed in FILE (one per line; empty
lines and lines starting with # are ignored, surrounding spaces trimmed)
are backed up too; --files-from-verbatim takes every line as written,
--files-from-raw takes NUL-separated paths (find -print0). A listed path
that does not exist is an error that names it with its file and line, and
nothing is backed up.

With --read-from REALDIR=SNAPDIR, everything at or below REALDIR is read
from SNAPDIR instead, and recorded under REALDIR: back up a frozen copy of
a folder (a read-only btrfs snapshot, a mounted LVM or ZFS snapshot) so that
the snapshot shows the real paths, and a restore puts files back where they
live. Give it once per copy; PATHs still name the real folders.

With --system-root DIR, the system whose root filesystem is mounted at DIR
and is not running (another machine's disk, a server's root mounted from a
rescue system) is backed up as itself: PATHs (default /) are its own paths,
read below DIR and stored as the system sees them; the hostname is read
from DIR/etc/hostname; only its filesystems mounted below DIR that are on
--disks are crossed, not virtual mounts; and the inventory records those
disks and that root, not this host. --disks alone records only those disks
in the running system's inventory.

A backup of files also records the machine's inventory (disks, partition
tables, filesystems, boot, network, packages, enabled units, users,
crontabs) in the repository, reusing the last one of the host when nothing
changed; see rewind inventory. --no-inventory leaves it out.

With --dry-run (-n), the backup walks, compares with the parent and reads
the new and changed files, but writes nothing to the repository (no data,
no index, no snapshot; its lock is removed at the end): it reports what
would be read and added, and with -v each file that would be new (+) or
changed (M). The repository must exist.

Exit status: 0 when everything was saved; 3 when the snapshot was saved but
some files could not be read (they are listed); 1 on a fatal error.`,
		Example: `  rewind backup ~/projects
  rewind backup --repo /srv/backup/repo --tag nightly /etc /var/www
  rewind backup --exclude '*.tmp' --exclude /var/cache --exclude-caches /
  rewind backup --exclude-if-present .nobackup --exclude-larger-than 2G /home
  rewind backup --one-file-system --json / > backup.log
  rewind backup --cross-subvolumes /home
  rewind backup --files-from /etc/rewind/paths.txt
  rewind backup --read-from /srv=/srv/.snap/nightly /srv
  rewind backup --dry-run -v /srv
  rewind backup --no-inventory /home/alice
  find /srv -newer /var/run/last-backup -print0 | rewind backup --files-from-raw -
  pg_dump mydb | rewind backup --stdin --stdin-filename /db/mydb.sql
  rewind backup --stdin-from-command --stdin-filename /db/mydb.sql -- pg_dump mydb
  rewind backup --device /dev/vg0/root-snap
  rewind backup --image /var/lib/libvirt/images/web1.img
  rewind backup --qemu-qmp /run/qemu/web1.qmp drive0
  rewind backup --system-root /mnt/srv --disks /dev/sdb
  rewind backup --system-root /mnt/srv --disks /dev/sdb,/dev/sdc /etc /home`,
		Args: func(cmd *cobra.Command, args []string) error {
			if o.stream.on() {
				_, err := o.stream.checkArgs(cmd, args)
				return err
			}
			if o.img.on() {
				return nil
			}
			if o.list.given() || o.sys.root != "" {
				return nil
			}
			return cobra.MinimumNArgs(1)(cmd, args)
		},
		RunE: func(cmd *cobra.Command, args []string) error { return runBackup(cmd, g, o, args) },
	}
	f := cmd.Flags()
	f.StringArrayVar(&o.tags, "tag", nil, "add a `tag` to the snapshot (repeatable)")
	f.StringVar(&o.host, "host", "", "record this `hostname` instead of the machine's")
	f.StringArrayVarP(&o.excludes, "exclude", "e", nil, "exclude paths matching `pattern` (repeatable)")
	f.StringArrayVar(&o.excludeFiles, "exclude-file", nil, "read exclude patterns from `file` (repeatable)")
	f.BoolVar(&o.excludeCaches, "exclude-caches", false, "skip the contents of directories with a CACHEDIR.TAG")
	f.BoolVar(&o.excludeNodump, "exclude-nodump", false, "leave out files and directories flagged nodump (chattr +d)")
	f.StringArrayVar(&o.ifPresent, "exclude-if-present", nil, "skip the contents of directories holding the file `name[:content]` (one whose content starts with content, when given); that file is kept (repeatable)")
	f.StringVar(&o.largerThan, "exclude-larger-than", "", "leave out regular files larger than `size` (e.g. 500K, 10M, 2G; powers of 1024); the summary counts them, -v names them")
	f.BoolVarP(&o.oneFS, "one-file-system", "x", false, "do not cross filesystem boundaries (mount points, btrfs subvolumes); the summary lists them")
	f.BoolVar(&o.crossSubvols, "cross-subvolumes", false, "with --one-file-system (implied): go into btrfs subvolumes, but still not into other mounts")
	f.StringArrayVar(&o.readFrom, "read-from", nil, "read the content of `REALDIR=SNAPDIR` from SNAPDIR (a snapshot mount) but record it as REALDIR (repeatable)")
	f.StringVar(&o.parent, "parent", "", "compare with this `snapshot` instead of the latest one of the same host and paths")
	f.BoolVar(&o.force, "force", false, "read every file, ignoring the parent snapshot")
	f.BoolVarP(&o.dryRun, "dry-run", "n", false, "do everything but write to the repository: say what would be read and added (-v: each new (+) or changed (M) file)")
	f.BoolVar(&o.noInventory, "no-inventory", false, "do not record the machine's inventory (disks, filesystems, packages, ...) with the snapshot")
	addSQLiteFlag(f, &o.sqlite)
	o.stream.add(cmd)
	o.img.add(cmd)
	o.list.add(cmd)
	o.sys.add(cmd)
	return cmd
}

func runBackup(cmd *cobra.Command, g *globals, o *backupOpts, args []string) error {
	ctx := cmd.Context()
	if o.sys.on() {
		if o.img.on() || o.stream.on() {
			return errors.New("--system-root and --disks are for a backup of files; they cannot be combined with --stdin, --device or --image")
		}
		if len(o.readFrom) > 0 && o.sys.root != "" {
			return errors.New("--system-root reads every path below its folder; it cannot be combined with --read-from")
		}
		if err := o.sys.check(); err != nil {
			return err
		}
		if o.sys.root != "" && len(args) == 0 && !o.list.given() {
			args = []string{"/"}
		}
		if o.sys.root != "" && o.host == "" {
			// The system's own name, checked before the repository is
			// opened.
			name, err := o.sys.hostname()
			if err != nil {
				return err
			}
			o.host = name
		}
	}
	if o.img.on() {
		if _, _, _, err := o.img.check(args, o.stream.on()); err != nil {
			return err
		}
	} else if !o.stream.on() {
		// Every path is checked before the repository is opened (or
		// created): a typo stores nothing.
		var err error
		if args, err = o.list.targets(args, o.sys.root); err != nil {
			return err
		}
	} else if o.list.given() {
		return errors.New("--files-from and its variants name paths; they cannot be combined with --stdin or --stdin-from-command")
	}
	if err := checkSQLiteFlag(o.sqlite); err != nil {
		return err
	}
	excludes := append([]string(nil), o.excludes...)
	for _, f := range o.excludeFiles {
		pats, err := filter.ReadPatternFile(f)
		if err != nil {
			return err
		}
		excludes = append(excludes, pats...)
	}
	var readFrom []archiver.ReadFrom
	for _, s := range o.readFrom {
		m, err := archiver.ParseReadFrom(s)
		if err != nil {
			return err
		}
		readFrom = append(readFrom, m)
	}
	var maxSize int64
	if o.largerThan != "" {
		var err error
		if maxSize, err = parseByteSize(o.largerThan); err != nil {
			return fmt.Errorf("--exclude-larger-than: %w", err)
		}
	}
	// A dry run creates nothing, not even the default repository.
	r, lk, done, err := g.openForBackup(ctx, "backup", o.dryRun)
	if err != nil {
		return err
	}
	defer done()
	host := o.host
	if host == "" {
		host, _ = os.Hostname()
	}
	if o.stream.on() {
		return runBackupStream(cmd, g, o, r, lk, host, args)
	}
	if o.img.on() {
		return runBackupImage(cmd, g, o, r, lk, host, args)
	}
	var parent *snapshot.Snapshot
	var listed []*snapshot.Snapshot
	if !o.force {
		parent, listed, err = findParent(cmd, g, r, o.parent, host, args)
		if err != nil {
			return err
		}
	}
	// The machine's inventory is collected while the files are read,
	// and stored just before the snapshot that names it.
	var inv *inventoryRun
	var beforeSave func(context.Context, *snapshot.Snapshot) error
	if !o.dryRun && !o.noInventory {
		inv = startInventoryOf(ctx, host, o.sys.sources())
		defer inv.stop()
		beforeSave = func(ctx context.Context, sn *snapshot.Snapshot) error { return inv.attach(ctx, g, r, listed, sn) }
	}
	crossDevs, err := o.sys.crossDevices()
	if err != nil {
		return err
	}
	counter := &ui.Counter{}
	counter.Scanning.Store(true)
	a, err := archiver.New(r, archiver.Options{
		SystemRoot: o.sys.root, CrossDevices: crossDevs,
		Hostname: host, Tags: o.tags, Excludes: excludes, ExcludeCaches: o.excludeCaches,
		ExcludeNodump:    o.excludeNodump,
		ExcludeIfPresent: o.ifPresent, ExcludeLargerThan: maxSize,
		OneFileSystem: o.oneFS || o.crossSubvols, CrossSubvolumes: o.crossSubvols, ReadFrom: readFrom, Parent: parent, Logger: g.log, ProgramVersion: "rewind " + Version,
		Progress: &backupProgress{g: g, c: counter}, DryRun: o.dryRun, OnFile: dryRunFiles(g, o),
		// A lock that may have been taken for stale lets a prune
		// delete data this snapshot refers to: do not commit it.
		BeforeCommit: lockedCommit(lk),
		BeforeSave:   beforeSave,
		SQLite:       sqlite.Hook(o.sqlite, sqlite.Options{}, 0),
	})
	if err != nil {
		return err
	}
	prog := g.ui.StartProgress("backup", counter)
	sn, err := a.Snapshot(ctx, args)
	prog.Stop()
	if err != nil {
		return err
	}
	if o.dryRun {
		printDryRunSummary(g, sn, parent, a)
		return dryRunResult(sn)
	}
	if err := g.extendAfterBackup(ctx, r, sn); err != nil {
		return err
	}
	printBackupSummary(g, sn, parent, a)
	if len(sn.Summary.Errors) > 0 {
		return withCode(ExitPartial, fmt.Errorf("snapshot %s saved, but %s could not be read (listed above)", sn.ID.Short(), countErrors(sn.Summary.Errors)))
	}
	return nil
}

// findParent picks the snapshot to compare with: --parent, or the newest
// snapshot of this host with the same paths. It also returns the
// snapshots it listed to find it (nil with --parent), for a caller that
// needs them again (the inventory's reuse): one listing per backup.
func findParent(cmd *cobra.Command, g *globals, r *repository.Repository, ref, host string, args []string) (*snapshot.Snapshot, []*snapshot.Snapshot, error) {
	ctx := cmd.Context()
	if ref != "" {
		sn, err := snapshot.Find(ctx, r, ref, snapshot.Filter{})
		return sn, nil, err
	}
	targets, err := archiver.CleanTargets(args)
	if err != nil {
		return nil, nil, err
	}
	sns, err := snapshot.List(ctx, r, func(i id.ID, err error) {
		g.log.Warn("skipping unreadable snapshot", "id", i.String(), "err", err)
	})
	if err != nil {
		return nil, nil, err
	}
	// A snapshot with a damage record references lost data: its
	// repaired replacement (or an older snapshot) is the parent.
	damaged, err := repair.ListDamaged(ctx, r)
	if err != nil {
		g.log.Warn("damage records cannot all be read", "err", err)
	}
	for i := len(sns) - 1; i >= 0; i-- {
		sn := sns[i]
		if _, bad := damaged[sn.ID]; bad {
			continue
		}
		if sn.Hostname == host && strings.Join(sn.Paths, "\x00") == strings.Join(targets, "\x00") {
			return sn, sns, nil
		}
	}
	return nil, sns, nil
}

// backupProgress feeds the archiver's events to the progress counter and
// the JSON error events.
type backupProgress struct {
	g *globals
	c *ui.Counter
}

func (p *backupProgress) Scanned(files, bytes int64) {
	p.c.TotalFiles.Add(files)
	p.c.TotalBytes.Add(bytes)
}

func (p *backupProgress) Done(files, bytes int64) {
	p.c.Files.Add(files)
	p.c.Bytes.Add(bytes)
}

func (p *backupProgress) Error(path, kind string, err error) {
	if p.g.json {
		p.g.ui.JSONLine(map[string]any{"message_type": "error", "path": path, "kind": kind, "error": err.Error()})
		return
	}
	p.g.ui.Warnf("error: %s %s: %v\n", kind, path, err)
}

// BackupSummary is the final JSON line of `backup --json` (docs/JSON.md).
type BackupSummary struct {
	MessageType string `json:"message_type"`
	SnapshotID  string `json:"snapshot_id"`
	Parent      string `json:"parent,omitempty"`
	*snapshot.Summary
	ErrorCounts     ErrorCounts          `json:"error_counts"`
	DurationSeconds float64              `json:"duration_seconds"`
	FilesVanished   int64                `json:"files_vanished"`
	Skipped         []snapshot.FileError `json:"skipped,omitempty"`
	NotCrossed      []archiver.Boundary  `json:"not_crossed,omitempty"`
	FilesTooLarge   int                  `json:"files_too_large"`
	TooLarge        []archiver.LargeFile `json:"too_large,omitempty"`
	Image           *snapshot.ImageInfo  `json:"image,omitempty"`
	Backend         *backendSummary      `json:"backend,omitempty"`
	sqliteSummary
}

func printBackupSummary(g *globals, sn *snapshot.Snapshot, parent *snapshot.Snapshot, a *archiver.Archiver) {
	s := sn.Summary
	dur := s.BackupEnd.Sub(s.BackupStart)
	if g.json {
		out := BackupSummary{MessageType: "summary", SnapshotID: sn.ID.String(), Summary: s, ErrorCounts: countErrors(s.Errors),
			DurationSeconds: dur.Seconds(), FilesVanished: a.Vanished(), Skipped: a.Skipped(), NotCrossed: a.NotCrossed(),
			FilesTooLarge: len(a.TooLarge()), TooLarge: a.TooLarge(), Image: sn.Image, Backend: g.backendStats(), sqliteSummary: newSQLiteSummary(a)}
		if parent != nil {
			out.Parent = parent.ID.String()
		}
		g.ui.JSONLine(out)
		return
	}
	if g.quiet {
		return
	}
	printBackupHead(g, a, parent, s, "kept")
	g.ui.Printf("Read %s of %s; added %s (%s stored)\n", ui.Bytes(s.BytesRead-s.BytesReread), ui.Bytes(s.TotalBytes), ui.Bytes(s.DataAdded), ui.Bytes(s.DataStored))
	if s.FilesReread > 0 {
		g.ui.Printf("Read again: %s more for %s that changed while being read", ui.Bytes(s.BytesReread), ui.Count(s.FilesReread, "file", "files"))
		if s.FilesTorn > 0 {
			g.ui.Printf("; still changing on the last read, so flagged changed-during-backup: %s", ui.Count(s.FilesTorn, "file", "files"))
		}
		g.ui.Printf("\n")
	}
	printSQLiteSummary(g, a)
	g.ui.Printf("processed %s in %s\n", ui.Count(int64(s.TotalFiles), "file", "files"), dur.Round(time.Millisecond))
	g.ui.Printf("snapshot %s saved\n", sn.ID.Short())
}

// boundaryText says what a directory --one-file-system did not go into is.
func boundaryText(kind string) string {
	switch kind {
	case archiver.BoundaryMount:
		return "mount point"
	case archiver.BoundarySubvolume:
		return "btrfs subvolume; --cross-subvolumes goes into it"
	}
	return "another device"
}

// printTooLarge names the files --exclude-larger-than left out (with -v)
// and counts them.
func printTooLarge(g *globals, large []archiver.LargeFile) {
	if len(large) == 0 {
		return
	}
	var total int64
	for _, l := range large {
		total += l.Size
		if g.verbose > 0 {
			g.ui.Printf("too large: %s (%s)\n", shownPath(l.Path), ui.Bytes(l.Size))
		}
	}
	g.ui.Printf("Left out for size: %s, %s (--exclude-larger-than)\n", ui.Count(int64(len(large)), "file", "files"), ui.Bytes(total))
}

// printBackupHead prints what a backup's text summary (or a dry run's)
// starts with: entries skipped, boundaries not crossed (kept says what
// became of them), the parent, files left out for size, and the counts of
// files and folders.
func printBackupHead(g *globals, a *archiver.Archiver, parent *snapshot.Snapshot, s *snapshot.Summary, kept string) {
	for _, sk := range a.Skipped() {
		g.ui.Warnf("skipped %s: %s\n", sk.Path, sk.Error)
	}
	for _, b := range a.NotCrossed() {
		g.ui.Printf("not crossed: %s (%s), %s as an empty directory\n", shownPath(b.Path), boundaryText(b.Kind), kept)
	}
	if parent != nil {
		g.ui.Printf("using parent snapshot %s\n", parent.ID.Short())
	}
	printTooLarge(g, a.TooLarge())
	g.ui.Printf("Files:       %6d new, %6d changed, %6d unmodified\n", s.FilesNew, s.FilesChanged, s.FilesUnchanged)
	g.ui.Printf("Dirs:        %6d new, %6d changed, %6d unmodified\n", s.DirsNew, s.DirsChanged, s.DirsUnchanged)
}
