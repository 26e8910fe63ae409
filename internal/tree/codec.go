package tree

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/rewind-backup/rewind/internal/id"
)

// Blob kinds: the first byte of a tree-type blob says what it holds.
const (
	// KindNodes: a run of encoded nodes (one piece of a directory listing).
	KindNodes byte = 1
	// KindContentList: a piece of a large file's chunk list.
	KindContentList byte = 2
)

// Wire types of a field key (key = tag<<3 | wire).
const (
	wireVarint = 0
	wireBytes  = 2
)

// Field tags of a node record. They are part of the on-disk format.
const (
	tagName         = 1
	tagType         = 2
	tagMode         = 3
	tagUID          = 4
	tagGID          = 5
	tagUser         = 6
	tagGroup        = 7
	tagSize         = 8
	tagMTime        = 9
	tagCTime        = 10
	tagATime        = 11
	tagInode        = 12
	tagDeviceID     = 13
	tagLinks        = 14
	tagRdev         = 15
	tagLinkTarget   = 16
	tagXattr        = 17
	tagContent      = 18
	tagContentLists = 19
	tagSubtree      = 20
	tagFlags        = 21
	tagError        = 22
	tagInodeFlags   = 23
)

// ErrCorrupt is wrapped by every decoding error.
var ErrCorrupt = errors.New("corrupt tree data")

// maxRecord bounds one encoded node, so that a corrupt length cannot make
// the decoder allocate without limit.
const maxRecord = 64 << 20

// AppendNode appends the encoding of n (a length-prefixed record) to buf.
func AppendNode(buf []byte, n *Node) []byte {
	var rec [16]byte
	start := len(buf)
	// Reserve room for the record length; most records are shorter than
	// 2^14 bytes, so two bytes usually suffice and the body is moved
	// otherwise.
	buf = append(buf, 0, 0)
	body := len(buf)
	buf = appendBytes(buf, tagName, n.Name)
	buf = appendVarint(buf, tagType, uint64(n.Type))
	buf = appendVarint(buf, tagMode, uint64(n.Mode))
	buf = appendVarint(buf, tagUID, uint64(n.UID))
	buf = appendVarint(buf, tagGID, uint64(n.GID))
	if n.User != "" {
		buf = appendBytes(buf, tagUser, n.User)
	}
	if n.Group != "" {
		buf = appendBytes(buf, tagGroup, n.Group)
	}
	buf = appendVarint(buf, tagSize, n.Size)
	buf = appendVarint(buf, tagMTime, zigzag(n.MTime))
	buf = appendVarint(buf, tagCTime, zigzag(n.CTime))
	buf = appendVarint(buf, tagATime, zigzag(n.ATime))
	buf = appendVarint(buf, tagInode, n.Inode)
	buf = appendVarint(buf, tagDeviceID, n.DeviceID)
	buf = appendVarint(buf, tagLinks, n.Links)
	if n.Rdev != 0 {
		buf = appendVarint(buf, tagRdev, n.Rdev)
	}
	if n.LinkTarget != "" {
		buf = appendBytes(buf, tagLinkTarget, n.LinkTarget)
	}
	for _, x := range n.Xattrs {
		v := binary.AppendUvarint(rec[:0], uint64(len(x.Name)))
		buf = binary.AppendUvarint(buf, tagXattr<<3|wireBytes)
		buf = binary.AppendUvarint(buf, uint64(len(v)+len(x.Name)+len(x.Value)))
		buf = append(buf, v...)
		buf = append(buf, x.Name...)
		buf = append(buf, x.Value...)
	}
	if len(n.Content) > 0 {
		buf = binary.AppendUvarint(buf, tagContent<<3|wireBytes)
		buf = binary.AppendUvarint(buf, uint64(contentLen(n.Content)))
		buf = AppendContent(buf, n.Content)
	}
	if len(n.ContentLists) > 0 {
		buf = appendIDs(buf, tagContentLists, n.ContentLists)
	}
	if len(n.Subtree) > 0 {
		buf = appendIDs(buf, tagSubtree, n.Subtree)
	}
	if n.Flags != 0 {
		buf = appendVarint(buf, tagFlags, uint64(n.Flags))
	}
	if n.Error != "" {
		buf = appendBytes(buf, tagError, n.Error)
	}
	if n.HasInodeFlags || n.InodeFlags != 0 {
		buf = appendVarint(buf, tagInodeFlags, uint64(n.InodeFlags))
	}
	size := len(buf) - body
	hdr := binary.AppendUvarint(rec[:0], uint64(size))
	switch {
	case len(hdr) == 2:
		copy(buf[start:], hdr)
	case len(hdr) < 2:
		// One byte of length: shift the body left by one.
		buf[start] = hdr[0]
		copy(buf[start+1:], buf[body:])
		buf = buf[:len(buf)-1]
	default:
		extra := len(hdr) - 2
		buf = append(buf, make([]byte, extra)...)
		copy(buf[body+extra:], buf[body:len(buf)-extra])
		copy(buf[start:], hdr)
	}
	return buf
}

