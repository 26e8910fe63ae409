package binlog

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"hash/crc32"
	"strings"
	"testing"
	"time"

	"github.com/rewind-backup/rewind/internal/id"
)

// hashID is a test ID derived from b.
func hashID(b []byte) id.ID { return id.ID(sha256.Sum256(b)) }

// ev builds one binlog event: header, body, and a CRC32 when sum.
func ev(typ byte, ts uint32, serverID uint32, end uint32, flags uint16, body []byte, sum bool) []byte {
	size := headerSize + len(body)
	if sum {
		size += 4
	}
	b := make([]byte, headerSize, size)
	binary.LittleEndian.PutUint32(b[0:], ts)
	b[4] = typ
	binary.LittleEndian.PutUint32(b[5:], serverID)
	binary.LittleEndian.PutUint32(b[9:], uint32(size))
	binary.LittleEndian.PutUint32(b[13:], end)
	binary.LittleEndian.PutUint16(b[17:], flags)
	b = append(b, body...)
	if sum {
		b = binary.LittleEndian.AppendUint32(b, crc32.ChecksumIEEE(b))
	}
	return b
}

// fakeFile makes a binlog file: a format description event, then n
// transactions (GTID, BEGIN query, XID), one second apart from t0, then
// a DDL (standalone GTID and one query).
func fakeFile(n int, t0 uint32) []byte {
	out := append([]byte(nil), Magic...)
	add := func(typ byte, ts uint32, body []byte) {
		end := uint32(len(out)) + headerSize + uint32(len(body)) + 4
		out = append(out, ev(typ, ts, 1, end, 0, body, true)...)
	}
	fde := make([]byte, 2+50+4+1+40)
	fde = append(fde, 1) // CRC32
	add(evFormat, t0, fde)
	query := func(q string) []byte {
		b := make([]byte, 13)
		b[8] = 3 // db length
		b = append(b, "app"...)
		b = append(b, 0)
		return append(b, q...)
	}
	for i := range n {
		g := make([]byte, 13)
		binary.LittleEndian.PutUint64(g, uint64(i+1))
		add(evGTID, t0+uint32(i), g)
		add(evQuery, t0+uint32(i), query("BEGIN"))
		add(evXID, t0+uint32(i), make([]byte, 8))
	}
	g := make([]byte, 13)
	binary.LittleEndian.PutUint64(g, uint64(n+1))
	g[12] = gtidStandalone
	add(evGTID, t0+uint32(n), g)
	add(evQuery, t0+uint32(n), query("CREATE TABLE x (a INT)"))
	return out
}

func TestScanFile(t *testing.T) {
	data := fakeFile(3, 1000)
	txns, n, err := ScanFile(data)
	if err != nil || n != len(data) {
		t.Fatalf("ScanFile: %d of %d bytes, %v", n, len(data), err)
	}
	if len(txns) != 4 {
		t.Fatalf("%d transactions, want 4: %+v", len(txns), txns)
	}
	for i, x := range txns {
		if x.GTID != (GTID{0, 1, uint64(i + 1)}).String() || x.Time != int64(1000+i) {
			t.Errorf("transaction %d: %+v", i, x)
		}
	}
	if txns[3].End != uint64(len(data)) {
		t.Errorf("the DDL ends at %d, the file at %d", txns[3].End, len(data))
	}
	// A torn last event is left out.
	txns, n, err = ScanFile(data[:len(data)-3])
	if err != nil || len(txns) != 3 || n >= len(data)-3 {
		t.Fatalf("torn file: %d transactions, %d bytes, %v", len(txns), n, err)
	}
	if _, _, err := ScanFile([]byte("nope")); err == nil {
		t.Fatal("a file without the magic bytes was scanned")
	}
}

