// Package progpath finds the external programs rewind runs as root:
// mkfs, sfdisk, losetup, grub-install and their peers live in sbin
// directories that a user's PATH (or a service's) may leave out.
package progpath

import (
	"os"
	"os/exec"
	"path/filepath"
)

// Sbin are the directories searched after PATH by default.
var Sbin = []string{"/usr/sbin", "/sbin"}

// Find returns where the program name is: PATH first, then each of dirs
// in order; "" when it is in none of them as an executable file.
func Find(name string, dirs []string) string {
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	for _, dir := range dirs {
		p := filepath.Join(dir, name)
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0 {
			return p
		}
	}
	return ""
}