// chunkLen is the encoded size of one chunk entry.
func chunkLen(c Chunk) int {
	n := uvarintLen(c.Size << 1)
	if !c.IsHole() {
		n += id.Size
	}
	return n
}

func contentLen(cs []Chunk) int {
	n := 0
	for _, c := range cs {
		n += chunkLen(c)
	}
	return n
}

// AppendContent appends the packed encoding of a chunk list: per chunk a
// uvarint of size<<1|hole, then the 32-byte ID unless it is a hole.
func AppendContent(buf []byte, cs []Chunk) []byte {
	for _, c := range cs {
		if c.IsHole() {
			buf = binary.AppendUvarint(buf, c.Size<<1|1)
			continue
		}
		buf = binary.AppendUvarint(buf, c.Size<<1)
		buf = append(buf, c.ID[:]...)
	}
	return buf
}

// DecodeContent decodes a packed chunk list, appending to dst.
func DecodeContent(dst []Chunk, b []byte) ([]Chunk, error) {
	for len(b) > 0 {
		v, n := binary.Uvarint(b)
		if n <= 0 {
			return dst, fmt.Errorf("%w: bad chunk size", ErrCorrupt)
		}
		b = b[n:]
		c := Chunk{Size: v >> 1}
		if v&1 == 0 {
			if len(b) < id.Size {
				return dst, fmt.Errorf("%w: chunk ID cut short", ErrCorrupt)
			}
			copy(c.ID[:], b)
			if c.ID.IsNull() {
				return dst, fmt.Errorf("%w: data chunk with null ID", ErrCorrupt)
			}
			b = b[id.Size:]
		}
		dst = append(dst, c)
	}
	return dst, nil
}

func appendVarint(buf []byte, tag int, v uint64) []byte {
	buf = binary.AppendUvarint(buf, uint64(tag<<3|wireVarint))
	return binary.AppendUvarint(buf, v)
}

func appendBytes(buf []byte, tag int, s string) []byte {
	buf = binary.AppendUvarint(buf, uint64(tag<<3|wireBytes))
	buf = binary.AppendUvarint(buf, uint64(len(s)))
	return append(buf, s...)
}

func appendIDs(buf []byte, tag int, ids []id.ID) []byte {
	buf = binary.AppendUvarint(buf, uint64(tag<<3|wireBytes))
	buf = binary.AppendUvarint(buf, uint64(len(ids)*id.Size))
	for _, i := range ids {
		buf = append(buf, i[:]...)
	}
	return buf
}

func zigzag(v int64) uint64   { return uint64(v<<1) ^ uint64(v>>63) }
func unzigzag(v uint64) int64 { return int64(v>>1) ^ -int64(v&1) }

func uvarintLen(v uint64) int {
	n := 1
	for v >= 0x80 {
		v >>= 7
		n++
	}
	return n
}

// DecodeNode decodes one record body (without its length prefix).
func DecodeNode(b []byte) (Node, error) {
	var n Node
	for len(b) > 0 {
		key, k := binary.Uvarint(b)
		if k <= 0 {
			return n, fmt.Errorf("%w: bad field key", ErrCorrupt)
		}
		b = b[k:]
		tag, wire := key>>3, key&7
		var v uint64
		var val []byte
		switch wire {
		case wireVarint:
			v, k = binary.Uvarint(b)
			if k <= 0 {
				return n, fmt.Errorf("%w: bad varint in field %d", ErrCorrupt, tag)
			}
			b = b[k:]
		case wireBytes:
			l, k := binary.Uvarint(b)
			if k <= 0 || l > uint64(len(b)-k) {
				return n, fmt.Errorf("%w: bad length in field %d", ErrCorrupt, tag)
			}
			val = b[k : k+int(l)]
			b = b[k+int(l):]
		default:
			return n, fmt.Errorf("%w: unknown wire type %d in field %d", ErrCorrupt, wire, tag)
		}
		if err := setField(&n, tag, wire, v, val); err != nil {
			return n, err
		}
	}
	if n.Type < File || n.Type > Socket {
		return n, fmt.Errorf("%w: node %q has unknown type %d", ErrCorrupt, n.Name, n.Type)
	}
	return n, nil
}

