// Package qemu talks to QEMU: the QEMU Machine Protocol (QMP) of a running
// emulator, and the qemu-img program. It is the one place rewind reaches
// QEMU from; the dirty-bitmap backups of running guests and instant
// recovery (docs/IMAGES.md) build on it.
//
// Programs are run directly with their arguments, never through a shell.
// A missing program gets an error naming the Debian package to install.
package qemu
