// Package receive streams a PostgreSQL server's WAL over physical
// replication (START_REPLICATION PHYSICAL from a slot) into a rewind
// repository: the segment being filled is stored as a growing .partial
// at least every Interval, a completed segment whole (docs/POSTGRES.md,
// "Streaming with a slot"; docs/FORMAT.md §17, "Partial segments from pg receive").
package receive

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"
	"github.com/rewind-backup/rewind/internal/pg/wal"
	"github.com/rewind-backup/rewind/internal/repository"
)

var (
	// ErrNoSlot: the replication slot does not exist.
	ErrNoSlot = errors.New("replication slot does not exist")
	// ErrBadSlot: a slot name PostgreSQL does not accept, or a logical slot.
	ErrBadSlot = errors.New("unusable replication slot")
)

// permanent marks errors a reconnect cannot cure.
type permanent struct{ err error }

func (p permanent) Error() string { return p.err.Error() }
func (p permanent) Unwrap() error { return p.err }

// Options configure Run.
type Options struct {
	// DSN is a libpq connection string or URL; empty: PG* variables.
	DSN     string
	Cluster string
	Slot    string
	// CreateSlot creates the slot (RESERVE_WAL) when it is missing.
	CreateSlot bool
	// Synchronous stores what arrives as soon as the stream pauses (a few
	// milliseconds), so that a synchronous commit waits for little.
	Synchronous     bool
	ApplicationName string
	// Interval is how long received WAL may wait before it is stored as a
	// partial (default 500ms; with Synchronous 5ms).
	Interval time.Duration
	Host     string
	Log      *slog.Logger
	// OnStore, if set, is called after each store.
	OnStore func(Stored)
	// MaxBackoff bounds the wait between reconnects (default 30s).
	MaxBackoff time.Duration
}

// Stored is one store: the file and the LSN up to which WAL is durable.
type Stored struct {
	Name     string    `json:"name"`
	Timeline uint32    `json:"timeline"`
	EndLSN   string    `json:"end_lsn"`
	Time     time.Time `json:"time"`
	Bytes    int       `json:"bytes"`
}

// Summary is what a run did.
type Summary struct {
	Cluster    string
	SystemID   uint64
	Slot       string
	Timeline   uint32
	StartLSN   wal.LSN
	EndLSN     wal.LSN // stored and acknowledged
	Segments   int
	Partials   int
	Histories  int
	Bytes      int64
	Reconnects int
}

var slotName = regexp.MustCompile(`^[a-z0-9_]{1,63}$`)

// Run streams until ctx is done, then stores what it received,
// acknowledges it and returns nil. Errors that reconnecting cannot cure
// (another cluster's WAL under the name, a missing slot, a conflict) end
// it, as does failing to connect before any WAL was received.
func Run(ctx context.Context, r *repository.Repository, opt Options) (*Summary, error) {
	if !slotName.MatchString(opt.Slot) {
		return nil, fmt.Errorf("%w: --slot %q: a slot name is 1 to 63 lower-case letters, digits and underscores", ErrBadSlot, opt.Slot)
	}
	if opt.Cluster == "" {
		opt.Cluster = wal.DefaultCluster
	}
	if opt.Interval <= 0 {
		opt.Interval = 500 * time.Millisecond
		if opt.Synchronous {
			opt.Interval = 5 * time.Millisecond
		}
	}
	if opt.MaxBackoff <= 0 {
		opt.MaxBackoff = 30 * time.Second
	}
	if opt.ApplicationName == "" {
		opt.ApplicationName = "rewind"
	}
	if opt.Log == nil {
		opt.Log = slog.New(slog.DiscardHandler)
	}
	s := &session{r: r, opt: opt, sum: &Summary{Cluster: opt.Cluster, Slot: opt.Slot}}
	s.pw = wal.NewPartialWriter(r, wal.PushOptions{Cluster: opt.Cluster, Host: opt.Host})
	backoff := time.Second
	for {
		connected, err := s.run(ctx)
		if ctx.Err() != nil {
			return s.sum, nil
		}
		var p permanent
		if errors.As(err, &p) {
			return s.sum, p.err
		}
		if !connected && s.sum.SystemID == 0 {
			return s.sum, err
		}
		if connected {
			backoff = time.Second
		}
		s.sum.Reconnects++
		opt.Log.Warn("replication connection lost; reconnecting", "err", err, "wait", backoff)
		select {
		case <-ctx.Done():
			return s.sum, nil
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, opt.MaxBackoff)
	}
}

