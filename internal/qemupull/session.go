package qemupull

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"syscall"
	"time"

	"github.com/rewind-backup/rewind/internal/nbd"
	"github.com/rewind-backup/rewind/internal/qemu"
)

// Names of what a backup adds to QEMU while it runs; a leftover of a
// killed backup is removed by the next (Start).
const (
	fleeceNode = "rewind-fleece"
	jobID      = "rewind-fleece"
	exportID   = "rewind"
	exportName = "rewind"
)

// Options say what to read.
type Options struct {
	// Socket is QEMU's QMP socket, Drive the drive ID or node name.
	Socket, Drive string
	// SinceBitmap is the dirty bitmap the parent snapshot left on the
	// drive ("" without a usable parent): when it is there, only the
	// blocks it marks are read. SinceWhy says why there is none, for
	// the fallback message.
	SinceBitmap, SinceWhy string
	// Granularity of the new bitmap, a power of two from 512 bytes.
	Granularity int64
	// TempDir holds the fleecing image and the NBD socket; QEMU must
	// be able to open them. "" means os.TempDir().
	TempDir string
}

// Session is a backup in progress: a frozen view of the drive exported
// over NBD, and the bitmap started at its moment.
type Session struct {
	qmp *qemu.Client
	dr  *drive
	dir string
	// NBD reads the frozen view of the drive.
	NBD *nbd.Conn
	// Size is the drive's size in bytes.
	Size int64
	// Node is the drive's block node; Name the VM's name (-name), or "".
	Node, Name string
	// Bitmap is the new bitmap, recording writes since this backup's
	// moment; Since the parent's bitmap read now, or "" for a read of
	// the whole allocation, and Fallback then why.
	Bitmap, Since, Fallback string
	// Recovered says what a killed backup left behind and Start undid.
	Recovered []string

	jobStarted, serverStarted, exportAdded, nodeAdded bool
	whole                                             bool
}

// Start connects to QEMU, checks the drive and the parent's bitmap,
// and sets up the frozen view. On error nothing of it is left in QEMU.
func Start(ctx context.Context, opt Options) (_ *Session, err error) {
	dctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	c, err := qemu.Dial(dctx, opt.Socket)
	cancel()
	if err != nil {
		if dctx.Err() != nil && ctx.Err() == nil {
			err = fmt.Errorf("%w: QEMU sent no greeting within 15s; a QMP socket serves one client at a time, so another (libvirt, Proxmox) may hold it: give rewind its own with another -qmp unix:PATH,server=on,wait=off", err)
		}
		return nil, fmt.Errorf("QEMU at %s: %w", opt.Socket, err)
	}
	s := &Session{qmp: c}
	defer func() {
		if err != nil {
			s.teardown(context.WithoutCancel(ctx))
			s.dropNew(context.WithoutCancel(ctx))
			c.Close()
		}
	}()
	var nm struct {
		Name string `json:"name"`
	}
	if err := c.Execute(ctx, "query-name", nil, &nm); err == nil {
		s.Name = nm.Name
	}
	if s.Recovered, err = s.cleanLeftovers(ctx); err != nil {
		return nil, err
	}
	if s.dr, err = findDrive(ctx, c, opt.Drive); err != nil {
		return nil, err
	}
	s.Node, s.Size = s.dr.NodeName, s.dr.Image.VirtualSize
	folded, err := s.foldBitmaps(ctx, opt.SinceBitmap)
	if err != nil {
		return nil, err
	}
	s.Recovered = append(s.Recovered, folded...)
	if s.Size <= 0 {
		return nil, fmt.Errorf("drive %q: QEMU gives no size for node %s", opt.Drive, s.Node)
	}
	if s.Since, s.Fallback, err = s.chooseSince(ctx, opt); err != nil {
		return nil, err
	}
	if err := s.freeze(ctx, opt); err != nil {
		return nil, err
	}
	contexts := []string{"base:allocation"}
	if s.Since != "" {
		contexts = append(contexts, "qemu:dirty-bitmap:"+s.Since)
	}
	if s.NBD, err = nbd.Dial(ctx, filepath.Join(s.dir, "nbd.sock"), exportName, contexts...); err != nil {
		return nil, err
	}
	if s.NBD.Size != s.Size {
		return nil, fmt.Errorf("NBD export of %d bytes, but the drive has %d", s.NBD.Size, s.Size)
	}
	return s, nil
}