func TestParseGTID(t *testing.T) {
	for _, s := range []string{"0-1-42", "4294967295-4294967295-18446744073709551615"} {
		g, err := ParseGTID(s)
		if err != nil || g.String() != s {
			t.Errorf("%q: %v %v", s, g, err)
		}
	}
	for _, s := range []string{"", "0-1", "0-1-2-3", "a-1-2", "0-1-", "-1-2", "01-1-2", "4294967296-1-2", "0-1-2 "} {
		if _, err := ParseGTID(s); err == nil {
			t.Errorf("%q accepted", s)
		}
	}
}

func TestRotateTarget(t *testing.T) {
	body := binary.LittleEndian.AppendUint64(nil, 4)
	body = append(body, "mysql-bin.000007"...)
	for _, sum := range []bool{false, true} {
		name, pos, err := rotateTarget(ev(evRotate, 0, 1, 0, flagArtificial, body, sum))
		if err != nil || name != "mysql-bin.000007" || pos != 4 {
			t.Errorf("checksum %v: %q %d %v", sum, name, pos, err)
		}
	}
	if _, _, err := rotateTarget(ev(evRotate, 0, 1, 0, 0, body[:8], false)); err == nil {
		t.Error("a rotate event without a name was read")
	}
}

// piece makes a stored piece of file name [start, end) with txns.
func piece(name string, start, end uint64, stored time.Time, txns ...Txn) Piece {
	return Piece{Name: name, Start: start, End: end, ID: hashID([]byte(name + strings.Repeat("x", int(start)))), Blobs: []id.ID{hashID([]byte(name))}, Txns: txns, Stored: stored}
}

func catalogOf(t *testing.T, files ...*File) *Catalog {
	t.Helper()
	names := make([]id.ID, len(files))
	for i, f := range files {
		b, err := json.Marshal(f)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := Decode(b); err != nil {
			t.Fatalf("file %d does not decode: %v", i, err)
		}
		names[i] = hashID(b)
	}
	return NewCatalog(names, files)
}

