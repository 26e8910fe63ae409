package recovery

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/rewind-backup/rewind/internal/event"
	"github.com/rewind-backup/rewind/internal/inventory"
	"github.com/rewind-backup/rewind/internal/repository"
	"github.com/rewind-backup/rewind/internal/restorer"
	"github.com/rewind-backup/rewind/internal/snapshot"
	"github.com/rewind-backup/rewind/internal/ui"
)

// Options are what Recover rebuilds, from where, onto what.
type Options struct {
	Repo      *repository.Repository
	Snapshot  *snapshot.Snapshot
	Inventory *inventory.Document
	Targets   []Target
	Map       *Mapping
	// BootMode overrides the recorded boot mode: "bios", "uefi" or "".
	BootMode string
	// DryRun stops after the plan and the checks: nothing is written.
	DryRun bool
	Log    *slog.Logger
	// Root is the path in the snapshot that holds the system's root
	// directory: "/" (or "") for a backup made with --system-root, which
	// stores the system's files at their own paths; a directory for a
	// plain backup of a mounted root ("/mnt/web1").
	Root string
	// TempDir is where the new filesystems are mounted for the restore
	// ("" is os.TempDir()).
	TempDir string
	// NoBootloader skips the boot loader phase (a data disk, or an
	// export whose boot loader is installed otherwise).
	NoBootloader bool
}

// ErrPartial: the system was rebuilt, but not all of it exactly (files
// the backup could not read, metadata a filesystem refused); the report's
// warnings say what. The command line exits with status 3.
var ErrPartial = errors.New("recovered, with warnings")

