package binlog

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// The binary log events this package reads (MariaDB's numbering).
const (
	evQuery        = 2
	evStop         = 3
	evRotate       = 4
	evFormat       = 15
	evXID          = 16
	evHeartbeat    = 27
	evGTID         = 162
	evXAPrepare    = 166
	headerSize     = 19
	flagArtificial = 0x20
	// Magic starts every binlog file.
	magicLen = 4
)

// Magic is the four bytes every binlog file starts with.
var Magic = []byte{0xfe, 'b', 'i', 'n'}

// gtidStandalone marks a GTID event whose transaction is the one event
// after it (DDL); gtidPreparedXA one that ends with an XA PREPARE event.
const (
	gtidStandalone = 0x01
	gtidPreparedXA = 0x40
)

// errShort: an event shorter than its header says.
var errShort = errors.New("binlog event truncated")

// Header is a binlog event's common header.
type Header struct {
	Time     uint32
	Type     byte
	ServerID uint32
	Size     uint32
	// LogPos is the offset just after the event in its file (0 for
	// events that are not in a file: the fake ones a server sends).
	LogPos uint32
	Flags  uint16
}

// ParseHeader reads the header of the event ev (the whole event).
func ParseHeader(ev []byte) (Header, error) {
	if len(ev) < headerSize {
		return Header{}, errShort
	}
	h := Header{
		Time:     binary.LittleEndian.Uint32(ev[0:]),
		Type:     ev[4],
		ServerID: binary.LittleEndian.Uint32(ev[5:]),
		Size:     binary.LittleEndian.Uint32(ev[9:]),
		LogPos:   binary.LittleEndian.Uint32(ev[13:]),
		Flags:    binary.LittleEndian.Uint16(ev[17:]),
	}
	if h.Size < headerSize || int64(h.Size) != int64(len(ev)) {
		return h, fmt.Errorf("binlog event of type %d: size field %d, but %d bytes", h.Type, h.Size, len(ev))
	}
	return h, nil
}

// GTID is a MariaDB global transaction ID, domain-server-seq.
type GTID struct {
	Domain   uint32
	ServerID uint32
	Seq      uint64
}

func (g GTID) String() string { return fmt.Sprintf("%d-%d-%d", g.Domain, g.ServerID, g.Seq) }

// IsZero tells whether g is unset.
func (g GTID) IsZero() bool { return g == GTID{} }

// ParseGTID parses "domain-server-seq" (decimal numbers).
func ParseGTID(s string) (GTID, error) {
	bad := fmt.Errorf("GTID %q: want domain-server-sequence in decimal, as 0-1-42", s)
	parts := strings.Split(s, "-")
	if len(parts) != 3 {
		return GTID{}, bad
	}
	var n [3]uint64
	for i, p := range parts {
		if p == "" || len(p) > 20 || (len(p) > 1 && p[0] == '0') {
			return GTID{}, bad
		}
		v, err := strconv.ParseUint(p, 10, 64)
		if err != nil || (i < 2 && v > math.MaxUint32) {
			return GTID{}, bad
		}
		n[i] = v
	}
	return GTID{Domain: uint32(n[0]), ServerID: uint32(n[1]), Seq: n[2]}, nil
}

// scanner follows the transactions through a stream of events: which
// GTID is open, and where each transaction ends (its commit point).
type scanner struct {
	// checksum: events end with a 4-byte CRC32 (the format description
	// event of the file says so).
	checksum bool
	open     GTID
	inTxn    bool
	// standalone: the open transaction is the one event after its GTID.
	standalone bool
	xa         bool
}

// Txn is one transaction of the index: its GTID, the offset just after
// its last event in its binlog file (its commit point), and the time of
// that event (whole seconds, the server's clock).
type Txn struct {
	GTID string `json:"gtid"`
	End  uint64 `json:"end"`
	Time int64  `json:"time"`
}

