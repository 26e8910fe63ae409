package runbook

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/rewind-backup/rewind/internal/event"
	"github.com/rewind-backup/rewind/internal/inventory"
	"github.com/rewind-backup/rewind/internal/plan"
	"github.com/rewind-backup/rewind/internal/snapshot"
	"github.com/rewind-backup/rewind/internal/ui"
)

// Input are the facts a runbook is made of. Everything but Plan comes from
// the repository, so a runbook can be written after the host is gone.
type Input struct {
	// Snapshot is the snapshot to restore; Inventory its inventory.
	Snapshot  *snapshot.Snapshot
	Inventory *inventory.Document
	// Snapshots are the host's snapshots, oldest first: its database
	// backups are found among them.
	Snapshots []*snapshot.Snapshot
	// Repository is the repository's location as shown (no credentials);
	// PasswordFrom where its password is kept ("--password-file
	// /root/rewind.pw", "REWIND_PASSWORD_COMMAND pass show rewind"), never
	// the password.
	Repository   string
	PasswordFrom string
	// Plan is the host's plan when one was given, read from PlanPath.
	Plan     *plan.Plan
	PlanPath string
	// Drill is the host's last successful drill, FailedDrill its last
	// drill when that failed after Drill, Recover its last recover; each
	// nil when there is none.
	Drill       *event.Stored
	FailedDrill *event.Stored
	Recover     *event.Stored
}

// Facts are the headline facts of a runbook, for --json.
type Facts struct {
	Host     string `json:"hostname"`
	Snapshot string `json:"snapshot_id"`
	// Time is the snapshot's time.
	Time     time.Time `json:"time"`
	BootMode string    `json:"boot_mode"`
	// RTO is the sum of the last drill's phases; zero without a drill.
	RTO time.Duration `json:"rto_ns"`
}

// timeFormat is how a runbook shows times: in UTC, to the second.
const timeFormat = "2006-01-02 15:04:05 UTC"

func showTime(t time.Time) string { return t.UTC().Format(timeFormat) }

func showDuration(d time.Duration) string { return d.Round(100 * time.Millisecond).String() }

// Total is the sum of the phases of a run: the measured time to recover.
func Total(ps []event.Phase) time.Duration {
	var t time.Duration
	for _, p := range ps {
		t += p.Duration
	}
	return t
}

// Build writes the runbook of in.
func Build(in Input) (*Doc, Facts, error) {
	sn, inv := in.Snapshot, in.Inventory
	if sn == nil || inv == nil {
		return nil, Facts{}, fmt.Errorf("runbook: a snapshot and its inventory are needed")
	}
	host := sn.Hostname
	f := Facts{Host: host, Snapshot: sn.ID.String(), Time: sn.Time.UTC(), BootMode: inv.Boot.Mode}
	if in.Drill != nil {
		f.RTO = Total(in.Drill.Phases)
	}
	d := &Doc{Title: "Recovery runbook of " + C(host)}
	d.Sections = append(d.Sections,
		summary(in, f),
		hardware(inv),
		repoSection(in),
		procedure(in),
		measured(in),
		warnings(in))
	return d, f, nil
}

func bootName(mode string) string {
	switch mode {
	case "uefi":
		return "UEFI"
	case "bios":
		return "BIOS (legacy boot)"
	case "":
		return "not recorded"
	}
	return mode
}

func summary(in Input, f Facts) Section {
	sn, inv := in.Snapshot, in.Inventory
	items := []string{"Host: " + C(f.Host)}
	if os := inv.OS["PRETTY_NAME"]; os != "" {
		items = append(items, "Operating system: "+os)
	}
	if inv.Kernel.Release != "" {
		items = append(items, "Kernel: "+C(inv.Kernel.Release))
	}
	if ks := inv.Kernel.Installed; len(ks) > 0 {
		var cs []string
		for _, k := range ks {
			cs = append(cs, C(k))
		}
		items = append(items, "Kernels installed in /boot: "+strings.Join(cs, ", "))
	}
	items = append(items,
		"Snapshot to restore: "+C(sn.ID.String())+" ("+C(sn.ID.Short())+"), taken "+showTime(sn.Time),
		"Inventory recorded: "+showTime(inv.Time),
		"Boot mode: "+bootName(inv.Boot.Mode)+loaders(inv.Boot.Loaders))
	if dr := in.Drill; dr != nil {
		items = append(items, fmt.Sprintf("Measured time to recover: %s, by the drill of %s (%s)", showDuration(f.RTO), showTime(dr.Start), dr.Result))
	} else {
		items = append(items, "Measured time to recover: no drill yet: run "+C(cmd("rewind", "drill", "--host", f.Host)))
	}
	return Section{Title: "Summary", Blocks: []Block{list(items...)}}
}

