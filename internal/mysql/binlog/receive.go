package binlog

import (
	"context"
	"database/sql"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"log/slog"
	"strings"
	"sync"
	"time"

	gomysql "github.com/go-mysql-org/go-mysql/mysql"
	"github.com/go-mysql-org/go-mysql/replication"
	driver "github.com/go-sql-driver/mysql"

	"github.com/rewind-backup/rewind/internal/repository"
)

var (
	// ErrNoBinlog: the server does not write a binary log.
	ErrNoBinlog = errors.New("the server's binary log is off")
	// ErrOtherServer: the source name holds another server's binlog.
	ErrOtherServer = errors.New("binary log of another server")
	// ErrPurged: the server no longer has the binlog file the repository
	// ends in.
	ErrPurged = errors.New("the server no longer has the binlog file to resume from")
)

// permanent marks errors a reconnect cannot cure.
type permanent struct{ err error }

func (p permanent) Error() string { return p.err.Error() }
func (p permanent) Unwrap() error { return p.err }

// Server is how the receiver reaches the server: the replication
// connection's address and login, and Open for the SQL queries it makes
// first (internal/mysql.Open with the same resolved options; this package
// does not import internal/mysql, which imports the archiver).
type Server struct {
	// Socket, when set, is the unix socket; else Host and Port.
	Socket   string
	Host     string
	Port     int
	User     string
	Password string
	// Addr names the server in messages.
	Addr string
	Open func(ctx context.Context) (*sql.DB, error)
}

// ReceiveOptions configure Receive.
type ReceiveOptions struct {
	// Conn is how to reach the server.
	Conn Server
	// Source is the name the binlog is stored under (DefaultSource).
	Source string
	// ServerID is the receiver's own server_id as a replica (not 0, and
	// not any server's of the replication topology).
	ServerID uint32
	// StartFile, for a source with nothing stored, is the binlog file to
	// start at (its beginning); default the oldest the server has.
	StartFile string
	// StartGTID, for a source with nothing stored, starts at the
	// beginning of the binlog file that holds the transaction after
	// this GTID (found from each file's Gtid_list event).
	StartGTID string
	// SemiSync acknowledges each transaction to a semi-sync master only
	// once it is stored.
	SemiSync bool
	// FlushInterval bounds how long received events wait before they are
	// stored (default 1s); they are stored sooner, as soon as the stream
	// pauses for Idle (default 3ms).
	FlushInterval time.Duration
	Idle          time.Duration
	// MinInterval is the least time between two stores that are not
	// semi-sync acknowledgements (default 100ms): a busy server's
	// stream pauses often, and each store writes a pack and two index
	// files.
	MinInterval time.Duration
	Host        string
	Log         *slog.Logger
	// OnStore, if set, is called after each store.
	OnStore func(Stored)
	// MaxBackoff bounds the wait between reconnects (default 10s).
	MaxBackoff time.Duration
}

// Stored is one store: the binlog file and the offset up to which it is
// durable, and the newest transaction stored.
type Stored struct {
	File  string    `json:"file"`
	End   uint64    `json:"end"`
	GTID  string    `json:"gtid,omitempty"`
	Time  time.Time `json:"time"`
	Bytes int       `json:"bytes"`
}

// ReceiveSummary is what a run did.
type ReceiveSummary struct {
	Source     string
	ServerID   uint32
	Start      Position
	End        Position
	LastGTID   string
	Stores     int
	Files      int
	Txns       int
	Bytes      int64
	Reconnects int
	// SemiSync: the server took the receiver as a semi-sync replica.
	SemiSync bool
}

