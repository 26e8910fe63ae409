package cli

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"time"

	"github.com/rewind-backup/rewind/internal/password"
	"github.com/spf13/pflag"
	"golang.org/x/term"
)

// addPasswordFlags registers the flags that say where the repository
// password comes from. Their environment variables are read when the
// password is needed, not as flag defaults: a flag given on the command
// line must win over the environment (see password.Choose).
func addPasswordFlags(f *pflag.FlagSet, g *globals) {
	f.StringVar(&g.passwordFile, "password-file", "", "read the password from the first line of `file` (env REWIND_PASSWORD_FILE)")
	f.StringVar(&g.passwordCommand, "password-command", "", "run `command` with sh -c and use the first line of its output as password (env REWIND_PASSWORD_COMMAND)")
	f.DurationVar(&g.passwordTimeout, "password-timeout", password.DefaultTimeout,
		"kill a password command that has not finished after `duration` (0: never) (env REWIND_PASSWORD_TIMEOUT)")
	g.rootFlags = f
}

// passwordSettings are the places the repository password can be set.
func (g *globals) passwordSettings() []password.Setting {
	return []password.Setting{
		{Name: "--password-file", Kind: password.File, Flag: true, Value: g.passwordFile},
		{Name: "--password-command", Kind: password.Command, Flag: true, Value: g.passwordCommand},
		{Name: "REWIND_PASSWORD", Kind: password.Literal, Value: os.Getenv("REWIND_PASSWORD")},
		{Name: "REWIND_PASSWORD_FILE", Kind: password.File, Value: os.Getenv("REWIND_PASSWORD_FILE")},
		{Name: "REWIND_PASSWORD_COMMAND", Kind: password.Command, Value: os.Getenv("REWIND_PASSWORD_COMMAND")},
	}
}

// passwordFilePath returns the password file named by --password-file or
// REWIND_PASSWORD_FILE, or "".
func (g *globals) passwordFilePath() string {
	if g.passwordFile != "" {
		return g.passwordFile
	}
	return os.Getenv("REWIND_PASSWORD_FILE")
}

// passwordOptions returns how password commands run: --password-timeout,
// else REWIND_PASSWORD_TIMEOUT, else password.DefaultTimeout.
func (g *globals) passwordOptions() (password.Options, error) {
	opt := password.Options{Timeout: g.passwordTimeout, Stderr: os.Stderr}
	if fl := g.rootFlags.Lookup("password-timeout"); fl == nil || !fl.Changed {
		if v := os.Getenv("REWIND_PASSWORD_TIMEOUT"); v != "" {
			d, err := time.ParseDuration(v)
			if err != nil {
				return opt, fmt.Errorf("REWIND_PASSWORD_TIMEOUT=%q: not a duration such as 90s or 5m", v)
			}
			opt.Timeout = d
		}
	}
	if opt.Timeout < 0 {
		return opt, fmt.Errorf("the password timeout %v is negative; give 0 for no limit", opt.Timeout)
	}
	return opt, nil
}

// readPassword reads the password from the setting chosen among settings
// by password.Choose. It returns ok false when none is set, for the
// caller to fall back to a default file or a prompt. from names the
// setting, for messages.
func (g *globals) readPassword(ctx context.Context, settings []password.Setting) (pw []byte, from string, ok bool, err error) {
	s, ok, err := password.Choose(settings...)
	if err != nil || !ok {
		return nil, "", false, err
	}
	opt, err := g.passwordOptions()
	if err != nil {
		return nil, "", false, err
	}
	pw, err = password.Read(ctx, s, opt)
	return pw, s.String(), true, err
}

// password finds the password, by the precedence of docs/CLI.md: a flag
// (--password-file, --password-command), else one of REWIND_PASSWORD,
// REWIND_PASSWORD_FILE, REWIND_PASSWORD_COMMAND, else the default
// repository's password file, else a prompt on a terminal. It records
// where the password came from in g.passwordFrom.
func (g *globals) password(ctx context.Context, prompt string) ([]byte, error) {
	pw, from, ok, err := g.readPassword(ctx, g.passwordSettings())
	if err != nil {
		return nil, err
	}
	if ok {
		g.passwordFrom = from
		return pw, nil
	}
	if g.usingDefault() {
		_, pf, err := defaultRepo()
		if err != nil {
			return nil, err
		}
		pw, err := readDefaultPasswordFile(pf)
		if err == nil {
			g.passwordFrom = "the default repository's password file " + pf
			return pw, nil
		}
		if !errors.Is(err, fs.ErrNotExist) {
			return nil, err
		}
	}
	if !term.IsTerminal(int(os.Stdin.Fd())) {
		return nil, errors.New("no password given: set REWIND_PASSWORD, --password-file or --password-command")
	}
	g.passwordFrom = "the prompt"
	return promptPassword(prompt)
}

// readDefaultPasswordFile reads the default repository's password file;
// the error matches fs.ErrNotExist when there is none.
func readDefaultPasswordFile(pf string) ([]byte, error) {
	if _, err := os.Stat(pf); err != nil {
		return nil, err
	}
	return password.ReadFile(password.Setting{Name: "the default repository", Kind: password.File, Value: pf})
}

// promptPassword asks for a password on the terminal.
func promptPassword(prompt string) ([]byte, error) {
	fmt.Fprint(os.Stderr, prompt)
	p, err := term.ReadPassword(int(os.Stdin.Fd()))
	fmt.Fprintln(os.Stderr)
	if err != nil {
		return nil, fmt.Errorf("read password: %w", err)
	}
	if len(p) == 0 {
		return nil, errors.New("no password entered")
	}
	return p, nil
}

// wrongPasswordSource adds to a wrong-password error where the password
// came from, since a flag, a variable or a file the user forgot may have
// supplied it.
func (g *globals) wrongPasswordSource(err error) error {
	if g.passwordFrom == "" {
		return err
	}
	return fmt.Errorf("%w (the password came from %s)", err, g.passwordFrom)
}
