package fs

import (
	"encoding/binary"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/rewind-backup/rewind/internal/testutil"
)

// aclBytes encodes entries (tag, perm, id) in the kernel's binary form.
func aclBytes(entries ...[3]uint32) []byte {
	b := binary.LittleEndian.AppendUint32(nil, aclXattrVersion)
	for _, e := range entries {
		b = binary.LittleEndian.AppendUint16(b, uint16(e[0]))
		b = binary.LittleEndian.AppendUint16(b, uint16(e[1]))
		b = binary.LittleEndian.AppendUint32(b, e[2])
	}
	return b
}

func TestACLText(t *testing.T) {
	u := uint32(aclUndefinedID)
	for _, c := range []struct {
		v    []byte
		want string
	}{
		{aclBytes(), ""},
		{aclBytes([3]uint32{aclUserObj, 7, u}, [3]uint32{aclGroupObj, 4, u}, [3]uint32{aclOther, 0, u}), "user::rwx,group::r--,other::---"},
		{aclBytes([3]uint32{aclUserObj, 6, u}, [3]uint32{aclUser, 5, 1000}, [3]uint32{aclUser, 2, 0}, [3]uint32{aclGroupObj, 1, u},
			[3]uint32{aclGroup, 3, 4294967294}, [3]uint32{aclMask, 7, u}, [3]uint32{aclOther, 4, u}),
			"user::rw-,user:1000:r-x,user:0:-w-,group::--x,group:4294967294:-wx,mask::rwx,other::r--"},
	} {
		got, err := ACLText(c.v)
		if err != nil || got != c.want {
			t.Errorf("ACLText(%x) = %q, %v; want %q", c.v, got, err, c.want)
		}
	}
	for name, v := range map[string][]byte{
		"empty":       nil,
		"short":       {2, 0, 0},
		"version 1":   binary.LittleEndian.AppendUint32(nil, 1),
		"torn entry":  append(aclBytes([3]uint32{aclUserObj, 7, u}), 1, 0, 7),
		"unknown tag": aclBytes([3]uint32{0x40, 7, u}),
		"perm bits":   aclBytes([3]uint32{aclOther, 8, u}),
		"user no id":  aclBytes([3]uint32{aclUser, 7, u}),
		"group no id": aclBytes([3]uint32{aclGroup, 7, u}),
	} {
		if got, err := ACLText(v); !errors.Is(err, ErrBadACL) {
			t.Errorf("%s: ACLText(%x) = %q, %v; want ErrBadACL", name, v, got, err)
		}
	}
}

// TestACLTextMatchesGetfacl: ACLs set by setfacl on ext4, as the kernel
// stores them, decode to what getfacl prints with numeric ids.
func TestACLTextMatchesGetfacl(t *testing.T) {
	mnt := testutil.Ext4(t)
	setfacl := testutil.RequireTool(t, "setfacl")
	getfacl := testutil.RequireTool(t, "getfacl")
	d := filepath.Join(mnt, "d")
	if err := os.Mkdir(d, 0o750); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{
		{"-m", "u:1000:rx,u:0:w,g:4242:rwx,m::rx", d},
		{"-d", "-m", "u::rwx,g::r,o::-,u:65534:r,g:0:x", d},
	} {
		if out, err := exec.Command(setfacl, args...).CombinedOutput(); err != nil {
			t.Fatalf("setfacl %v: %v: %s", args, err, out)
		}
	}
	xs, err := ReadXattrs(d)
	if err != nil {
		t.Fatal(err)
	}
	found := 0
	for _, x := range xs {
		flag := map[string]string{aclAccess: "--access", aclDefault: "--default"}[x.Name]
		if flag == "" {
			continue
		}
		found++
		got, err := ACLText(x.Value)
		if err != nil {
			t.Fatalf("%s: %v", x.Name, err)
		}
		out, err := exec.Command(getfacl, "--omit-header", "--numeric", "--no-effective", flag, d).Output()
		if err != nil {
			t.Fatalf("getfacl: %v", err)
		}
		want := strings.Join(strings.Fields(regexp.MustCompile(`default:`).ReplaceAllString(string(out), "")), ",")
		if got != want {
			t.Errorf("%s: ACLText = %q; getfacl says %q", x.Name, got, want)
		}
	}
	if found != 2 {
		t.Fatalf("found %d ACL xattrs on %s, want 2: %v", found, d, xs)
	}
}

func FuzzACLText(f *testing.F) {
	u := uint32(aclUndefinedID)
	f.Add(aclBytes([3]uint32{aclUserObj, 7, u}, [3]uint32{aclUser, 5, 1000}, [3]uint32{aclMask, 5, u}, [3]uint32{aclOther, 0, u}))
	f.Add([]byte{2, 0, 0, 0})
	f.Add([]byte{2, 0, 0, 0, 1, 0, 7})
	f.Fuzz(func(t *testing.T, v []byte) {
		s, err := ACLText(v)
		if err != nil {
			if !errors.Is(err, ErrBadACL) || s != "" {
				t.Fatalf("ACLText(%x) = %q, %v", v, s, err)
			}
			return
		}
		n := (len(v) - aclHeaderSize) / aclEntrySize
		if n == 0 {
			if s != "" {
				t.Fatalf("no entries gave %q", s)
			}
			return
		}
		entries := strings.Split(s, ",")
		if len(entries) != n {
			t.Fatalf("%d entries gave %d texts: %q", n, len(entries), s)
		}
		re := regexp.MustCompile(`^(user|group|mask|other):[0-9]*:[r-][w-][x-]$`)
		for _, e := range entries {
			if !re.MatchString(e) {
				t.Fatalf("entry %q of %q is not tag:id:perms", e, s)
			}
		}
	})
}
