package fs

import (
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// The binary form of a POSIX ACL as Linux stores it in the
// system.posix_acl_access and system.posix_acl_default xattrs: a 4-byte
// little-endian version (2), then 8-byte entries of tag (u16), permissions
// (u16) and qualifier id (u32), the id meaningful only for named users and
// groups.
const (
	aclXattrVersion = 2
	aclHeaderSize   = 4
	aclEntrySize    = 8

	aclUserObj  = 0x01
	aclUser     = 0x02
	aclGroupObj = 0x04
	aclGroup    = 0x08
	aclMask     = 0x10
	aclOther    = 0x20

	aclUndefinedID = 0xffffffff
)

// ErrBadACL: an ACL xattr value is not the binary form Linux stores.
var ErrBadACL = errors.New("malformed POSIX ACL xattr")

// IsACLXattr reports whether name is one of the two xattrs that hold POSIX
// ACLs.
func IsACLXattr(name string) bool { return name == aclAccess || name == aclDefault }

// ACLText decodes the binary value of a system.posix_acl_access or
// system.posix_acl_default xattr into the short text form that
// acl_from_text(3), setfacl and GNU tar's SCHILY.acl.* records read:
// comma-separated "tag:qualifier:perms" entries with numeric ids, e.g.
// "user::rwx,user:1000:r-x,group::r--,mask::r-x,other::---". An empty ACL
// (a default ACL holding no entries) decodes to "".
func ACLText(v []byte) (string, error) {
	if len(v) < aclHeaderSize || (len(v)-aclHeaderSize)%aclEntrySize != 0 {
		return "", fmt.Errorf("%w: %d bytes is not a 4-byte header and 8-byte entries", ErrBadACL, len(v))
	}
	if ver := binary.LittleEndian.Uint32(v); ver != aclXattrVersion {
		return "", fmt.Errorf("%w: version %d, want %d", ErrBadACL, ver, aclXattrVersion)
	}
	var b strings.Builder
	for e := v[aclHeaderSize:]; len(e) > 0; e = e[aclEntrySize:] {
		tag := binary.LittleEndian.Uint16(e)
		perm := binary.LittleEndian.Uint16(e[2:])
		id := binary.LittleEndian.Uint32(e[4:])
		if perm&^7 != 0 {
			return "", fmt.Errorf("%w: permissions %#o beyond rwx", ErrBadACL, perm)
		}
		var kind string
		named := false
		switch tag {
		case aclUserObj:
			kind = "user"
		case aclUser:
			kind, named = "user", true
		case aclGroupObj:
			kind = "group"
		case aclGroup:
			kind, named = "group", true
		case aclMask:
			kind = "mask"
		case aclOther:
			kind = "other"
		default:
			return "", fmt.Errorf("%w: unknown entry tag %#x", ErrBadACL, tag)
		}
		if named && id == aclUndefinedID {
			return "", fmt.Errorf("%w: named %s entry without an id", ErrBadACL, kind)
		}
		if b.Len() > 0 {
			b.WriteByte(',')
		}
		b.WriteString(kind)
		b.WriteByte(':')
		if named {
			b.WriteString(strconv.FormatUint(uint64(id), 10))
		}
		b.WriteByte(':')
		b.WriteString(permText(perm))
	}
	return b.String(), nil
}

func permText(p uint16) string {
	s := []byte("---")
	if p&4 != 0 {
		s[0] = 'r'
	}
	if p&2 != 0 {
		s[1] = 'w'
	}
	if p&1 != 0 {
		s[2] = 'x'
	}
	return string(s)
}
