package mount

import (
	"fmt"
	"os"
	"strconv"

	"golang.org/x/sys/unix"
)

// KernelReadahead is what SetKernelReadahead asks of the kernel: enough
// for several 1 MiB reads of a sequential reader to be in flight at once.
const KernelReadahead = 4 << 20

// SetKernelReadahead raises the kernel's readahead for the FUSE
// filesystem mounted at dir (128 KiB by default, whatever the mount asks)
// to bytes, through /sys/class/bdi/MAJOR:MINOR/read_ahead_kb. Only root
// may write it: for other users it fails, and reads stay correct, with
// fewer of them in flight.
func SetKernelReadahead(dir string, bytes int) error {
	var st unix.Stat_t
	if err := unix.Stat(dir, &st); err != nil {
		return err
	}
	p := fmt.Sprintf("/sys/class/bdi/%d:%d/read_ahead_kb", unix.Major(st.Dev), unix.Minor(st.Dev))
	return os.WriteFile(p, []byte(strconv.Itoa(bytes>>10)), 0)
}
