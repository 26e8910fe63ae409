package cli

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"

	"github.com/rewind-backup/rewind/internal/inventory"
	"github.com/rewind-backup/rewind/internal/lock"
	"github.com/rewind-backup/rewind/internal/repository"
	"github.com/rewind-backup/rewind/internal/snapshot"
	"github.com/rewind-backup/rewind/internal/ui"
	"github.com/spf13/cobra"
)

// InventoryDiffJSON is the document `inventory diff --json` prints
// (docs/JSON.md).
type InventoryDiffJSON struct {
	From    string             `json:"from"`
	To      string             `json:"to"`
	Changes []inventory.Change `json:"changes"`
}

func newInventoryCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "inventory",
		Short: "Show what a machine was made of at a backup, and what changed",
		Long: `Every backup of files records an inventory of the machine beside its
snapshot: disks and partition tables, filesystems with their UUIDs, labels,
features and mounts, fstab, RAID, LUKS and LVM layers, the boot mode and
boot loader, the kernel, network interfaces, routes and DNS, installed
packages, enabled systemd units, users, groups and crontabs. Bare-metal
recovery rebuilds the disks from it; docs/FORMAT.md specifies it.`,
		Example: `  rewind inventory show
  rewind inventory show 4f2a91c3 --json
  rewind inventory diff 4f2a91c3 latest`,
	}
	cmd.AddCommand(newInventoryShowCmd(g), newInventoryDiffCmd(g))
	return cmd
}

func newInventoryShowCmd(g *globals) *cobra.Command {
	var host string
	cmd := &cobra.Command{
		Use:   "show [SNAPSHOT]",
		Short: "Show the machine inventory recorded with a snapshot",
		Long: `Show the inventory recorded with SNAPSHOT (an ID, a unique ID prefix or
"latest"). Without SNAPSHOT, or with "latest", the newest snapshot of this
host (or of --host) that has an inventory is used.

The summary lists the disks with their partitions, the filesystems, the
boot mode and loader, the kernel, the network, and counts of packages,
enabled units, users and groups. --json prints the whole document.`,
		Example: `  rewind inventory show
  rewind inventory show --host web1
  rewind inventory show 4f2a91c3
  rewind inventory show --json latest > machine.json`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ref := ""
			if len(args) == 1 {
				ref = args[0]
			}
			return withInventoryRepo(cmd, g, "inventory show", func(ctx context.Context, r *repository.Repository) error {
				sn, doc, err := inventory.OfSnapshot(ctx, r, ref, inventoryHost(host))
				if err != nil {
					return err
				}
				if g.json {
					return g.ui.JSONDoc(doc)
				}
				printInventory(g, sn, doc)
				return nil
			})
		},
	}
	cmd.Flags().StringVar(&host, "host", "", "with no SNAPSHOT or \"latest\": the newest inventory of this `hostname` (default: this machine)")
	return cmd
}

func newInventoryDiffCmd(g *globals) *cobra.Command {
	var host string
	cmd := &cobra.Command{
		Use:   "diff A B",
		Short: "Show what changed on the machine between two snapshots",
		Long: `Compare the inventories recorded with snapshots A and B (IDs, unique ID
prefixes or "latest" for the newest of this host or --host) and list what
changed from A to B: disks and partitions added, removed, grown or shrunk
(sizes in sectors), filesystems added or removed, fstab lines, packages
added, removed, upgraded or downgraded (with versions), units enabled or
disabled, users and groups, crontabs, the kernel, boot and network.
--json prints {"from", "to", "changes": [...]}.`,
		Example: `  rewind inventory diff 4f2a91c3 latest
  rewind inventory diff --json 4f2a91c3 9b1d0e77`,
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			return withInventoryRepo(cmd, g, "inventory diff", func(ctx context.Context, r *repository.Repository) error {
				h := inventoryHost(host)
				snA, a, err := inventory.OfSnapshot(ctx, r, args[0], h)
				if err != nil {
					return fmt.Errorf("%s: %w", args[0], err)
				}
				snB, b, err := inventory.OfSnapshot(ctx, r, args[1], h)
				if err != nil {
					return fmt.Errorf("%s: %w", args[1], err)
				}
				changes := inventory.Diff(a, b)
				if g.json {
					return g.ui.JSONDoc(InventoryDiffJSON{From: snA.ID.String(), To: snB.ID.String(), Changes: changes})
				}
				printInventoryDiff(g, snA, snB, changes)
				return nil
			})
		},
	}
	cmd.Flags().StringVar(&host, "host", "", "the `hostname` whose newest inventory \"latest\" means (default: this machine)")
	return cmd
}

func inventoryHost(h string) string {
	if h == "" {
		h, _ = os.Hostname()
	}
	return h
}

// withInventoryRepo runs fn on the repository under a shared lock.
func withInventoryRepo(cmd *cobra.Command, g *globals, name string, fn func(context.Context, *repository.Repository) error) error {
	ctx := cmd.Context()
	r, done, err := g.openLocked(ctx, lock.Shared, name, false)
	if err != nil {
		return err
	}
	defer done()
	return fn(ctx, r)
}

