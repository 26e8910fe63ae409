package nbd

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"
)

// maxPayload bounds what the client accepts in one option reply or
// non-data chunk, so that a broken server cannot make it allocate
// without limit.
const maxPayload = 1 << 24

// MaxRequest is the largest READ or BLOCK_STATUS length the client
// sends in one request (QEMU's server accepts 32 MiB).
const MaxRequest = 32 << 20

// Conn is a connection to one export in the transmission phase. Its
// methods are safe to call from several goroutines; requests are sent
// one at a time.
type Conn struct {
	mu     sync.Mutex
	c      net.Conn
	r      *bufio.Reader
	cookie uint64
	hdr    [32]byte

	// Size is the export's size in bytes, Flags its transmission flags.
	Size  int64
	Flags uint16
	// contexts maps the negotiated metadata context names to their IDs.
	contexts map[string]uint32
}

// Dial connects to the NBD server listening on the unix socket sock,
// negotiates structured replies and the metadata contexts (such as
// "base:allocation" or "qemu:dirty-bitmap:NAME"), and opens export.
// A context the server does not offer is an error naming it.
func Dial(ctx context.Context, sock, export string, contexts ...string) (*Conn, error) {
	var d net.Dialer
	c, err := d.DialContext(ctx, "unix", sock)
	if err != nil {
		return nil, fmt.Errorf("nbd: connect to %s: %w", sock, err)
	}
	if dl, ok := ctx.Deadline(); ok {
		_ = c.SetDeadline(dl)
	}
	n := &Conn{c: c, r: bufio.NewReaderSize(c, 256<<10), contexts: map[string]uint32{}}
	if err := n.handshake(export, contexts); err != nil {
		c.Close()
		return nil, err
	}
	_ = c.SetDeadline(timeZero)
	return n, nil
}

func (n *Conn) handshake(export string, contexts []string) error {
	var b [18]byte
	if _, err := io.ReadFull(n.r, b[:]); err != nil {
		return fmt.Errorf("nbd: read greeting: %w", err)
	}
	if m := binary.BigEndian.Uint64(b[:]); m != magicInit {
		return fmt.Errorf("nbd: greeting magic %#x: not an NBD server", m)
	}
	if m := binary.BigEndian.Uint64(b[8:]); m != magicOpt {
		return fmt.Errorf("nbd: server speaks the oldstyle handshake (magic %#x), only newstyle is supported", m)
	}
	sflags := binary.BigEndian.Uint16(b[16:])
	if sflags&flagFixedNewstyle == 0 {
		return errors.New("nbd: server does not support the fixed newstyle handshake")
	}
	cflags := uint32(flagFixedNewstyle)
	if sflags&flagNoZeroes != 0 {
		cflags |= flagNoZeroes
	}
	if err := binary.Write(n.c, binary.BigEndian, cflags); err != nil {
		return fmt.Errorf("nbd: send flags: %w", err)
	}
	if err := n.sendOpt(optStructured, nil); err != nil {
		return err
	}
	if _, err := n.optReplies(optStructured, nil); err != nil {
		return fmt.Errorf("nbd: structured replies: %w", err)
	}
	if len(contexts) > 0 {
		if err := n.setMetaContexts(export, contexts); err != nil {
			return err
		}
	}
	// NBD_OPT_GO: name, and one information request (block sizes).
	data := binary.BigEndian.AppendUint32(nil, uint32(len(export)))
	data = append(data, export...)
	data = binary.BigEndian.AppendUint16(data, 1)
	data = binary.BigEndian.AppendUint16(data, infoBlockSize)
	if err := n.sendOpt(optGo, data); err != nil {
		return err
	}
	gotSize := false
	_, err := n.optReplies(optGo, func(typ uint32, p []byte) error {
		if typ != repInfo || len(p) < 2 || binary.BigEndian.Uint16(p) != infoExport {
			return nil
		}
		size, flags, err := decodeInfoExport(p)
		if err != nil {
			return err
		}
		if size > 1<<62 {
			return fmt.Errorf("nbd: export size %d out of range", size)
		}
		n.Size, n.Flags, gotSize = int64(size), flags, true
		return nil
	})
	if err != nil {
		return fmt.Errorf("nbd: open export %q: %w", export, err)
	}
	if !gotSize {
		return fmt.Errorf("nbd: open export %q: the server sent no size", export)
	}
	return nil
}

