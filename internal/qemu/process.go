package qemu

import (
	"os"
	"sync"
)

// KVMUsable reports whether /dev/kvm opens, so that a guest can run with
// -accel kvm rather than TCG.
func KVMUsable() bool {
	f, err := os.OpenFile("/dev/kvm", os.O_RDWR, 0)
	if err != nil {
		return false
	}
	f.Close()
	return true
}

// Tail keeps the last Max bytes written to it: the end of what a QEMU
// process printed, for the error that says why it exited. It is safe
// for the writer and a reader at once.
type Tail struct {
	Max int
	mu  sync.Mutex
	b   []byte
}

func (t *Tail) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.b = append(t.b, p...)
	if len(t.b) > t.Max {
		t.b = t.b[len(t.b)-t.Max:]
	}
	return len(p), nil
}

func (t *Tail) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(t.b)
}
