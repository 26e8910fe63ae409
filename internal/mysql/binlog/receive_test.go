package binlog

import (
	"bytes"
	"context"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rewind-backup/rewind/internal/backend/local"
	"github.com/rewind-backup/rewind/internal/crypto"
	"github.com/rewind-backup/rewind/internal/mysql"
	"github.com/rewind-backup/rewind/internal/repository"
	"github.com/rewind-backup/rewind/internal/testutil"
)

// testRepo makes a repository in a temporary folder and returns a
// function that opens it with its index loaded, as the CLI does.
func testRepo(t testing.TB) func() *repository.Repository {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "repo")
	ctx := context.Background()
	be, err := local.Create(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := repository.Init(ctx, be, []byte("pw"), repository.InitOptions{KDF: crypto.TestKDFParams}); err != nil {
		t.Fatal(err)
	}
	return func() *repository.Repository {
		be, err := local.Open(ctx, dir)
		if err != nil {
			t.Fatal(err)
		}
		r, err := repository.Open(ctx, be, []byte("pw"))
		if err != nil {
			t.Fatal(err)
		}
		if err := r.LoadIndex(ctx); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { r.Close() })
		return r
	}
}

// conn is how the tests' receiver reaches m: the rewind user over the
// socket.
func conn(t *testing.T, m *testutil.MariaDB) mysql.ConnOptions {
	t.Helper()
	o, err := mysql.ConnOptions{Socket: m.Socket, User: "rewind", PasswordFile: m.PasswordFile(t), DefaultsFile: "/dev/null"}.Resolve()
	if err != nil {
		t.Fatal(err)
	}
	return o
}

// running is a Receive in a goroutine.
type running struct {
	cancel context.CancelFunc
	done   chan error
	sum    *ReceiveSummary
	mu     sync.Mutex
	stores []Stored
}

func startReceive(t *testing.T, r *repository.Repository, opt ReceiveOptions) *running {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	rr := &running{cancel: cancel, done: make(chan error, 1)}
	opt.OnStore = func(s Stored) {
		rr.mu.Lock()
		rr.stores = append(rr.stores, s)
		rr.mu.Unlock()
	}
	if opt.Log == nil {
		opt.Log = slog.New(slog.NewTextHandler(testWriter{t}, nil))
	}
	if opt.ServerID == 0 {
		opt.ServerID = 4242
	}
	go func() {
		sum, err := Receive(ctx, r, opt)
		rr.sum = sum
		rr.done <- err
	}()
	t.Cleanup(func() {
		cancel()
	})
	return rr
}

