package drill

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/rewind-backup/rewind/internal/event"
	"github.com/rewind-backup/rewind/internal/plan"
)

// DefaultTimeout bounds a drill's boot and probes together.
const DefaultTimeout = 10 * time.Minute

// Options say what a drill does. Host, Snapshot and BootMode describe
// the snapshot; Restore writes its VM disk.
type Options struct {
	Host, Snapshot, BootMode string
	// Probes run after the boot marker, in order. The boot marker is the
	// first marker probe, else DefaultMarker.
	Probes []plan.Probe
	// Timeout bounds boot and probes (DefaultTimeout when 0).
	Timeout time.Duration
	// Keep, when set, is a new or empty folder that keeps the VM disk
	// and the serial log; else they go in a temporary folder that is
	// removed.
	Keep      string
	MemoryMiB int
	// Restore writes the VM disk out (qcow2), as ExportVM does; the
	// other disks of a machine of several are its Export's Disks.
	Restore func(ctx context.Context, out string) (*Export, error)
	Log     *slog.Logger
}

// BootMarker is the console text that ends the boot phase.
func BootMarker(probes []plan.Probe) string {
	for _, p := range probes {
		if p.Kind == plan.ProbeMarker {
			return p.Text
		}
	}
	return DefaultMarker
}

// Run runs one drill and returns its report, whose Result says whether
// recovery worked; the error is set for a failed drill too (the
// report's Error). The VM is killed and the work folder removed (unless
// Keep) in every case.
func Run(ctx context.Context, o Options) (*Report, error) {
	log := o.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if o.Timeout <= 0 {
		o.Timeout = DefaultTimeout
	}
	rep := &Report{Host: o.Host, Snapshot: o.Snapshot, BootMode: o.BootMode, Start: time.Now().UTC(), Probes: []ProbeResult{}}
	fail := func(err error) (*Report, error) {
		rep.End = time.Now().UTC()
		rep.Result = event.ResultFailed
		rep.Error = err.Error()
		return rep, err
	}
	dir, err := workDir(o.Keep)
	if err != nil {
		return fail(err)
	}
	if o.Keep == "" {
		defer os.RemoveAll(dir)
	} else {
		rep.Kept = dir
	}

	// restore: the snapshot as a VM disk.
	t0 := time.Now()
	disk := filepath.Join(dir, "disk.qcow2")
	log.Info("drill: restoring the snapshot as a VM disk", "snapshot", o.Snapshot, "disk", disk)
	ex, err := o.Restore(ctx, disk)
	if ex != nil {
		rep.Recovery = ex.Recovery
	}
	rep.addPhase(PhaseRestore, time.Since(t0))
	if err != nil {
		return fail(fmt.Errorf("restore: %w", err))
	}

	// boot: until the boot marker on the serial console.
	t1 := time.Now()
	var ports []int
	for _, p := range o.Probes {
		if p.Kind == plan.ProbeTCP || p.Kind == plan.ProbeHTTP {
			ports = append(ports, p.Port)
		}
	}
	var more []string
	if ex != nil && len(ex.Disks) > 1 {
		for _, d := range ex.Disks[1:] {
			more = append(more, d.Out)
		}
	}
	vm, err := Boot(ctx, BootOptions{Disk: disk, More: more, Dir: dir, BootMode: o.BootMode, MemoryMiB: o.MemoryMiB, Ports: ports})
	if err != nil {
		rep.addPhase(PhaseBoot, time.Since(t1))
		return fail(fmt.Errorf("boot: %w", err))
	}
	defer vm.Kill()
	rep.Accel = vm.Accel
	dctx, cancel := context.WithTimeout(ctx, o.Timeout)
	defer cancel()
	marker := BootMarker(o.Probes)
	log.Info("drill: booting", "accel", vm.Accel, "boot_mode", o.BootMode, "marker", marker)
	err = vm.waitFor(dctx, 100*time.Millisecond, func(context.Context) error { return vm.seen(marker) })
	rep.addPhase(PhaseBoot, time.Since(t1))
	markerProbe := plan.Probe{Kind: plan.ProbeMarker, Text: marker}
	if err != nil {
		if dctx.Err() != nil && ctx.Err() == nil {
			err = fmt.Errorf("no %q on the serial console within %v", marker, o.Timeout)
		}
		rep.Probes = append(rep.Probes, ProbeResult{Probe: markerProbe.String(), Result: event.ResultFailed, Error: err.Error(), Seconds: time.Since(t1).Seconds()})
		rep.Console = vm.Console(2000)
		return fail(fmt.Errorf("boot: %w", err))
	}
	rep.Probes = append(rep.Probes, ProbeResult{Probe: markerProbe.String(), Result: event.ResultSuccess, Seconds: time.Since(t1).Seconds()})

	// probes: each retried until it passes or the time is up.
	t2 := time.Now()
	var failed []string
	skipped := false
	for _, p := range o.Probes {
		if p == markerProbe && !skipped {
			skipped = true // the boot marker, passed already
			continue
		}
		err := runProbe(dctx, vm, p)
		res := ProbeResult{Probe: p.String(), Result: event.ResultSuccess, Seconds: time.Since(t1).Seconds()}
		if err != nil {
			if dctx.Err() != nil && ctx.Err() == nil {
				err = fmt.Errorf("%v (gave up after the drill's timeout %v)", err, o.Timeout)
			}
			res.Result, res.Error = event.ResultFailed, err.Error()
			failed = append(failed, fmt.Sprintf("probe %s: %v", p, err))
		}
		log.Info("drill: probe", "probe", p.String(), "result", res.Result, "err", res.Error)
		rep.Probes = append(rep.Probes, res)
	}
	rep.addPhase(PhaseProbes, time.Since(t2))
	if len(failed) > 0 {
		rep.Console = vm.Console(2000)
		return fail(errors.New(strings.Join(failed, "; ")))
	}
	if err := ctx.Err(); err != nil {
		return fail(err)
	}
	rep.End = time.Now().UTC()
	rep.Result = event.ResultSuccess
	return rep, nil
}

// workDir is the drill's folder: keep (made when missing, refused when
// not empty), or a new temporary folder. Its path stays short: it holds
// the guest agent's unix socket (at most 107 bytes).
func workDir(keep string) (string, error) {
	if keep == "" {
		return os.MkdirTemp("", "rewind-drill-")
	}
	abs, err := filepath.Abs(keep)
	if err != nil {
		return "", err
	}
	if err := os.MkdirAll(abs, 0o700); err != nil {
		return "", fmt.Errorf("--keep %s: %w", keep, err)
	}
	ents, err := os.ReadDir(abs)
	if err != nil {
		return "", fmt.Errorf("--keep %s: %w", keep, err)
	}
	if len(ents) > 0 {
		return "", fmt.Errorf("--keep %s is not empty: give a new or empty folder", keep)
	}
	if len(abs)+len("/qga.sock") > 100 {
		return "", fmt.Errorf("--keep %s: the path is too long for the guest agent's socket (at most 90 characters)", keep)
	}
	return abs, nil
}
