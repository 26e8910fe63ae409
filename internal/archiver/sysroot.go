package archiver

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// applySystemRoot turns Options.SystemRoot into the mapping that reads
// every path of the system below it: a ReadFrom of "/" that keeps the
// device numbers as they are (each filesystem of that system has its
// own, and CrossDevices names them).
func applySystemRoot(opt *Options) error {
	if opt.SystemRoot == "" {
		return nil
	}
	if len(opt.ReadFrom) > 0 {
		return errors.New("a system root and read-from mappings cannot be combined")
	}
	root, err := filepath.Abs(opt.SystemRoot)
	if err != nil {
		return fmt.Errorf("system root %s: %w", opt.SystemRoot, err)
	}
	root = filepath.Clean(root)
	fi, err := os.Stat(root)
	if err != nil {
		return fmt.Errorf("system root: %w", err)
	}
	if !fi.IsDir() {
		return fmt.Errorf("system root %s: not a folder", root)
	}
	opt.SystemRoot = root
	if root != "/" {
		opt.ReadFrom = []ReadFrom{{Real: "/", Source: root}}
	}
	opt.OneFileSystem = true
	opt.CrossSubvolumes = true
	return nil
}