// Receive streams the server's binary log into r until ctx is done, then
// stores what it received and returns nil. Errors that reconnecting
// cannot cure (binary log off, wrong credentials, another server's binlog
// under the source name, the file to resume from purged) end it, as does
// failing to connect before anything was received.
func Receive(ctx context.Context, r *repository.Repository, opt ReceiveOptions) (*ReceiveSummary, error) {
	if opt.Source == "" {
		opt.Source = DefaultSource
	}
	if opt.ServerID == 0 {
		return nil, errors.New("the receiver needs a server_id of its own (--server-id), not 0")
	}
	if opt.FlushInterval <= 0 {
		opt.FlushInterval = time.Second
	}
	if opt.Idle <= 0 {
		opt.Idle = 3 * time.Millisecond
	}
	if opt.MinInterval <= 0 {
		opt.MinInterval = 100 * time.Millisecond
	}
	opt.MinInterval = min(opt.MinInterval, opt.FlushInterval)
	if opt.MaxBackoff <= 0 {
		opt.MaxBackoff = 10 * time.Second
	}
	if opt.Log == nil {
		opt.Log = slog.New(slog.DiscardHandler)
	}
	if opt.StartFile != "" {
		if err := CheckName(opt.StartFile); err != nil {
			return nil, fmt.Errorf("--start-file: %w", err)
		}
	}
	if opt.StartGTID != "" {
		if opt.StartFile != "" {
			return nil, errors.New("give --start-file or --start-gtid, not both")
		}
		if _, err := ParseGTID(opt.StartGTID); err != nil {
			return nil, fmt.Errorf("--start-gtid: %w", err)
		}
	}
	s := &receiver{r: r, opt: opt, sum: &ReceiveSummary{Source: opt.Source}}
	defer s.compactions.Wait()
	backoff := 500 * time.Millisecond
	for {
		connected, err := s.session(ctx)
		if ctx.Err() != nil {
			return s.sum, s.storeErr
		}
		var p permanent
		if errors.As(err, &p) {
			return s.sum, p.err
		}
		if s.storeErr != nil {
			return s.sum, s.storeErr
		}
		if !connected && s.sum.ServerID == 0 {
			return s.sum, err
		}
		if connected {
			backoff = 500 * time.Millisecond
		}
		s.sum.Reconnects++
		opt.Log.Warn("binlog connection lost; reconnecting", "err", err, "wait", backoff)
		select {
		case <-ctx.Done():
			return s.sum, nil
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, opt.MaxBackoff)
	}
}

// receiver is the state kept across connections.
type receiver struct {
	r   *repository.Repository
	opt ReceiveOptions
	sum *ReceiveSummary

	mu       sync.Mutex
	serverID uint32
	uuid     string
	small    int
	// file and end: where the received binlog ends (the next event
	// starts at end); the pending piece holds what is not stored yet.
	file     string
	end      uint64
	sc       scanner
	pend     Piece
	data     []byte
	since    time.Time // when the oldest pending byte arrived
	last     time.Time // when the newest event arrived
	stored   time.Time // when the last store ended
	storeErr error
	semiSync bool
	// compacting is set while a compaction of the source's index files
	// runs in the background; compactions are waited for before Receive
	// returns.
	compacting  bool
	compactions sync.WaitGroup
}

