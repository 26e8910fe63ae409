package main

// Helpers of the sections that run alone (-mount, -images, -qemu,
// -instant and -sqlite only): a timed command, and splicing a titled
// section into BENCHMARKS.md.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
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

// titledSection returns the section of doc that starts with the heading
// title, up to the next "## ", or "" if there is none.
func titledSection(doc, title string) string {
	i := strings.Index(doc, title+"\n")
	if i < 0 {
		return ""
	}
	if j := strings.Index(doc[i+len(title):], "\n## "); j >= 0 {
		return doc[i : i+len(title)+j+1]
	}
	return doc[i:]
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

// sectionReport is a section's measurements, which render as its markdown.
type sectionReport interface{ markdown() string }

// runAlone runs a section alone (-NAME only): it builds rewind, measures
// in dataDir/runs/NAME (removed afterwards unless -keep), saves the
// report as runs/NAME.json, prints the section and replaces it in -out.
func runAlone(ctx context.Context, cfg config, root, tmp, dataDir, name, title string, measure func(bin, dir string) (sectionReport, error)) error {
	t, err := buildRewind(ctx, root, tmp, cfg.rewind)
	if err != nil {
		return err
	}
	dir := filepath.Join(dataDir, "runs", name)
	rep, err := measure(t.(rewindTool).bin, dir)
	if !cfg.keep {
		os.RemoveAll(dir)
	}
	if err != nil {
		return err
	}
	if b, err := json.MarshalIndent(rep, "", "  "); err == nil {
		os.WriteFile(filepath.Join(dataDir, "runs", name+".json"), b, 0o644)
	}
	return writeTitled(cfg.out, title, rep.markdown())
}

// renderSaved rewrites the section title of out (default BENCHMARKS.md)
// from a report saved as JSON in from, for a change of the report's text
// without measuring again.
func renderSaved(ctx context.Context, from, out, title string, rep sectionReport) error {
	b, err := os.ReadFile(from)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(b, rep); err != nil {
		return fmt.Errorf("%s: %w", from, err)
	}
	if out == "" {
		root, err := repoRoot(ctx)
		if err != nil {
			return err
		}
		out = filepath.Join(root, "BENCHMARKS.md")
	}
	return writeTitled(out, title, rep.markdown())
}

// roundsSection is the setting of a section that only runs alone and
// repeats its measurement: -NAME off|only and -NAME-rounds N.
type roundsSection struct {
	mode   string
	rounds int
}

// validate checks the flags -name and -name-rounds.
func (rs roundsSection) validate(name string) error {
	if rs.mode != modeOff && rs.mode != modeOnly {
		return fmt.Errorf("-%s %q: want off or only", name, rs.mode)
	}
	if rs.rounds < 1 {
		return fmt.Errorf("-%s-rounds %d: give at least 1", name, rs.rounds)
	}
	return nil
}
