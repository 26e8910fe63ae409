package cli

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/rewind-backup/rewind/internal/event"
	"github.com/rewind-backup/rewind/internal/inventory"
	"github.com/rewind-backup/rewind/internal/lock"
	"github.com/rewind-backup/rewind/internal/recovery"
	"github.com/rewind-backup/rewind/internal/ui"
	"github.com/spf13/cobra"
	"golang.org/x/term"
)

// recoverOpts are the flags of `rewind recover`.
type recoverOpts struct {
	snapshot string
	host     string
	disks    []string
	mapFile  string
	bootMode string
	root     string
	dryRun   bool
	config   string
	yes      bool
}

func newRecoverCmd(g *globals) *cobra.Command {
	o := &recoverOpts{}
	cmd := &cobra.Command{
		Use:   "recover --disk /dev/X [--disk ...] [--snapshot S] [--map FILE] [--dry-run]",
		Short: "Rebuild a machine's disks, files and boot loader from a snapshot (bare-metal recovery)",
		Long: `Rebuild the machine recorded with a snapshot onto blank disks: the partition
tables (GPT or MBR, with the same partition types, UUIDs and names), the
filesystems (ext2/3/4, XFS, btrfs with its subvolumes, vfat, swap, with
their UUIDs, labels and features), every file with its metadata, and what
makes it boot: fstab, crypttab and grub.cfg fixed where a device name
changed, the initramfs regenerated in the recovered system, and GRUB for
the recorded boot mode (BIOS or UEFI).

The snapshot needs the machine's inventory: one made by
` + "`rewind backup --system-root DIR --disks /dev/X`" + `, or a file backup of
the running machine. SNAPSHOT is an ID, a unique prefix or "latest" (the
newest with an inventory, of this host or --host).

Recorded disks go to the --disk targets in order, or as --map FILE says
(lines "sda -> /dev/vdb", and "sda2 size=20G" to give a partition another
size). The last partition of each disk grows or shrinks to fill its
target; a target too small for what the filesystems hold is refused with
the number of bytes missing. --dry-run prints the whole plan and writes
nothing. Everything is checked before a disk is touched: a target that is
mounted, holds swap in use or is too small, and a missing program
(sfdisk, mkfs.*, grub-install) stop recover with nothing written.

recover erases the targets: it asks first, unless --yes or --config is
given. --config FILE is an unattended configuration (YAML: repository,
password-file or password-command, host, snapshot, disks, map, boot-mode,
root); flags win over it. The report (each phase timed) is printed, and
stored in the repository as an event of kind "recover" (rewind events).
Exit status 3: recovered, but some files or metadata not exactly (the
report lists them). See docs/RECOVERY.md.`,
		Example: `  rewind recover --disk /dev/vda --dry-run
  rewind recover --host web1 --disk /dev/vda --yes
  rewind recover --snapshot 4f2a91c3 --disk /dev/sda --disk /dev/sdb --map disks.map
  rewind recover --disk /dev/nvme0n1 --boot-mode uefi --json --yes
  rewind recover --config /etc/rewind/recover.yaml`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runRecover(cmd, g, o)
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.snapshot, "snapshot", "latest", "the `snapshot` to recover: an ID, a unique prefix or \"latest\" (the newest with an inventory)")
	f.StringVar(&o.host, "host", "", "with \"latest\": the newest snapshot of this `hostname` (default: any host)")
	f.StringArrayVar(&o.disks, "disk", nil, "a target `disk` to erase and rebuild (repeatable, in the order of the recorded disks)")
	f.StringVar(&o.mapFile, "map", "", "map recorded disks to targets and size partitions from this `file` (docs/RECOVERY.md)")
	f.StringVar(&o.bootMode, "boot-mode", "", "install the boot loader for `bios` or uefi (default: as recorded)")
	f.StringVar(&o.root, "root", "/", "the `path` in the snapshot that holds the system's root directory")
	f.BoolVarP(&o.dryRun, "dry-run", "n", false, "print the plan and check everything, write nothing")
	f.StringVar(&o.config, "config", "", "an unattended recover configuration `file` (YAML); no question is asked")
	f.BoolVarP(&o.yes, "yes", "y", false, "erase the target disks without asking")
	return cmd
}