func TestGapsAndStopFor(t *testing.T) {
	t0 := time.Date(2026, 12, 7, 10, 0, 0, 0, time.UTC)
	tx := func(seq uint64, end uint64, sec int) Txn {
		return Txn{GTID: GTID{0, 1, seq}.String(), End: end, Time: t0.Add(time.Duration(sec) * time.Second).Unix()}
	}
	a := piece("mysql-bin.000001", 0, 500, t0, tx(1, 300, 0), tx(2, 480, 2))
	a.Closed, a.Next = true, "mysql-bin.000002"
	b := piece("mysql-bin.000002", 0, 400, t0.Add(time.Second), tx(3, 200, 3))
	c := piece("mysql-bin.000002", 400, 900, t0.Add(5*time.Second), tx(4, 600, 5), tx(5, 900, 5))
	f1 := &File{Version: 1, Source: "main", ServerID: 1, Time: t0, Pieces: []Piece{a, b}}
	f2 := &File{Version: 1, Source: "main", ServerID: 1, Time: t0.Add(time.Second), Pieces: []Piece{c}}
	cat := catalogOf(t, f1, f2)
	s := cat.Source("main")
	if g := s.Gaps(); len(g) != 0 {
		t.Fatalf("gaps in a continuous binlog: %+v", g)
	}
	for _, c := range []struct {
		at   time.Time
		file string
		pos  uint64
		gtid string
	}{
		{t0, "mysql-bin.000001", 300, "0-1-1"},
		{t0.Add(1999 * time.Millisecond), "mysql-bin.000001", 300, "0-1-1"},
		{t0.Add(2 * time.Second), "mysql-bin.000001", 480, "0-1-2"},
		{t0.Add(4 * time.Second), "mysql-bin.000002", 200, "0-1-3"},
		{t0.Add(5 * time.Second), "mysql-bin.000002", 900, "0-1-5"},
	} {
		sp, err := cat.StopFor(Target{Time: c.at})
		if err != nil || sp.File != c.file || sp.Pos != c.pos || sp.GTID != c.gtid {
			t.Errorf("at %s: %+v %v, want %s:%d %s", c.at, sp, err, c.file, c.pos, c.gtid)
		}
	}
	if _, err := cat.StopFor(Target{Time: t0.Add(-time.Second)}); !errors.Is(err, ErrNotCovered) {
		t.Errorf("before the first transaction: %v", err)
	}
	if _, err := cat.StopFor(Target{Time: t0.Add(time.Hour)}); !errors.Is(err, ErrNotCovered) {
		t.Errorf("after the newest store: %v", err)
	}
	if sp, err := cat.StopFor(Target{GTID: "0-1-3"}); err != nil || sp.Pos != 200 || sp.File != "mysql-bin.000002" {
		t.Errorf("GTID 0-1-3: %+v %v", sp, err)
	}
	if _, err := cat.StopFor(Target{GTID: "0-1-9"}); !errors.Is(err, ErrNotCovered) {
		t.Errorf("GTID not stored: %v", err)
	}
	if sp, err := cat.StopFor(Target{Latest: true}); err != nil || sp.GTID != "0-1-5" {
		t.Errorf("latest: %+v %v", sp, err)
	}
	if err := s.Covers(Position{"mysql-bin.000001", 300}); err != nil {
		t.Errorf("covers: %v", err)
	}

	// A hole in a file, a file not chained to the one before, a GTID
	// jump: each is a gap.
	d := piece("mysql-bin.000002", 1000, 1200, t0.Add(6*time.Second), tx(7, 1100, 6))
	e := piece("mysql-bin.000004", 0, 300, t0.Add(7*time.Second), tx(8, 200, 7))
	f3 := &File{Version: 1, Source: "main", ServerID: 1, Time: t0.Add(2 * time.Second), Pieces: []Piece{d, e}}
	cat = catalogOf(t, f1, f2, f3)
	s = cat.Source("main")
	if g := s.Gaps(); len(g) != 2 {
		t.Fatalf("want 2 gaps, got %+v", g)
	}
	rep := Check(s, nil)
	if len(rep.Holes) != 1 || rep.Holes[0].After != "0-1-5" || rep.Holes[0].Next != "0-1-7" {
		t.Errorf("holes: %+v", rep.Holes)
	}
	if p := rep.Problems("main"); len(p) != 3 {
		t.Errorf("problems: %q", p)
	}
	if err := s.Covers(Position{"mysql-bin.000001", 300}); err == nil {
		t.Error("a backup before a gap is covered")
	}
	// Overlapping bytes with another content: a conflict.
	x := piece("mysql-bin.000002", 300, 700, t0.Add(8*time.Second))
	cat = catalogOf(t, f1, f2, &File{Version: 1, Source: "main", ServerID: 1, Time: t0.Add(3 * time.Second), Pieces: []Piece{x}})
	if len(cat.Conflicts) != 1 {
		t.Errorf("conflicts: %+v", cat.Conflicts)
	}
	// Another server under the name: ignored.
	cat = catalogOf(t, f1, &File{Version: 1, Source: "main", ServerID: 2, Time: t0.Add(time.Second), Pieces: []Piece{c}})
	if len(cat.Conflicts) != 1 || len(cat.Source("main").Pieces("mysql-bin.000002")) != 1 {
		t.Errorf("another server's file merged: %+v", cat.Conflicts)
	}
	// The horizon hides expired files.
	f4 := &File{Version: 1, Source: "main", ServerID: 1, Time: t0.Add(4 * time.Second), Pieces: []Piece{}, KeepFrom: "mysql-bin.000002"}
	cat = catalogOf(t, f1, f2, f4)
	if n := cat.Source("main").Names(); len(n) != 1 || n[0] != "mysql-bin.000002" {
		t.Errorf("after the horizon: %v", n)
	}
}