func (rr *running) stop(t *testing.T) *ReceiveSummary {
	t.Helper()
	rr.cancel()
	select {
	case err := <-rr.done:
		if err != nil {
			t.Fatalf("Receive: %v", err)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("Receive did not stop")
	}
	return rr.sum
}

// serverEnd returns the server's current binlog file and position.
func serverEnd(t *testing.T, m *testutil.MariaDB) Position {
	t.Helper()
	rows := m.Query(t, "SHOW MASTER STATUS")
	var p Position
	p.File = rows[0][0]
	var n uint64
	for _, c := range rows[0][1] {
		n = n*10 + uint64(c-'0')
	}
	p.Pos = n
	return p
}

// waitStored waits until the repository's binlog reaches the server's end.
func waitStored(t *testing.T, open func() *repository.Repository, m *testutil.MariaDB) *Catalog {
	t.Helper()
	want := serverEnd(t, m)
	deadline := time.Now().Add(60 * time.Second)
	for {
		r := open()
		cat, err := Load(context.Background(), r)
		r.Close()
		if err != nil {
			t.Fatal(err)
		}
		if s := cat.Source(DefaultSource); s != nil && s.End() == want {
			return cat
		}
		if time.Now().After(deadline) {
			var got Position
			if s := cat.Source(DefaultSource); s != nil {
				got = s.End()
			}
			t.Fatalf("stored binlog ends at %v, server at %v (unreadable %v)", got, want, cat.Unreadable)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// sameAsServer checks that every stored file is the server's file (a
// prefix of it for the newest) and that the catalog has no gap.
func sameAsServer(t *testing.T, open func() *repository.Repository, cat *Catalog, m *testutil.MariaDB) []string {
	t.Helper()
	s := cat.Source(DefaultSource)
	if s == nil {
		t.Fatal("nothing stored")
	}
	if g := s.Gaps(); len(g) > 0 {
		t.Fatalf("gaps: %+v", g)
	}
	if len(cat.Conflicts) > 0 {
		t.Fatalf("conflicts: %+v", cat.Conflicts)
	}
	names := s.Names()
	stop, err := s.StopFor(Target{Latest: true})
	if err != nil {
		t.Fatal(err)
	}
	last := names[len(names)-1]
	stop.File = last
	stop.Pos = s.End().Pos
	dir := t.TempDir()
	paths, err := Materialize(context.Background(), open(), cat, Position{names[0], 4}, stop, dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(paths) != len(names) {
		t.Fatalf("materialized %d files, %d stored", len(paths), len(names))
	}
	for _, p := range paths {
		got, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		want, err := os.ReadFile(filepath.Join(m.DataDir, filepath.Base(p)))
		if err != nil {
			t.Fatal(err)
		}
		if filepath.Base(p) == last && len(want) > inUseOffset {
			// The file the server writes is marked in use in its
			// format description event until it is closed; the
			// server sends the event without the mark.
			want[inUseOffset] &^= 1
		}
		if filepath.Base(p) != last && len(got) != len(want) {
			t.Errorf("%s: %d bytes stored, the server's file has %d", filepath.Base(p), len(got), len(want))
		}
		if len(got) > len(want) || !bytes.Equal(got, want[:len(got)]) {
			n := 0
			for n < len(got) && n < len(want) && got[n] == want[n] {
				n++
			}
			t.Fatalf("%s: stored bytes differ from the server's file at offset %d (%d stored, %d on the server)", filepath.Base(p), n, len(got), len(want))
		}
		// The stored transactions are where a scan of the file puts them.
		txns, _, err := ScanFile(got)
		if err != nil {
			t.Fatalf("%s: %v", p, err)
		}
		var stored []Txn
		for _, sp := range s.Pieces(filepath.Base(p)) {
			stored = append(stored, sp.Txns...)
		}
		if len(txns) != len(stored) {
			t.Fatalf("%s: index lists %d transactions, the file has %d", p, len(stored), len(txns))
		}
		for i := range txns {
			if txns[i] != stored[i] {
				t.Fatalf("%s: transaction %d: index %+v, file %+v", p, i, stored[i], txns[i])
			}
		}
	}
	return paths
}

// inUseOffset is where the in-use flag of a binlog file's format
// description event is.
const inUseOffset = 4 + 17

func TestReceiveStoresServerBinlogExactly(t *testing.T) {
	m := testutil.StartMariaDB(t, testutil.MariaDBOptions{})
	open := testRepo(t)
	m.Exec(t, "CREATE DATABASE app")
	m.Exec(t, "CREATE TABLE app.t (id INT PRIMARY KEY AUTO_INCREMENT, v VARCHAR(100), at DATETIME(6))")
	rr := startReceive(t, open(), ReceiveOptions{Conn: conn(t, m)})
	for i := range 200 {
		m.Exec(t, "INSERT INTO app.t (v, at) VALUES (?, NOW(6))", strings.Repeat("x", i%50))
		if i == 80 {
			m.Exec(t, "FLUSH BINARY LOGS")
		}
		if i == 150 {
			m.Exec(t, "BEGIN")
			m.Exec(t, "UPDATE app.t SET v = 'y' WHERE id < 10")
			m.Exec(t, "COMMIT")
		}
	}
	cat := waitStored(t, open, m)
	sum := rr.stop(t)
	t.Logf("summary %+v", sum)
	paths := sameAsServer(t, open, cat, m)
	// mariadb-binlog reads the files.
	mb := testutil.MariaDBProgram(t, "mariadb-binlog")
	out, err := exec.Command(mb, paths...).CombinedOutput()
	if err != nil {
		t.Fatalf("mariadb-binlog: %v\n%s", err, out)
	}
	if !bytes.Contains(out, []byte("INSERT")) && !bytes.Contains(out, []byte("Write_rows")) {
		t.Fatalf("mariadb-binlog output has no row event:\n%.2000s", out)
	}
	rr.mu.Lock()
	n := len(rr.stores)
	rr.mu.Unlock()
	if n == 0 {
		t.Fatal("no store reported")
	}
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(b []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(b)))
	return len(b), nil
}