// chooseSince decides whether the parent's bitmap can be used.
func (s *Session) chooseSince(ctx context.Context, opt Options) (string, string, error) {
	if opt.SinceBitmap == "" {
		why := opt.SinceWhy
		if why == "" {
			why = "no parent snapshot of this drive"
		}
		return "", why, nil
	}
	bms, err := bitmaps(ctx, s.qmp, s.Node)
	if err != nil {
		return "", "", err
	}
	i := slices.IndexFunc(bms, func(b bitmap) bool { return b.Name == opt.SinceBitmap })
	switch {
	case i < 0:
		return "", fmt.Sprintf("the parent's dirty bitmap %s is not on drive %s (QEMU was restarted without saving it, or it was removed)", opt.SinceBitmap, opt.Drive), nil
	case bms[i].Inconsistent:
		return "", fmt.Sprintf("the parent's dirty bitmap %s is inconsistent (QEMU stopped without saving it)", opt.SinceBitmap), nil
	case !bms[i].Recording:
		return "", fmt.Sprintf("the parent's dirty bitmap %s is not recording", opt.SinceBitmap), nil
	}
	return opt.SinceBitmap, "", nil
}

// freeze adds the new bitmap and the copy-before-write job into a
// fleecing image in one transaction, so that the bitmap starts at the
// moment of the frozen view, and exports the view over NBD.
func (s *Session) freeze(ctx context.Context, opt Options) error {
	var err error
	if s.dir, err = os.MkdirTemp(opt.TempDir, "rewind-qemu-"); err != nil {
		return err
	}
	img := filepath.Join(s.dir, "fleece.qcow2")
	if err := qemu.Create(ctx, img, qemu.FormatQcow2, s.Size); err != nil {
		return fmt.Errorf("fleecing image: %w", err)
	}
	if err := giveToQEMU(opt.Socket, s.dir, img); err != nil {
		return err
	}
	err = s.qmp.Execute(ctx, "blockdev-add", map[string]any{
		"driver": "qcow2", "node-name": fleeceNode, "backing": s.Node,
		"file": map[string]any{"driver": "file", "filename": img},
	}, nil)
	if err != nil {
		return err
	}
	s.nodeAdded = true
	name, err := newBitmapName()
	if err != nil {
		return err
	}
	g := opt.Granularity
	if g < 512 || g&(g-1) != 0 {
		g = 64 << 10
	}
	actions := []map[string]any{
		{"type": "block-dirty-bitmap-add", "data": map[string]any{"node": s.Node, "name": name, "persistent": true, "granularity": g}},
	}
	if s.Since != "" {
		actions = append(actions, map[string]any{"type": "block-dirty-bitmap-disable", "data": map[string]any{"node": s.Node, "name": s.Since}})
	}
	actions = append(actions, map[string]any{"type": "blockdev-backup", "data": map[string]any{
		"job-id": jobID, "device": s.Node, "target": fleeceNode, "sync": "none", "auto-dismiss": true,
	}})
	if err := s.qmp.Execute(ctx, "transaction", map[string]any{"actions": actions}, nil); err != nil {
		return err
	}
	s.Bitmap, s.jobStarted = name, true
	err = s.qmp.Execute(ctx, "nbd-server-start", map[string]any{
		"addr": map[string]any{"type": "unix", "data": map[string]any{"path": filepath.Join(s.dir, "nbd.sock")}},
	}, nil)
	if err != nil {
		return fmt.Errorf("%w (rewind needs QEMU's NBD server for itself during the backup)", err)
	}
	s.serverStarted = true
	exp := map[string]any{"type": "nbd", "id": exportID, "node-name": fleeceNode, "name": exportName, "writable": false}
	if s.Since != "" {
		exp["bitmaps"] = []string{s.Since}
	}
	if err := s.qmp.Execute(ctx, "block-export-add", exp, nil); err != nil {
		return err
	}
	s.exportAdded = true
	return nil
}

// giveToQEMU makes the private directory and the fleecing image QEMU's
// when it runs as another user (libvirt's qemu user, say): the owner of
// its QMP socket, which QEMU created. The old content of the guest's
// blocks goes there, so nobody else may read it. A copy-before-write
// that cannot write would fail the guest's writes.
func giveToQEMU(socket string, paths ...string) error {
	var st syscall.Stat_t
	if err := syscall.Stat(socket, &st); err != nil {
		return err
	}
	if int(st.Uid) == os.Geteuid() {
		return nil
	}
	for _, p := range paths {
		if err := os.Chown(p, int(st.Uid), int(st.Gid)); err != nil {
			return fmt.Errorf("QEMU runs as uid %d and must write the fleecing image: %w (run rewind as root or as QEMU's user)", st.Uid, err)
		}
	}
	return nil
}

func newBitmapName() (string, error) {
	var b [6]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", err
	}
	return BitmapPrefix + time.Now().UTC().Format("20060102T150405") + "-" + hex.EncodeToString(b[:]), nil
}

