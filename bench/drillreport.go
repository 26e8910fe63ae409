package main

// The text of the bare-metal recovery section (drill.go measures it).

import (
	"fmt"
	"strings"
)

// drillMedians is the median of each drill phase of one mode.
func (m drillMode) drillMedians() drillRound {
	return drillRound{
		Restore: median(pick(m.Drills, func(d drillRound) float64 { return d.Restore })),
		Boot:    median(pick(m.Drills, func(d drillRound) float64 { return d.Boot })),
		Probes:  median(pick(m.Drills, func(d drillRound) float64 { return d.Probes })),
		RTO:     median(pick(m.Drills, func(d drillRound) float64 { return d.RTO })),
		Wall:    median(pick(m.Drills, func(d drillRound) float64 { return d.Wall })),
	}
}

// recoverMedians is the median of each recover phase of one mode.
func (m drillMode) recoverMedians() recoverRound {
	return recoverRound{
		Plan:       median(pick(m.Recovers, func(r recoverRound) float64 { return r.Plan })),
		Partition:  median(pick(m.Recovers, func(r recoverRound) float64 { return r.Partition })),
		Mkfs:       median(pick(m.Recovers, func(r recoverRound) float64 { return r.Mkfs })),
		Restore:    median(pick(m.Recovers, func(r recoverRound) float64 { return r.Restore })),
		Bootloader: median(pick(m.Recovers, func(r recoverRound) float64 { return r.Bootloader })),
		Wall:       median(pick(m.Recovers, func(r recoverRound) float64 { return r.Wall })),
	}
}

func (r *drillReport) markdown() string {
	var b strings.Builder
	fmt.Fprintf(&b, "\n%s\n\n", drillTitle)
	accel := "TCG"
	for _, m := range r.Modes {
		if m.Accel == "kvm" {
			accel = "KVM"
		}
	}
	fmt.Fprintf(&b, "The tests' server (internal/testutil/server*.go: a %d MiB GPT disk with a BIOS boot partition, an ESP, swap and an ext4 root "+
		"holding Debian's kernel, GRUB and a busybox userland that starts httpd on port 80) is attached as a loop device, its root mounted "+
		"read-only and backed up with `rewind backup --system-root DIR --disks /dev/loopN` (the ESP is not mounted: this kernel has no vfat, "+
		"see docs/RECOVERY.md). Then, %d rounds per boot mode: `rewind drill --host rewind-srv --probe \"marker REWIND-SERVER-READY\" "+
		"--probe \"http / 80 TOKEN\" --probe \"tcp 80\" --json` (the snapshot rebuilt as a VM disk, booted under QEMU %s with 512 MiB on a "+
		"restricted user network, probed), whose phases and RTO are read from its JSON; `rewind recover --disk /dev/loopM --yes --json` onto "+
		"a blank sparse file 1.5 times the disk's size (%d MiB), whose phases are read from its report; and, as the baseline with the same data, "+
		"`rewind restore latest --target DIR` into an empty folder, synced: the files only, no disk rebuilt, no boot loader. "+
		"Each column is the median of its own rounds (so the RTO's median need not be the sum of the phases' medians); boot also as "+
		"min–max, since it swings with the machine's load under TCG. The drill's restore phase is a whole recover onto a loop disk over a "+
		"sparse file plus its conversion to qcow2 (internal/drill/export.go).\n\n",
		r.firstDisk()>>20, r.Rounds, accel, r.firstDisk()*3/2>>20)
	b.WriteString("There is no peer figure. Relax-and-Recover (ReaR, Debian's 2.7) is the open anchor of issue 15, but it images the " +
		"running host (`rear mkrescue` on the machine itself) and recovers from its own rescue system booted on the target; it cannot back up " +
		"a server disk mounted at a folder, nor rebuild it as a VM and probe it, so it was not run against this server. The plain restore " +
		"is the reference instead: what rebuilding the disk and installing the boot loader add to restoring the same files.\n\n")
	b.WriteString("Issue 15 sets no number for the RTO: these figures are the record, to be compared with later drills " +
		"(`rewind drill --report` keeps the trend) and, below, restore against boot.\n\n")

	b.WriteString("### Recovery: drill RTO (restore, boot, probes)\n\n")
	b.WriteString("| boot mode | files (bytes) | restore (VM disk) | boot to REWIND-SERVER-READY | boot min–max | probes | RTO | boot / restore |\n|---|---:|---:|---:|---:|---:|---:|---:|\n")
	for _, m := range r.Modes {
		if len(m.Drills) == 0 {
			fmt.Fprintf(&b, "| %s | failed: %s | | | | | | |\n", m.Mode, oneLine(m.Error))
			continue
		}
		d := m.drillMedians()
		lo, hi := minMax(pick(m.Drills, func(d drillRound) float64 { return d.Boot }))
		fmt.Fprintf(&b, "| %s | %d (%s) | %s | %s | %s–%s | %s | **%s** | %s |\n", m.Mode, m.Files, fmtBytes(float64(m.Bytes)),
			fmtSecs(d.Restore), fmtSecs(d.Boot), fmtSecs(lo), fmtSecs(hi), fmtSecs(d.Probes), fmtSecs(d.RTO), fmtRatio(d.Boot/d.Restore))
	}

	b.WriteString("\n### Recovery: `rewind recover` onto a blank disk, against a plain restore\n\n")
	b.WriteString("| boot mode | plan | partition | mkfs | restore | boot loader | recover (command) | plain restore | recover / plain restore |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	for _, m := range r.Modes {
		if len(m.Recovers) == 0 {
			continue
		}
		c := m.recoverMedians()
		p := median(m.PlainRestore)
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", m.Mode, fmtSecs(c.Plan), fmtSecs(c.Partition), fmtSecs(c.Mkfs),
			fmtSecs(c.Restore), fmtSecs(c.Bootloader), fmtSecs(c.Wall), fmtSecs(p), fmtRatio(c.Wall/p))
	}

	b.WriteString("\nThe boot loader phase differs by mode: for BIOS recover runs grub-install onto the loop disk (with a device.map); for UEFI, " +
		"as this kernel cannot mount the new ESP (no vfat), it writes \\EFI\\BOOT\\BOOTX64.EFI with grub-mkimage and mtools instead " +
		"(internal/recovery/bootloader.go), which is quicker. The phases are the command's own; its time also holds starting, opening the " +
		"repository and attaching the partitions, as the plain restore's time (the whole command, then a sync) does: compare the two commands, " +
		"not the restore phase with the plain restore.\n")
	b.WriteString("\n### Recovery: raw figures per round\n\n")
	b.WriteString("| boot mode | round | drill: restore / boot / probes = RTO (command) | recover: partition / mkfs / restore / boot loader (command) | plain restore |\n|---|---:|---|---|---:|\n")
	for _, m := range r.Modes {
		for i, d := range m.Drills {
			rec, plain := "–", "–"
			if i < len(m.Recovers) {
				c := m.Recovers[i]
				rec = fmt.Sprintf("%s / %s / %s / %s (%s)", fmtSecs(c.Partition), fmtSecs(c.Mkfs), fmtSecs(c.Restore), fmtSecs(c.Bootloader), fmtSecs(c.Wall))
			}
			if i < len(m.PlainRestore) {
				plain = fmtSecs(m.PlainRestore[i])
			}
			fmt.Fprintf(&b, "| %s | %d | %s / %s / %s = %s (%s) | %s | %s |\n", m.Mode, i+1, fmtSecs(d.Restore), fmtSecs(d.Boot), fmtSecs(d.Probes),
				fmtSecs(d.RTO), fmtSecs(d.Wall), rec, plain)
		}
		if m.Error != "" && len(m.Drills) > 0 {
			fmt.Fprintf(&b, "| %s | – | stopped: %s | | |\n", m.Mode, oneLine(m.Error))
		}
	}
	fmt.Fprintf(&b, "\nBackup with `--system-root`: %s.\n", r.backups())

	fmt.Fprintf(&b, "\nMachine: QEMU %s (no KVM here), 2 cores shared with other jobs (load average %s before, %s after; "+
		"other helpers' builds, tests and benchmarks ran at the same time), the run took %.0f minutes from %s UTC.\n",
		accel, r.LoadBefore, r.LoadAfter, r.Minutes, r.Start.Format("2006-01-02 15:04"))
	b.WriteString(r.closing())
	return b.String()
}

