package instant

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/rewind-backup/rewind/internal/qemu"
)

// Node names of the guest's disk in QEMU's block graph: the image file
// on the mount (read-only, raw) under the qcow2 overlay the guest sees.
const (
	nodeBaseFile = "rewind-base-file"
	nodeBase     = "rewind-base"
	nodeOvlFile  = "rewind-overlay-file"
	nodeDisk     = "rewind-disk"
	nodeDest     = "rewind-migrate"
	nodeDestFile = "rewind-migrate-file"
	migrateJob   = "rewind-migrate"
)

// Options describe the guest to start.
type Options struct {
	// Image is the raw image file (on the mount), StateDir the directory
	// of the overlay, the QMP socket and the serial log.
	Image, StateDir string
	// MemoryMiB is the guest's memory.
	MemoryMiB int
	// Disk is the device model of the disk: virtio (virtio-blk-pci) or ide.
	Disk string
	// Args go to QEMU after rewind's own.
	Args []string
	// Console gets the guest's serial output; Input, when not nil, is
	// copied to the guest's serial input.
	Console io.Writer
	Input   io.Reader
	// FirstOutput is called once, at the first byte the guest writes to
	// its serial console.
	FirstOutput func(time.Time)
}

// VM is a running QEMU.
type VM struct {
	// Overlay is the qcow2 file taking the guest's writes; Log the
	// serial console's copy; Accel kvm or tcg.
	Overlay, Log, Accel string
	cmd                 *exec.Cmd
	qmp                 *qemu.Client
	exited              chan struct{}
	waitErr             error
	stderr              *qemu.Tail
	copied              chan struct{}
}

// Start creates the overlay on opt.Image and starts QEMU with KVM when
// usable, TCG otherwise, its serial console on a pipe and QMP on a socket
// in the state directory.
func Start(ctx context.Context, opt Options) (*VM, error) {
	bin, err := qemu.LookPath(qemu.SystemProgram)
	if err != nil {
		return nil, err
	}
	if _, err := qemu.LookPath(qemu.ImgProgram); err != nil {
		return nil, err
	}
	vm := &VM{
		Overlay: filepath.Join(opt.StateDir, "overlay.qcow2"),
		Log:     filepath.Join(opt.StateDir, "serial.log"),
		Accel:   "tcg",
		exited:  make(chan struct{}),
		stderr:  &qemu.Tail{Max: 4096},
		copied:  make(chan struct{}),
	}
	if err := qemu.CreateOverlay(ctx, vm.Overlay, opt.Image, qemu.FormatRaw); err != nil {
		return nil, fmt.Errorf("create the overlay: %w", err)
	}
	sock := filepath.Join(opt.StateDir, "qmp.sock")
	os.Remove(sock)
	args := []string{"-name", "rewind-instant", "-nodefaults", "-no-user-config",
		"-display", "none", "-monitor", "none", "-serial", "stdio",
		"-qmp", "unix:" + sock + ",server=on,wait=off",
		"-m", fmt.Sprint(opt.MemoryMiB),
	}
	if qemu.KVMUsable() {
		vm.Accel = "kvm"
		args = append(args, "-accel", "kvm", "-cpu", "host")
	} else {
		args = append(args, "-accel", "tcg")
	}
	// The image on the FUSE mount is opened read-only with QEMU's usual
	// locking: the kernel keeps the OFD locks of a FUSE filesystem that
	// implements none itself, so locking=off is not needed (tried with
	// QEMU 7.2).
	args = append(args,
		"-blockdev", "driver=file,node-name="+nodeBaseFile+",filename="+opt.Image+",read-only=on",
		"-blockdev", "driver=raw,node-name="+nodeBase+",file="+nodeBaseFile+",read-only=on",
		"-blockdev", "driver=file,node-name="+nodeOvlFile+",filename="+vm.Overlay,
		"-blockdev", "driver=qcow2,node-name="+nodeDisk+",file="+nodeOvlFile+",backing="+nodeBase,
	)
	switch opt.Disk {
	case "", "virtio":
		args = append(args, "-device", "virtio-blk-pci,drive="+nodeDisk+",id=rewind-disk0,bootindex=1")
	case "ide":
		args = append(args, "-device", "ide-hd,drive="+nodeDisk+",id=rewind-disk0,bootindex=1")
	default:
		return nil, fmt.Errorf("disk model %q: give virtio or ide", opt.Disk)
	}
	args = append(args, opt.Args...)
	log, err := os.Create(vm.Log)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	out, err := cmd.StdoutPipe()
	if err != nil {
		log.Close()
		return nil, err
	}
	var in io.WriteCloser
	if opt.Input != nil {
		if in, err = cmd.StdinPipe(); err != nil {
			log.Close()
			return nil, err
		}
	}
	cmd.Stderr = vm.stderr
	if err := cmd.Start(); err != nil {
		log.Close()
		return nil, fmt.Errorf("start %s: %w", bin, err)
	}
	vm.cmd = cmd
	go func() {
		vm.waitErr = cmd.Wait()
		close(vm.exited)
	}()
	go func() {
		defer close(vm.copied)
		defer log.Close()
		copySerial(out, io.MultiWriter(opt.Console, log), opt.FirstOutput)
	}()
	if in != nil {
		go func() {
			io.Copy(in, opt.Input)
			in.Close()
		}()
	}
	if err := vm.dial(ctx, sock); err != nil {
		vm.Kill()
		return nil, err
	}
	return vm, nil
}

// copySerial copies the console and reports the first byte's time.
func copySerial(r io.Reader, w io.Writer, first func(time.Time)) {
	buf := make([]byte, 32<<10)
	seen := false
	for {
		n, err := r.Read(buf)
		if n > 0 {
			if !seen {
				seen = true
				if first != nil {
					first(time.Now())
				}
			}
			w.Write(buf[:n])
		}
		if err != nil {
			return
		}
	}
}

// dial connects to QMP once QEMU has made its socket.
func (vm *VM) dial(ctx context.Context, sock string) error {
	deadline := time.Now().Add(30 * time.Second)
	for {
		c, err := qemu.Dial(ctx, sock)
		if err == nil {
			vm.qmp = c
			return nil
		}
		select {
		case <-vm.exited:
			return fmt.Errorf("QEMU exited at start (%v): %s", vm.waitErr, vm.stderr.String())
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("QEMU's QMP socket: %w", err)
		}
	}
}

// Exited is closed when QEMU has exited.
func (vm *VM) Exited() <-chan struct{} { return vm.exited }

// Wait waits for QEMU to exit and its console to be copied; a QEMU that
// failed carries the end of its standard error.
func (vm *VM) Wait() error {
	<-vm.exited
	<-vm.copied
	if vm.qmp != nil {
		vm.qmp.Close()
	}
	if vm.waitErr != nil {
		return fmt.Errorf("QEMU: %v: %s", vm.waitErr, strings.TrimSpace(vm.stderr.String()))
	}
	return nil
}

// Quit asks QEMU to stop now (the guest is not shut down), and kills it
// when it does not within a few seconds.
func (vm *VM) Quit() {
	if vm.qmp != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		vm.qmp.Execute(ctx, "quit", nil, nil)
		cancel()
	}
	select {
	case <-vm.exited:
	case <-time.After(5 * time.Second):
		vm.Kill()
	}
}

// Kill kills QEMU.
func (vm *VM) Kill() {
	if vm.cmd != nil && vm.cmd.Process != nil {
		vm.cmd.Process.Kill()
	}
	<-vm.exited
}