// serverInfo reads what the receiver needs of the server over SQL.
func (s *receiver) serverInfo(ctx context.Context) (logs []string, err error) {
	db, err := s.opt.Conn.Open(ctx)
	if err != nil {
		var me *driver.MySQLError
		if errors.As(err, &me) && (me.Number == 1045 || me.Number == 1698) {
			return nil, permanent{err}
		}
		return nil, err
	}
	defer db.Close()
	var logBin int
	var serverID uint32
	if err := db.QueryRowContext(ctx, "SELECT @@log_bin, @@server_id").Scan(&logBin, &serverID); err != nil {
		return nil, fmt.Errorf("mysql: read @@log_bin: %w", err)
	}
	if logBin == 0 {
		return nil, permanent{fmt.Errorf("%w on the server at %s: there is nothing to receive. Turn it on with log_bin (for example log-bin=mysql-bin in the [mariadbd] section) and server_id, then restart the server", ErrNoBinlog, s.opt.Conn.Addr)}
	}
	if serverID == s.opt.ServerID {
		return nil, permanent{fmt.Errorf("the server's own server_id is %d, the receiver's --server-id: give the receiver another one", serverID)}
	}
	var uuid sql.NullString
	_ = db.QueryRowContext(ctx, "SELECT @@server_uuid").Scan(&uuid)
	rows, err := db.QueryContext(ctx, "SHOW BINARY LOGS")
	if err != nil {
		return nil, fmt.Errorf("mysql: SHOW BINARY LOGS: %w (the user needs the REPLICATION CLIENT or BINLOG MONITOR privilege)", err)
	}
	defer rows.Close()
	cols, _ := rows.Columns()
	for rows.Next() {
		vals := make([]any, len(cols))
		var name string
		vals[0] = &name
		for i := 1; i < len(cols); i++ {
			vals[i] = new(sql.RawBytes)
		}
		if err := rows.Scan(vals...); err != nil {
			return nil, err
		}
		logs = append(logs, name)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	if s.opt.SemiSync {
		var name, val string
		if err := db.QueryRowContext(ctx, "SHOW GLOBAL VARIABLES LIKE 'rpl_semi_sync_master_enabled'").Scan(&name, &val); err != nil || val != "ON" {
			s.opt.Log.Warn("--semi-sync: the server's rpl_semi_sync_master_enabled is not ON; receiving without acknowledgements (SET GLOBAL rpl_semi_sync_master_enabled=1 on the server)")
		}
	}
	if s.opt.StartGTID != "" && s.file == "" && s.opt.StartFile == "" {
		f, err := fileForGTID(ctx, db, logs, s.opt.StartGTID)
		if err != nil {
			return nil, permanent{err}
		}
		s.opt.StartFile = f
	}
	s.mu.Lock()
	s.serverID, s.uuid = serverID, uuid.String
	s.sum.ServerID = serverID
	s.mu.Unlock()
	return logs, nil
}

// resume sets where to start from the repository, on the first
// connection.
func (s *receiver) resume(ctx context.Context, logs []string) error {
	cat, err := Load(ctx, s.r)
	if err != nil {
		return fmt.Errorf("read the binlog index: %w", err)
	}
	if len(cat.Unreadable) > 0 {
		u := cat.Unreadable[0]
		return permanent{fmt.Errorf("binlog index file binlog/%s cannot be read (%v), so where the stored binary log ends is unknown; nothing stored: run rewind check", u.File, u.Err)}
	}
	src := cat.Source(s.opt.Source)
	if src != nil && src.ServerID != s.serverID {
		return permanent{fmt.Errorf("%w: the server has server_id %d, but this repository's binary log of source %q is from server_id %d; nothing stored. Give this server its own --source name",
			ErrOtherServer, s.serverID, s.opt.Source, src.ServerID)}
	}
	s.small = 0
	if src != nil {
		s.small = src.Small
	}
	if last := src.lastOrNil(); last != nil {
		s.file, s.end = last.Name, last.End
		s.sc = scanner{checksum: last.Checksum}
		if last.Open != nil {
			g, _ := ParseGTID(last.Open.GTID)
			s.sc.open, s.sc.inTxn, s.sc.standalone, s.sc.xa = g, true, last.Open.Standalone, last.Open.XA
		}
		s.pend = Piece{Name: s.file, Start: s.end, End: s.end, Checksum: last.Checksum}
		if last.Closed && last.Next != "" {
			// The repository ends with a rotate: go on in the next file.
			s.pend = Piece{Name: last.Next, Prev: last.Name, PrevEnd: last.End}
			s.file, s.end = last.Next, 0
		}
		s.sum.Start = Position{s.file, max(s.end, magicLen)}
		return nil
	}
	start := s.opt.StartFile
	if start == "" {
		if len(logs) == 0 {
			return permanent{fmt.Errorf("%w: SHOW BINARY LOGS lists no file", ErrNoBinlog)}
		}
		start = logs[0]
	}
	s.file, s.end = start, 0
	s.pend = Piece{Name: start}
	s.sum.Start = Position{start, magicLen}
	return nil
}

func (src *Source) lastOrNil() *StoredPiece {
	if src == nil {
		return nil
	}
	return src.last()
}

// session is one connection; connected tells whether streaming started.
func (s *receiver) session(ctx context.Context) (connected bool, err error) {
	logs, err := s.serverInfo(ctx)
	if err != nil {
		return false, err
	}
	if s.file == "" {
		if err := s.resume(ctx, logs); err != nil {
			return false, err
		}
	}
	s.mu.Lock()
	file, pos := s.file, max(s.end, magicLen)
	s.mu.Unlock()
	has := false
	for _, l := range logs {
		has = has || l == file
	}
	if !has {
		return false, permanent{fmt.Errorf("%w: the repository's binary log of source %q ends at %s:%d, but the server's oldest binlog file is %s (purged, or RESET MASTER): what lies between is lost. Check with rewind mysql check; to store on from the server's oldest file, store under a new --source name",
			ErrPurged, s.opt.Source, file, pos, first(logs))}
	}

	cfg := replication.BinlogSyncerConfig{
		ServerID:                s.opt.ServerID,
		Flavor:                  gomysql.MariaDBFlavor,
		User:                    s.opt.Conn.User,
		Password:                s.opt.Conn.Password,
		RawModeEnabled:          true,
		SemiSyncEnabled:         s.opt.SemiSync,
		DisableRetrySync:        true,
		HeartbeatPeriod:         2 * time.Second,
		ReadTimeout:             10 * time.Second,
		DumpCommandFlag:         replication.BINLOG_SEND_ANNOTATE_ROWS_EVENT,
		Localhost:               s.opt.Host,
		Logger:                  slog.New(slog.DiscardHandler),
		SynchronousEventHandler: handler{s},
	}
	if s.opt.Conn.Socket != "" {
		cfg.Host = s.opt.Conn.Socket
	} else {
		cfg.Host, cfg.Port = s.opt.Conn.Host, uint16(s.opt.Conn.Port)
	}
	syncer := replication.NewBinlogSyncer(cfg)
	streamer, err := syncer.StartSync(gomysql.Position{Name: file, Pos: uint32(pos)})
	if err != nil {
		syncer.Close()
		return false, fmt.Errorf("start the binlog dump at %s:%d: %w", file, pos, err)
	}
	s.mu.Lock()
	s.semiSync = s.opt.SemiSync
	s.sum.SemiSync = s.opt.SemiSync
	s.mu.Unlock()

	fctx, stopFlusher := context.WithCancel(ctx)
	flusherDone := make(chan struct{})
	go func() {
		defer close(flusherDone)
		s.flusher(fctx)
	}()
	_, err = streamer.GetEvent(ctx)
	syncer.Close()
	stopFlusher()
	<-flusherDone
	// Store what came. Stores run to their end whatever the context: a
	// store cut short would stop the receiver (and SIGTERM means "store
	// what you have, then exit").
	s.mu.Lock()
	ferr := s.storeLocked(context.Background())
	s.mu.Unlock()
	if ctx.Err() != nil {
		return true, ferr
	}
	if ferr != nil {
		return true, ferr
	}
	if err == nil {
		err = io.ErrUnexpectedEOF
	}
	return true, err
}

func first(l []string) string {
	if len(l) == 0 {
		return "(none)"
	}
	return l[0]
}

// flusher stores what is pending once the stream pauses or it is
// FlushInterval old.
func (s *receiver) flusher(ctx context.Context) {
	tick := time.NewTicker(max(s.opt.Idle/2, time.Millisecond))
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-tick.C:
			s.mu.Lock()
			if s.storeErr == nil && len(s.data) > 0 && now.Sub(s.stored) >= s.opt.MinInterval &&
				(now.Sub(s.last) >= s.opt.Idle || now.Sub(s.since) >= s.opt.FlushInterval) {
				_ = s.storeLocked(context.Background())
			}
			s.mu.Unlock()
		}
	}
}

