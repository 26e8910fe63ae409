package fs

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"

	"github.com/rewind-backup/rewind/internal/tree"
)

// IDNames maps user and group IDs to names and back, as listed in a
// passwd and a group file. It reads the files once, when loaded, and never
// changes afterwards, so it is safe for concurrent use without locking.
//
// It reads the files directly rather than asking the C library: no cgo, no
// NSS, no lookup per file. Users known only to LDAP, SSSD or another NSS
// source therefore have no name here; their nodes keep the numeric ID only.
//
// A nil *IDNames knows no names.
type IDNames struct {
	users  map[uint32]string
	groups map[uint32]string
	uids   map[string]uint32
	gids   map[string]uint32
}

// LoadIDNames reads /etc/passwd and /etc/group.
func LoadIDNames() (*IDNames, error) {
	return LoadIDNamesFrom("/etc/passwd", "/etc/group")
}

// LoadIDNamesFrom reads the given passwd and group files, for example those
// of a system being restored. A file that does not exist is taken as empty.
func LoadIDNamesFrom(passwdPath, groupPath string) (*IDNames, error) {
	m := &IDNames{}
	var err error
	if m.users, m.uids, err = readIDFile(passwdPath); err != nil {
		return nil, err
	}
	if m.groups, m.gids, err = readIDFile(groupPath); err != nil {
		return nil, err
	}
	return m, nil
}

// User returns the name of uid, or "" if it has none.
func (m *IDNames) User(uid uint32) string {
	if m == nil {
		return ""
	}
	return m.users[uid]
}

// Group returns the name of gid, or "" if it has none.
func (m *IDNames) Group(gid uint32) string {
	if m == nil {
		return ""
	}
	return m.groups[gid]
}

// UID returns the user ID named name.
func (m *IDNames) UID(name string) (uint32, bool) {
	if m == nil {
		return 0, false
	}
	id, ok := m.uids[name]
	return id, ok
}

// GID returns the group ID named name.
func (m *IDNames) GID(name string) (uint32, bool) {
	if m == nil {
		return 0, false
	}
	id, ok := m.gids[name]
	return id, ok
}

// SetNames sets n.User and n.Group from n.UID and n.GID.
func (m *IDNames) SetNames(n *tree.Node) {
	n.User = m.User(n.UID)
	n.Group = m.Group(n.GID)
}

// readIDFile reads a passwd or group file: both hold the name in the first
// colon-separated field and the numeric ID in the third.
func readIDFile(path string) (map[uint32]string, map[string]uint32, error) {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return map[uint32]string{}, map[string]uint32{}, nil
	}
	if err != nil {
		return nil, nil, fmt.Errorf("read ID names: %w", err)
	}
	defer f.Close()
	byID, byName, err := parseIDFile(f)
	if err != nil {
		return nil, nil, fmt.Errorf("read ID names %s: %w", path, err)
	}
	return byID, byName, nil
}

// parseIDFile parses passwd or group lines. Comments, blank and malformed
// lines and NIS compat entries ("+", "-") are skipped. When an ID or name is
// listed twice the first line wins, as with getpwuid and getpwnam.
func parseIDFile(r io.Reader) (map[uint32]string, map[string]uint32, error) {
	byID := make(map[uint32]string)
	byName := make(map[string]uint32)
	// A bufio.Reader rather than a Scanner: group lines listing thousands
	// of members have no length limit.
	br := bufio.NewReader(r)
	for {
		line, err := br.ReadString('\n')
		if err != nil && err != io.EOF {
			return nil, nil, err
		}
		if name, id, ok := parseIDLine(line); ok {
			if _, dup := byID[id]; !dup {
				byID[id] = name
			}
			if _, dup := byName[name]; !dup {
				byName[name] = id
			}
		}
		if err == io.EOF {
			return byID, byName, nil
		}
	}
}

func parseIDLine(line string) (name string, id uint32, ok bool) {
	line = strings.TrimRight(line, "\r\n")
	if line == "" || line[0] == '#' || line[0] == '+' || line[0] == '-' {
		return "", 0, false
	}
	fields := strings.SplitN(line, ":", 4)
	if len(fields) < 3 || fields[0] == "" {
		return "", 0, false
	}
	v, err := strconv.ParseUint(fields[2], 10, 32)
	if err != nil {
		return "", 0, false
	}
	return fields[0], uint32(v), true
}
