package cli

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/rewind-backup/rewind/internal/id"
	"github.com/rewind-backup/rewind/internal/lock"
	"github.com/rewind-backup/rewind/internal/snapshot"
	"github.com/spf13/cobra"
)

// TagJSON is one element of `tag --json` (docs/JSON.md).
type TagJSON struct {
	From    string   `json:"from"`
	ID      string   `json:"id"`
	ShortID string   `json:"short_id"`
	Tags    []string `json:"tags"`
	Changed bool     `json:"changed"`
}

type tagOptions struct {
	add, remove, set []string
	filter           snapFilter
}

func newTagCmd(g *globals) *cobra.Command {
	var o tagOptions
	cmd := &cobra.Command{
		Use:   "tag [--add TAG]... [--remove TAG]... [--set TAG]... [SNAPSHOT...]",
		Short: "Add, remove or set the tags of snapshots",
		Long: `Change the tags of the snapshots named (IDs, unique ID prefixes or "latest"),
or, when none is named, of every snapshot that passes --host, --tag and
--path. --set replaces the tags (--set "" removes them all); --add and
--remove change them and can be combined, but not with --set. A TAG may list
several tags separated by commas.

A snapshot file cannot be changed, so a snapshot whose tags change is
replaced: a new snapshot with the same time, tree, host, paths and summary
is saved (with a new ID, and "tagged_from" naming the one it replaces), then
the old one is removed. If the old one cannot be removed (an S3 object
lock), the new one is removed again and the command fails. Snapshots under
legal hold (rewind protect) or younger than the repository's minimum
retention cannot be removed, so their tags cannot change either: naming one
fails with nothing changed.`,
		Example: `  rewind tag --add keep-forever 4f2a91c3
  rewind tag --remove nightly --add weekly 4f2a91c3 9b1d0e77
  rewind tag --set release-2.4 latest
  rewind tag --host web1 --tag nightly --add audited --json`,
		RunE: func(cmd *cobra.Command, args []string) error {
			return runTag(cmd.Context(), g, &o, args, time.Now())
		},
	}
	f := cmd.Flags()
	f.StringArrayVar(&o.add, "add", nil, "add this `tag` (repeatable, or comma-separated)")
	f.StringArrayVar(&o.remove, "remove", nil, "remove this `tag` (repeatable, or comma-separated)")
	f.StringArrayVar(&o.set, "set", nil, "replace the tags with these `tags` (repeatable, or comma-separated; \"\" for none)")
	o.filter.add(cmd)
	return cmd
}

// splitTags splits comma-separated tag lists, dropping empty names.
func splitTags(lists []string) []string {
	var out []string
	for _, l := range lists {
		for _, t := range strings.Split(l, ",") {
			if t = strings.TrimSpace(t); t != "" && !slices.Contains(out, t) {
				out = append(out, t)
			}
		}
	}
	return out
}

// newTags applies the options to tags.
func (o *tagOptions) newTags(tags []string) []string {
	if len(o.set) > 0 {
		return splitTags(o.set)
	}
	out := slices.DeleteFunc(slices.Clone(tags), func(t string) bool { return slices.Contains(splitTags(o.remove), t) })
	for _, t := range splitTags(o.add) {
		if !slices.Contains(out, t) {
			out = append(out, t)
		}
	}
	return out
}

func runTag(ctx context.Context, g *globals, o *tagOptions, args []string, now time.Time) error {
	if len(o.set) == 0 && len(o.add) == 0 && len(o.remove) == 0 {
		return errors.New("nothing to do: give --add, --remove or --set")
	}
	if len(o.set) > 0 && (len(o.add) > 0 || len(o.remove) > 0) {
		return errors.New("--set replaces every tag: give it alone, or use --add and --remove")
	}
	r, done, err := g.openLocked(ctx, lock.Shared, "tag", false)
	if err != nil {
		return err
	}
	defer done()
	sns, err := g.listSnapshots(ctx, r)
	if err != nil {
		return err
	}
	selected, err := selectSnapshots(sns, args, o.filter.filter())
	if err != nil {
		return err
	}
	var change []*snapshot.Snapshot
	for _, sn := range selected {
		if !slices.Equal(o.newTags(sn.Tags), sn.Tags) {
			change = append(change, sn)
		}
	}
	guard, err := g.loadGuard(ctx, r)
	if err != nil {
		return err
	}
	if err := guard.Refuse(change, now, "change the tags of", "nothing was changed"); err != nil {
		return err
	}

	out := []TagJSON{}
	changed := 0
	var failed []error
	for _, sn := range selected {
		j := TagJSON{From: sn.ID.String(), ID: sn.ID.String(), ShortID: sn.ID.Short(), Tags: sn.Tags}
		tags := o.newTags(sn.Tags)
		if !slices.Equal(tags, sn.Tags) {
			ns := *sn
			ns.ID = id.ID{}
			ns.Tags = tags
			from := sn.ID
			ns.TaggedFrom = &from
			if err := snapshot.Replace(ctx, r, sn, &ns); err != nil {
				failed = append(failed, err)
				g.ui.Warnf("%v\n", err)
				continue
			}
			changed++
			j = TagJSON{From: sn.ID.String(), ID: ns.ID.String(), ShortID: ns.ID.Short(), Tags: ns.Tags, Changed: true}
		}
		if j.Tags == nil {
			j.Tags = []string{}
		}
		out = append(out, j)
	}
	if g.json {
		if err := g.ui.JSONDoc(out); err != nil {
			return err
		}
	} else {
		for _, j := range out {
			if j.Changed {
				g.ui.Printf("%s -> %s  tags %s\n", j.From[:8], j.ShortID, strings.Join(j.Tags, ","))
			} else {
				g.ui.Printf("%s  unchanged  tags %s\n", j.ShortID, strings.Join(j.Tags, ","))
			}
		}
		g.ui.Printf("changed the tags of %s\n", nSnapshots(changed))
	}
	if len(failed) > 0 {
		return fmt.Errorf("the tags of %d of %s could not be changed", len(failed), nSnapshots(len(change)))
	}
	return nil
}

// selectSnapshots returns the snapshots named by args (resolved as
// forget does), or with no args every snapshot passing f.
func selectSnapshots(sns []*snapshot.Snapshot, args []string, f snapshot.Filter) ([]*snapshot.Snapshot, error) {
	if len(args) > 0 {
		return resolveSnapshots(sns, args, f)
	}
	var out []*snapshot.Snapshot
	for _, sn := range sns {
		if f.Match(sn) {
			out = append(out, sn)
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%w: no snapshot passes --host, --tag and --path", snapshot.ErrNotFound)
	}
	return out, nil
}

// nSnapshots says "1 snapshot" or "N snapshots".
func nSnapshots(n int) string { return plural(n, "snapshot", "snapshots") }
