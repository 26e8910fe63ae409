package testutil

import (
	"os"
	"testing"
)

// RequireFUSE skips the test unless FUSE mounts can be made here (root,
// /dev/fuse and fusermount3 from the fuse3 package), or fails it under
// CI=true. It returns fusermount3's path.
func RequireFUSE(t testing.TB) string {
	t.Helper()
	if !IsRoot() {
		unavailable(t, "needs root (the mount tests compare owners and read trusted xattrs)")
	}
	if _, err := os.Stat("/dev/fuse"); err != nil {
		unavailable(t, "/dev/fuse is missing (%v): load the fuse module", err)
	}
	if p := RequireTool(t, "fusermount3"); p != "" {
		return p
	}
	unavailable(t, "fusermount3 not found (install fuse3: scripts/fuse.sh)")
	return ""
}
