package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
)

// password is the repository password every tool gets; the repositories are
// thrown away after each run.
const password = "rwbench-not-secret"

// cmdSpec is one command line to run as a measured child.
type cmdSpec struct {
	argv []string
	env  []string // added to the harness's environment
	dir  string   // working folder; empty for the harness's own
	// warn lists exit codes that mean "done, with warnings" for this tool.
	warn []int
	// cred, when set, runs the command as that OS user (the PostgreSQL
	// section runs both tools as the cluster's user).
	cred *syscall.Credential
}

// tool knows the command lines of one backup program. Every method only
// builds a command; the harness runs and measures it.
type tool interface {
	Name() string
	Version() string
	// Settings says in one line which non-default choices the harness makes.
	Settings() string
	// Env returns the variables for every command, with caches under cache.
	Env(cache string) []string
	Init(repo string) cmdSpec
	// Backup saves src as a snapshot; label is unique within the repository.
	Backup(repo, src, label string) cmdSpec
	// Restore writes the newest snapshot (saved as label) below target.
	Restore(repo, label, target string) cmdSpec
	// RestoreFile writes only the absolute path file of the newest snapshot.
	RestoreFile(repo, label, file, target string) cmdSpec
	// Check runs the structural check: metadata and references, not every
	// byte of data.
	Check(repo string) cmdSpec
}

type rewindTool struct{ bin, version string }

func (t rewindTool) Name() string     { return "rewind" }
func (t rewindTool) Version() string  { return t.version }
func (t rewindTool) Settings() string { return "defaults" }
func (t rewindTool) Env(cache string) []string {
	return []string{"REWIND_PASSWORD=" + password, "XDG_CACHE_HOME=" + cache}
}
func (t rewindTool) Init(repo string) cmdSpec {
	return cmdSpec{argv: []string{t.bin, "init", "--repo", repo}}
}
func (t rewindTool) Backup(repo, src, _ string) cmdSpec {
	// 3: snapshot saved, some files could not be read.
	return cmdSpec{argv: []string{t.bin, "backup", "--repo", repo, src}, warn: []int{3}}
}
func (t rewindTool) Restore(repo, _, target string) cmdSpec {
	return cmdSpec{argv: []string{t.bin, "restore", "latest", "--repo", repo, "--target", target}}
}
func (t rewindTool) RestoreFile(repo, _, file, target string) cmdSpec {
	return cmdSpec{argv: []string{t.bin, "restore", "latest:" + file, "--repo", repo, "--target", target}}
}
func (t rewindTool) Check(repo string) cmdSpec {
	return cmdSpec{argv: []string{t.bin, "check", "--repo", repo}}
}

type resticTool struct{ bin, version string }

func (t resticTool) Name() string    { return "restic" }
func (t resticTool) Version() string { return t.version }
func (t resticTool) Settings() string {
	return "defaults: repository format 2, compression auto, local cache; restore has no sparse option in 0.14"
}
func (t resticTool) Env(cache string) []string {
	return []string{"RESTIC_PASSWORD=" + password, "RESTIC_CACHE_DIR=" + cache}
}
func (t resticTool) Init(repo string) cmdSpec {
	return cmdSpec{argv: []string{t.bin, "-r", repo, "init"}}
}
func (t resticTool) Backup(repo, src, _ string) cmdSpec {
	// 3: snapshot saved, some files could not be read.
	return cmdSpec{argv: []string{t.bin, "-r", repo, "backup", src}, warn: []int{3}}
}
func (t resticTool) Restore(repo, _, target string) cmdSpec {
	return cmdSpec{argv: []string{t.bin, "-r", repo, "restore", "latest", "--target", target}}
}
func (t resticTool) RestoreFile(repo, _, file, target string) cmdSpec {
	return cmdSpec{argv: []string{t.bin, "-r", repo, "restore", "latest", "--target", target, "--include", file}}
}
func (t resticTool) Check(repo string) cmdSpec {
	// Without --read-data: index, pack list and sizes, every tree and the
	// presence of every blob it references.
	return cmdSpec{argv: []string{t.bin, "-r", repo, "check"}}
}

type borgTool struct{ bin, version string }

func (t borgTool) Name() string    { return "borg" }
func (t borgTool) Version() string { return t.version }
func (t borgTool) Settings() string {
	return "init -e repokey-blake2; create --compression lz4 (its default), default chunker and files cache; " +
		"extract --sparse; check --archives-only"
}
func (t borgTool) Env(cache string) []string {
	return []string{
		"BORG_PASSPHRASE=" + password,
		"BORG_BASE_DIR=" + cache, // cache, security and key folders
		"BORG_RELOCATED_REPO_ACCESS_IS_OK=yes",
	}
}
func (t borgTool) Init(repo string) cmdSpec {
	return cmdSpec{argv: []string{t.bin, "init", "-e", "repokey-blake2", repo}}
}
func (t borgTool) Backup(repo, src, label string) cmdSpec {
	// 1: archive saved, with warnings (a file changed or was unreadable).
	return cmdSpec{argv: []string{t.bin, "create", "--compression", "lz4", repo + "::" + label, src}, warn: []int{1}}
}
func (t borgTool) Restore(repo, label, target string) cmdSpec {
	// borg extracts into the working folder, paths without the leading /.
	// 1: extracted, with warnings (e.g. an attribute it could not set); the
	// comparison with the source tells whether the data is right.
	return cmdSpec{argv: []string{t.bin, "extract", "--sparse", repo + "::" + label}, dir: target, warn: []int{1}}
}
func (t borgTool) RestoreFile(repo, label, file, target string) cmdSpec {
	return cmdSpec{
		argv: []string{t.bin, "extract", "--sparse", repo + "::" + label, strings.TrimPrefix(file, "/")},
		dir:  target,
		warn: []int{1},
	}
}
func (t borgTool) Check(repo string) cmdSpec {
	// --archives-only is borg's equivalent of `restic check`: it walks the
	// archives' metadata and checks that every referenced chunk exists. The
	// repository part reads and CRC-checks every segment, which is what
	// `restic check --read-data` would do.
	return cmdSpec{argv: []string{t.bin, "check", "--archives-only", repo}}
}