type session struct {
	r    *repository.Repository
	opt  Options
	sum  *Summary
	conn *pgconn.PgConn

	sys     uint64
	segSize uint32
	tli     uint32
	buf     []byte
	segNo   uint64
	have    int // bytes of buf received
	stored  int // bytes of buf stored
	pending time.Time
	flushed wal.LSN
	// pw stores the segment being filled, each store costing in
	// proportion to the bytes received since the last one.
	pw *wal.PartialWriter
}

// run is one connection; connected tells whether streaming started.
func (s *session) run(ctx context.Context) (connected bool, err error) {
	cfg, err := pgconn.ParseConfig(s.opt.DSN)
	if err != nil {
		return false, permanent{fmt.Errorf("PostgreSQL connection string: %w", err)}
	}
	cfg.RuntimeParams["replication"] = "database"
	cfg.RuntimeParams["application_name"] = s.opt.ApplicationName
	conn, err := pgconn.ConnectConfig(ctx, cfg)
	if err != nil {
		return false, fmt.Errorf("connect to PostgreSQL for replication (host=%s port=%d user=%s): %w; check --dsn or the PG* variables, and that pg_hba.conf allows the user a replication connection", cfg.Host, cfg.Port, cfg.User, err)
	}
	s.conn = conn
	defer func() {
		cctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		conn.Close(cctx)
		cancel()
	}()
	id, err := pglogrepl.IdentifySystem(ctx, conn)
	if err != nil {
		return false, fmt.Errorf("IDENTIFY_SYSTEM: %w", err)
	}
	sys, err := strconv.ParseUint(id.SystemID, 10, 64)
	if err != nil {
		return false, fmt.Errorf("IDENTIFY_SYSTEM: system identifier %q", id.SystemID)
	}
	cat, err := wal.Load(ctx, s.r)
	if err != nil {
		return false, fmt.Errorf("read the WAL index: %w", err)
	}
	cl := cat.Cluster(s.opt.Cluster)
	if cl != nil && cl.SystemID != sys {
		return false, permanent{fmt.Errorf("%w: the server has system identifier %d, but this repository's WAL of cluster %q is from system identifier %d; nothing stored. Give this server its own --cluster name",
			wal.ErrOtherCluster, sys, s.opt.Cluster, cl.SystemID)}
	}
	if s.sys != 0 && s.sys != sys {
		return false, permanent{fmt.Errorf("%w: the server's system identifier changed from %d to %d while receiving", wal.ErrOtherCluster, s.sys, sys)}
	}
	s.sys, s.sum.SystemID = sys, sys
	if s.segSize, err = segmentSize(ctx, conn); err != nil {
		return false, err
	}
	restart, err := s.slot(ctx)
	if err != nil {
		return false, err
	}
	// Where to start: the end of what is stored, else the slot's
	// restart_lsn, else the server's position.
	tli, start := uint32(id.Timeline), wal.LSN(id.XLogPos)
	if cl != nil {
		if t, end, ok := cl.StreamEnd(); ok {
			if t > tli {
				return false, permanent{fmt.Errorf("the WAL stored for cluster %q is on timeline %d, but the server is on timeline %d: it was restored from an older backup; give it a new --cluster name", s.opt.Cluster, t, tli)}
			}
			start = end
			if t < tli {
				if tli, err = s.timelineOf(ctx, tli, end); err != nil {
					return false, err
				}
			} else {
				tli = t
			}
		} else if restart != 0 {
			start = restart
		}
	} else if restart != 0 {
		start = restart
	}
	if s.sum.StartLSN == 0 {
		s.sum.StartLSN = start
	}
	for {
		if err := s.storeHistory(ctx, cl, tli); err != nil {
			return connected, err
		}
		segStart := start - start%wal.LSN(s.segSize)
		err := pglogrepl.StartReplication(ctx, conn, s.opt.Slot, pglogrepl.LSN(segStart), pglogrepl.StartReplicationOptions{Timeline: int32(tli), Mode: pglogrepl.PhysicalReplication})
		if next, pos, ok := pglogrepl.IsErrEndTimeline(err); ok {
			tli, start = uint32(next), wal.LSN(pos)
			continue
		}
		if err != nil {
			return connected, fmt.Errorf("START_REPLICATION at %s on timeline %d: %w", segStart, tli, err)
		}
		if !connected {
			s.opt.Log.Info("receiving WAL", "cluster", s.opt.Cluster, "slot", s.opt.Slot, "timeline", tli, "start", segStart.String(), "system_id", sys)
		}
		connected = true
		s.tli, s.sum.Timeline = tli, tli
		s.buf = make([]byte, s.segSize)
		s.segNo, s.have, s.stored = uint64(segStart)/uint64(s.segSize), 0, 0
		if cl != nil {
			if p := cl.Find(wal.SegmentName(tli, s.segNo, s.segSize) + ".partial"); p != nil && p.Size < int64(s.segSize) {
				s.stored = int(p.Size)
			}
		}
		// A new stream: the writer checks the stored partial (and
		// hashes it) again instead of trusting bytes of the last one.
		s.pw.Reset()
		// Everything before start is stored (or was never this
		// receiver's): say so at once, so that the server counts a
		// synchronous receiver as one before its first store.
		if s.flushed < start {
			s.flushed = start
		}
		if err := s.status(false); err != nil {
			return connected, fmt.Errorf("standby status: %w", err)
		}
		next, pos, err := s.stream(ctx)
		if err != nil || ctx.Err() != nil {
			// Asked to stop: no next timeline to follow.
			return connected, err
		}
		s.opt.Log.Info("timeline ended; following the next", "timeline", tli, "next", next, "at", pos.String())
		tli, start = next, pos
		// The new timeline's history decides where it starts.
		if cat, err = wal.Load(ctx, s.r); err != nil {
			return connected, err
		}
		cl = cat.Cluster(s.opt.Cluster)
	}
}

