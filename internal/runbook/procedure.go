package runbook

import (
	"cmp"
	"fmt"
	"slices"
	"strings"

	"github.com/rewind-backup/rewind/internal/event"
	"github.com/rewind-backup/rewind/internal/inventory"
	"github.com/rewind-backup/rewind/internal/snapshot"
	"github.com/rewind-backup/rewind/internal/ui"
)

// diskPlaceholders are the names the steps give the new disks, one per
// recorded disk in path order: the administrator replaces them.
func diskPlaceholders(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = "/dev/NEW" + fmt.Sprint(i+1)
	}
	return out
}

func procedure(in Input) Section {
	sn, inv := in.Snapshot, in.Inventory
	host := sn.Hostname
	disks := slices.Clone(inv.Disks)
	slices.SortFunc(disks, func(a, b inventory.Disk) int { return cmp.Compare(a.Path, b.Path) })
	news := diskPlaceholders(len(disks))
	var mapping []string
	for i, dk := range disks {
		mapping = append(mapping, C(news[i])+" with the new disk for "+C(dk.Path)+" ("+ui.Bytes(dk.SizeBytes)+")")
	}
	recoverCmd := []string{"rewind", "recover", "--snapshot", sn.ID.Short()}
	for _, n := range news {
		recoverCmd = append(recoverCmd, "--disk", n)
	}
	var st []Step
	st = append(st,
		Step{Text: "On any Linux machine with rewind, build the rescue system, and boot the new machine from it (USB stick, virtual media or PXE) in " + bootName(inv.Boot.Mode) + " mode. Any live Linux with the static rewind binary does as well.",
			Commands: []string{cmd("rewind", "rescue", "build", "--out", "rescue")}},
		Step{Text: "In the rescue system, bring up the network and connect to the repository. Put the password where the first command expects it (see \"Repository and keys\").",
			Commands: connect(in)},
		Step{Text: "Check that the snapshot is there (a newer one of " + C(host) + " may be better).",
			Commands: []string{cmd("rewind", "snapshots", "--host", host)}},
		Step{Text: "Find the new disks (" + C("lsblk") + ") and print the recovery plan without touching them. Replace " + strings.Join(mapping, ", ") + ". Check the mapping and sizes; " + C("--map FILE") + " chooses another mapping.",
			Commands: []string{"lsblk -d -o NAME,SIZE,MODEL", cmd(append(recoverCmd, "--dry-run")...)}},
		Step{Text: "Recover: partitions, filesystems, files and boot loader. This erases the new disks.",
			Commands: []string{cmd(recoverCmd...)}},
		Step{Text: "Remove the rescue medium and boot the recovered system. Check that every filesystem of fstab is mounted and that it booted the way it was recorded.",
			Commands: checkBoot(inv)},
	)
	if units := enabledUnits(inv); len(units) > 0 {
		st = append(st, Step{Text: "Check the services that were enabled on the host.",
			Commands: []string{cmd(append([]string{"systemctl", "is-active"}, units...)...), "systemctl --failed"}})
	}
	st = append(st, databaseSteps(host, in.Snapshots)...)
	blocks := []Block{steps(st...)}
	if inv.Fstab != nil && inv.Fstab.Content != "" {
		blocks = append(blocks, para("The recorded "+C(inv.Fstab.Path)+" (recover keeps UUIDs and labels; it rewrites device names such as /dev/sda2 to UUID= form):"), code(inv.Fstab.Content))
	}
	return Section{Title: "Steps", Blocks: blocks}
}

// DefaultPasswordFile begins the PasswordFrom of a default repository,
// followed by the file's path.
const DefaultPasswordFile = "the default repository's password file "

// connect are the commands that point rewind at the repository and its
// password source.
func connect(in Input) []string {
	out := []string{"dhclient || udhcpc", cmd("export", "REWIND_REPOSITORY="+in.Repository)}
	if f, ok := strings.CutPrefix(in.PasswordFrom, DefaultPasswordFile); ok {
		return append(out, cmd("export", "REWIND_PASSWORD_FILE="+f))
	}
	name, val, _ := strings.Cut(in.PasswordFrom, " ")
	switch name {
	case "--password-file", "REWIND_PASSWORD_FILE":
		out = append(out, cmd("export", "REWIND_PASSWORD_FILE="+val))
	case "--password-command", "REWIND_PASSWORD_COMMAND":
		out = append(out, cmd("export", "REWIND_PASSWORD_COMMAND="+val))
	default:
		// A literal password or a prompt: rewind asks for it.
	}
	return out
}

func checkBoot(inv *inventory.Document) []string {
	out := []string{"findmnt --verify", "cat /etc/fstab"}
	if inv.Boot.Mode == "uefi" {
		out = append(out, "efibootmgr -v")
	}
	return out
}