func setField(n *Node, tag, wire, v uint64, val []byte) error {
	want := uint64(wireVarint)
	switch tag {
	case tagName, tagUser, tagGroup, tagLinkTarget, tagXattr, tagContent, tagContentLists, tagSubtree, tagError:
		want = wireBytes
	}
	if tag > tagInodeFlags {
		return nil // a field from a newer writer: skipped
	}
	if wire != want {
		return fmt.Errorf("%w: field %d has wire type %d", ErrCorrupt, tag, wire)
	}
	switch tag {
	case tagName:
		n.Name = string(val)
	case tagType:
		n.Type = Type(v)
	case tagMode:
		n.Mode = uint32(v)
	case tagUID:
		n.UID = uint32(v)
	case tagGID:
		n.GID = uint32(v)
	case tagUser:
		n.User = string(val)
	case tagGroup:
		n.Group = string(val)
	case tagSize:
		n.Size = v
	case tagMTime:
		n.MTime = unzigzag(v)
	case tagCTime:
		n.CTime = unzigzag(v)
	case tagATime:
		n.ATime = unzigzag(v)
	case tagInode:
		n.Inode = v
	case tagDeviceID:
		n.DeviceID = v
	case tagLinks:
		n.Links = v
	case tagRdev:
		n.Rdev = v
	case tagLinkTarget:
		n.LinkTarget = string(val)
	case tagXattr:
		l, k := binary.Uvarint(val)
		if k <= 0 || l > uint64(len(val)-k) {
			return fmt.Errorf("%w: bad xattr", ErrCorrupt)
		}
		name := string(val[k : k+int(l)])
		value := append([]byte(nil), val[k+int(l):]...)
		n.Xattrs = append(n.Xattrs, Xattr{Name: name, Value: value})
	case tagContent:
		var err error
		n.Content, err = DecodeContent(n.Content, val)
		if err != nil {
			return fmt.Errorf("node %q: %w", n.Name, err)
		}
	case tagContentLists, tagSubtree:
		if len(val)%id.Size != 0 {
			return fmt.Errorf("%w: ID list of %d bytes", ErrCorrupt, len(val))
		}
		ids := make([]id.ID, len(val)/id.Size)
		for i := range ids {
			copy(ids[i][:], val[i*id.Size:])
		}
		if tag == tagSubtree {
			n.Subtree = ids
		} else {
			n.ContentLists = ids
		}
	case tagFlags:
		n.Flags = uint32(v)
	case tagError:
		n.Error = string(val)
	case tagInodeFlags:
		if v > 1<<32-1 {
			return fmt.Errorf("%w: node %q has inode flags %#x beyond 32 bits", ErrCorrupt, n.Name, v)
		}
		n.InodeFlags, n.HasInodeFlags = uint32(v), true
	}
	return nil
}

// Decoder reads the nodes of one KindNodes blob in order.
type Decoder struct {
	b []byte
}

// NewDecoder checks the blob's kind byte and returns a decoder over its
// nodes.
func NewDecoder(blob []byte) (*Decoder, error) {
	if len(blob) == 0 || blob[0] != KindNodes {
		return nil, fmt.Errorf("%w: not a node list", ErrCorrupt)
	}
	return &Decoder{b: blob[1:]}, nil
}

// Next returns the next node; ok is false at the end.
func (d *Decoder) Next() (n Node, ok bool, err error) {
	if len(d.b) == 0 {
		return n, false, nil
	}
	l, k := binary.Uvarint(d.b)
	if k <= 0 || l > maxRecord || l > uint64(len(d.b)-k) {
		return n, false, fmt.Errorf("%w: bad record length", ErrCorrupt)
	}
	rec := d.b[k : k+int(l)]
	d.b = d.b[k+int(l):]
	n, err = DecodeNode(rec)
	return n, err == nil, err
}

// DecodeContentList decodes a KindContentList blob.
func DecodeContentList(blob []byte) ([]Chunk, error) {
	if len(blob) == 0 || blob[0] != KindContentList {
		return nil, fmt.Errorf("%w: not a content list", ErrCorrupt)
	}
	return DecodeContent(nil, blob[1:])
}