// handler is the syncer's event handler: it runs before the syncer sends
// a semi-sync acknowledgement, so what it stores is stored before the
// acknowledgement.
type handler struct{ s *receiver }

func (h handler) HandleEvent(e *replication.BinlogEvent) error {
	h.s.mu.Lock()
	defer h.s.mu.Unlock()
	if h.s.storeErr != nil {
		return h.s.storeErr
	}
	return h.s.event(e.RawData)
}

// event takes one event of the stream. Events a server makes up for the
// stream (the rotate and format description it starts with, heartbeats:
// marked artificial, or with no end position) are not stored; every other
// one must start where the received binlog ends.
func (s *receiver) event(raw []byte) error {
	h, err := ParseHeader(raw)
	if err != nil {
		return err
	}
	now := time.Now()
	real := h.LogPos != 0 && h.Flags&flagArtificial == 0 && h.Type != evHeartbeat
	if h.Type == evRotate {
		next, pos, err := rotateTarget(raw)
		if err != nil {
			return err
		}
		if real {
			if err := s.append(h, raw, now); err != nil {
				return err
			}
			s.pend.Closed, s.pend.Next = true, next
		}
		if next == s.file {
			if pos != max(s.end, magicLen) {
				return fmt.Errorf("the server resumes %s at %d, but the received binlog ends at %d", next, pos, s.end)
			}
			return nil
		}
		// Another file: store the one received so far, then begin the
		// next from its start, chained to it.
		if pos != magicLen {
			return fmt.Errorf("the server goes on in %s at %d, not at its beginning", next, pos)
		}
		if err := s.storeLocked(context.Background()); err != nil {
			return err
		}
		prev, prevEnd := s.file, s.end
		s.file, s.end = next, 0
		s.pend = Piece{Name: next, Prev: prev, PrevEnd: prevEnd}
		s.sum.Files++
		return nil
	}
	if h.Type == evFormat {
		if _, _, err := s.sc.event(h, raw); err != nil {
			return err
		}
		s.pend.Checksum = s.sc.checksum
	}
	if !real {
		return nil
	}
	start := uint64(h.LogPos) - uint64(h.Size)
	if uint64(h.LogPos) < uint64(h.Size) {
		return fmt.Errorf("event of %d bytes ending at %d", h.Size, h.LogPos)
	}
	if start < max(s.end, magicLen) && uint64(h.LogPos) <= s.end {
		// Received and stored already.
		return nil
	}
	if err := s.append(h, raw, now); err != nil {
		return err
	}
	if h.Type == evStop {
		s.pend.Closed = true
	}
	return nil
}