// stream receives until the timeline ends (returning the next one and
// where it starts), the connection fails, or ctx is done (storing what
// was received first).
func (s *session) stream(ctx context.Context) (uint32, wal.LSN, error) {
	lastStatus := time.Now()
	for {
		wait := 10 * time.Second
		if s.have > s.stored {
			wait = time.Until(s.pending.Add(s.opt.Interval))
		}
		if wait > 0 {
			rctx, cancel := context.WithTimeout(ctx, wait)
			msg, err := s.conn.ReceiveMessage(rctx)
			cancel()
			if ctx.Err() != nil {
				return 0, 0, s.finish()
			}
			if err != nil && !pgconn.Timeout(err) {
				s.storeQuietly()
				return 0, 0, fmt.Errorf("receive WAL: %w", err)
			}
			if err == nil {
				done, next, pos, err := s.handle(ctx, msg)
				if err != nil || done {
					return next, pos, err
				}
			}
		}
		if s.have > s.stored && !time.Now().Before(s.pending.Add(s.opt.Interval)) {
			if err := s.storePartial(ctx); err != nil {
				return 0, 0, err
			}
			lastStatus = time.Now()
		}
		if time.Since(lastStatus) >= 10*time.Second {
			if err := s.status(false); err != nil {
				return 0, 0, err
			}
			lastStatus = time.Now()
		}
	}
}

func (s *session) handle(ctx context.Context, msg pgproto3.BackendMessage) (done bool, next uint32, pos wal.LSN, err error) {
	switch m := msg.(type) {
	case *pgproto3.CopyData:
		if len(m.Data) == 0 {
			return false, 0, 0, nil
		}
		switch m.Data[0] {
		case pglogrepl.PrimaryKeepaliveMessageByteID:
			k, err := pglogrepl.ParsePrimaryKeepaliveMessage(m.Data[1:])
			if err != nil {
				return false, 0, 0, err
			}
			if k.ReplyRequested {
				return false, 0, 0, s.status(false)
			}
		case pglogrepl.XLogDataByteID:
			x, err := pglogrepl.ParseXLogData(m.Data[1:])
			if err != nil {
				return false, 0, 0, err
			}
			return false, 0, 0, s.write(ctx, wal.LSN(x.WALStart), x.WALData)
		}
	case *pgproto3.CopyDone:
		// The server ends the timeline: store its last partial, then
		// learn the next timeline.
		if err := s.storePartial(ctx); err != nil {
			return false, 0, 0, err
		}
		res, err := pglogrepl.SendStandbyCopyDone(ctx, s.conn)
		if err != nil {
			return false, 0, 0, fmt.Errorf("end of timeline %d: %w", s.tli, err)
		}
		if res == nil {
			return false, 0, 0, fmt.Errorf("the server ended streaming on timeline %d without naming the next timeline", s.tli)
		}
		return true, uint32(res.Timeline), wal.LSN(res.LSN), nil
	case *pgproto3.ErrorResponse:
		s.storeQuietly()
		return false, 0, 0, pgconn.ErrorResponseToPgError(m)
	}
	return false, 0, 0, nil
}

