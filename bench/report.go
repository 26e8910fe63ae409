package main

import (
	"fmt"
	"runtime"
	"slices"
	"strings"
	"time"
)

// report is the Markdown the run produced: tables for stdout, and the whole
// BENCHMARKS.md around them.
type report struct {
	tables   string
	document string
}

// target is one line of issue 3's targets: the median ratio rewind/restic
// of a step (or a byte measure) must not exceed max.
type target struct {
	set, what string
	max       float64
	measure   func(r *results) (float64, string, bool)
}

func wallTarget(set, step string, max float64) target {
	return target{set, step, max, func(r *results) (float64, string, bool) {
		x, ok := r.ratio(set, "rewind", "restic", step, wallOf)
		return x, fmt.Sprintf("%.2f×", x), ok
	}}
}

var targets = []target{
	wallTarget("tree", stepInitial, 0.30),
	wallTarget("tree", stepUnchanged, 0.15),
	wallTarget("tree", stepRestoreTmpfs, 0.50),
	wallTarget("tree", stepRestoreDisk, 0.90),
	wallTarget("small", stepRestoreTmpfs, 0.50),
	{"tree", "repository size", 1.00, func(r *results) (float64, string, bool) {
		x, ok := r.ratioBytes("tree", "rewind", sizeInitial, "restic", sizeInitial)
		return x, fmt.Sprintf("%.2f×", x), ok
	}},
	{"all", "peak RSS, every step", 1.00, func(r *results) (float64, string, bool) {
		worst, where, seen := 0.0, "", false
		for _, set := range []string{"tree", "image", "small", "smoke"} {
			for _, step := range toolSteps {
				if x, ok := r.ratio(set, "rewind", "restic", step, rssOf); ok {
					seen = true
					if x > worst {
						worst, where = x, set+" "+step
					}
				}
			}
		}
		return worst, fmt.Sprintf("worst %.2f× (%s)", worst, where), seen
	}},
	wallTarget("image", stepInitial, 0.50),
	{"image", "bytes added by the 1% incremental, against bytes changed", 4.0, func(r *results) (float64, string, bool) {
		x, ok := r.ratioBytes("image", "rewind", bytesAdded, machineTool, bytesChanged)
		y, rok := r.ratioBytes("image", "restic", bytesAdded, machineTool, bytesChanged)
		s := fmt.Sprintf("%.2f× of changed", x)
		if rok {
			s += fmt.Sprintf(" (restic %.2f×)", y)
		}
		return x, s, ok
	}},
	wallTarget("small", stepInitial, 0.30),
	wallTarget("small", stepUnchanged, 0.15),
}