// applyConfig fills what the flags leave unset from the configuration.
func (o *recoverOpts) applyConfig(cmd *cobra.Command, g *globals) (mapText string, err error) {
	data, err := os.ReadFile(o.config)
	if err != nil {
		return "", fmt.Errorf("--config: %w", err)
	}
	c, err := recovery.ParseConfig(data)
	if err != nil {
		return "", fmt.Errorf("--config %s: %w", o.config, err)
	}
	changed := cmd.Flags().Changed
	global := func(name string) bool { return g.rootFlags != nil && g.rootFlags.Changed(name) }
	if c.Repository != "" && !global("repo") {
		g.repo = c.Repository
	}
	if c.PasswordFile != "" && !global("password-file") && !global("password-command") {
		g.passwordFile = c.PasswordFile
	}
	if c.PasswordCommand != "" && !global("password-file") && !global("password-command") {
		g.passwordCommand = c.PasswordCommand
	}
	if c.Snapshot != "" && !changed("snapshot") {
		o.snapshot = c.Snapshot
	}
	if c.Host != "" && !changed("host") {
		o.host = c.Host
	}
	if len(c.Disks) > 0 && !changed("disk") {
		o.disks = c.Disks
	}
	if c.BootMode != "" && !changed("boot-mode") {
		o.bootMode = c.BootMode
	}
	if c.Root != "" && !changed("root") {
		o.root = c.Root
	}
	o.yes = true
	if !changed("map") {
		return c.Map, nil
	}
	return "", nil
}

func runRecover(cmd *cobra.Command, g *globals, o *recoverOpts) error {
	ctx := cmd.Context()
	var m *recovery.Mapping
	if o.config != "" {
		mapText, err := o.applyConfig(cmd, g)
		if err != nil {
			return err
		}
		if mapText != "" {
			if m, err = recovery.ParseMapping(strings.NewReader(mapText)); err != nil {
				return fmt.Errorf("--config %s: %w", o.config, err)
			}
		}
	}
	if len(o.disks) == 0 {
		return errors.New("name the target disks with --disk /dev/X (repeatable): they are erased")
	}
	if o.bootMode != "" && o.bootMode != "bios" && o.bootMode != "uefi" {
		return fmt.Errorf("--boot-mode %q: want bios or uefi", o.bootMode)
	}
	if o.mapFile != "" {
		f, err := os.Open(o.mapFile)
		if err != nil {
			return fmt.Errorf("--map: %w", err)
		}
		m, err = recovery.ParseMapping(f)
		f.Close()
		if err != nil {
			return fmt.Errorf("--map %s: %w", o.mapFile, err)
		}
	}
	var targets []recovery.Target
	for _, d := range o.disks {
		t, err := recovery.ProbeTarget(ctx, d)
		if err != nil {
			return err
		}
		targets = append(targets, t)
	}
	if !o.dryRun && os.Geteuid() != 0 {
		return errors.New("recover writes disks and mounts filesystems: run it as root (--dry-run does not need to)")
	}

	r, done, err := g.openLocked(ctx, lock.Shared, "recover", true)
	if err != nil {
		return err
	}
	defer done()
	sn, doc, err := inventory.OfSnapshot(ctx, r, o.snapshot, o.host)
	if err != nil {
		if errors.Is(err, inventory.ErrNone) {
			return fmt.Errorf("%w; recover rebuilds disks from the inventory that `rewind backup --system-root DIR --disks /dev/X` (or a file backup of the running machine) records", err)
		}
		return err
	}
	opt := recovery.Options{Repo: r, Snapshot: sn, Inventory: doc, Targets: targets, Map: m, BootMode: o.bootMode, Root: o.root, DryRun: true, Log: g.log}
	// The plan and every check first; then the question.
	rep, err := recovery.Recover(ctx, opt)
	if err != nil {
		if rep != nil && rep.Plan != nil && !g.json {
			printRecoverPlan(g, rep)
		}
		return err
	}
	if o.dryRun {
		if g.json {
			return g.ui.JSONDoc(rep)
		}
		printRecoverPlan(g, rep)
		g.ui.Printf("dry run: nothing was written\n")
		return nil
	}
	if !g.json && !g.quiet {
		printRecoverPlan(g, rep)
	}
	if !o.yes {
		if err := confirmErase(g, targets); err != nil {
			return err
		}
	}
	opt.DryRun = false
	rep, err = recovery.Recover(ctx, opt)
	run := &event.Run{Host: rep.Host, Job: "recover", Kind: "recover", Trigger: "manual", Start: rep.Start, End: rep.End,
		Result: "success", Snapshot: sn.ID.String(), Files: rep.Files, Bytes: rep.Bytes, Attempt: 1, Phases: rep.Phases}
	switch {
	case errors.Is(err, recovery.ErrPartial):
		run.Result = "warning"
	case err != nil:
		run.Result, run.Error = "failed", err.Error()
	}
	if run.Report, err = json.Marshal(rep); err != nil {
		return err
	}
	_, serr := event.Save(context.WithoutCancel(ctx), r, run)
	if g.json {
		if jerr := g.ui.JSONDoc(rep); jerr != nil {
			return jerr
		}
	} else {
		printRecoverReport(g, rep)
	}
	if serr != nil {
		g.ui.Warnf("the recover report could not be stored in the repository: %v\n", serr)
	}
	if errors.Is(err, recovery.ErrPartial) {
		return withCode(ExitPartial, err)
	}
	return err
}

