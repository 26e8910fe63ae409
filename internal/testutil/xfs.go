package testutil

import "testing"

// xfsImageSize is the apparent size of the sparse image behind XFS: 300
// MiB is the smallest filesystem mkfs.xfs accepts.
const xfsImageSize = 300 << 20

// XFS returns the root of a new, empty XFS filesystem with mkfs.xfs's
// defaults (4 KiB blocks, reflink, large extended attribute forks),
// mounted on a loop device until the test ends, as LoopFS does. XFS holds
// what ext4 and btrfs refuse (a file may carry thousands of extended
// attributes with values up to 64 KiB) and preallocates space past the
// end of a growing file, which a careless writer leaves allocated.
//
// It needs root and xfsprogs (scripts/test-deps.sh installs it): without
// them the test is skipped, or failed under CI=true.
func XFS(t testing.TB) string {
	t.Helper()
	return LoopFS(t, "xfs", xfsImageSize)
}