func loaders(ls []string) string {
	if len(ls) == 0 {
		return ""
	}
	s := slices.Clone(ls)
	slices.Sort(s)
	return ", boot loader " + strings.Join(s, ", ")
}

// minSize is the smallest disk that still holds a recorded one: its
// partitions up to the last one's start, what the last one's filesystem
// uses (all of it when that is not known), and room for the backup GPT
// and alignment. ok is false for a disk without a table.
func minSize(dk inventory.Disk, fsOf map[string]inventory.Filesystem) (int64, bool) {
	t := dk.Table
	if t == nil || len(t.Partitions) == 0 {
		return 0, false
	}
	ss := int64(max(t.SectorSize, 512))
	last := t.Partitions[0]
	for _, p := range t.Partitions {
		if p.Start > last.Start {
			last = p
		}
	}
	need := last.Size * ss
	if fs, ok := fsOf[last.Path]; ok && fs.UsedBytes > 0 && fs.Type != "swap" {
		need = fs.UsedBytes
	}
	const slack = 2 << 20 // backup GPT and alignment of the end
	return last.Start*ss + need + slack, true
}

func hardware(inv *inventory.Document) Section {
	fsOf := map[string]inventory.Filesystem{}
	for _, fs := range inv.Filesystems {
		fsOf[fs.Device] = fs
	}
	disks := slices.Clone(inv.Disks)
	slices.SortFunc(disks, func(a, b inventory.Disk) int { return cmp.Compare(a.Path, b.Path) })
	var drows, prows [][]string
	for _, dk := range disks {
		tt, minS := "none", "the whole disk"
		if dk.Table != nil {
			tt = map[string]string{"gpt": "GPT", "dos": "MBR"}[dk.Table.Type]
			if tt == "" {
				tt = dk.Table.Type
			}
		}
		if m, ok := minSize(dk, fsOf); ok {
			minS = ui.Bytes(m)
		}
		model := dk.Model
		if model == "" {
			model = "-"
		}
		drows = append(drows, []string{C(dk.Path), model, ui.Bytes(dk.SizeBytes), tt, fmt.Sprint(dk.LogicalSectorSize), minS})
		if dk.Table == nil {
			continue
		}
		for _, p := range dk.Table.Partitions {
			ss := int64(max(dk.Table.SectorSize, 512))
			row := []string{C(p.Path), ui.Bytes(p.Size * ss), "-", "-", "-", "-"}
			if fs, ok := fsOf[p.Path]; ok {
				row[2] = fs.Type
				if fs.Label != "" {
					row[3] = C(fs.Label)
				}
				if ms := mountTargets(fs); ms != "" {
					row[4] = ms
				}
				if fs.UsedBytes > 0 {
					row[5] = ui.Bytes(fs.UsedBytes)
				}
			}
			prows = append(prows, row)
		}
	}
	blocks := []Block{
		para(fmt.Sprintf("Prepare %s, each at least as large as its minimum size: recover keeps every partition's size and grows or shrinks the last one of each disk to fit, as long as its data fits. Set the firmware to boot in %s mode.",
			ui.Count(int64(len(disks)), "disk", "disks"), bootName(inv.Boot.Mode))),
		table([]string{"Recorded disk", "Model", "Size", "Partition table", "Sector size", "Minimum size"}, drows),
	}
	if len(prows) > 0 {
		blocks = append(blocks, table([]string{"Partition", "Size", "Filesystem", "Label", "Mounted at", "Used"}, prows))
	}
	var nrows [][]string
	for _, ifc := range inv.Network.Interfaces {
		if ifc.Type == "loopback" || ifc.Name == "lo" {
			continue
		}
		var addrs []string
		for _, a := range ifc.Addresses {
			addrs = append(addrs, C(a.CIDR))
		}
		mac := ifc.MAC
		if mac == "" {
			mac = "-"
		}
		a := strings.Join(addrs, ", ")
		if a == "" {
			a = "-"
		}
		nrows = append(nrows, []string{C(ifc.Name), mac, a})
	}
	slices.SortFunc(nrows, func(a, b []string) int { return cmp.Compare(a[0], b[0]) })
	if len(nrows) > 0 {
		blocks = append(blocks, para("Network interfaces the host had (give the new machine the same addresses, or change them after the recovery):"),
			table([]string{"Interface", "MAC", "Addresses"}, nrows))
	}
	var gws []string
	for _, r := range inv.Network.Routes {
		if r.Dst == "default" && r.Gateway != "" {
			gws = append(gws, "Default gateway "+C(r.Gateway)+" on "+C(r.Dev))
		}
	}
	slices.Sort(gws)
	if len(gws) > 0 {
		blocks = append(blocks, list(gws...))
	}
	return Section{Title: "Hardware to prepare", Blocks: blocks}
}

