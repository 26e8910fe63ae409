package pg

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/crc32"
	"strings"
	"testing"
)

// sealManifest appends the Manifest-Checksum line to body as PostgreSQL
// does.
func sealManifest(body string) []byte {
	sum := sha256.Sum256([]byte(body))
	return []byte(body + fmt.Sprintf("\"Manifest-Checksum\": \"%x\"}\n", sum))
}

const testManifestBody = `{ "PostgreSQL-Backup-Manifest-Version": 1,
"Files": [
{ "Path": "backup_label", "Size": 5, "Last-Modified": "2026-12-07 15:00:00 GMT", "Checksum-Algorithm": "CRC32C", "Checksum": "%s" },
{ "Encoded-Path": "6261736521", "Size": 0, "Last-Modified": "2026-12-07 15:00:00 GMT", "Checksum-Algorithm": "CRC32C", "Checksum": "00000000" }
],
"WAL-Ranges": [
{ "Timeline": 1, "Start-LSN": "0/2000028", "End-LSN": "0/2000100" }
],
`

func crcHex(s string) string {
	h, _ := newChecksum("CRC32C")
	h.Write([]byte(s))
	return hex.EncodeToString(h.Sum(nil))
}

func TestManifest(t *testing.T) {
	// The CRC32C of "hello" is 0x9a71bb4c; PostgreSQL writes its bytes in
	// memory order (little-endian).
	if got := crcHex("hello"); got != "4cbb719a" || crc32.Checksum([]byte("hello"), crc32.MakeTable(crc32.Castagnoli)) != 0x9a71bb4c {
		t.Fatalf("CRC32C of hello as PostgreSQL writes it: %s", got)
	}
	data := sealManifest(fmt.Sprintf(testManifestBody, crcHex("hello")))
	m, err := ParseManifest(data)
	if err != nil {
		t.Fatal(err)
	}
	if len(m.Files) != 2 || m.Files[1].Path != "base!" || len(m.WAL) != 1 || m.WAL[0].Start != "0/2000028" {
		t.Fatalf("parsed %+v", m)
	}
	good := map[string]receivedFile{"backup_label": {5, crcHex("hello")}, "base!": {0, "00000000"}, "pg_wal/000000010000000000000002": {16 << 20, "x"}}
	if err := m.Verify(good); err != nil {
		t.Errorf("matching files: %v", err)
	}
	for name, got := range map[string]map[string]receivedFile{
		"checksum":   {"backup_label": {5, crcHex("hellp")}, "base!": {0, "00000000"}},
		"size":       {"backup_label": {6, crcHex("hello")}, "base!": {0, "00000000"}},
		"missing":    {"backup_label": {5, crcHex("hello")}},
		"unexpected": {"backup_label": {5, crcHex("hello")}, "base!": {0, "00000000"}, "PG_VERSION": {3, "1"}},
	} {
		if err := m.Verify(got); !errors.Is(err, ErrManifestMismatch) {
			t.Errorf("%s: want a mismatch, got %v", name, err)
		}
	}
	// A manifest damaged after its checksum was computed is refused.
	bad := []byte(strings.Replace(string(data), `"Size": 5`, `"Size": 6`, 1))
	if _, err := ParseManifest(bad); err == nil || !strings.Contains(err.Error(), "damaged") {
		t.Errorf("damaged manifest: %v", err)
	}
	for _, in := range []string{"", "{}", "not json", `{"PostgreSQL-Backup-Manifest-Version": 9}`} {
		if _, err := ParseManifest([]byte(in)); err == nil {
			t.Errorf("ParseManifest(%q) accepted it", in)
		}
	}
}

func FuzzParseManifest(f *testing.F) {
	f.Add(sealManifest(fmt.Sprintf(testManifestBody, crcHex("hello"))))
	f.Add([]byte(`{"PostgreSQL-Backup-Manifest-Version": 1, "Files": [{"Encoded-Path": "zz"}]}`))
	f.Add([]byte("{}\n\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := ParseManifest(data)
		if err != nil {
			return
		}
		for _, fl := range m.Files {
			if fl.Path == "" {
				t.Fatalf("a file without a path was accepted")
			}
		}
		_ = m.Verify(map[string]receivedFile{"x": {1, "y"}})
	})
}

func FuzzParseNewArchive(f *testing.F) {
	f.Add([]byte("base.tar\x00\x00"))
	f.Add([]byte("16385.tar\x00/srv/ts\x00"))
	f.Add([]byte("x"))
	f.Fuzz(func(t *testing.T, body []byte) {
		name, loc, err := parseNewArchive(body)
		if err != nil {
			return
		}
		if name == "" || strings.ContainsRune(name, 0) || strings.ContainsRune(loc, 0) {
			t.Fatalf("parseNewArchive(%q) = %q, %q", body, name, loc)
		}
	})
}

func TestParseNewArchive(t *testing.T) {
	if n, l, err := parseNewArchive([]byte("base.tar\x00\x00")); err != nil || n != "base.tar" || l != "" {
		t.Errorf("base.tar: %q %q %v", n, l, err)
	}
	for _, bad := range []string{"", "base.tar", "base.tar\x00", "\x00\x00", "a\x00b\x00c"} {
		if _, _, err := parseNewArchive([]byte(bad)); err == nil {
			t.Errorf("parseNewArchive(%q) accepted", bad)
		}
	}
}
