package fs

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

func TestNotKeptError(t *testing.T) {
	var what []string
	for i := range 11 {
		what = append(what, fmt.Sprintf("xattr %q (%d bytes)", fmt.Sprintf("user.a%02d", i), 10+i))
	}
	e := &NotKeptError{What: what, Why: unix.ENOSPC}
	msg := e.Error()
	for _, want := range []string{`"user.a00" (10 bytes)`, `"user.a07"`, "and 3 more", "ENOSPC", "one file"} {
		if !strings.Contains(msg, want) {
			t.Errorf("message %q lacks %q", msg, want)
		}
	}
	if strings.Contains(msg, "user.a08") {
		t.Errorf("message %q names more than %d items", msg, maxNamed)
	}
	if !errors.Is(e, ErrNotKept) || errors.Is(e, unix.ENOSPC) {
		t.Error("a NotKeptError must be ErrNotKept and not ENOSPC, which means a full disk to callers")
	}
	e = &NotKeptError{What: []string{"x"}, Why: unix.ENOTSUP}
	if msg := e.Error(); !strings.Contains(msg, "not supported") {
		t.Errorf("message %q does not say the filesystem lacks support", msg)
	}
}

func TestSplitNotKept(t *testing.T) {
	nk := &os.PathError{Op: "fsetxattr", Path: "f", Err: &NotKeptError{What: []string{"a"}, Why: unix.E2BIG}}
	other := &os.PathError{Op: "fchmod", Path: "f", Err: unix.EPERM}
	for _, c := range []struct {
		name                string
		in                  error
		wantNotKept, wantOK bool
	}{
		{"nil", nil, false, false},
		{"not kept alone", errors.Join(nk), true, false},
		{"other alone", errors.Join(other), false, true},
		{"both", errors.Join(other, nk), true, true},
		{"unjoined", nk, true, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			n, o := SplitNotKept(c.in)
			if (n != nil) != c.wantNotKept || (o != nil) != c.wantOK {
				t.Fatalf("SplitNotKept(%v) = %v, %v", c.in, n, o)
			}
			if n != nil && (!errors.Is(n, ErrNotKept) || errors.Is(n, unix.EPERM)) {
				t.Errorf("not-kept part %v", n)
			}
			if o != nil && (errors.Is(o, ErrNotKept) || !errors.Is(o, unix.EPERM)) {
				t.Errorf("other part %v", o)
			}
		})
	}
}
