package repository

import "sync"

var bufPool = sync.Pool{New: func() any { b := make([]byte, 0, 1<<20); return &b }}

// getBuf returns a pooled buffer with capacity of at least n.
func getBuf(n int) *[]byte {
	b := bufPool.Get().(*[]byte)
	if cap(*b) < n {
		*b = make([]byte, 0, n)
	}
	return b
}

func putBuf(b *[]byte) {
	if cap(*b) > 32<<20 {
		return
	}
	bufPool.Put(b)
}
