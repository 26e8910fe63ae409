package mount

import (
	"github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
)

// noOpendir spares the kernel a round trip to the mount per directory
// opened, and one per directory closed: it answers OPENDIR with ENOSYS,
// which tells the kernel (Linux 5.1 and later) that opening a directory
// needs no call (it sends no RELEASEDIR either), and reads directories
// without a handle of the kernel's: each READDIR(PLUS) opens the
// directory inside the mount, reads from the offset asked, and closes
// it. Listings are built once per directory (dir.load), and nothing in
// the mount changes, so reading from an offset of a new handle reads
// what the kernel's handle would have.
//
// A kernel before 5.1 (FUSE protocol 7.29) would fail the opendir(2)
// instead: there OPENDIR is passed on as it comes.
type noOpendir struct {
	fuse.RawFileSystem
	server *fuse.Server
}

// noOpendirMinor is the FUSE protocol minor version of
// FUSE_NO_OPENDIR_SUPPORT.
const noOpendirMinor = 29

func (n *noOpendir) Init(s *fuse.Server) {
	n.server = s
	n.RawFileSystem.Init(s)
}

// passOn reports whether the kernel opens directories itself.
func (n *noOpendir) passOn() bool {
	k := n.server.KernelSettings()
	return k.Major == 7 && k.Minor < noOpendirMinor
}

// Serve mounts root at dir, as fs.Mount does, without OPENDIR round
// trips.
func Serve(dir string, root fs.InodeEmbedder, opts *fs.Options) (*fuse.Server, error) {
	raw := &noOpendir{RawFileSystem: fs.NewNodeFS(root, opts)}
	server, err := fuse.NewServer(raw, dir, &opts.MountOptions)
	if err != nil {
		return nil, err
	}
	go server.Serve()
	if err := server.WaitMount(); err != nil {
		return nil, err
	}
	return server, nil
}

func (n *noOpendir) OpenDir(cancel <-chan struct{}, in *fuse.OpenIn, out *fuse.OpenOut) fuse.Status {
	if n.passOn() {
		return n.RawFileSystem.OpenDir(cancel, in, out)
	}
	return fuse.ENOSYS
}

func (n *noOpendir) ReadDir(cancel <-chan struct{}, in *fuse.ReadIn, out *fuse.DirEntryList) fuse.Status {
	return n.withDir(cancel, in, func(in *fuse.ReadIn) fuse.Status { return n.RawFileSystem.ReadDir(cancel, in, out) })
}

func (n *noOpendir) ReadDirPlus(cancel <-chan struct{}, in *fuse.ReadIn, out *fuse.DirEntryList) fuse.Status {
	return n.withDir(cancel, in, func(in *fuse.ReadIn) fuse.Status { return n.RawFileSystem.ReadDirPlus(cancel, in, out) })
}

// withDir runs read on a handle of the directory opened for it alone.
func (n *noOpendir) withDir(cancel <-chan struct{}, in *fuse.ReadIn, read func(*fuse.ReadIn) fuse.Status) fuse.Status {
	if n.passOn() {
		return read(in)
	}
	var out fuse.OpenOut
	if st := n.RawFileSystem.OpenDir(cancel, &fuse.OpenIn{InHeader: in.InHeader}, &out); !st.Ok() {
		return st
	}
	own := *in
	own.Fh = out.Fh
	st := read(&own)
	n.RawFileSystem.ReleaseDir(&fuse.ReleaseIn{InHeader: in.InHeader, Fh: out.Fh})
	return st
}