// append adds a real event to the pending piece.
func (s *receiver) append(h Header, raw []byte, now time.Time) error {
	start := uint64(h.LogPos) - uint64(h.Size)
	if s.end == 0 {
		if start != magicLen {
			return fmt.Errorf("%s: the first event received starts at %d, not at %d", s.file, start, magicLen)
		}
		s.data = append(s.data[:0], Magic...)
		s.pend.Start, s.end = 0, magicLen
		s.since = now
	}
	if start != s.end {
		return fmt.Errorf("%s: an event starts at %d, but the received binlog ends at %d (a gap)", s.file, start, s.end)
	}
	if len(s.data) == 0 {
		s.since = now
		s.pend.Start = s.end
	}
	if h.Type != evFormat {
		g, end, err := s.sc.event(h, raw)
		if err != nil {
			return fmt.Errorf("%s at %d: %w", s.file, start, err)
		}
		if end {
			s.pend.Txns = append(s.pend.Txns, Txn{GTID: g.String(), End: uint64(h.LogPos), Time: int64(h.Time)})
		}
	}
	s.data = append(s.data, raw...)
	s.end = uint64(h.LogPos)
	s.pend.End = s.end
	s.pend.Name = s.file
	if h.Time != 0 {
		t := eventTime(h.Time)
		if s.pend.FirstTime.IsZero() {
			s.pend.FirstTime = t
		}
		s.pend.LastTime = t
	}
	s.last = now
	if s.semiSync && len(s.pend.Txns) > 0 && s.pend.Txns[len(s.pend.Txns)-1].End == s.end {
		// A commit: the server waits for its acknowledgement, which the
		// syncer sends once this returns.
		return s.storeLocked(context.Background())
	}
	return nil
}

// storeLocked stores the pending piece (s.mu held). A store that fails
// is fatal: the receiver stops, having acknowledged nothing it did not
// store.
func (s *receiver) storeLocked(ctx context.Context) error {
	if s.storeErr != nil {
		return s.storeErr
	}
	if len(s.data) == 0 {
		return nil
	}
	p := s.pend
	if s.sc.inTxn {
		p.Open = &OpenTxn{GTID: s.sc.open.String(), Standalone: s.sc.standalone, XA: s.sc.xa}
	}
	_, err := Store(ctx, s.r, []Piece{p}, [][]byte{s.data}, StoreOptions{Source: s.opt.Source, ServerID: s.serverID,
		ServerUUID: s.uuid, Host: s.opt.Host})
	if err != nil {
		s.storeErr = permanent{fmt.Errorf("store the binary log: %w", err)}
		return s.storeErr
	}
	s.small++
	s.stored = time.Now()
	if s.small >= CompactAfter && !s.compacting {
		s.compactLocked(ctx)
	}
	st := Stored{File: p.Name, End: p.End, Time: time.Now().UTC(), Bytes: len(s.data)}
	if n := len(p.Txns); n > 0 {
		st.GTID = p.Txns[n-1].GTID
		s.sum.LastGTID = st.GTID
	}
	s.sum.Stores++
	s.sum.Txns += len(p.Txns)
	s.sum.Bytes += int64(len(s.data))
	s.sum.End = Position{p.Name, p.End}
	s.data = s.data[:0]
	s.pend = Piece{Name: p.Name, Start: p.End, End: p.End, Checksum: p.Checksum}
	if s.opt.OnStore != nil {
		s.opt.OnStore(st)
	}
	return nil
}