func (n *Conn) setMetaContexts(export string, contexts []string) error {
	data := binary.BigEndian.AppendUint32(nil, uint32(len(export)))
	data = append(data, export...)
	data = binary.BigEndian.AppendUint32(data, uint32(len(contexts)))
	for _, c := range contexts {
		data = binary.BigEndian.AppendUint32(data, uint32(len(c)))
		data = append(data, c...)
	}
	if err := n.sendOpt(optSetMetaContext, data); err != nil {
		return err
	}
	_, err := n.optReplies(optSetMetaContext, func(typ uint32, p []byte) error {
		if typ != repMetaContext {
			return nil
		}
		id, name, err := decodeMetaContext(p)
		if err != nil {
			return err
		}
		n.contexts[name] = id
		return nil
	})
	if err != nil {
		return fmt.Errorf("nbd: metadata contexts of %q: %w", export, err)
	}
	for _, c := range contexts {
		if _, ok := n.contexts[c]; !ok {
			return fmt.Errorf("nbd: export %q does not offer the metadata context %q", export, c)
		}
	}
	return nil
}

func (n *Conn) sendOpt(opt uint32, data []byte) error {
	b := binary.BigEndian.AppendUint64(nil, magicOpt)
	b = binary.BigEndian.AppendUint32(b, opt)
	b = binary.BigEndian.AppendUint32(b, uint32(len(data)))
	b = append(b, data...)
	if _, err := n.c.Write(b); err != nil {
		return fmt.Errorf("nbd: send option %d: %w", opt, err)
	}
	return nil
}

// optReplies reads the replies to option opt up to its ACK, handing
// every other reply to each (which may be nil). An error reply is
// returned as an error.
func (n *Conn) optReplies(opt uint32, each func(typ uint32, p []byte) error) (int, error) {
	count := 0
	for {
		var h [20]byte
		if _, err := io.ReadFull(n.r, h[:]); err != nil {
			return count, fmt.Errorf("read option reply: %w", err)
		}
		rep, err := decodeOptReply(h[:])
		if err != nil {
			return count, err
		}
		if rep.Opt != opt {
			return count, fmt.Errorf("reply to option %d while waiting for %d", rep.Opt, opt)
		}
		if rep.Len > maxPayload {
			return count, fmt.Errorf("option reply of %d bytes is too long", rep.Len)
		}
		p := make([]byte, rep.Len)
		if _, err := io.ReadFull(n.r, p); err != nil {
			return count, fmt.Errorf("read option reply: %w", err)
		}
		switch {
		case rep.Type == repAck:
			return count, nil
		case rep.Type&repErrBit != 0:
			msg := optErrName(rep.Type)
			if len(p) > 0 {
				msg += ": " + string(p)
			}
			return count, errors.New(msg)
		}
		count++
		if each != nil {
			if err := each(rep.Type, p); err != nil {
				return count, err
			}
		}
	}
}

// ContextID returns the ID of a negotiated metadata context.
func (n *Conn) ContextID(name string) (uint32, bool) {
	id, ok := n.contexts[name]
	return id, ok
}

func (n *Conn) send(cmd uint16, off uint64, length uint32) (uint64, error) {
	n.cookie++
	b := n.hdr[:28]
	binary.BigEndian.PutUint32(b, magicRequest)
	binary.BigEndian.PutUint16(b[4:], 0)
	binary.BigEndian.PutUint16(b[6:], cmd)
	binary.BigEndian.PutUint64(b[8:], n.cookie)
	binary.BigEndian.PutUint64(b[16:], off)
	binary.BigEndian.PutUint32(b[24:], length)
	if _, err := n.c.Write(b); err != nil {
		return 0, fmt.Errorf("nbd: send request: %w", err)
	}
	return n.cookie, nil
}

