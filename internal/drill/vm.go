package drill

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/rewind-backup/rewind/internal/qemu"

	"github.com/rewind-backup/rewind/internal/qemu/uefi"
)

// BootOptions describe the VM a drill boots.
type BootOptions struct {
	// Disk is the qcow2 disk (the drill's own copy: the guest writes to
	// it). Dir holds the serial log, the guest agent's socket and the
	// UEFI variables.
	Disk, Dir string
	// More are the machine's other disks (qcow2), attached after Disk
	// without a boot index.
	More []string
	// BootMode is bios or uefi.
	BootMode  string
	MemoryMiB int
	// Ports are the guest's TCP ports to forward from 127.0.0.1.
	Ports []int
}

// VM is the drill's running guest.
type VM struct {
	// Serial is the file the guest's serial console is written to;
	// Agent the socket of the guest agent channel.
	Serial, Agent string
	// Accel is kvm or tcg.
	Accel string
	// Forwarded maps a guest port to the 127.0.0.1 port that reaches it.
	Forwarded map[int]int

	cmd     *exec.Cmd
	exited  chan struct{}
	waitErr error
	stderr  *qemu.Tail
}

// freePort asks the kernel for a free TCP port on 127.0.0.1.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// qemuArgs builds QEMU's command line; firmware are the UEFI firmware's
// arguments (uefi.Args; none for BIOS).
func qemuArgs(o BootOptions, accel string, fwd map[int]int, serial, agent string, firmware []string) []string {
	args := []string{"-name", "rewind-drill", "-nodefaults", "-no-user-config",
		"-display", "none", "-monitor", "none", "-no-reboot",
		"-serial", "file:" + serial,
		"-m", fmt.Sprint(o.MemoryMiB),
		"-accel", accel,
	}
	if accel == "kvm" {
		args = append(args, "-cpu", "host")
	}
	args = append(args, firmware...)
	args = append(args, "-drive", "file="+o.Disk+",format=qcow2,if=none,id=rewind-disk",
		"-device", "virtio-blk-pci,drive=rewind-disk,bootindex=0")
	for i, d := range o.More {
		id := fmt.Sprintf("rewind-disk%d", i+2)
		args = append(args, "-drive", "file="+d+",format=qcow2,if=none,id="+id, "-device", "virtio-blk-pci,drive="+id)
	}
	// restrict=on: the guest can reach neither the host nor any network;
	// only the forwarded ports reach the guest, from 127.0.0.1. No option
	// ROM: the guest boots from its disk, never from the network.
	netdev := "user,id=rewind-net,restrict=on"
	for _, gp := range sortedPorts(fwd) {
		netdev += fmt.Sprintf(",hostfwd=tcp:127.0.0.1:%d-:%d", fwd[gp], gp)
	}
	args = append(args, "-netdev", netdev, "-device", "virtio-net-pci,netdev=rewind-net,romfile=",
		"-device", "virtio-serial-pci",
		"-chardev", "socket,id=rewind-qga,path="+agent+",server=on,wait=off",
		"-device", "virtserialport,chardev=rewind-qga,name=org.qemu.guest_agent.0")
	return args
}

func sortedPorts(m map[int]int) []int { return slices.Sorted(maps.Keys(m)) }

// Boot starts QEMU on o.Disk: KVM when /dev/kvm opens, else TCG; SeaBIOS
// or OVMF by the boot mode. The VM must be stopped with Kill.
func Boot(ctx context.Context, o BootOptions) (*VM, error) {
	bin, err := qemu.LookPath(qemu.SystemProgram)
	if err != nil {
		return nil, err
	}
	if o.MemoryMiB <= 0 {
		o.MemoryMiB = 1024
	}
	vm := &VM{Serial: filepath.Join(o.Dir, "serial.log"), Agent: filepath.Join(o.Dir, "qga.sock"),
		Accel: "tcg", Forwarded: map[int]int{}, exited: make(chan struct{}), stderr: &qemu.Tail{Max: 4096}}
	if qemu.KVMUsable() {
		vm.Accel = "kvm"
	}
	for _, p := range o.Ports {
		if _, ok := vm.Forwarded[p]; ok {
			continue
		}
		hp, err := freePort()
		if err != nil {
			return nil, fmt.Errorf("a free port for guest port %d: %w", p, err)
		}
		vm.Forwarded[p] = hp
	}
	var firmware []string
	switch o.BootMode {
	case "bios", "":
	case "uefi":
		var err error
		if firmware, err = uefi.Args(o.Dir); err != nil {
			return nil, fmt.Errorf("the snapshot's machine boots with UEFI: %w", err)
		}
	default:
		return nil, fmt.Errorf("boot mode %q: rewind boots bios or uefi machines", o.BootMode)
	}
	if err := os.WriteFile(vm.Serial, nil, 0o600); err != nil {
		return nil, err
	}
	os.Remove(vm.Agent)
	vm.cmd = exec.Command(bin, qemuArgs(o, vm.Accel, vm.Forwarded, vm.Serial, vm.Agent, firmware)...)
	vm.cmd.Stdout, vm.cmd.Stderr = vm.stderr, vm.stderr
	// The guest dies with rewind, whatever ends it.
	vm.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := vm.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", bin, err)
	}
	go func() {
		vm.waitErr = vm.cmd.Wait()
		close(vm.exited)
	}()
	return vm, nil
}

// Exited is closed when QEMU has exited.
func (vm *VM) Exited() <-chan struct{} { return vm.exited }

// ExitError says how QEMU ended, with the end of what it printed.
func (vm *VM) ExitError() error {
	select {
	case <-vm.exited:
	default:
		return nil
	}
	msg := strings.TrimSpace(vm.stderr.String())
	if vm.waitErr != nil {
		return fmt.Errorf("QEMU exited: %v: %s", vm.waitErr, msg)
	}
	if msg != "" {
		return fmt.Errorf("the guest powered off or rebooted (QEMU: %s)", msg)
	}
	return errors.New("the guest powered off or rebooted")
}

// Kill stops the guest at once (its disk is the drill's own copy) and
// waits for QEMU to exit.
func (vm *VM) Kill() {
	if vm.cmd != nil && vm.cmd.Process != nil {
		vm.cmd.Process.Kill()
		<-vm.exited
	}
}

// Console is the end of the serial console (at most max bytes).
func (vm *VM) Console(max int) string {
	b, _ := os.ReadFile(vm.Serial)
	if len(b) > max {
		b = b[len(b)-max:]
	}
	return string(b)
}

// waitFor polls every interval until try succeeds, ctx ends or the VM
// exits; it returns try's last error.
func (vm *VM) waitFor(ctx context.Context, interval time.Duration, try func(context.Context) error) error {
	var last error
	for {
		if last = try(ctx); last == nil {
			return nil
		}
		var g *giveUp
		if errors.As(last, &g) {
			return g.err
		}
		select {
		case <-ctx.Done():
			return last
		case <-vm.exited:
			// One last look: the guest may have answered before it went.
			if err := try(ctx); err == nil {
				return nil
			}
			return fmt.Errorf("%v (%v)", last, vm.ExitError())
		case <-time.After(interval):
		}
	}
}
