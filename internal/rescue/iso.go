package rescue

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// ISOPackages are the Debian packages grub-mkrescue needs for an ISO
// that boots with BIOS and UEFI.
const ISOPackages = "grub-common xorriso grub-pc-bin grub-efi-amd64-bin mtools"

// isoTools are the programs that make the ISO.
type isoTools struct {
	mkrescue string
}

// findISOTools checks for grub-mkrescue and what it runs, before any
// work is done.
func findISOTools() (*isoTools, error) {
	var lack []string
	t := &isoTools{mkrescue: lookTool("grub-mkrescue")}
	if t.mkrescue == "" {
		lack = append(lack, "grub-mkrescue")
	}
	for _, tool := range []string{"xorriso", "mformat"} {
		if lookTool(tool) == "" {
			lack = append(lack, tool)
		}
	}
	for _, d := range GrubDirs {
		if _, err := os.Stat(d); err != nil {
			lack = append(lack, d)
		}
	}
	if len(lack) > 0 {
		return nil, fmt.Errorf("--iso needs %s, which this machine lacks: install the Debian packages %s (or leave out --iso and boot vmlinuz and initrd.img by PXE or QEMU)",
			strings.Join(lack, ", "), ISOPackages)
	}
	return t, nil
}

// grubCfg boots the rescue system from the ISO: on the screen by
// default, on the first serial port as the second entry.
const grubCfg = `serial --unit=0 --speed=115200
terminal_input console serial
terminal_output console serial
set timeout=5
menuentry "rewind rescue system" {
  linux /boot/vmlinuz console=tty0 quiet
  initrd /boot/initrd.img
}
menuentry "rewind rescue system (serial console ttyS0)" {
  linux /boot/vmlinuz console=tty0 console=ttyS0,115200 quiet
  initrd /boot/initrd.img
}
`

// build runs grub-mkrescue on a folder holding the kernel, the
// initramfs and grub.cfg.
func (t *isoTools) build(ctx context.Context, kernel, initrd, out string) error {
	dir, err := os.MkdirTemp(filepath.Dir(out), ".iso-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	if err := os.MkdirAll(filepath.Join(dir, "boot", "grub"), 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "boot", "grub", "grub.cfg"), []byte(grubCfg), 0o644); err != nil {
		return err
	}
	for src, dst := range map[string]string{kernel: "vmlinuz", initrd: "initrd.img"} {
		// a hard link where it can, the files are tens of MB
		if err := os.Link(src, filepath.Join(dir, "boot", dst)); err != nil {
			b, err := os.ReadFile(src)
			if err != nil {
				return err
			}
			if err := os.WriteFile(filepath.Join(dir, "boot", dst), b, 0o644); err != nil {
				return err
			}
		}
	}
	var stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, t.mkrescue, "-o", out, dir, "--", "-volid", "REWIND_RESCUE")
	cmd.Stdout = &stderr
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("grub-mkrescue: %v: %s", err, strings.TrimSpace(stderr.String()))
	}
	return nil
}
