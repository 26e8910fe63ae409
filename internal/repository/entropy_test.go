package repository

import (
	"bytes"
	"crypto/rand"
	"os"
	"testing"
)

func TestLooksIncompressible(t *testing.T) {
	random := make([]byte, 1<<20)
	rand.Read(random)
	if !looksIncompressible(random) {
		t.Error("random data was taken as compressible")
	}
	text := bytes.Repeat([]byte("GET /index.html HTTP/1.1 200 5123 \"Mozilla/5.0\"\n"), 20000)
	if looksIncompressible(text) {
		t.Error("log text was taken as incompressible")
	}
	if looksIncompressible(make([]byte, 1<<20)) {
		t.Error("zeros were taken as incompressible")
	}
	exe, err := os.ReadFile("/proc/self/exe")
	if err != nil {
		t.Fatal(err)
	}
	// A Go executable compresses to about half; no part of it may be
	// skipped.
	for off := 0; off+1<<20 <= len(exe); off += 1 << 20 {
		if looksIncompressible(exe[off : off+1<<20]) {
			t.Errorf("executable bytes at %d were taken as incompressible", off)
		}
	}
	// Small blobs are always tried.
	if looksIncompressible(random[:2048]) {
		t.Error("a small blob was not tried")
	}
	// Half random, half text: a window lands on the text.
	mixed := append(append([]byte(nil), random[:1<<19]...), text[:1<<19]...)
	if looksIncompressible(mixed) {
		t.Error("half-text blob was skipped")
	}
}
