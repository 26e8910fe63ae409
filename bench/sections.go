package main

// Helpers of the sections that run alone (-mount, -images, -qemu,
// -instant and -sqlite only): a timed command, and splicing a titled
// section into BENCHMARKS.md.

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"time"
)

// timed runs bin args with env and returns its stdout and wall time.
func timed(ctx context.Context, env []string, bin string, args ...string) ([]byte, time.Duration, error) {
	c := exec.CommandContext(ctx, bin, args...)
	c.Env = env
	var out, errb bytes.Buffer
	c.Stdout, c.Stderr = &out, &errb
	start := time.Now()
	err := c.Run()
	d := time.Since(start)
	if err != nil {
		return nil, d, fmt.Errorf("%s %s: %w\n%s", bin, strings.Join(args, " "), err, errb.Bytes())
	}
	return out.Bytes(), d, nil
}

// spliceTitled replaces the section of doc that starts with the heading
// title (up to the next "## "), or adds it before the continuous-
// protection section, the notes, or "## Reproduce".
func spliceTitled(doc, title, section string) string {
	section = strings.Trim(section, "\n") + "\n"
	if i := strings.Index(doc, title+"\n"); i >= 0 {
		end := len(doc)
		if j := strings.Index(doc[i+len(title):], "\n## "); j >= 0 {
			end = i + len(title) + j + 1
		}
		rest := strings.TrimLeft(doc[end:], "\n")
		if rest != "" {
			rest = "\n" + rest
		}
		return doc[:i] + section + rest
	}
	for _, h := range []string{"\n" + cpTitle + "\n", "\n## Notes from the run", "\n## Reproduce"} {
		if i := strings.Index(doc, h); i >= 0 {
			return doc[:i+1] + section + "\n" + doc[i+1:]
		}
	}
	return strings.TrimRight(doc, "\n") + "\n\n" + section
}

// writeTitled prints section and replaces it in out ("-": print only).
func writeTitled(out, title, section string) error {
	fmt.Print(section)
	if out == "-" {
		return nil
	}
	doc, err := os.ReadFile(out)
	if err != nil && !os.IsNotExist(err) {
		return err
	}
	if err := os.WriteFile(out, []byte(spliceTitled(string(doc), title, section)), 0o644); err != nil {
		return fmt.Errorf("write %s: %w", out, err)
	}
	return nil
}

// metOr says whether a target is met.
func metOr(ok bool) string {
	if ok {
		return "met"
	}
	return "**not met**"
}
