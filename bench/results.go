package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Byte measures recorded per repository (and, for bytesChanged, per set
// under machineTool).
const (
	sizeInitial     = "size after initial"
	sizeUnchanged   = "size after unchanged"
	sizeIncremental = "size after incremental"
	bytesAdded      = "added by incremental"
	bytesChanged    = "changed by the mutation"
)

// results holds every measurement by "set|tool|step" and round.
type results struct {
	Samples  map[string]map[int]sample `json:"samples"`
	Bytes    map[string]map[int]int64  `json:"bytes"`
	Notes    []string                  `json:"notes,omitempty"`
	machine  machineFacts
	started  time.Time
	finished time.Time

	// Continuous is the continuous-protection scenario, when it ran.
	Continuous *cpReport `json:"continuous,omitempty"`
	// PG is the PostgreSQL section, when it ran.
	PG *pgReport `json:"pg,omitempty"`
	// MySQL is the MariaDB section, when it ran.
	MySQL *myReport `json:"mysql,omitempty"`
}

func newResults() *results {
	return &results{
		Samples: map[string]map[int]sample{},
		Bytes:   map[string]map[int]int64{},
		started: time.Now(),
	}
}

func key(set, tool, step string) string { return set + "|" + tool + "|" + step }

func (r *results) add(set, tool, step string, round int, s sample) {
	k := key(set, tool, step)
	if r.Samples[k] == nil {
		r.Samples[k] = map[int]sample{}
	}
	r.Samples[k][round] = s
}

func (r *results) addBytes(set, tool, measure string, round int, n int64) {
	k := key(set, tool, measure)
	if r.Bytes[k] == nil {
		r.Bytes[k] = map[int]int64{}
	}
	r.Bytes[k][round] = n
}

func (r *results) hasBytes(set, tool, measure string, round int) bool {
	_, ok := r.Bytes[key(set, tool, measure)][round]
	return ok
}

func (r *results) note(s string) { r.Notes = append(r.Notes, s) }

func (r *results) saveJSON(path string) error {
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, b, 0o644)
}

// metric picks one number out of a sample.
type metric func(sample) float64

func wallOf(s sample) float64 { return s.Wall.Seconds() }
func cpuOf(s sample) float64  { return s.CPU.Seconds() }
func rssOf(s sample) float64  { return float64(s.RSS) }

// median returns the median of the metric over the rounds, and whether
// there was any.
func (r *results) median(set, tool, step string, m metric) (float64, bool) {
	var xs []float64
	for _, s := range r.Samples[key(set, tool, step)] {
		xs = append(xs, m(s))
	}
	return medianOf(xs)
}

// ratio returns the median over rounds of a's metric divided by b's, taken
// round by round so that the noise common to a round cancels out.
func (r *results) ratio(set, a, b, step string, m metric) (float64, bool) {
	return r.ratioSteps(set, a, step, b, step, m)
}

// ratioSteps is ratio between two different steps (rewind's restore
// against the machine's copy).
func (r *results) ratioSteps(set, a, stepA, b, stepB string, m metric) (float64, bool) {
	sa, sb := r.Samples[key(set, a, stepA)], r.Samples[key(set, b, stepB)]
	var xs []float64
	for round, x := range sa {
		if y, ok := sb[round]; ok && m(y) > 0 {
			xs = append(xs, m(x)/m(y))
		}
	}
	return medianOf(xs)
}

func (r *results) medianBytes(set, tool, measure string) (float64, bool) {
	var xs []float64
	for _, n := range r.Bytes[key(set, tool, measure)] {
		xs = append(xs, float64(n))
	}
	return medianOf(xs)
}

// ratioBytes is ratio for byte measures; b's measure may differ from a's
// (tool bytes added against the set's bytes changed).
func (r *results) ratioBytes(set, a, ma, b, mb string) (float64, bool) {
	xa, xb := r.Bytes[key(set, a, ma)], r.Bytes[key(set, b, mb)]
	var xs []float64
	for round, x := range xa {
		if y, ok := xb[round]; ok && y > 0 {
			xs = append(xs, float64(x)/float64(y))
		}
	}
	return medianOf(xs)
}