// confirmErase asks before the targets are erased; without a terminal
// it refuses, naming --yes.
func confirmErase(g *globals, targets []recovery.Target) error {
	var names []string
	for _, t := range targets {
		names = append(names, t.Path)
	}
	if !term.IsTerminal(int(os.Stdin.Fd())) {
		return fmt.Errorf("recover erases %s: confirm with --yes (or run it with --config)", strings.Join(names, ", "))
	}
	fmt.Fprintf(os.Stderr, "Everything on %s will be erased. Type yes to go on: ", strings.Join(names, ", "))
	line, _ := bufio.NewReader(os.Stdin).ReadString('\n')
	if strings.TrimSpace(line) != "yes" {
		return errors.New("recover not confirmed: nothing was written")
	}
	return nil
}

// printRecoverPlan prints the plan: each disk with its partitions, the
// filesystems, the mounts and the warnings.
func printRecoverPlan(g *globals, rep *recovery.Report) {
	p := rep.Plan
	u := g.ui
	u.Printf("recover %s from snapshot %s, %s boot\n", p.Host, shortID(rep.Snapshot), p.BootMode)
	for _, d := range p.Disks {
		u.Printf("\n%s (%s) -> %s (%s), %s\n", d.Source, ui.Bytes(d.SourceSize), d.Target, ui.Bytes(d.TargetSize), d.Table.Type)
		t := ui.NewTable("  #", "Device", "Start", "Sectors", "Size", "Type", "Name").Right(0, 2, 3, 4)
		for _, pt := range d.Table.Partitions {
			t.Row(fmt.Sprint(pt.Number), pt.Path, fmt.Sprint(pt.Start), fmt.Sprint(pt.Size), ui.Bytes(pt.Size*int64(d.Table.SectorSize)), pt.Type, pt.Name)
		}
		u.Table(t)
		if d.Resized != "" {
			u.Printf("  %s: %s -> %s\n", d.Resized, ui.Bytes(d.OldPartLen), ui.Bytes(d.NewPartLen))
		}
	}
	u.Printf("\nFilesystems\n")
	ft := ui.NewTable("Device", "Type", "UUID", "Label", "Size", "Holds").Right(4, 5)
	for _, f := range p.Filesystems {
		ft.Row(f.Device, f.Type, f.UUID, f.Label, ui.Bytes(f.SizeBytes), ui.Bytes(f.UsedBytes))
	}
	u.Table(ft)
	u.Printf("\nMounts\n")
	for _, mp := range p.Mounts {
		opts := ""
		if mp.Options != "" {
			opts = " (" + mp.Options + ")"
		}
		u.Printf("  %s on %s%s\n", mp.Device, mp.Target, opts)
	}
	for _, w := range rep.Warnings {
		u.Warnf("warning: %s\n", w)
	}
}

// printRecoverReport prints what a recover did, phase by phase.
func printRecoverReport(g *globals, rep *recovery.Report) {
	u := g.ui
	if g.quiet || rep.Plan == nil {
		return
	}
	u.Printf("\n")
	var total time.Duration
	for _, ph := range rep.Phases {
		u.Printf("  %-11s %s\n", ph.Name, ph.Duration.Round(time.Millisecond))
		total += ph.Duration
	}
	for _, f := range rep.Fixed {
		u.Printf("fixed %s\n", f)
	}
	for _, w := range rep.Warnings {
		if !slices.Contains(rep.Plan.Warnings, w) {
			u.Warnf("warning: %s\n", w)
		}
	}
	if len(rep.Plan.Disks) > 0 {
		u.Printf("recovered %s onto %s: %s (%s) restored in %s\n", rep.Host, ui.Count(int64(len(rep.Plan.Disks)), "disk", "disks"),
			ui.Count(rep.Files, "file", "files"), ui.Bytes(rep.Bytes), total.Round(time.Millisecond))
	}
}