// write puts received WAL into the segment buffer, storing each segment
// it completes.
func (s *session) write(ctx context.Context, pos wal.LSN, data []byte) error {
	for len(data) > 0 {
		segStart := wal.LSN(s.segNo * uint64(s.segSize))
		if pos != segStart+wal.LSN(s.have) {
			return fmt.Errorf("the server sent WAL at %s, but the stream is at %s", pos, segStart+wal.LSN(s.have))
		}
		n := copy(s.buf[s.have:], data)
		if s.have <= s.stored && s.have+n > s.stored {
			s.pending = time.Now()
		}
		s.have += n
		s.sum.Bytes += int64(n)
		pos += wal.LSN(n)
		data = data[n:]
		if s.have == int(s.segSize) {
			name := wal.SegmentName(s.tli, s.segNo, s.segSize)
			if err := s.store(ctx, name, s.buf); err != nil {
				return err
			}
			s.sum.Segments++
			s.segNo++
			s.have, s.stored = 0, 0
		}
	}
	return nil
}

func (s *session) storePartial(ctx context.Context) error {
	if s.have <= s.stored {
		return nil
	}
	name := wal.SegmentName(s.tli, s.segNo, s.segSize) + ".partial"
	if err := s.store(ctx, name, s.buf[:s.have]); err != nil {
		return err
	}
	s.sum.Partials++
	return nil
}

// store pushes one file, then acknowledges it as flushed.
func (s *session) store(ctx context.Context, name string, data []byte) error {
	_, err := s.pw.Push(ctx, name, data, time.Now())
	if err != nil {
		if errors.Is(err, wal.ErrConflict) || errors.Is(err, wal.ErrOtherCluster) {
			return permanent{err}
		}
		return fmt.Errorf("store %s: %w", name, err)
	}
	s.stored = len(data)
	s.flushed = wal.LSN(s.segNo*uint64(s.segSize)) + wal.LSN(len(data))
	s.sum.EndLSN = s.flushed
	if s.opt.OnStore != nil {
		s.opt.OnStore(Stored{Name: name, Timeline: s.tli, EndLSN: s.flushed.String(), Time: time.Now().UTC(), Bytes: len(data)})
	}
	s.opt.Log.Debug("stored", "name", name, "end", s.flushed.String())
	return s.status(false)
}

// status reports what is received (write) and what is stored (flush,
// apply): the server waits for flush in synchronous replication, and
// the slot keeps the WAL past it.
func (s *session) status(reply bool) error {
	if s.flushed == 0 {
		return nil
	}
	recv := max(wal.LSN(s.segNo*uint64(s.segSize))+wal.LSN(s.have), s.flushed)
	return pglogrepl.SendStandbyStatusUpdate(context.Background(), s.conn, pglogrepl.StandbyStatusUpdate{
		WALWritePosition: pglogrepl.LSN(recv), WALFlushPosition: pglogrepl.LSN(s.flushed), WALApplyPosition: pglogrepl.LSN(s.flushed), ReplyRequested: reply})
}

// storeQuietly stores what was received before a connection ends.
func (s *session) storeQuietly() {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := s.storePartial(ctx); err != nil {
		s.opt.Log.Error("store the received WAL", "err", err)
	}
}

// finish stores what was received when asked to stop, and acknowledges it.
func (s *session) finish() error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := s.storePartial(ctx); err != nil {
		return err
	}
	return nil
}