func (r *drillReport) firstDisk() int64 {
	for _, m := range r.Modes {
		if m.DiskBytes > 0 {
			return m.DiskBytes
		}
	}
	return 0
}

func (r *drillReport) backups() string {
	var parts []string
	for _, m := range r.Modes {
		if m.Backup > 0 {
			parts = append(parts, fmt.Sprintf("%s %s", m.Mode, fmtSecs(m.Backup)))
		}
	}
	if len(parts) == 0 {
		return "–"
	}
	return strings.Join(parts, ", ")
}

// closing sums up restore against boot for each mode that ran.
func (r *drillReport) closing() string {
	var b strings.Builder
	b.WriteString("\nClosing note. ")
	for _, m := range r.Modes {
		if len(m.Drills) == 0 {
			fmt.Fprintf(&b, "The %s drill did not complete (%s). ", m.Mode, oneLine(m.Error))
			continue
		}
		d := m.drillMedians()
		fmt.Fprintf(&b, "In %s mode the drill's RTO is %s: the restore as a VM disk takes %s (%.0f%%), the boot %s (%.0f%%) and the probes %s. ",
			m.Mode, fmtSecs(d.RTO), fmtSecs(d.Restore), 100*d.Restore/d.RTO, fmtSecs(d.Boot), 100*d.Boot/d.RTO, fmtSecs(d.Probes))
		if len(m.Recovers) > 0 {
			c := m.recoverMedians()
			p := median(m.PlainRestore)
			fmt.Fprintf(&b, "A recover onto a blank disk takes %s, of which %s restoring files; the plain restore of the same files takes %s, "+
				"so partitioning, mkfs and the boot loader add %s. ",
				fmtSecs(c.Wall), fmtSecs(c.Restore), fmtSecs(p), fmtSecs(c.Wall-p))
		}
	}
	b.WriteString("The probes' second or so is the TCP probe's own wait: it keeps the connection open for 1 s to tell a service that " +
		"listens from QEMU's forwarder accepting with nothing behind it (internal/drill/probe.go); the marker and HTTP probes pass at once " +
		"once the marker has ended the boot. ")
	fmt.Fprintf(&b, "The server is tiny (%s of files), so the restore is short and the boot under TCG dominates the RTO; "+
		"the boot swings from round to round with the machine's load, not with rewind. With a real server the restore grows with its data "+
		"while the boot does not (and KVM, which this machine lacks, would shorten it). Each drill costs one QEMU boot, which is why no smoke "+
		"test runs this section; the recover and drill tests of internal/cli boot the same server once per case.\n", fmtBytes(float64(r.dataBytes())))
	return b.String()
}

func oneLine(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > 200 {
		s = s[:200] + "…"
	}
	return s
}

func (r *drillReport) dataBytes() int64 {
	for _, m := range r.Modes {
		if m.Bytes > 0 {
			return m.Bytes
		}
	}
	return 0
}
