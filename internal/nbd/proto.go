// Package nbd is a client of the Network Block Device protocol
// (newstyle fixed handshake, structured replies, metadata contexts),
// enough to read an export and ask for its allocation and for a QEMU
// dirty bitmap over a unix socket (docs/IMAGES.md, "Running QEMU
// guests").
package nbd

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// Magic numbers and codes of the protocol.
const (
	magicInit     = 0x4e42444d41474943 // "NBDMAGIC"
	magicOpt      = 0x49484156454f5054 // "IHAVEOPT"
	magicOptReply = 0x0003e889045565a9
	magicRequest  = 0x25609513
	magicSimple   = 0x67446698
	magicStruct   = 0x668e33ef

	flagFixedNewstyle = 1 << 0
	flagNoZeroes      = 1 << 1

	optAbort          = 2
	optGo             = 7
	optStructured     = 8
	optSetMetaContext = 10

	repAck         = 1
	repInfo        = 3
	repMetaContext = 4
	repErrBit      = 1 << 31

	infoExport    = 0
	infoBlockSize = 3

	cmdRead        = 0
	cmdDisc        = 2
	cmdBlockStatus = 7

	replyFlagDone = 1

	chunkNone        = 0
	chunkOffsetData  = 1
	chunkOffsetHole  = 2
	chunkBlockStatus = 5
	chunkError       = 1<<15 + 1
	chunkErrorOffset = 1<<15 + 2

	// TransmitReadOnly is the export's read-only transmission flag.
	TransmitReadOnly = 1 << 1
)

// States of the base:allocation context.
const (
	StateHole = 1 << 0
	StateZero = 1 << 1
)

// StateDirty is the bit of a qemu:dirty-bitmap context set on blocks
// written since the bitmap started recording.
const StateDirty = 1 << 0

// ErrShort is returned when a message is shorter than its header says.
var ErrShort = errors.New("nbd: message too short")

// optReply is the header of an option reply.
type optReply struct {
	Opt, Type, Len uint32
}

func decodeOptReply(b []byte) (optReply, error) {
	if len(b) < 20 {
		return optReply{}, ErrShort
	}
	if m := binary.BigEndian.Uint64(b); m != magicOptReply {
		return optReply{}, fmt.Errorf("nbd: option reply magic %#x, want %#x", m, uint64(magicOptReply))
	}
	return optReply{
		Opt: binary.BigEndian.Uint32(b[8:]), Type: binary.BigEndian.Uint32(b[12:]), Len: binary.BigEndian.Uint32(b[16:]),
	}, nil
}

// replyHeader is the header of a simple or structured reply in the
// transmission phase. A simple reply has Simple set, Error its error,
// and no Len (READ data follows; this client never reads simple
// replies with data because it negotiates structured replies).
type replyHeader struct {
	Simple bool
	Error  uint32
	Flags  uint16
	Type   uint16
	Cookie uint64
	Len    uint32
}

// headerLen returns how many bytes the reply header starting with the
// 4-byte magic b has.
func headerLen(b []byte) (int, error) {
	if len(b) < 4 {
		return 0, ErrShort
	}
	switch m := binary.BigEndian.Uint32(b); m {
	case magicSimple:
		return 16, nil
	case magicStruct:
		return 20, nil
	default:
		return 0, fmt.Errorf("nbd: reply magic %#x is neither simple nor structured", m)
	}
}

func decodeReplyHeader(b []byte) (replyHeader, error) {
	n, err := headerLen(b)
	if err != nil {
		return replyHeader{}, err
	}
	if len(b) < n {
		return replyHeader{}, ErrShort
	}
	if n == 16 {
		return replyHeader{Simple: true, Error: binary.BigEndian.Uint32(b[4:]), Cookie: binary.BigEndian.Uint64(b[8:]), Flags: replyFlagDone}, nil
	}
	return replyHeader{
		Flags: binary.BigEndian.Uint16(b[4:]), Type: binary.BigEndian.Uint16(b[6:]),
		Cookie: binary.BigEndian.Uint64(b[8:]), Len: binary.BigEndian.Uint32(b[16:]),
	}, nil
}

// Extent is a run of bytes with the same status flags.
type Extent struct {
	Len   uint32
	Flags uint32
}