// readHeader reads the next reply header and checks its cookie.
func (n *Conn) readHeader(cookie uint64) (replyHeader, error) {
	b := n.hdr[:20]
	if _, err := io.ReadFull(n.r, b[:4]); err != nil {
		return replyHeader{}, fmt.Errorf("nbd: read reply: %w", err)
	}
	hl, err := headerLen(b)
	if err != nil {
		return replyHeader{}, err
	}
	if _, err := io.ReadFull(n.r, b[4:hl]); err != nil {
		return replyHeader{}, fmt.Errorf("nbd: read reply: %w", err)
	}
	h, err := decodeReplyHeader(b[:hl])
	if err != nil {
		return h, err
	}
	if h.Cookie != cookie {
		return h, fmt.Errorf("nbd: reply for request %d while waiting for %d", h.Cookie, cookie)
	}
	return h, nil
}

// chunkPayload reads a non-data chunk's payload.
func (n *Conn) chunkPayload(h replyHeader) ([]byte, error) {
	if h.Len > maxPayload {
		return nil, fmt.Errorf("nbd: reply chunk of %d bytes is too long", h.Len)
	}
	p := make([]byte, h.Len)
	if _, err := io.ReadFull(n.r, p); err != nil {
		return nil, fmt.Errorf("nbd: read reply chunk: %w", err)
	}
	return p, nil
}

// ReadAt reads len(p) bytes at off (at most MaxRequest per request).
func (n *Conn) ReadAt(p []byte, off int64) (int, error) {
	done := 0
	for done < len(p) {
		k := min(len(p)-done, MaxRequest)
		if err := n.read(p[done:done+k], off+int64(done)); err != nil {
			return done, err
		}
		done += k
	}
	return done, nil
}