// markdown renders the targets and every table, then the document.
func (r *results) markdown(cfg config, tools []tool) report {
	var names []string
	for _, t := range tools {
		names = append(names, t.Name())
	}
	var peers []string
	if slices.Contains(names, "rewind") {
		for _, n := range names {
			if n != "rewind" {
				peers = append(peers, n)
			}
		}
	}
	var b strings.Builder
	fmt.Fprintf(&b, "## Targets (issue 3)\n\nMedian over rounds of the ratio rewind / restic, same round.\n\n")
	fmt.Fprintf(&b, "| set | step | target | measured | met |\n|---|---|---|---|---|\n")
	for _, t := range targets {
		x, shown, ok := t.measure(r)
		met := "not measured"
		if ok {
			met = map[bool]string{true: "yes", false: "**no**"}[x <= t.max]
		} else {
			shown = "–"
		}
		fmt.Fprintf(&b, "| %s | %s | ≤ %.2f× | %s | %s |\n", t.set, t.what, t.max, shown, met)
	}

	header := func(first string) {
		fmt.Fprintf(&b, "| %s |", first)
		for _, n := range names {
			fmt.Fprintf(&b, " %s |", n)
		}
		for _, p := range peers {
			fmt.Fprintf(&b, " rewind/%s |", p)
		}
		fmt.Fprintf(&b, "\n|---|%s%s\n", strings.Repeat("---:|", len(names)), strings.Repeat("---:|", len(peers)))
	}
	for _, set := range cfg.sets {
		fmt.Fprintf(&b, "\n## Set %s\n", set)
		if desc, ok := standardSets[set]; ok {
			fmt.Fprintf(&b, "\n%s.\n", desc)
		}
		fmt.Fprintf(&b, "\n### Time: wall (user+sys CPU), median of %d round(s)\n\n", cfg.rounds)
		header("step")
		for _, step := range toolSteps {
			fmt.Fprintf(&b, "| %s |", step)
			for _, n := range names {
				w, ok := r.median(set, n, step, wallOf)
				c, _ := r.median(set, n, step, cpuOf)
				fmt.Fprintf(&b, " %s |", cell(ok, fmtSecs(w)+" ("+fmtSecs(c)+")"))
			}
			for _, p := range peers {
				x, ok := r.ratio(set, "rewind", p, step, wallOf)
				fmt.Fprintf(&b, " %s |", cell(ok, fmtRatio(x)))
			}
			b.WriteString("\n")
		}
		fmt.Fprintf(&b, "\n### Peak RSS\n\n")
		header("step")
		for _, step := range toolSteps {
			fmt.Fprintf(&b, "| %s |", step)
			for _, n := range names {
				x, ok := r.median(set, n, step, rssOf)
				fmt.Fprintf(&b, " %s |", cell(ok, fmt.Sprintf("%.0f MiB", x/(1<<20))))
			}
			for _, p := range peers {
				x, ok := r.ratio(set, "rewind", p, step, rssOf)
				fmt.Fprintf(&b, " %s |", cell(ok, fmtRatio(x)))
			}
			b.WriteString("\n")
		}
		changed, _ := r.medianBytes(set, machineTool, bytesChanged)
		fmt.Fprintf(&b, "\n### Repository on disk\n\nThe 1%% mutation changed %s.\n\n", fmtBytes(changed))
		header("measure")
		for _, m := range []string{sizeInitial, sizeUnchanged, sizeIncremental, bytesAdded} {
			fmt.Fprintf(&b, "| %s |", m)
			for _, n := range names {
				x, ok := r.medianBytes(set, n, m)
				fmt.Fprintf(&b, " %s |", cell(ok, fmtBytes(x)))
			}
			for _, p := range peers {
				x, ok := r.ratioBytes(set, "rewind", m, p, m)
				fmt.Fprintf(&b, " %s |", cell(ok, fmtRatio(x)))
			}
			b.WriteString("\n")
		}
		fmt.Fprintf(&b, "| added / changed |")
		for _, n := range names {
			x, ok := r.ratioBytes(set, n, bytesAdded, machineTool, bytesChanged)
			fmt.Fprintf(&b, " %s |", cell(ok, fmtRatio(x)))
		}
		b.WriteString(strings.Repeat(" |", len(peers)) + "\n")

		fmt.Fprintf(&b, "\n### Machine limits (2 workers where parallel)\n\n")
		fmt.Fprintf(&b, "| row | wall (CPU) | peak RSS | rewind step | rewind / limit |\n|---|---:|---:|---|---:|\n")
		pairs := map[string]string{limitRead: stepInitial, limitWalk: stepUnchanged, limitCopyDisk: stepRestoreDisk, limitCopyTmpfs: stepRestoreTmpfs}
		for _, row := range limitSteps {
			w, ok := r.median(set, machineTool, row, wallOf)
			c, _ := r.median(set, machineTool, row, cpuOf)
			rss, _ := r.median(set, machineTool, row, rssOf)
			x, rok := r.ratioSteps(set, "rewind", pairs[row], machineTool, row, wallOf)
			fmt.Fprintf(&b, "| %s | %s | %s | %s | %s |\n", row, cell(ok, fmtSecs(w)+" ("+fmtSecs(c)+")"),
				cell(ok, fmt.Sprintf("%.0f MiB", rss/(1<<20))), pairs[row], cell(rok, fmtRatio(x)))
		}
	}
	if r.Continuous != nil {
		b.WriteString(r.Continuous.markdown())
	}
	if r.PG != nil {
		b.WriteString(r.PG.markdown())
	}
	if r.MySQL != nil {
		b.WriteString(r.MySQL.markdown())
	}
	if len(r.Notes) > 0 {
		b.WriteString("\n## Notes from the run\n\n")
		for _, n := range r.Notes {
			fmt.Fprintf(&b, "- %s\n", n)
		}
	}
	tables := b.String()
	return report{tables: tables, document: r.document(cfg, tools, tables)}
}

// document wraps the tables into BENCHMARKS.md.
func (r *results) document(cfg config, tools []tool, tables string) string {
	var b strings.Builder
	m := r.machine
	b.WriteString("# Benchmarks\n\n")
	b.WriteString("Rewritten by `make bench` (the program in `bench/`); do not edit by hand.\n\n")
	fmt.Fprintf(&b, "Run on %s, took %s, %d round(s), sets %s, tools %s.\n",
		r.started.UTC().Format("2006-01-02 15:04 MST"), r.finished.Sub(r.started).Round(time.Second),
		cfg.rounds, strings.Join(cfg.sets, ", "), strings.Join(cfg.tools, ", "))
	if cfg.rounds < 3 || len(cfg.sets) < 3 || len(tools) < 3 {
		b.WriteString("\n**Partial run**: the reference is 3 rounds of all sets with all three tools.\n")
	}
	b.WriteString("\n## Machine\n\n")
	fmt.Fprintf(&b, "- CPU: %s, nproc %d\n- Memory: %s\n- Kernel: %s\n- Disk: %s\n- File system: %s\n- tmpfs: %s\n- Load average: %s at the start, %s at the end\n",
		m.cpu, m.nproc, m.memory, m.kernel, m.disk, m.fs, m.tmpfs, m.loadStart, m.loadEnd)
	b.WriteString("\n## Tools\n\n")
	for _, t := range tools {
		fmt.Fprintf(&b, "- **%s**: %s. Settings: %s.\n", t.Name(), t.Version(), t.Settings())
	}
	fmt.Fprintf(&b, "- Harness built with %s.\n", runtime.Version())
	b.WriteString(method)
	fmt.Fprintf(&b, "- Page cache before each step (`-cache %s`): %s\n", cfg.cache, cacheModes[cfg.cache])
	b.WriteString("\n" + tables)
	b.WriteString(reproduce)
	return b.String()
}