// slot checks the replication slot (creating it with CreateSlot) and
// returns its restart_lsn (0 if it has none).
func (s *session) slot(ctx context.Context) (wal.LSN, error) {
	q := fmt.Sprintf("SELECT slot_type, restart_lsn FROM pg_catalog.pg_replication_slots WHERE slot_name = '%s'", s.opt.Slot)
	res, err := s.conn.Exec(ctx, q).ReadAll()
	if err != nil {
		return 0, fmt.Errorf("read replication slot %q: %w", s.opt.Slot, err)
	}
	if len(res) != 1 || len(res[0].Rows) == 0 {
		if !s.opt.CreateSlot {
			return 0, permanent{fmt.Errorf("%w: %q on the server; create it with `rewind pg receive --create-slot --slot %s ...` or in SQL: SELECT pg_create_physical_replication_slot('%s', true)", ErrNoSlot, s.opt.Slot, s.opt.Slot, s.opt.Slot)}
		}
		if _, err := s.conn.Exec(ctx, "CREATE_REPLICATION_SLOT "+s.opt.Slot+" PHYSICAL RESERVE_WAL").ReadAll(); err != nil {
			return 0, fmt.Errorf("create replication slot %q: %w", s.opt.Slot, err)
		}
		s.opt.Log.Info("created replication slot", "slot", s.opt.Slot)
		return s.slot(ctx)
	}
	row := res[0].Rows[0]
	if string(row[0]) != "physical" {
		return 0, permanent{fmt.Errorf("%w: %q is a %s slot; pg receive needs a physical one", ErrBadSlot, s.opt.Slot, row[0])}
	}
	if row[1] == nil {
		return 0, nil
	}
	l, err := wal.ParseLSN(string(row[1]))
	if err != nil {
		return 0, err
	}
	return l, nil
}

// storeHistory stores timeline tli's history file unless it is stored.
func (s *session) storeHistory(ctx context.Context, cl *wal.Cluster, tli uint32) error {
	if tli <= 1 {
		return nil
	}
	name := fmt.Sprintf("%08X.history", tli)
	if cl != nil && cl.Find(name) != nil {
		return nil
	}
	h, err := pglogrepl.TimelineHistory(ctx, s.conn, int32(tli))
	if err != nil {
		return fmt.Errorf("TIMELINE_HISTORY %d: %w", tli, err)
	}
	if _, err := wal.PushData(ctx, s.r, name, h.Content, time.Now(), wal.PushOptions{Cluster: s.opt.Cluster, Host: s.opt.Host, SystemID: s.sys}); err != nil {
		return permanent{err}
	}
	s.sum.Histories++
	return nil
}

// timelineOf returns the timeline of server timeline tli's history that
// holds lsn: the first whose switch point is past lsn, else tli.
func (s *session) timelineOf(ctx context.Context, tli uint32, lsn wal.LSN) (uint32, error) {
	h, err := pglogrepl.TimelineHistory(ctx, s.conn, int32(tli))
	if err != nil {
		return 0, fmt.Errorf("TIMELINE_HISTORY %d: %w", tli, err)
	}
	return historyTimelineOf(h.Content, tli, lsn), nil
}

// historyTimelineOf reads a timeline history file's content (lines "parent
// switchpoint reason") of timeline tli and returns the timeline that holds
// lsn.
func historyTimelineOf(content []byte, tli uint32, lsn wal.LSN) uint32 {
	for _, line := range strings.Split(string(content), "\n") {
		f := strings.Fields(line)
		if len(f) < 2 || strings.HasPrefix(f[0], "#") {
			continue
		}
		t, err1 := strconv.ParseUint(f[0], 10, 32)
		sw, err2 := wal.ParseLSN(f[1])
		if err1 != nil || err2 != nil {
			continue
		}
		if lsn < sw {
			return uint32(t)
		}
	}
	return tli
}

// segmentSize reads wal_segment_size ("16MB").
func segmentSize(ctx context.Context, conn *pgconn.PgConn) (uint32, error) {
	res, err := conn.Exec(ctx, "SHOW wal_segment_size").ReadAll()
	if err != nil || len(res) != 1 || len(res[0].Rows) != 1 {
		return 0, fmt.Errorf("SHOW wal_segment_size: %v", err)
	}
	return parseSegmentSize(string(res[0].Rows[0][0]))
}

// parseSegmentSize reads wal_segment_size as SHOW prints it ("16MB").
func parseSegmentSize(text string) (uint32, error) {
	v := text
	mult := uint64(1)
	switch {
	case strings.HasSuffix(v, "GB"):
		mult, v = 1<<30, strings.TrimSuffix(v, "GB")
	case strings.HasSuffix(v, "MB"):
		mult, v = 1<<20, strings.TrimSuffix(v, "MB")
	case strings.HasSuffix(v, "kB"):
		mult, v = 1<<10, strings.TrimSuffix(v, "kB")
	}
	n, err := strconv.ParseUint(v, 10, 32)
	size := n * mult
	if err != nil || size < 1<<20 || size > 1<<30 || size&(size-1) != 0 {
		return 0, fmt.Errorf("SHOW wal_segment_size: unexpected %q", text)
	}
	return uint32(size), nil
}