func TestDecodeRejects(t *testing.T) {
	for _, doc := range []string{
		`{}`,
		`{"version":2,"source":"main"}`,
		`{"version":1,"source":""}`,
		`{"version":1,"source":"main","pieces":[{"name":"x","start":0,"end":5,"blobs":["` + strings.Repeat("a", 64) + `"]}]}`,
		`{"version":1,"source":"main","pieces":[{"name":"b.000001","start":5,"end":5,"blobs":["` + strings.Repeat("a", 64) + `"]}]}`,
		`{"version":1,"source":"main","pieces":[{"name":"b.000001","start":0,"end":5}]}`,
		`{"version":1,"source":"main","pieces":[{"name":"b.000001","start":0,"end":5,"blobs":["` + strings.Repeat("a", 64) + `"],"txns":[{"gtid":"0-1-1","end":9,"time":1}]}]}`,
		`{"version":1,"source":"main","keep_from":"../x"}`,
	} {
		if _, err := Decode([]byte(doc)); err == nil {
			t.Errorf("accepted: %s", doc)
		}
	}
}

func FuzzDecode(f *testing.F) {
	f.Add([]byte(`{"version":1,"source":"main","server_id":1,"time":"2026-12-07T10:00:00Z","hostname":"h","pieces":[{"name":"mysql-bin.000001","start":0,"end":500,"id":"` + strings.Repeat("a", 64) + `","blobs":["` + strings.Repeat("b", 64) + `"],"txns":[{"gtid":"0-1-1","end":300,"time":1}],"stored":"2026-12-07T10:00:00Z","closed":true,"next":"mysql-bin.000002"}]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		file, err := Decode(data)
		if err != nil {
			return
		}
		cat := NewCatalog([]id.ID{hashID(data)}, []*File{file})
		for _, s := range cat.Sources() {
			s.Gaps()
			Check(s, nil)
			_, _ = s.StopFor(Target{Latest: true})
		}
	})
}

func FuzzScanFile(f *testing.F) {
	f.Add(fakeFile(2, 1000))
	f.Add(append([]byte(nil), Magic...))
	f.Fuzz(func(t *testing.T, data []byte) {
		txns, n, _ := ScanFile(data)
		if n > len(data) {
			t.Fatalf("scanned %d of %d bytes", n, len(data))
		}
		for _, x := range txns {
			if x.End > uint64(n) {
				t.Fatalf("transaction ends at %d after the %d bytes scanned", x.End, n)
			}
		}
	})
}

func FuzzRotateTarget(f *testing.F) {
	body := binary.LittleEndian.AppendUint64(nil, 4)
	body = append(body, "mysql-bin.000007"...)
	f.Add(ev(evRotate, 0, 1, 0, flagArtificial, body, true))
	f.Fuzz(func(t *testing.T, raw []byte) {
		if len(raw) < headerSize {
			return
		}
		name, _, err := rotateTarget(raw)
		if err == nil && CheckName(name) != nil {
			t.Fatalf("bad name %q accepted", name)
		}
	})
}

func FuzzParseGTID(f *testing.F) {
	f.Add("0-1-42")
	f.Fuzz(func(t *testing.T, s string) {
		g, err := ParseGTID(s)
		if err == nil && g.String() != s {
			t.Fatalf("%q parsed as %s", s, g)
		}
	})
}

// FuzzReceiverEvent feeds arbitrary events to the receiver's event
// handling (nothing is stored: no event completes a store).
func FuzzReceiverEvent(f *testing.F) {
	data := fakeFile(1, 1000)
	f.Add(data[4:])
	f.Fuzz(func(t *testing.T, raw []byte) {
		s := &receiver{file: "mysql-bin.000001", end: 0, pend: Piece{Name: "mysql-bin.000001"}}
		for len(raw) >= headerSize {
			size := int(binary.LittleEndian.Uint32(raw[9:]))
			if size < headerSize || size > len(raw) {
				return
			}
			if h, err := ParseHeader(raw[:size]); err == nil && h.Type == evRotate {
				return // a rotate stores: not without a repository
			}
			if err := s.event(raw[:size]); err != nil {
				return
			}
			raw = raw[size:]
		}
	})
}
