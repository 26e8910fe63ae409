package pg

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"
)

// The BASE_BACKUP command of PostgreSQL 15 and later, driven on the
// frontend of a replication connection: pgconn has no API for its mix
// of result sets and one COPY OUT stream. The server answers
//
//	a result set: the start LSN and timeline;
//	a result set: the tablespaces (spcoid, spclocation, size);
//	CopyOutResponse, then CopyData messages whose first byte is their
//	  kind: 'n' a new archive (its name and tablespace location, two
//	  C strings), 'd' data of the current archive or the manifest, 'p'
//	  progress (an int64), 'm' the manifest follows; then CopyDone;
//	a result set: the end LSN and timeline;
//	CommandComplete and ReadyForQuery.

// bbOptions are BASE_BACKUP's options that rewind uses.
type bbOptions struct {
	Label     string
	Fast      bool
	Wait      bool
	Checksums string // MANIFEST_CHECKSUMS
}

// command is the BASE_BACKUP command for o (PostgreSQL 15 syntax). The
// WAL from start to stop is sent in base.tar's pg_wal, the manifest and
// tablespace_map too.
func (o bbOptions) command() string {
	checkpoint := "spread"
	if o.Fast {
		checkpoint = "fast"
	}
	return fmt.Sprintf("BASE_BACKUP ( LABEL %s, CHECKPOINT '%s', WAL true, WAIT %t, MANIFEST 'yes', MANIFEST_CHECKSUMS '%s', TABLESPACE_MAP true )",
		QuoteConf(o.Label), checkpoint, o.Wait, o.Checksums)
}

// bbTablespace is a row of BASE_BACKUP's tablespace result set (the main
// data directory is the row with a NULL spcoid, not listed).
type bbTablespace struct {
	OID      string
	Location string
}

// bbStream reads the answer of BASE_BACKUP. Read returns the data of the
// current archive or manifest, and io.EOF at its end; next moves to the
// next one.
type bbStream struct {
	ctx  context.Context
	c    *pgconn.PgConn
	data []byte // rest of the current 'd' message
	// pending is the event that ended the current section: 'n', 'm', or
	// 'c' for CopyDone; 0 while in a section.
	pending        byte
	pendName, pLoc string
	started        bool
	// Notices are the server's notices and warnings, in order.
	Notices []string
	// Progress, when set, gets the server's progress reports (bytes sent).
	Progress func(int64)
}

// startBaseBackup sends BASE_BACKUP and reads up to the start of the
// COPY stream: the start LSN, the start timeline, the tablespaces.
func startBaseBackup(ctx context.Context, c *pgconn.PgConn, o bbOptions) (*bbStream, LSN, uint32, []bbTablespace, error) {
	s := &bbStream{ctx: ctx, c: c}
	c.Frontend().Send(&pgproto3.Query{String: o.command()})
	if err := c.Frontend().Flush(); err != nil {
		return nil, 0, 0, nil, fmt.Errorf("send BASE_BACKUP: %w", err)
	}
	rows, err := s.resultSet(2)
	if err != nil {
		return nil, 0, 0, nil, err
	}
	start, tli, err := lsnRow(rows, "start")
	if err != nil {
		return nil, 0, 0, nil, err
	}
	rows, err = s.resultSet(3)
	if err != nil {
		return nil, 0, 0, nil, err
	}
	var tbs []bbTablespace
	for _, r := range rows {
		if r[0] == nil {
			continue
		}
		t := bbTablespace{OID: *r[0]}
		if r[1] != nil {
			t.Location = *r[1]
		}
		tbs = append(tbs, t)
	}
	for {
		msg, err := s.receive()
		if err != nil {
			return nil, 0, 0, nil, err
		}
		if _, ok := msg.(*pgproto3.CopyOutResponse); ok {
			return s, start, tli, tbs, nil
		}
		return nil, 0, 0, nil, fmt.Errorf("BASE_BACKUP: unexpected %T before the archives", msg)
	}
}

// lsnRow reads the one row (LSN, timeline) of BASE_BACKUP's first and
// last result sets.
func lsnRow(rows [][]*string, which string) (LSN, uint32, error) {
	if len(rows) != 1 || rows[0][0] == nil || rows[0][1] == nil {
		return 0, 0, fmt.Errorf("BASE_BACKUP: no %s position", which)
	}
	lsn, err := ParseLSN(*rows[0][0])
	if err != nil {
		return 0, 0, fmt.Errorf("BASE_BACKUP %s position: %w", which, err)
	}
	tli, err := strconv.ParseUint(*rows[0][1], 10, 32)
	if err != nil {
		return 0, 0, fmt.Errorf("BASE_BACKUP %s timeline %q: %w", which, *rows[0][1], err)
	}
	return lsn, uint32(tli), nil
}