func (n *Conn) read(p []byte, off int64) error {
	if off < 0 || off+int64(len(p)) > n.Size {
		return fmt.Errorf("nbd: read of %d bytes at %d beyond the export's %d bytes", len(p), off, n.Size)
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	cookie, err := n.send(cmdRead, uint64(off), uint32(len(p)))
	if err != nil {
		return err
	}
	var failed error
	for {
		h, err := n.readHeader(cookie)
		if err != nil {
			return err
		}
		if h.Simple {
			if h.Error != 0 {
				return &Error{Code: h.Error}
			}
			if _, err := io.ReadFull(n.r, p); err != nil {
				return fmt.Errorf("nbd: read data: %w", err)
			}
			return nil
		}
		switch h.Type {
		case chunkOffsetData:
			if h.Len < 9 {
				return fmt.Errorf("nbd: offset-data chunk of %d bytes", h.Len)
			}
			var ob [8]byte
			if _, err := io.ReadFull(n.r, ob[:]); err != nil {
				return fmt.Errorf("nbd: read data: %w", err)
			}
			at := int64(binary.BigEndian.Uint64(ob[:])) - off
			dl := int64(h.Len - 8)
			if at < 0 || at+dl > int64(len(p)) {
				return fmt.Errorf("nbd: data chunk at %d+%d outside the request %d+%d", at+off, dl, off, len(p))
			}
			if _, err := io.ReadFull(n.r, p[at:at+dl]); err != nil {
				return fmt.Errorf("nbd: read data: %w", err)
			}
		case chunkOffsetHole:
			pl, err := n.chunkPayload(h)
			if err != nil {
				return err
			}
			o, hl, err := decodeOffsetHead(h.Type, pl)
			if err != nil {
				return err
			}
			at := int64(o) - off
			if at < 0 || at+int64(hl) > int64(len(p)) {
				return fmt.Errorf("nbd: hole chunk at %d+%d outside the request %d+%d", o, hl, off, len(p))
			}
			clear(p[at : at+int64(hl)])
		default:
			if err := n.otherChunk(h, &failed); err != nil {
				return err
			}
		}
		if h.Flags&replyFlagDone != 0 {
			return failed
		}
	}
}

// otherChunk handles a NONE or error chunk, or skips an unknown one;
// an error chunk is kept in failed.
func (n *Conn) otherChunk(h replyHeader, failed *error) error {
	pl, err := n.chunkPayload(h)
	if err != nil {
		return err
	}
	switch h.Type {
	case chunkNone:
		if h.Flags&replyFlagDone == 0 || len(pl) != 0 {
			return errors.New("nbd: a NONE chunk must be the last and empty")
		}
	case chunkError, chunkErrorOffset:
		e, err := decodeError(h.Type, pl)
		if err != nil {
			return err
		}
		if *failed == nil {
			*failed = e
		}
	default:
		if h.Type&(1<<15) != 0 {
			return fmt.Errorf("nbd: unknown error chunk type %d", h.Type)
		}
	}
	return nil
}

// BlockStatus asks for the status of [off, off+length) in each
// negotiated context and returns the extents per context name. The
// server may describe less than asked (at least one extent per
// context).
func (n *Conn) BlockStatus(off int64, length uint32) (map[string][]Extent, error) {
	if off < 0 || off >= n.Size {
		return nil, fmt.Errorf("nbd: block status at %d outside the export's %d bytes", off, n.Size)
	}
	length = uint32(min(int64(length), n.Size-off))
	names := make(map[uint32]string, len(n.contexts))
	for k, v := range n.contexts {
		names[v] = k
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	cookie, err := n.send(cmdBlockStatus, uint64(off), length)
	if err != nil {
		return nil, err
	}
	out := map[string][]Extent{}
	var failed error
	for {
		h, err := n.readHeader(cookie)
		if err != nil {
			return nil, err
		}
		if h.Simple {
			if h.Error != 0 {
				return nil, &Error{Code: h.Error}
			}
			return nil, errors.New("nbd: simple reply to a block status request")
		}
		if h.Type == chunkBlockStatus {
			pl, err := n.chunkPayload(h)
			if err != nil {
				return nil, err
			}
			id, ext, err := decodeBlockStatus(pl)
			if err != nil {
				return nil, err
			}
			name, ok := names[id]
			if !ok {
				return nil, fmt.Errorf("nbd: block status for context %d, which was not negotiated", id)
			}
			out[name] = ext
		} else if err := n.otherChunk(h, &failed); err != nil {
			return nil, err
		}
		if h.Flags&replyFlagDone != 0 {
			break
		}
	}
	if failed != nil {
		return nil, failed
	}
	for name := range n.contexts {
		if len(out[name]) == 0 {
			return nil, fmt.Errorf("nbd: no block status for context %q", name)
		}
	}
	return out, nil
}

// Close sends a disconnect request and closes the connection.
func (n *Conn) Close() error {
	n.mu.Lock()
	defer n.mu.Unlock()
	_, _ = n.send(cmdDisc, 0, 0)
	return n.c.Close()
}

var timeZero time.Time

// Range is a run of bytes of the export.
type Range struct{ Off, Len int64 }

// Scan walks the whole export's block status in the negotiated context
// name and returns, in order and merged, the ranges whose flags match
// want.
func (n *Conn) Scan(name string, want func(flags uint32) bool) ([]Range, error) {
	if _, ok := n.contexts[name]; !ok {
		return nil, fmt.Errorf("nbd: context %q was not negotiated", name)
	}
	var out []Range
	for off := int64(0); off < n.Size; {
		st, err := n.BlockStatus(off, 1<<30)
		if err != nil {
			return nil, err
		}
		for _, e := range st[name] {
			l := min(int64(e.Len), n.Size-off)
			if want(e.Flags) {
				if k := len(out); k > 0 && out[k-1].Off+out[k-1].Len == off {
					out[k-1].Len += l
				} else {
					out = append(out, Range{Off: off, Len: l})
				}
			}
			off += l
			if off >= n.Size {
				break
			}
		}
	}
	return out, nil
}
