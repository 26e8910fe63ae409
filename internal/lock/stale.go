package lock

import (
	"errors"
	"io/fs"
	"os"
	"os/user"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// IsStale reports whether the lock can be ignored at time now: its process
// is gone from this host, this host rebooted since it was taken, or it was
// not refreshed for longer than staleAfter (0: DefaultStaleAfter). See the
// package documentation.
func (i Info) IsStale(now time.Time, staleAfter time.Duration) bool {
	if staleAfter <= 0 {
		staleAfter = DefaultStaleAfter
	}
	if now.Round(0).Sub(i.Refreshed) > staleAfter {
		return true
	}
	host := hostname()
	if host == "" || i.Host != host {
		return false
	}
	boot := bootID()
	if boot == "" || i.BootID == "" {
		return false // cannot tell which boot it was taken in
	}
	if i.BootID != boot {
		return true
	}
	if ns := pidNamespace(); ns == "" || i.PIDNamespace != ns {
		return false // its processes are not ours to see
	}
	return !processAlive(i.PID, i.PIDStart)
}

// identity is what a lock records about its holder.
type identity struct {
	host, user, bootID, pidNS string
	pid                       int
	pidStart                  uint64
}

// self returns this process's identity.
func self() identity {
	me := identity{host: hostname(), user: userName(), bootID: bootID(), pidNS: pidNamespace(), pid: os.Getpid()}
	if st, err := readProcStat(me.pid); err == nil {
		me.pidStart = st.start
	}
	return me
}

// hostname is REWIND_HOSTNAME if set, else the kernel's host name, else
// "" when it cannot be found.
func hostname() string {
	if h := os.Getenv("REWIND_HOSTNAME"); h != "" {
		return h
	}
	h, err := os.Hostname()
	if err != nil {
		return ""
	}
	return h
}

func userName() string {
	if u, err := user.Current(); err == nil && u.Username != "" {
		return u.Username
	}
	if u := os.Getenv("USER"); u != "" {
		return u
	}
	return strconv.Itoa(os.Getuid())
}

// bootID is this boot's ID, or "" where the kernel does not tell it.
var bootID = sync.OnceValue(func() string {
	b, err := os.ReadFile("/proc/sys/kernel/random/boot_id")
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
})

// pidNamespace names this process's PID namespace ("pid:[4026531836]"), or
// is "" where it cannot be found.
var pidNamespace = sync.OnceValue(func() string {
	ns, err := os.Readlink("/proc/self/ns/pid")
	if err != nil {
		return ""
	}
	return ns
})

// procStat is what lock staleness needs from /proc/PID/stat.
type procStat struct {
	state byte   // field 3: R, S, D, Z (zombie), X (dead), ...
	start uint64 // field 22: start time in clock ticks since boot
}

// readProcStat reads /proc/pid/stat. The second field, the command name,
// is in parentheses and may itself hold spaces and parentheses, so the
// fields are counted from the last ')'.
func readProcStat(pid int) (procStat, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return procStat{}, err
	}
	return parseProcStat(string(b))
}

func parseProcStat(s string) (procStat, error) {
	end := strings.LastIndexByte(s, ')')
	if end < 0 {
		return procStat{}, errors.New("proc stat: no command name")
	}
	fields := strings.Fields(s[end+1:]) // fields[0] is field 3
	if len(fields) < 20 || len(fields[0]) != 1 {
		return procStat{}, errors.New("proc stat: too few fields")
	}
	start, err := strconv.ParseUint(fields[22-3], 10, 64)
	if err != nil {
		return procStat{}, errors.New("proc stat: bad start time")
	}
	return procStat{state: fields[0][0], start: start}, nil
}

// processAlive reports whether process pid of this PID namespace exists,
// is not a zombie and, when start is not 0, started at start. When it
// cannot tell, it says the process is alive: a lock is only ignored on
// evidence.
func processAlive(pid int, start uint64) bool {
	if pid <= 0 {
		return false
	}
	st, err := readProcStat(pid)
	switch {
	case err == nil:
		if st.state == 'Z' || st.state == 'X' {
			return false
		}
		return start == 0 || st.start == start
	case errors.Is(err, fs.ErrNotExist):
		// /proc mounted with hidepid hides the processes of other
		// users; signal 0 still tells whether pid exists.
		return !errors.Is(syscall.Kill(pid, 0), syscall.ESRCH)
	}
	return true
}
