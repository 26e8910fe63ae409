// Package uefi is the firmware of guests that boot by UEFI: OVMF, as
// Debian's ovmf package installs it. It imports nothing of rewind's, so
// that the tests' helpers and the drills share it.
package uefi

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
)

// OVMF's firmware and the template of its variable store (Debian's
// ovmf package), for guests that boot by UEFI.
var (
	Code = "/usr/share/OVMF/OVMF_CODE.fd"
	Vars = "/usr/share/OVMF/OVMF_VARS.fd"
)

// Args are QEMU's arguments for a UEFI boot: OVMF's code read-only
// and a private copy of its variable store, written into dir (the guest
// writes its boot entries there).
func Args(dir string) ([]string, error) {
	if _, err := os.Stat(Code); err != nil {
		return nil, fmt.Errorf("UEFI firmware %s is missing: install the ovmf package", Code)
	}
	vars := filepath.Join(dir, "OVMF_VARS.fd")
	if err := copyNew(Vars, vars); err != nil {
		return nil, fmt.Errorf("the UEFI variables: %w (install the ovmf package)", err)
	}
	return []string{
		"-drive", "if=pflash,format=raw,unit=0,readonly=on,file=" + Code,
		"-drive", "if=pflash,format=raw,unit=1,file=" + vars,
	}, nil
}

// copyNew copies src into the new file dst.
func copyNew(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}