// enabledUnits are the names of the units the inventory found enabled,
// sorted, without the targets that only group others.
func enabledUnits(inv *inventory.Document) []string {
	var out []string
	for _, u := range inv.Units {
		if u.Name != "" && !strings.HasSuffix(u.Name, ".target") {
			out = append(out, u.Name)
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// databaseSteps are the restore commands for the newest backup of each
// database of the host among sns (oldest first).
func databaseSteps(host string, sns []*snapshot.Snapshot) []Step {
	type db struct {
		kind, key string
		sn        *snapshot.Snapshot
	}
	newest := map[string]db{}
	for _, sn := range sns {
		if sn.Hostname != host {
			continue
		}
		switch {
		case sn.Postgres != nil:
			newest["pg "+sn.Postgres.DataDir] = db{"pg", sn.Postgres.DataDir, sn}
		case sn.MySQL != nil:
			newest["mysql "+sn.MySQL.DataDir] = db{"mysql", sn.MySQL.DataDir, sn}
		}
		for _, c := range sn.SQLite {
			newest["sqlite "+c.Path] = db{"sqlite", c.Path, sn}
		}
	}
	keys := make([]string, 0, len(newest))
	for k := range newest {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var out []Step
	for _, k := range keys {
		d := newest[k]
		from := " Newest backup: " + C(d.sn.ID.Short()) + " of " + showTime(d.sn.Time) + "."
		switch d.kind {
		case "pg":
			pg := d.sn.Postgres
			out = append(out, Step{
				Text: "Restore the PostgreSQL cluster " + C(d.key) + " (" + pg.VersionText + ") to its newest stored transaction: stop PostgreSQL, set aside the data directory the files brought back (it is not consistent), restore, start." + from + " " + C("--at TIME") + " instead of " + C("--latest") + " goes to a moment.",
				Commands: []string{"systemctl stop postgresql", cmd("mv", d.key, d.key+".from-files"),
					cmd("rewind", "pg", "restore", "--latest", "--host", host, "--target", d.key), "systemctl start postgresql"}})
		case "mysql":
			my := d.sn.MySQL
			if my.Method == "logical" {
				out = append(out, Step{
					Text:     "Load the MariaDB/MySQL dump of " + C(d.key) + " into the running server." + from,
					Commands: []string{cmd("rewind", "dump", d.sn.ID.Short()+":"+my.DumpPath) + " | mariadb"}})
				continue
			}
			out = append(out, Step{
				Text: "Restore the MariaDB/MySQL data directory " + C(d.key) + " (" + my.ServerVersion + ") to its newest stored transaction: stop the server, set aside the directory the files brought back, restore, start." + from,
				Commands: []string{"systemctl stop mariadb", cmd("mv", d.key, d.key+".from-files"),
					cmd("rewind", "mysql", "restore", "--latest", "--hostname", host, "--target", d.key), "systemctl start mariadb"}})
		case "sqlite":
			out = append(out, Step{
				Text:     "Put back the consistent copy of the SQLite database " + C(d.key) + ": stop what uses it, remove its " + C("-wal") + " and " + C("-shm") + ", restore." + from,
				Commands: []string{cmd("rm", "-f", d.key+"-wal", d.key+"-shm", d.key+"-journal"), cmd("rewind", "restore", d.sn.ID.Short(), "--include", d.key, "--target", "/", "--overwrite")}})
		}
	}
	return out
}

func measured(in Input) Section {
	var blocks []Block
	for _, r := range []struct {
		what string
		run  *event.Stored
	}{{"drill", in.Drill}, {"recover", in.Recover}} {
		if r.run == nil {
			if r.what == "drill" {
				blocks = append(blocks, para("No drill has run for this host: "+C(cmd("rewind", "drill", "--host", in.Snapshot.Hostname))+" restores the newest snapshot as a VM, boots it and measures each phase."))
			} else {
				blocks = append(blocks, para("No recover of this host is recorded."))
			}
			continue
		}
		e := r.run
		head := fmt.Sprintf("The last %s started %s; result: %s", r.what, showTime(e.Start), e.Result)
		if e.Snapshot != "" {
			head += ", from snapshot " + C(shortID(e.Snapshot))
		}
		blocks = append(blocks, para(head+"."))
		var rows [][]string
		for _, p := range e.Phases {
			rows = append(rows, []string{p.Name, showDuration(p.Duration)})
		}
		rows = append(rows, []string{"total", showDuration(Total(e.Phases))})
		blocks = append(blocks, table([]string{"Phase", "Time"}, rows))
	}
	return Section{Title: "Measured times", Blocks: blocks}
}

func shortID(s string) string {
	if len(s) > 8 {
		return s[:8]
	}
	return s
}

func warnings(in Input) Section {
	inv := in.Inventory
	var items []string
	if f := in.FailedDrill; f != nil {
		items = append(items, "The last drill, on "+showTime(f.Start)+", failed: "+f.Error+". Recovery may not work as this runbook says: see "+C(cmd("rewind", "events", "--host", f.Host))+".")
	}
	if inv.MD != nil && len(inv.MD.Arrays) > 0 {
		items = append(items, "The host has MD RAID arrays: recover rebuilds them only where the md driver and mdadm are available; check "+C("cat /proc/mdstat")+" after the recovery.")
	}
	if inv.LVM != nil && len(inv.LVM.LVs) > 0 {
		items = append(items, "The host has LVM volumes: recover needs a kernel with device-mapper to rebuild them (not every rescue kernel or container has it).")
	}
	if len(inv.LUKS) > 0 {
		items = append(items, "The host has LUKS-encrypted devices: recover needs device-mapper and the passphrases, which this runbook does not hold; keep them where your team keeps secrets.")
	}
	for _, w := range inv.Warnings {
		items = append(items, "Not recorded by the inventory: "+w)
	}
	if len(items) == 0 {
		return Section{Title: "Warnings", Blocks: []Block{para("None: the inventory recorded everything it looks for, and the host has no MD, LVM or LUKS layer.")}}
	}
	return Section{Title: "Warnings", Blocks: []Block{list(items...)}}
}