// compactLocked starts merging the source's index files in the
// background (s.mu held): a merge reads every index file of the
// repository and rewrites the source's history, which must not hold up
// the next store (and with --semi-sync the server's commits). Stores go
// on meanwhile; their index files are merged by the next compaction.
// Compact writes the merged file before it removes any, so a compaction
// cut short loses nothing.
func (s *receiver) compactLocked(ctx context.Context) {
	s.compacting = true
	counted := s.small
	s.compactions.Add(1)
	go func() {
		defer s.compactions.Done()
		_, err := Compact(context.WithoutCancel(ctx), s.r, s.opt.Source, RewriteOptions{Host: s.opt.Host})
		s.mu.Lock()
		defer s.mu.Unlock()
		s.compacting = false
		if err != nil {
			s.opt.Log.Warn("compacting the binlog index failed (retried after the next store)", "err", err)
			return
		}
		s.small = max(0, s.small-counted)
	}()
}

// rotateTarget reads a rotate event: the position and name of the file
// the binlog goes on in. A rotate event carries a checksum when its file's
// events do, except the one a server starts a dump with; a trailing CRC32
// that matches is taken off.
func rotateTarget(raw []byte) (string, uint64, error) {
	body := raw[headerSize:]
	if len(body) < 9 {
		return "", 0, fmt.Errorf("rotate event of %d bytes", len(body))
	}
	if len(raw) >= headerSize+8+5 {
		n := len(raw) - 4
		if crc32.ChecksumIEEE(raw[:n]) == binary.LittleEndian.Uint32(raw[n:]) {
			body = raw[headerSize:n]
		}
	}
	pos := binary.LittleEndian.Uint64(body)
	name := string(body[8:])
	if err := CheckName(name); err != nil {
		return "", 0, fmt.Errorf("rotate event: %w", err)
	}
	return name, pos, nil
}

// fileForGTID returns the newest of the server's binlog files whose
// Gtid_list event (the GTID state at its start) is before gtid in gtid's
// domain: the file holding the transactions after it.
func fileForGTID(ctx context.Context, db *sql.DB, logs []string, gtid string) (string, error) {
	want, _ := ParseGTID(gtid)
	for i := len(logs) - 1; i >= 0; i-- {
		rows, err := db.QueryContext(ctx, "SHOW BINLOG EVENTS IN '"+strings.ReplaceAll(logs[i], "'", "")+"' LIMIT 4")
		if err != nil {
			return "", fmt.Errorf("--start-gtid: SHOW BINLOG EVENTS IN %s: %w", logs[i], err)
		}
		var list string
		for rows.Next() {
			var name, typ, info string
			var pos, sid, end sql.RawBytes
			if err := rows.Scan(&name, &pos, &typ, &sid, &end, &info); err != nil {
				rows.Close()
				return "", err
			}
			if typ == "Gtid_list" {
				list = info
			}
		}
		rows.Close()
		seq, found := uint64(0), false
		for _, g := range strings.Split(strings.Trim(list, "[] "), ",") {
			if x, err := ParseGTID(strings.TrimSpace(g)); err == nil && x.Domain == want.Domain {
				seq, found = x.Seq, true
			}
		}
		if !found || seq <= want.Seq {
			return logs[i], nil
		}
	}
	return "", fmt.Errorf("--start-gtid %s: the server's oldest binlog file (%s) starts after it (purged?)", gtid, first(logs))
}