// Finish ends the backup. With ok (the snapshot is saved), the parent's
// bitmap is removed and the new one records from this snapshot on;
// otherwise the new bitmap is merged back into the parent's, which
// records again, so that no write is lost to the next backup.
func (s *Session) Finish(ctx context.Context, ok bool) error {
	ctx = context.WithoutCancel(ctx)
	defer s.qmp.Close()
	if s.gone(ok) {
		if s.NBD != nil {
			s.NBD.Close()
		}
		os.RemoveAll(s.dir)
		return ErrGone
	}
	err := s.teardown(ctx)
	if ok {
		if s.Since != "" {
			if e := s.qmp.Execute(ctx, "block-dirty-bitmap-remove", map[string]any{"node": s.Node, "name": s.Since}, nil); e != nil && err == nil {
				err = e
			}
		}
		return err
	}
	if e := s.dropNew(ctx); e != nil && err == nil {
		err = e
	}
	return err
}

// ErrGone is returned by Finish when QEMU has exited.
var ErrGone = errors.New("QEMU exited during the backup; its dirty bitmaps are lost unless it stopped cleanly, and the next backup reads everything that holds data")

// gone reports whether QEMU's QMP connection has ended; after a failed
// backup it waits a little for the end to be noticed, since a dead
// NBD connection is often the first sign.
func (s *Session) gone(ok bool) bool {
	wait := time.Duration(0)
	if !ok {
		wait = 500 * time.Millisecond
	}
	select {
	case <-s.qmp.Done():
		return true
	case <-time.After(wait):
		return false
	}
}

// dropNew undoes the new bitmap: merged into the parent's, which
// records again, or removed when there is none.
func (s *Session) dropNew(ctx context.Context) error {
	if s.Bitmap == "" {
		return nil
	}
	var actions []map[string]any
	if s.Since != "" {
		actions = append(actions,
			map[string]any{"type": "block-dirty-bitmap-enable", "data": map[string]any{"node": s.Node, "name": s.Since}},
			map[string]any{"type": "block-dirty-bitmap-merge", "data": map[string]any{"node": s.Node, "target": s.Since, "bitmaps": []string{s.Bitmap}}})
	}
	actions = append(actions, map[string]any{"type": "block-dirty-bitmap-remove", "data": map[string]any{"node": s.Node, "name": s.Bitmap}})
	if err := s.qmp.Execute(ctx, "transaction", map[string]any{"actions": actions}, nil); err != nil {
		return fmt.Errorf("give the dirty bitmap %s back to %s: %w", s.Bitmap, s.Since, err)
	}
	s.Bitmap = ""
	return nil
}

// teardown closes the NBD connection and removes the export, the NBD
// server, the copy-before-write job and the fleecing image.
func (s *Session) teardown(ctx context.Context) error {
	var errs []error
	if s.NBD != nil {
		s.NBD.Close()
		s.NBD = nil
	}
	if s.exportAdded {
		errs = append(errs, s.delExport(ctx))
		s.exportAdded = false
	}
	if s.serverStarted {
		errs = append(errs, s.qmp.Execute(ctx, "nbd-server-stop", nil, nil))
		s.serverStarted = false
	}
	if s.jobStarted {
		errs = append(errs, s.cancelJob(ctx))
		s.jobStarted = false
	}
	if s.nodeAdded {
		errs = append(errs, s.qmp.Execute(ctx, "blockdev-del", map[string]any{"node-name": fleeceNode}, nil))
		s.nodeAdded = false
	}
	if s.dir != "" {
		errs = append(errs, os.RemoveAll(s.dir))
		s.dir = ""
	}
	return errors.Join(errs...)
}

// delExport removes the export and waits until QEMU has let go of it.
func (s *Session) delExport(ctx context.Context) error {
	if err := s.qmp.Execute(ctx, "block-export-del", map[string]any{"id": exportID, "mode": "hard"}, nil); err != nil {
		return err
	}
	return s.waitGone(ctx, "query-block-exports", "id", exportID)
}

// cancelJob ends the copy-before-write job (its normal end: a job of
// sync none runs until cancelled) and waits until it is gone.
func (s *Session) cancelJob(ctx context.Context) error {
	err := s.qmp.Execute(ctx, "block-job-cancel", map[string]any{"device": jobID, "force": true}, nil)
	if err != nil {
		return err
	}
	return s.waitGone(ctx, "query-block-jobs", "device", jobID)
}

// waitGone polls query until no entry has field equal to value.
func (s *Session) waitGone(ctx context.Context, query, field, value string) error {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	for {
		var list []map[string]any
		if err := s.qmp.Execute(ctx, query, nil, &list); err != nil {
			return err
		}
		if !slices.ContainsFunc(list, func(m map[string]any) bool { return m[field] == value }) {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s %s still there after a minute", field, value)
		case <-time.After(20 * time.Millisecond):
		}
	}
}