func medianOf(xs []float64) (float64, bool) {
	if len(xs) == 0 {
		return 0, false
	}
	slices.Sort(xs)
	n := len(xs)
	if n%2 == 1 {
		return xs[n/2], true
	}
	return (xs[n/2-1] + xs[n/2]) / 2, true
}

// machineFacts describes the machine for the report.
type machineFacts struct {
	cpu, memory, kernel, disk, fs, tmpfs string
	nproc                                int
	loadStart, loadEnd                   string
}

// machineInfo gathers the facts from /proc and /sys, for the file system
// that holds dataDir.
func machineInfo(dataDir string) machineFacts {
	m := machineFacts{
		cpu:       procField("/proc/cpuinfo", "model name"),
		nproc:     runtime.NumCPU(),
		kernel:    strings.TrimSpace(readString("/proc/sys/kernel/osrelease")),
		loadStart: loadAvg(),
	}
	if kb, err := strconv.ParseInt(strings.Fields(procField("/proc/meminfo", "MemTotal") + " 0")[0], 10, 64); err == nil {
		m.memory = fmt.Sprintf("%.1f GiB", float64(kb)/(1<<20))
	}
	dev, mnt, fstype, opts := mountOf(dataDir)
	m.fs = fmt.Sprintf("%s on %s (%s), mounted at %s", fstype, dev, opts, mnt)
	m.disk = blockDevice(dev)
	var st syscall.Statfs_t
	if syscall.Statfs("/dev/shm", &st) == nil {
		m.tmpfs = fmt.Sprintf("/dev/shm, %.1f GiB", float64(st.Blocks)*float64(st.Bsize)/(1<<30))
	}
	return m
}

func readString(path string) string {
	b, _ := os.ReadFile(path)
	return string(b)
}

// procField returns the value of the first "name : value" line.
func procField(path, name string) string {
	for _, line := range strings.Split(readString(path), "\n") {
		k, v, ok := strings.Cut(line, ":")
		if ok && strings.TrimSpace(k) == name {
			return strings.TrimSpace(v)
		}
	}
	return "unknown"
}

func loadAvg() string {
	f := strings.Fields(readString("/proc/loadavg"))
	if len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], " ")
}

// mountOf finds the mount with the longest mount point that holds path.
func mountOf(path string) (dev, mnt, fstype, opts string) {
	best := -1
	for _, line := range strings.Split(readString("/proc/mounts"), "\n") {
		f := strings.Fields(line)
		if len(f) < 4 {
			continue
		}
		mp := f[1]
		if (path == mp || strings.HasPrefix(path, strings.TrimSuffix(mp, "/")+"/")) && len(mp) > best {
			best = len(mp)
			dev, mnt, fstype, opts = f[0], mp, f[2], f[3]
		}
	}
	return
}

// blockDevice describes the disk under a /dev node: model, size, and
// whether the kernel calls it rotational (virtual disks often say 1).
func blockDevice(dev string) string {
	name := filepath.Base(dev)
	sys, err := filepath.EvalSymlinks("/sys/class/block/" + name)
	if err != nil {
		return dev + " (no /sys entry)"
	}
	if _, err := os.Stat(filepath.Join(sys, "partition")); err == nil {
		sys = filepath.Dir(sys)
	}
	disk := filepath.Base(sys)
	model := strings.TrimSpace(readString(filepath.Join(sys, "device", "model")))
	if model == "" {
		model = "no model name (virtual disk?)"
	}
	size, _ := strconv.ParseInt(strings.TrimSpace(readString(filepath.Join(sys, "size"))), 10, 64)
	rot := strings.TrimSpace(readString(filepath.Join(sys, "queue", "rotational")))
	sched := strings.TrimSpace(readString(filepath.Join(sys, "queue", "scheduler")))
	return fmt.Sprintf("/dev/%s: %s, %.0f GiB, rotational=%s, scheduler %s", disk, model, float64(size)*512/(1<<30), rot, sched)
}