// decodeBlockStatus decodes a block-status chunk: the context ID and
// its extents.
func decodeBlockStatus(b []byte) (uint32, []Extent, error) {
	if len(b) < 4 || (len(b)-4)%8 != 0 {
		return 0, nil, fmt.Errorf("nbd: block status payload of %d bytes is not 4 + 8n", len(b))
	}
	ctx := binary.BigEndian.Uint32(b)
	ext := make([]Extent, 0, (len(b)-4)/8)
	for p := 4; p < len(b); p += 8 {
		e := Extent{Len: binary.BigEndian.Uint32(b[p:]), Flags: binary.BigEndian.Uint32(b[p+4:])}
		if e.Len == 0 {
			return 0, nil, errors.New("nbd: block status extent of length 0")
		}
		ext = append(ext, e)
	}
	return ctx, ext, nil
}

// decodeError decodes an error chunk (with or without an offset).
func decodeError(typ uint16, b []byte) (*Error, error) {
	if len(b) < 6 {
		return nil, ErrShort
	}
	e := &Error{Code: binary.BigEndian.Uint32(b)}
	ml := int(binary.BigEndian.Uint16(b[4:]))
	if len(b) < 6+ml {
		return nil, ErrShort
	}
	e.Message = string(b[6 : 6+ml])
	rest := b[6+ml:]
	if typ == chunkErrorOffset {
		if len(rest) != 8 {
			return nil, fmt.Errorf("nbd: error chunk with offset has %d trailing bytes, want 8", len(rest))
		}
		e.Offset = int64(binary.BigEndian.Uint64(rest))
		e.HasOffset = true
	}
	return e, nil
}

// decodeOffsetHead decodes the offset that starts an offset-data or
// offset-hole chunk and, for a hole, its length.
func decodeOffsetHead(typ uint16, b []byte) (off uint64, n uint32, err error) {
	switch typ {
	case chunkOffsetData:
		if len(b) < 9 {
			return 0, 0, fmt.Errorf("nbd: offset-data chunk of %d bytes carries no data", len(b))
		}
		return binary.BigEndian.Uint64(b), uint32(len(b) - 8), nil
	case chunkOffsetHole:
		if len(b) != 12 {
			return 0, 0, fmt.Errorf("nbd: offset-hole chunk of %d bytes, want 12", len(b))
		}
		return binary.BigEndian.Uint64(b), binary.BigEndian.Uint32(b[8:]), nil
	}
	return 0, 0, fmt.Errorf("nbd: chunk type %d has no offset", typ)
}

// decodeInfoExport decodes an NBD_INFO_EXPORT reply: size and flags.
func decodeInfoExport(b []byte) (uint64, uint16, error) {
	if len(b) != 12 {
		return 0, 0, fmt.Errorf("nbd: export info of %d bytes, want 12", len(b))
	}
	return binary.BigEndian.Uint64(b[2:]), binary.BigEndian.Uint16(b[10:]), nil
}

// decodeMetaContext decodes an NBD_REP_META_CONTEXT reply: the ID and
// the context's name.
func decodeMetaContext(b []byte) (uint32, string, error) {
	if len(b) < 5 {
		return 0, "", fmt.Errorf("nbd: meta context reply of %d bytes has no name", len(b))
	}
	return binary.BigEndian.Uint32(b), string(b[4:]), nil
}

// Error is an error the server returned.
type Error struct {
	Code      uint32
	Message   string
	Offset    int64
	HasOffset bool
}

func (e *Error) Error() string {
	s := fmt.Sprintf("nbd server error %d (%s)", e.Code, errName(e.Code))
	if e.HasOffset {
		s += fmt.Sprintf(" at offset %d", e.Offset)
	}
	if e.Message != "" {
		s += ": " + e.Message
	}
	return s
}

func errName(c uint32) string {
	switch c {
	case 1:
		return "EPERM"
	case 5:
		return "EIO"
	case 12:
		return "ENOMEM"
	case 22:
		return "EINVAL"
	case 28:
		return "ENOSPC"
	case 75:
		return "EOVERFLOW"
	case 95:
		return "ENOTSUP"
	case 108:
		return "ESHUTDOWN"
	}
	return "unknown"
}

// optErrName names an option error reply type.
func optErrName(t uint32) string {
	switch t &^ repErrBit {
	case 1:
		return "unsupported"
	case 2:
		return "forbidden by policy"
	case 3:
		return "invalid"
	case 4:
		return "unsupported on this platform"
	case 5:
		return "TLS required"
	case 6:
		return "unknown export"
	case 7:
		return "server shutting down"
	case 8:
		return "block size required"
	case 9:
		return "request too big"
	}
	return fmt.Sprintf("error %d", t&^repErrBit)
}