// event reads one event (its header checked by the caller) and returns
// the transaction it ends, if any.
func (s *scanner) event(h Header, ev []byte) (GTID, bool, error) {
	body := ev[headerSize:]
	switch h.Type {
	case evFormat:
		// binlog version(2) server version(50) created(4) header
		// length(1) post-header lengths..., then the checksum algorithm
		// (1) and the event's own checksum (4).
		if len(body) < 57+5 {
			return GTID{}, false, fmt.Errorf("format description event of %d bytes", len(body))
		}
		s.checksum = body[len(body)-5] == 1
		return GTID{}, false, nil
	case evGTID:
		if len(body) < 13 {
			return GTID{}, false, fmt.Errorf("GTID event of %d bytes", len(body))
		}
		s.open = GTID{Seq: binary.LittleEndian.Uint64(body), Domain: binary.LittleEndian.Uint32(body[8:]), ServerID: h.ServerID}
		fl := body[12]
		s.inTxn, s.standalone, s.xa = true, fl&gtidStandalone != 0, fl&gtidPreparedXA != 0
		return GTID{}, false, nil
	}
	if !s.inTxn {
		return GTID{}, false, nil
	}
	end := false
	switch h.Type {
	case evXID, evXAPrepare:
		end = true
	case evQuery:
		if s.standalone {
			end = true
			break
		}
		q, err := s.queryText(body)
		if err != nil {
			return GTID{}, false, err
		}
		end = q == "COMMIT" || q == "ROLLBACK"
	}
	if !end {
		return GTID{}, false, nil
	}
	g := s.open
	s.inTxn, s.standalone, s.xa, s.open = false, false, false, GTID{}
	return g, true, nil
}

// queryText returns a query event's statement.
func (s *scanner) queryText(body []byte) (string, error) {
	// thread id(4) exec time(4) db length(1) error code(2) status
	// variables length(2), the status variables, the db name and a NUL,
	// then the statement.
	if s.checksum {
		if len(body) < 4 {
			return "", errShort
		}
		body = body[:len(body)-4]
	}
	if len(body) < 13 {
		return "", fmt.Errorf("query event of %d bytes", len(body))
	}
	dbLen := int(body[8])
	stLen := int(binary.LittleEndian.Uint16(body[11:]))
	off := 13 + stLen + dbLen + 1
	if off > len(body) {
		return "", fmt.Errorf("query event: %d bytes of status and database name in %d", stLen+dbLen+1, len(body)-13)
	}
	return string(body[off:]), nil
}

// ScanFile reads a whole binlog file's bytes (or a prefix of it) and
// returns its transactions and how many bytes form whole events; what
// follows is a partly written event.
func ScanFile(data []byte) ([]Txn, int, error) {
	if len(data) < magicLen || string(data[:magicLen]) != string(Magic) {
		return nil, 0, errors.New("not a binlog file: it does not start with \\xfebin")
	}
	var s scanner
	var out []Txn
	off := magicLen
	for len(data)-off >= headerSize {
		size := int(binary.LittleEndian.Uint32(data[off+9:]))
		if size < headerSize || size > len(data)-off {
			break
		}
		ev := data[off : off+size]
		h, err := ParseHeader(ev)
		if err != nil {
			return out, off, err
		}
		if int(h.LogPos) != off+size && h.LogPos != 0 {
			return out, off, fmt.Errorf("event at %d: its end position says %d, not %d", off, h.LogPos, off+size)
		}
		g, end, err := s.event(h, ev)
		if err != nil {
			return out, off, fmt.Errorf("event at %d: %w", off, err)
		}
		off += size
		if end {
			out = append(out, Txn{GTID: g.String(), End: uint64(off), Time: int64(h.Time)})
		}
	}
	return out, off, nil
}

// eventTime converts a header time.
func eventTime(t uint32) time.Time { return time.Unix(int64(t), 0).UTC() }
