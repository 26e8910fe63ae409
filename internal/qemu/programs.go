package qemu

import (
	"bytes"
	"context"
	"fmt"
	"os/exec"
	"strings"
)

// Programs rewind runs, with the Debian package that has each.
const (
	ImgProgram    = "qemu-img"
	SystemProgram = "qemu-system-x86_64"
)

var packages = map[string]string{
	ImgProgram:    "qemu-utils",
	SystemProgram: "qemu-system-x86",
}

// LookPath finds program (ImgProgram or SystemProgram) on PATH, or says
// which package to install.
func LookPath(program string) (string, error) {
	p, err := exec.LookPath(program)
	if err != nil {
		pkg := packages[program]
		if pkg == "" {
			pkg = program
		}
		return "", fmt.Errorf("%s not found: install QEMU's %s package (Debian: apt-get install %s)", program, pkg, pkg)
	}
	return p, nil
}

// run runs program with args and returns its standard output; a failure
// carries the last of its standard error.
func run(ctx context.Context, program string, args ...string) ([]byte, error) {
	bin, err := LookPath(program)
	if err != nil {
		return nil, err
	}
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Stdout = &stdout
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		msg := strings.TrimSpace(stderr.String())
		if len(msg) > 2000 {
			msg = "…" + msg[len(msg)-2000:]
		}
		return stdout.Bytes(), &ProgramError{Program: program, Args: args, Err: err, Stderr: msg}
	}
	return stdout.Bytes(), nil
}

// ProgramError is a QEMU program that failed.
type ProgramError struct {
	Program string
	Args    []string
	Err     error
	Stderr  string
}

func (e *ProgramError) Error() string {
	s := fmt.Sprintf("%s %s: %v", e.Program, strings.Join(e.Args, " "), e.Err)
	if e.Stderr != "" {
		s += ": " + e.Stderr
	}
	return s
}

func (e *ProgramError) Unwrap() error { return e.Err }
