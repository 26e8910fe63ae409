package cli

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/rewind-backup/rewind/internal/label"
	"github.com/rewind-backup/rewind/internal/timeline"
	"github.com/spf13/cobra"
)

// LabelJSON is a label in `mark --json`, `mark --list --json` and
// `versions --json` (docs/JSON.md).
type LabelJSON struct {
	Label string    `json:"label"`
	Time  time.Time `json:"time"`
	Note  string    `json:"note,omitempty"`
	Host  string    `json:"hostname"`
	User  string    `json:"username"`
}

func labelJSON(l label.Label) LabelJSON {
	return LabelJSON{Label: l.Name, Time: l.Time.UTC(), Note: l.Note, Host: l.Host, User: l.User}
}

func newMarkCmd(g *globals) *cobra.Command {
	var note string
	var list bool
	cmd := &cobra.Command{
		Use:   "mark LABEL [--note TEXT] | mark --list",
		Short: "Label the present moment, to go back to it by name",
		Long: `Record a labelled point in time, now: "before nginx upgrade". The label can be
given wherever a time can (restore --at, diff --at, rollback --at), and
rewind versions shows it. forget keeps, in each group, the snapshot that
shows the labelled moment (the newest whose capture ended by then) until the label
is removed with rewind unmark.

A label names one moment: a name already in use is refused until it is
unmarked. Names that read as a time (such as "-15m" or "2026-11-22 10:00")
are refused too. With --list, show every label, oldest first.

Marking does not take a snapshot: mark right after a backup (or while
rewind watch runs) so that the moment is captured.`,
		Example: `  rewind mark "before nginx upgrade"
  rewind mark release-42 --note "deployed by CI"
  rewind mark --list`,
		RunE: func(cmd *cobra.Command, args []string) error {
			if list {
				if len(args) > 0 || note != "" {
					return errors.New("--list takes no LABEL or --note")
				}
				g.ui.Listing = true // -q does not silence the list
				return runMarkList(cmd.Context(), g)
			}
			if len(args) != 1 {
				return errors.New("give one LABEL to mark (quote it if it has spaces), or --list")
			}
			return runMark(cmd.Context(), g, args[0], note, time.Now())
		},
	}
	cmd.Flags().StringVar(&note, "note", "", "a note kept with the label (`text`)")
	cmd.Flags().BoolVar(&list, "list", false, "list the labels instead of making one")
	return cmd
}

func newUnmarkCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "unmark LABEL",
		Short: "Remove a label, so that forget no longer keeps its snapshot",
		Long: `Remove the label called LABEL. Its moment can no longer be named, and forget
no longer keeps the snapshot that shows it (other rules may still keep it).
Snapshots are not changed.`,
		Example: `  rewind unmark "before nginx upgrade"`,
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runUnmark(cmd.Context(), g, args[0])
		},
	}
}

func runMark(ctx context.Context, g *globals, name, note string, now time.Time) error {
	if err := timeline.ValidLabel(name); err != nil {
		return err
	}
	r, err := g.openRepo(ctx, false)
	if err != nil {
		return err
	}
	defer r.Close()
	labels, err := label.List(ctx, r)
	if err != nil {
		return err
	}
	warnUnreadableLabels(g, labels)
	host, _ := os.Hostname()
	l, err := label.Mark(ctx, r, labels, label.Label{Name: name, Time: now, Note: note, Host: host, User: currentUser()})
	if err != nil {
		if errors.Is(err, label.ErrExists) {
			return fmt.Errorf("%w; `rewind unmark` it first to use the name again", err)
		}
		return err
	}
	if g.json {
		return g.ui.JSONDoc(labelJSON(l))
	}
	g.ui.Printf("marked %q at %s\n", l.Name, l.Time.Local().Format(timeFormat))
	return nil
}

func runMarkList(ctx context.Context, g *globals) error {
	r, err := g.openRepo(ctx, false)
	if err != nil {
		return err
	}
	defer r.Close()
	labels, err := label.List(ctx, r)
	if err != nil {
		return err
	}
	warnUnreadableLabels(g, labels)
	if g.json {
		out := make([]LabelJSON, 0, len(labels.Labels))
		for _, l := range labels.Labels {
			out = append(out, labelJSON(l))
		}
		return g.ui.JSONDoc(out)
	}
	for _, l := range labels.Labels {
		by := ""
		if l.User != "" || l.Host != "" {
			by = "  by " + l.User + "@" + l.Host
		}
		g.ui.Printf("%s  %q%s%s\n", l.Time.Local().Format(timeFormat), l.Name, by, noteSuffix(l))
	}
	if len(labels.Labels) == 0 {
		g.ui.Infof("no labels; make one with `rewind mark LABEL`\n")
	}
	return nil
}

func runUnmark(ctx context.Context, g *globals, name string) error {
	r, err := g.openRepo(ctx, false)
	if err != nil {
		return err
	}
	defer r.Close()
	labels, err := label.List(ctx, r)
	if err != nil {
		return err
	}
	warnUnreadableLabels(g, labels)
	removed, err := label.Unmark(ctx, r, labels, name)
	if errors.Is(err, label.ErrNotFound) {
		return fmt.Errorf("%w; `rewind mark --list` shows the labels", err)
	}
	if err != nil {
		return err
	}
	for _, l := range removed {
		g.ui.Printf("unmarked %q (%s)\n", l.Name, l.Time.Local().Format(timeFormat))
	}
	return nil
}

// warnUnreadableLabels tells about label files that cannot be read, and
// what they block.
func warnUnreadableLabels(g *globals, labels *label.Set) {
	for _, u := range labels.Unreadable {
		g.ui.Warnf("label file labels/%s cannot be read (%v): forget removes no snapshot by policy until it is restored or deleted by hand\n", u.File, u.Err)
	}
}