const method = `
## How the figures are taken

- Datasets come from ` + "`shared/bench/mkdata.go`" + ` (tree, image, small), generated
  once and reused. Before each tool's turn the work copy is put back to the
  generated state, so every tool backs up the same absolute paths and the
  same bytes.
- Each tool's empty repository is made once per run by its own ` + "`init`" + `
  and copied for every round, so that what init calibrates or draws at
  random (restic's scrypt cost, chunker secrets) does not vary between
  rounds.
- Each tool, in turn: initial backup into a new repository; the same backup
  again (unchanged); ` + "`mkdata -mutate 10 -round N`" + ` in round N (1% of the
  set, the same change for every tool of the round) and an incremental
  backup; a full restore of the newest snapshot to an empty
  folder on the same disk, then into tmpfs (` + "`/dev/shm`" + `); a restore of one
  file (the middle file of the set's sorted walk) into tmpfs; the
  structural check (` + "`rewind check`" + `, ` + "`restic check`" + ` without ` + "`--read-data`" + `,
  ` + "`borg check --archives-only`" + `: metadata and references, not every byte).
- Every step is a child process, measured by the kernel (wait4 rusage):
  wall time, user+sys CPU, peak RSS (ru_maxrss). ` + "`sync`" + ` runs before each
  step, and each restore target is emptied and synced before the step.
- Repository size is the sum of allocated blocks (` + "`du`" + `). "Added by
  incremental" is the size after the incremental minus the size before it;
  "changed" counts the bytes the mutation actually changed (new files, and
  differing or appended bytes of changed ones).
- Every restore is compared with the source afterwards (names, types,
  symlinks, contents), untimed.
- Rounds alternate the tool order (rewind, restic, borg; then reversed).
  Each figure is the median over rounds; each ratio is the median of the
  per-round ratios, so that what a noisy neighbour does to one round cancels.
- Machine limits are measured on the same data by the harness itself, as
  child processes: reading every file's data with 2 workers (holes skipped),
  lstat of every entry, and a 2-worker copy (sparse, with modes and times)
  to the disk and into tmpfs.
`

// cacheModes says what each -cache mode means, for the report.
var cacheModes = map[string]string{
	cacheWarm: "warm. Right before each step the harness reads what the step " +
		"reads (the set for backups, the repository and the tool's cache for every " +
		"step), because this machine's host reclaims page cache untouched for some " +
		"seconds; the figures show the tools, not the virtual disk's reads.",
	cacheCold: "cold. The page cache is dropped before each step; every read " +
		"comes from the disk.",
	cacheAsIs: "as left by the previous step, which on this machine depends on " +
		"timing; use it only to compare with older runs.",
}

const reproduce = `
## Reproduce

    make bench                                  # what this file shows
    make bench BENCHFLAGS='-sets tree -n 1 -out -'   # a quick look, stdout only
    make bench-smoke                            # the CI smoke: tiny data, one round

Flags: ` + "`-n`" + ` rounds (3), ` + "`-data`" + ` dataset folder (/var/tmp/rwbench-data),
` + "`-sets`" + `, ` + "`-tools`" + `, ` + "`-out`" + ` (this file; ` + "`-`" + ` for stdout only), ` + "`-keep`" + `
(keep the repositories), ` + "`-cache`" + ` (warm, cold, as-is), ` + "`-verify`" + `,
` + "`-timeout`" + `, ` + "`-rewind`" + ` (a prebuilt binary), ` + "`-pg`" + ` (on, off, only: the
PostgreSQL section), ` + "`-pg-scale`" + `, ` + "`-mysql`" + ` (on, off, only: the MariaDB
section), ` + "`-mysql-size`" + `, ` + "`-mysql-writes`" + `. Run as root: the harness
installs restic and borgbackup from Debian when they are missing.
`

func cell(ok bool, s string) string {
	if !ok {
		return "–"
	}
	return s
}

func fmtSecs(s float64) string {
	if s < 10 {
		return fmt.Sprintf("%.2f s", s)
	}
	return fmt.Sprintf("%.1f s", s)
}

func fmtRatio(x float64) string { return fmt.Sprintf("%.2f×", x) }

func fmtBytes(n float64) string {
	switch {
	case n >= 1e9:
		return fmt.Sprintf("%.2f GB", n/1e9)
	case n >= 1e6:
		return fmt.Sprintf("%.1f MB", n/1e6)
	default:
		return fmt.Sprintf("%.0f kB", n/1e3)
	}
}