// receive returns the next message that is not a notice; an error
// response is returned as a *pgconn.PgError.
func (s *bbStream) receive() (pgproto3.BackendMessage, error) {
	for {
		msg, err := s.c.ReceiveMessage(s.ctx)
		if err != nil {
			return nil, fmt.Errorf("BASE_BACKUP: %w", err)
		}
		switch m := msg.(type) {
		case *pgproto3.NoticeResponse:
			s.Notices = append(s.Notices, m.Severity+": "+m.Message)
		case *pgproto3.ParameterStatus:
		case *pgproto3.ErrorResponse:
			return nil, fmt.Errorf("BASE_BACKUP: %w", pgconn.ErrorResponseToPgError(m))
		default:
			return msg, nil
		}
	}
}

// resultSet reads one result set of cols columns up to its
// CommandComplete.
func (s *bbStream) resultSet(cols int) ([][]*string, error) {
	var rows [][]*string
	for {
		msg, err := s.receive()
		if err != nil {
			return nil, err
		}
		switch m := msg.(type) {
		case *pgproto3.RowDescription:
			if len(m.Fields) != cols {
				return nil, fmt.Errorf("BASE_BACKUP: a result set of %d columns, want %d", len(m.Fields), cols)
			}
		case *pgproto3.DataRow:
			if len(m.Values) != cols {
				return nil, fmt.Errorf("BASE_BACKUP: a row of %d columns, want %d", len(m.Values), cols)
			}
			row := make([]*string, cols)
			for i, v := range m.Values {
				if v != nil {
					x := string(v)
					row[i] = &x
				}
			}
			rows = append(rows, row)
		case *pgproto3.CommandComplete:
			return rows, nil
		default:
			return nil, fmt.Errorf("BASE_BACKUP: unexpected %T in a result set", msg)
		}
	}
}

// Read reads the current section's data.
func (s *bbStream) Read(p []byte) (int, error) {
	for len(s.data) == 0 {
		if s.pending != 0 || !s.started {
			return 0, io.EOF
		}
		if err := s.step(); err != nil {
			return 0, err
		}
	}
	n := copy(p, s.data)
	s.data = s.data[n:]
	return n, nil
}

// step receives one message of the COPY stream.
func (s *bbStream) step() error {
	msg, err := s.receive()
	if err != nil {
		return err
	}
	switch m := msg.(type) {
	case *pgproto3.CopyData:
		if len(m.Data) == 0 {
			return errors.New("BASE_BACKUP: an empty CopyData message")
		}
		body := m.Data[1:]
		switch m.Data[0] {
		case 'd':
			s.data = body
		case 'p':
			if len(body) == 8 && s.Progress != nil {
				var v int64
				for _, b := range body {
					v = v<<8 | int64(b)
				}
				s.Progress(v)
			}
		case 'n':
			name, loc, err := parseNewArchive(body)
			if err != nil {
				return err
			}
			s.pending, s.pendName, s.pLoc = 'n', name, loc
		case 'm':
			s.pending = 'm'
		default:
			return fmt.Errorf("BASE_BACKUP: unknown CopyData kind %q (a server newer than rewind knows?)", m.Data[0])
		}
	case *pgproto3.CopyDone:
		s.pending = 'c'
	default:
		return fmt.Errorf("BASE_BACKUP: unexpected %T in the COPY stream", msg)
	}
	return nil
}

// next skips what is left of the current section and returns the next
// event: 'n' with an archive's name and tablespace location, 'm' for the
// manifest, or 'c' at the end of the COPY stream.
func (s *bbStream) next() (kind byte, name, location string, err error) {
	s.started = true
	if _, err := io.Copy(io.Discard, s); err != nil {
		return 0, "", "", err
	}
	for s.pending == 0 {
		if err := s.step(); err != nil {
			return 0, "", "", err
		}
		s.data = s.data[:0] // data outside a section is not expected; drop it
	}
	kind, name, location = s.pending, s.pendName, s.pLoc
	if kind != 'c' {
		s.pending = 0
	}
	return kind, name, location, nil
}

// finish reads the answer after CopyDone: the end LSN and timeline.
func (s *bbStream) finish() (LSN, uint32, error) {
	rows, err := s.resultSet(2)
	if err != nil {
		return 0, 0, err
	}
	end, tli, err := lsnRow(rows, "end")
	if err != nil {
		return 0, 0, err
	}
	for {
		msg, err := s.receive()
		if err != nil {
			return 0, 0, err
		}
		switch msg.(type) {
		case *pgproto3.CommandComplete:
		case *pgproto3.ReadyForQuery:
			return end, tli, nil
		default:
			return 0, 0, fmt.Errorf("BASE_BACKUP: unexpected %T at the end", msg)
		}
	}
}

// notices joins the server's notices for a message.
func (s *bbStream) notices() string { return strings.Join(s.Notices, "; ") }

// parseNewArchive reads a new-archive message's body: the archive's name
// and its tablespace's location ("" for the main data directory), each
// ended by a zero byte.
func parseNewArchive(body []byte) (name, location string, err error) {
	n, rest, ok1 := bytes.Cut(body, []byte{0})
	loc, tail, ok2 := bytes.Cut(rest, []byte{0})
	if !ok1 || !ok2 || len(tail) != 0 || len(n) == 0 {
		return "", "", errors.New("BASE_BACKUP: a malformed new-archive message")
	}
	return string(n), string(loc), nil
}