func mountTargets(fs inventory.Filesystem) string {
	var ts []string
	for _, m := range fs.Mounts {
		ts = append(ts, C(m.Target))
	}
	slices.Sort(ts)
	return strings.Join(slices.Compact(ts), ", ")
}

func repoSection(in Input) Section {
	items := []string{"Repository: " + C(in.Repository)}
	if in.PasswordFrom != "" {
		items = append(items, "Its password is kept in: "+C(in.PasswordFrom)+" (as configured where this runbook was written). This runbook holds no secret.")
	} else {
		items = append(items, "Its password was typed at a prompt: find it where your team keeps it. This runbook holds no secret.")
	}
	if strings.Contains(in.Repository, ":xxxxx@") {
		items = append(items, "The REST server's password is shown as "+C("xxxxx")+": put it back where the commands below use the location.")
	}
	if strings.HasPrefix(in.Repository, "s3:") {
		items = append(items, "The S3 access keys come from the environment ("+C("AWS_ACCESS_KEY_ID")+", "+C("AWS_SECRET_ACCESS_KEY")+"), as for the backups.")
	}
	blocks := []Block{list(items...)}
	if in.Plan == nil {
		blocks = append(blocks, para("The plan of the host's jobs is not stored in the repository; it was not given to this runbook (give it with "+C("--plan FILE")+"; on the host it is "+C(plan.DefaultPath)+")."))
		return Section{Title: "Repository and keys", Blocks: blocks}
	}
	blocks = append(blocks, para("The plan of the host's jobs is "+C(in.PlanPath)+" on the host; keep a copy with this runbook."))
	var rrows [][]string
	for name, r := range in.Plan.Repositories {
		from := "-"
		switch {
		case r.PasswordFile != "":
			from = "password file " + C(r.PasswordFile)
		case r.PasswordCommand != "":
			from = "password command " + C(r.PasswordCommand)
		}
		rrows = append(rrows, []string{C(name), C(redactURL(r.Location)), from})
	}
	slices.SortFunc(rrows, func(a, b []string) int { return cmp.Compare(a[0], b[0]) })
	if len(rrows) > 0 {
		blocks = append(blocks, table([]string{"Plan repository", "Location", "Password kept in"}, rrows))
	}
	var jrows [][]string
	for name, j := range in.Plan.Jobs {
		sched := j.Schedule
		if sched == "" {
			sched = "-"
		}
		what := strings.Join(j.Paths, " ")
		if len(j.Command) > 0 {
			what = strings.Join(j.Command, " ")
		}
		if what == "" {
			what = "-"
		} else {
			what = C(what)
		}
		jrows = append(jrows, []string{C(name), j.Kind, sched, what})
	}
	slices.SortFunc(jrows, func(a, b []string) int { return cmp.Compare(a[0], b[0]) })
	if len(jrows) > 0 {
		blocks = append(blocks, table([]string{"Job", "Kind", "Schedule", "What"}, jrows))
	}
	return Section{Title: "Repository and keys", Blocks: blocks}
}

// redactURL hides a password in a location such as rest:https://u:p@h/.
func redactURL(loc string) string {
	scheme, rest, ok := strings.Cut(loc, "://")
	if !ok {
		return loc
	}
	at := strings.LastIndex(rest, "@")
	slash := strings.Index(rest, "/")
	if at < 0 || slash >= 0 && slash < at {
		return loc
	}
	user, _, hasPw := strings.Cut(rest[:at], ":")
	if !hasPw {
		return loc
	}
	return scheme + "://" + user + ":xxxxx" + rest[at:]
}