// Recover rebuilds the recorded system onto opt.Targets: the plan and
// every check first (targets in use or too small, programs missing),
// then partition, mkfs, restore and bootloader, each timed in the
// report. The filesystems are mounted below a temporary directory for
// the restore and the boot loader, and unmounted at the end, on error
// too. The report is returned with the error when a phase fails, and
// says how far it got.
func Recover(ctx context.Context, opt Options) (*Report, error) {
	log := opt.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	rep := &Report{Start: time.Now().UTC(), Phases: []event.Phase{}, Fixed: []string{}, Warnings: []string{}, DryRun: opt.DryRun}
	if opt.Snapshot != nil {
		rep.Snapshot = opt.Snapshot.ID.String()
	}
	if opt.Inventory == nil {
		return rep, fmt.Errorf("%w: the snapshot has no inventory of its machine: back it up with `rewind backup --system-root DIR --disks ...` (or a plain backup, which records the inventory), then recover", inventory.ErrNone)
	}
	rep.Host = opt.Inventory.Host
	root := opt.Root
	if root == "" {
		root = "/"
	}
	finish := func(err error) (*Report, error) {
		rep.End = time.Now().UTC()
		return rep, err
	}
	phase := func(name string, f func() error) error {
		began := time.Now()
		log.Info("recover phase", "phase", name)
		err := f()
		rep.Phases = append(rep.Phases, event.Phase{Name: name, Duration: time.Since(began)})
		return err
	}

	var b *bootPlan
	err := phase(PhasePlan, func() error {
		p, err := MakePlan(opt.Inventory, opt.Targets, opt.Map)
		if err != nil {
			return err
		}
		if opt.BootMode != "" {
			if opt.BootMode != "bios" && opt.BootMode != "uefi" {
				return fmt.Errorf("%w: boot mode %q: want bios or uefi", ErrPlan, opt.BootMode)
			}
			p.BootMode = opt.BootMode
		}
		rep.Plan = p
		rep.Warnings = append(rep.Warnings, p.Warnings...)
		if !slices.ContainsFunc(p.Mounts, func(m MountPlan) bool { return m.Target == "/" }) {
			return fmt.Errorf("%w: the inventory names no filesystem mounted at / on the recorded disks (its fstab and mounts), so there is nowhere to restore the files", ErrPlan)
		}
		if err := checkTargets(p); err != nil {
			return err
		}
		if err := checkTools(p); err != nil {
			return err
		}
		if !opt.NoBootloader {
			var w []string
			if b, w, err = planBoot(ctx, opt, p, root); err != nil {
				return err
			}
			rep.Warnings = append(rep.Warnings, w...)
		}
		return nil
	})
	if err != nil || opt.DryRun {
		return finish(err)
	}
	p := rep.Plan

	if err := phase(PhasePartition, func() error {
		for _, d := range p.Disks {
			if err := writeTable(ctx, d); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		return finish(err)
	}

	tmp, err := os.MkdirTemp(opt.TempDir, "rewind-recover-")
	if err != nil {
		return finish(err)
	}
	defer os.RemoveAll(tmp)
	renamed := map[string]string{} // recorded UUID -> the one made
	if err := phase(PhaseMkfs, func() error {
		for i, f := range p.Filesystems {
			newUUID, w, err := makeFS(ctx, f, tmp)
			if w != "" {
				rep.Warnings = append(rep.Warnings, w)
			}
			if err != nil {
				return err
			}
			if newUUID != "" {
				renamed[f.UUID] = newUUID
				p.Filesystems[i].UUID = newUUID
			}
		}
		return nil
	}); err != nil {
		return finish(err)
	}

	sysRoot := tmp + "/root"
	m := &mounts{}
	defer func() {
		if uerr := m.unmountAll(); uerr != nil {
			log.Warn("recover: unmount", "err", uerr)
		}
	}()
	var partial []string
	if err := phase(PhaseRestore, func() error {
		if err := m.mountSystem(sysRoot, p); err != nil {
			return err
		}
		rs, err := restorer.New(opt.Repo, restorer.Options{Target: sysRoot, Overwrite: true, Owner: true, TargetIsEntry: root != "/", Logger: log})
		if err != nil {
			return err
		}
		st, err := rs.Restore(ctx, opt.Snapshot, root)
		if st != nil {
			rep.Files, rep.Bytes = st.Files, st.Bytes
			for _, e := range st.NotBackedUp {
				partial = append(partial, "not restored (the backup could not read it): "+e.Path)
			}
			for _, e := range st.Warnings {
				partial = append(partial, e.Path+": "+e.Error)
			}
		}
		if errors.Is(err, restorer.ErrIncomplete) || errors.Is(err, restorer.ErrNotAllKept) {
			return nil
		}
		if errors.Is(err, restorer.ErrDiskFull) {
			// The restorer's advice (free space, restore again) is for a
			// restore into a filesystem that has other content; these
			// filesystems are new, and only a larger one helps.
			return fmt.Errorf("%w (%w) after %s, %s: the snapshot holds more than the inventory recorded for its filesystems; use a larger disk, or give the full partition more room with --map", ErrTooSmall, restorer.ErrDiskFull, ui.Count(rep.Files, "file", "files"), ui.Bytes(rep.Bytes))
		}
		return err
	}); err != nil {
		return finish(err)
	}
	rep.Warnings = append(rep.Warnings, partial...)

	if !opt.NoBootloader {
		if err := phase(PhaseBootloader, func() error {
			fixed, err := fixConfigs(sysRoot, opt.Inventory, p, renamed)
			rep.Fixed = append(rep.Fixed, fixed...)
			if err != nil {
				return err
			}
			if err := m.bindSystem(sysRoot); err != nil {
				return err
			}
			w, err := regenerateInitramfs(ctx, sysRoot)
			if err != nil {
				return err
			}
			if w != "" {
				rep.Warnings = append(rep.Warnings, w)
			}
			if b.install {
				espMounted := !slices.ContainsFunc(m.fat, func(f fatDir) bool { return f.target == b.esp })
				ws, err := installGrub(ctx, b, sysRoot, rep.Host, p, espMounted)
				rep.Warnings = append(rep.Warnings, ws...)
				if err != nil {
					return err
				}
			}
			ws, err := m.writeFAT(ctx)
			rep.Warnings = append(rep.Warnings, ws...)
			return err
		}); err != nil {
			return finish(err)
		}
	} else {
		ws, err := m.writeFAT(ctx)
		rep.Warnings = append(rep.Warnings, ws...)
		if err != nil {
			return finish(err)
		}
	}
	if err := m.unmountAll(); err != nil {
		return finish(err)
	}
	if len(partial) > 0 {
		return finish(fmt.Errorf("%w: %s not restored exactly (listed in the report)", ErrPartial, ui.Count(int64(len(partial)), "entry", "entries")))
	}
	return finish(nil)
}

// checkTargets refuses targets that are in use or not block devices.
func checkTargets(p *Plan) error {
	for _, d := range p.Disks {
		fi, err := os.Stat(d.Target)
		if err != nil {
			return fmt.Errorf("target %s: %w", d.Target, err)
		}
		if fi.Mode()&os.ModeDevice == 0 || fi.Mode()&os.ModeCharDevice != 0 {
			return fmt.Errorf("%w: target %s is not a block device (attach an image file with losetup, or use export --vm)", ErrPlan, d.Target)
		}
		if why := busy(d.Target); why != "" {
			return fmt.Errorf("%w: %s; nothing was written", ErrTargetBusy, why)
		}
	}
	return nil
}

// checkTools makes sure every program the plan runs is installed, before
// anything is written.
func checkTools(p *Plan) error {
	need := []string{"sfdisk", "partx"}
	for _, f := range p.Filesystems {
		need = append(need, mkfsTool(f.Type))
		if f.Type == "btrfs" && len(f.Subvolumes) > 0 {
			need = append(need, "btrfs")
		}
	}
	for _, f := range p.Filesystems {
		if f.Type == "vfat" && !kernelHas("vfat") {
			need = append(need, "mcopy")
			if p.BootMode == "uefi" {
				need = append(need, "grub-mkimage")
			}
			break
		}
	}
	var missing []string
	for _, n := range need {
		if _, err := lookPath(n); err != nil && !slices.Contains(missing, err.Error()) {
			missing = append(missing, strings.TrimPrefix(err.Error(), ErrMissingTool.Error()+": "))
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("%w: %s; nothing was written", ErrMissingTool, strings.Join(missing, ", "))
	}
	return nil
}
