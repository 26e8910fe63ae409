package archiver

import "golang.org/x/sys/unix"

// cacheDirSignature starts a valid CACHEDIR.TAG file
// (https://bford.info/cachedir/).
const cacheDirSignature = "Signature: 8a477f597d28d172789f06886806bc55"

// isCacheDir reports whether the directory open as dirfd has a valid
// CACHEDIR.TAG.
func isCacheDir(dirfd int) bool {
	fd, err := unix.Openat(dirfd, "CACHEDIR.TAG", unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_CLOEXEC|unix.O_NONBLOCK, 0)
	if err != nil {
		return false
	}
	defer unix.Close(fd)
	buf := make([]byte, len(cacheDirSignature))
	n, _ := unix.Read(fd, buf)
	return n == len(buf) && string(buf) == cacheDirSignature
}