func printInventory(g *globals, sn *snapshot.Snapshot, d *inventory.Document) {
	u := g.ui
	u.Printf("inventory of %s, snapshot %s (%s), recorded %s\n", d.Host, sn.ID.Short(),
		sn.Time.Local().Format("2006-01-02 15:04:05"), d.Time.Local().Format("2006-01-02 15:04:05"))
	u.Printf("\nDisks\n")
	for _, dk := range d.Disks {
		desc := []string{ui.Bytes(dk.SizeBytes)}
		if dk.Model != "" {
			desc = append(desc, dk.Model)
		}
		if dk.Table != nil {
			desc = append(desc, dk.Table.Type+" "+dk.Table.ID)
		} else {
			desc = append(desc, "no partition table")
		}
		u.Printf("  %s: %s\n", dk.Path, strings.Join(desc, ", "))
		if dk.Table == nil || len(dk.Table.Partitions) == 0 {
			continue
		}
		t := ui.NewTable("  #", "Device", "Start", "Sectors", "Size", "Type", "Name").Right(0, 2, 3, 4)
		for _, p := range dk.Table.Partitions {
			t.Row("  "+strconv.Itoa(p.Number), p.Path, strconv.FormatInt(p.Start, 10), strconv.FormatInt(p.Size, 10),
				ui.Bytes(p.Size*int64(dk.Table.SectorSize)), p.Type, p.Name)
		}
		u.Table(t)
	}
	u.Printf("\nFilesystems\n")
	t := ui.NewTable("  Device", "Type", "UUID", "Label", "Mounted on")
	for _, f := range d.Filesystems {
		var on []string
		for _, m := range f.Mounts {
			on = append(on, m.Target)
		}
		t.Row("  "+f.Device, f.Type, f.UUID, f.Label, strings.Join(on, " "))
	}
	u.Table(t)
	loaders := strings.Join(d.Boot.Loaders, ", ")
	if loaders == "" {
		loaders = "no boot loader found"
	}
	u.Printf("\nBoot: %s, %s\n", strings.ToUpper(d.Boot.Mode), loaders)
	if d.Boot.EFI != nil {
		for _, e := range d.Boot.EFI.Entries {
			u.Printf("  Boot%s %s %s\n", e.Num, e.Label, e.Path)
		}
	}
	kernel := d.Kernel.Release
	if kernel == "" && len(d.Kernel.Installed) > 0 {
		kernel = strings.Join(d.Kernel.Installed, ", ") + " (installed)"
	}
	u.Printf("Kernel: %s\n", kernel)
	if name := d.OS["PRETTY_NAME"]; name != "" {
		u.Printf("System: %s\n", name)
	}
	u.Printf("Hostname: %s\n", firstNonEmpty(d.Hostname.Kernel, d.Hostname.Etc))
	u.Printf("\nNetwork\n")
	for _, i := range d.Network.Interfaces {
		var addrs []string
		for _, a := range i.Addresses {
			addrs = append(addrs, a.CIDR)
		}
		u.Printf("  %s %s %s\n", i.Name, i.MAC, strings.Join(addrs, " "))
	}
	for _, r := range d.Network.Routes {
		if r.Dst == "default" {
			u.Printf("  default via %s dev %s\n", r.Gateway, r.Dev)
		}
	}
	u.Printf("\n%s (%s), %s, %s, %s, %s\n",
		ui.Count(int64(len(d.Packages.List)), "package", "packages"), firstNonEmpty(d.Packages.Manager, "none"),
		ui.Count(int64(len(d.Units)), "enabled unit", "enabled units"),
		ui.Count(int64(len(d.Users)), "user", "users"), ui.Count(int64(len(d.Groups)), "group", "groups"),
		ui.Count(int64(len(d.Crontabs)), "crontab", "crontabs"))
	for _, w := range d.Warnings {
		u.Printf("not recorded: %s\n", w)
	}
}

func firstNonEmpty(ss ...string) string {
	for _, s := range ss {
		if s != "" {
			return s
		}
	}
	return ""
}

func printInventoryDiff(g *globals, a, b *snapshot.Snapshot, changes []inventory.Change) {
	u := g.ui
	u.Printf("inventory changes from snapshot %s to %s:\n", a.ID.Short(), b.ID.Short())
	if len(changes) == 0 {
		u.Printf("  none\n")
		return
	}
	for _, c := range changes {
		line := "  " + c.Section + " " + c.Item + " " + c.Kind
		switch {
		case c.Field != "":
			line += ": " + c.Field + " " + orNone(c.Old) + " -> " + orNone(c.New)
			if c.Section == "partition" && (c.Field == "size" || c.Field == "start") {
				line += " sectors"
			}
		case c.Old != "" || c.New != "":
			line += " (" + c.Old + c.New + ")"
		}
		u.Printf("%s\n", strings.TrimRight(line, " "))
	}
}

func orNone(s string) string {
	if s == "" {
		return "(none)"
	}
	return s
}