// ensurePeers installs restic and borgbackup from Debian when they are
// selected and missing.
func ensurePeers(ctx context.Context, log *slog.Logger, tools []string) error {
	pkgs := map[string]string{"restic": "restic", "borg": "borgbackup"}
	var missing []string
	for _, t := range tools {
		if pkg, ok := pkgs[t]; ok {
			if _, err := exec.LookPath(t); err != nil {
				missing = append(missing, pkg)
			}
		}
	}
	if len(missing) == 0 {
		return nil
	}
	if os.Geteuid() != 0 {
		return fmt.Errorf("%s not installed, and installing needs root: apt-get install %s",
			strings.Join(missing, ", "), strings.Join(missing, " "))
	}
	log.Info("installing from Debian", "packages", missing)
	for _, argv := range [][]string{
		{"apt-get", "update", "-qq"},
		append([]string{"apt-get", "install", "-y", "-qq"}, missing...),
	} {
		cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
		cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
		cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
		if err := cmd.Run(); err != nil {
			return fmt.Errorf("%s: %w", strings.Join(argv, " "), err)
		}
	}
	return nil
}

// prepareTools builds rewind and finds the peers, in the order asked for.
func prepareTools(ctx context.Context, log *slog.Logger, cfg config, root, tmp string) ([]tool, error) {
	var tools []tool
	for _, name := range cfg.tools {
		switch name {
		case "rewind":
			t, err := buildRewind(ctx, root, tmp, cfg.rewind)
			if err != nil {
				if !cfg.optional {
					return nil, fmt.Errorf("%w (set %s=1 to run without it while it is being written)", err, optionalEnv)
				}
				log.Warn("rewind left out of this run", "err", err)
				continue
			}
			tools = append(tools, t)
		case "restic":
			bin, err := exec.LookPath("restic")
			if err != nil {
				return nil, err
			}
			tools = append(tools, resticTool{bin: bin, version: firstLine(ctx, bin, "version")})
		case "borg":
			bin, err := exec.LookPath("borg")
			if err != nil {
				return nil, err
			}
			tools = append(tools, borgTool{bin: bin, version: firstLine(ctx, bin, "--version")})
		}
	}
	return tools, nil
}

// buildRewind builds ./cmd/rewind, or takes the given binary.
func buildRewind(ctx context.Context, root, tmp, given string) (tool, error) {
	bin := filepath.Join(tmp, "rewind")
	if given != "" {
		abs, err := filepath.Abs(given)
		if err != nil {
			return nil, err
		}
		if _, err := os.Stat(abs); err != nil {
			return nil, fmt.Errorf("-rewind: %w", err)
		}
		bin = abs
	} else {
		cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, "./cmd/rewind")
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			return nil, fmt.Errorf("build rewind: %w\n%s", err, strings.TrimSpace(string(out)))
		}
	}
	v := firstLine(ctx, bin, "version")
	if v == "" {
		v = firstLine(ctx, bin, "--version")
	}
	if v == "" {
		v = "rewind (no version command)"
	}
	if rev := gitRevision(ctx, root); rev != "" {
		v += ", source " + rev
	}
	return rewindTool{bin: bin, version: v}, nil
}

// buildMkdata compiles shared/bench/mkdata.go once, so that every mutation
// does not pay for a `go run` compile.
func buildMkdata(ctx context.Context, src, tmp string) (string, error) {
	if _, err := os.Stat(src); err != nil {
		return "", fmt.Errorf("mkdata: %w", err)
	}
	bin := filepath.Join(tmp, "mkdata")
	cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, src)
	cmd.Dir = filepath.Dir(src)
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("build %s: %w\n%s", src, err, strings.TrimSpace(string(out)))
	}
	return bin, nil
}

// mkdataEnv makes the tree set independent of how mkdata was built: it
// copies GOROOT, which a -trimpath build could not find by itself.
func mkdataEnv(ctx context.Context) []string {
	out, err := exec.CommandContext(ctx, "go", "env", "GOROOT").Output()
	if err != nil {
		return nil
	}
	return []string{"GOROOT=" + strings.TrimSpace(string(out))}
}

func firstLine(ctx context.Context, bin string, args ...string) string {
	// Combined: a cobra command's Println writes to stderr.
	out, err := exec.CommandContext(ctx, bin, args...).CombinedOutput()
	if err != nil {
		return ""
	}
	line, _, _ := strings.Cut(strings.TrimSpace(string(out)), "\n")
	return line
}

func gitRevision(ctx context.Context, root string) string {
	cmd := exec.CommandContext(ctx, "git", "rev-parse", "--short", "HEAD")
	cmd.Dir = root
	out, err := cmd.Output()
	if err != nil {
		return "uncommitted"
	}
	rev := strings.TrimSpace(string(out))
	cmd = exec.CommandContext(ctx, "git", "status", "--porcelain", "--untracked-files=no")
	cmd.Dir = root
	if st, err := cmd.Output(); err == nil && len(strings.TrimSpace(string(st))) > 0 {
		rev += "+dirty"
	}
	return rev
}
