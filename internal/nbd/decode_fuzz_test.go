package nbd

import (
	"encoding/binary"
	"testing"
)

// The decoders never panic on any input, and what they accept is
// consistent with the input's length.
func FuzzDecodeReplyHeader(f *testing.F) {
	s := binary.BigEndian.AppendUint32(nil, magicStruct)
	s = binary.BigEndian.AppendUint16(s, replyFlagDone)
	s = binary.BigEndian.AppendUint16(s, chunkBlockStatus)
	s = binary.BigEndian.AppendUint64(s, 7)
	s = binary.BigEndian.AppendUint32(s, 12)
	f.Add(s)
	f.Add(binary.BigEndian.AppendUint64(binary.BigEndian.AppendUint32(binary.BigEndian.AppendUint32(nil, magicSimple), 5), 1))
	f.Add([]byte{0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		h, err := decodeReplyHeader(b)
		if err != nil {
			return
		}
		if h.Simple && len(b) < 16 || !h.Simple && len(b) < 20 {
			t.Fatalf("accepted a header of %d bytes", len(b))
		}
	})
}

func FuzzDecodeOptReply(f *testing.F) {
	b := binary.BigEndian.AppendUint64(nil, magicOptReply)
	b = binary.BigEndian.AppendUint32(b, optGo)
	b = binary.BigEndian.AppendUint32(b, repAck)
	b = binary.BigEndian.AppendUint32(b, 0)
	f.Add(b)
	f.Fuzz(func(t *testing.T, b []byte) {
		_, _ = decodeOptReply(b)
		_, _, _ = decodeInfoExport(b)
		if id, name, err := decodeMetaContext(b); err == nil && 4+len(name) != len(b) {
			t.Fatalf("context %d %q from %d bytes", id, name, len(b))
		}
	})
}

func FuzzDecodeBlockStatus(f *testing.F) {
	b := binary.BigEndian.AppendUint32(nil, 1)
	b = binary.BigEndian.AppendUint32(b, 65536)
	b = binary.BigEndian.AppendUint32(b, StateHole|StateZero)
	f.Add(b)
	f.Add([]byte{0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		_, ext, err := decodeBlockStatus(b)
		if err != nil {
			return
		}
		if 4+8*len(ext) != len(b) {
			t.Fatalf("%d extents from %d bytes", len(ext), len(b))
		}
		for _, e := range ext {
			if e.Len == 0 {
				t.Fatal("accepted an empty extent")
			}
		}
	})
}

func FuzzDecodeChunk(f *testing.F) {
	e := binary.BigEndian.AppendUint32(nil, 5)
	e = binary.BigEndian.AppendUint16(e, 2)
	e = append(e, "io"...)
	f.Add(uint16(chunkError), e)
	f.Add(uint16(chunkErrorOffset), binary.BigEndian.AppendUint64(e, 4096))
	f.Add(uint16(chunkOffsetHole), binary.BigEndian.AppendUint32(binary.BigEndian.AppendUint64(nil, 0), 512))
	f.Add(uint16(chunkOffsetData), binary.BigEndian.AppendUint64(nil, 512))
	f.Fuzz(func(t *testing.T, typ uint16, b []byte) {
		if er, err := decodeError(typ, b); err == nil {
			if len(er.Message) > len(b)-6 {
				t.Fatalf("message of %d bytes from %d", len(er.Message), len(b))
			}
			_ = er.Error()
		}
		if _, n, err := decodeOffsetHead(typ, b); err == nil && typ == chunkOffsetData && int(n) != len(b)-8 {
			t.Fatalf("data length %d from %d bytes", n, len(b))
		}
	})
}
