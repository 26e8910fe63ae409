package job

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/rewind-backup/rewind/internal/ui"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"

	"github.com/rewind-backup/rewind/internal/plan"
)

// exitPartial is rewind's exit status for a snapshot saved with some
// files unreadable (docs/CLI.md).
const exitPartial = 3

// summary is what the runner reads of a child's final JSON line
// (`backup --json`'s summary, docs/JSON.md).
type summary struct {
	MessageType string `json:"message_type"`
	SnapshotID  string `json:"snapshot_id"`
	TotalFiles  int64  `json:"total_files_processed"`
	TotalBytes  int64  `json:"total_bytes_processed"`
	DataAdded   int64  `json:"data_added"`
	ErrorCounts struct {
		Files       int `json:"files"`
		Directories int `json:"directories"`
		Other       int `json:"other"`
	} `json:"error_counts"`
}

// status is a child's progress line (docs/JSON.md).
type status struct {
	MessageType string  `json:"message_type"`
	Action      string  `json:"action"`
	PercentDone float64 `json:"percent_done"`
	FilesDone   int64   `json:"files_done"`
	TotalFiles  int64   `json:"total_files"`
	BytesDone   int64   `json:"bytes_done"`
	TotalBytes  int64   `json:"total_bytes"`
}

// childResult is how a rewind child ended.
type childResult struct {
	summary *summary
	// raw is the summary line as the child wrote it (a drill's report).
	raw     []byte
	partial bool // exit status 3
}

// rewind runs the rewind binary with args (--json is added) in its own
// process group, throttled by the job's limits, and reads its summary.
// Its progress goes to r.Stdout, its standard error to r.Stderr and the
// log. A failure carries the child's last lines of standard error.
func (s *state) rewind(ctx context.Context, args ...string) (*childResult, error) {
	r := s.r
	full := append([]string{"--json"}, args...)
	cmd := exec.Command(r.bin(), full...)
	cmd.Env = os.Environ()
	what := "rewind " + args[0]
	errLines := newLines(8, func(line string) {
		if strings.TrimSpace(line) != "" {
			s.log.Info("child", "cmd", what, "stderr", line)
		}
	})
	cmd.Stderr = io.MultiWriter(errLines, teeTo(r.Stderr))
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	res := &childResult{}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		s.readChild(out, what, res)
	}()
	s.log.Debug("running", "argv", strings.Join(full, " "))
	err = runProc(ctx, cmd, s.j.Limits, killGrace)
	wg.Wait()
	var exit *exec.ExitError
	switch {
	case err == nil:
		return res, nil
	case errors.As(err, &exit) && exit.ExitCode() == exitPartial:
		res.partial = true
		return res, nil
	case errors.Is(err, errTimedOut):
		return res, fmt.Errorf("%s: %w", what, err)
	case errors.As(err, &exit):
		msg := strings.TrimPrefix(lastMessage(errLines.Last()), "rewind: ")
		if msg == "" {
			msg = "exit status " + strconv.Itoa(exit.ExitCode())
		}
		return res, fmt.Errorf("%s: %s", what, msg)
	}
	return res, fmt.Errorf("%s: %w", what, err)
}

// readChild reads a child's JSON lines: it keeps the summary, shows
// progress, and logs the rest.
func (s *state) readChild(out io.Reader, what string, res *childResult) {
	sc := bufio.NewScanner(out)
	sc.Buffer(make([]byte, 64<<10), 16<<20)
	for sc.Scan() {
		line := sc.Bytes()
		var head struct {
			MessageType string `json:"message_type"`
		}
		if json.Unmarshal(line, &head) != nil {
			continue
		}
		switch head.MessageType {
		case "summary":
			var sum summary
			if err := json.Unmarshal(line, &sum); err == nil {
				res.summary = &sum
				res.raw = append([]byte(nil), line...)
			}
		case "status":
			var st status
			if json.Unmarshal(line, &st) == nil && s.r.Stdout != nil {
				fmt.Fprintf(s.r.Stdout, "%s: %.0f%% %d/%s, %s/%s\n", what, st.PercentDone*100, st.FilesDone, ui.Count(st.TotalFiles, "file", "files"), size(st.BytesDone), size(st.TotalBytes))
			}
		case "error":
			s.log.Warn("child", "cmd", what, "event", string(line))
		}
	}
	_, _ = io.Copy(io.Discard, out)
}

// lastMessage picks the child's error line (rewind prints "rewind: ..."
// last, then maybe a hint) from its last lines of standard error.
func lastMessage(last string) string {
	ls := strings.Split(last, "\n")
	for i := len(ls) - 1; i >= 0; i-- {
		if strings.HasPrefix(ls[i], "rewind: ") {
			return ls[i]
		}
	}
	if len(ls) > 0 {
		return ls[len(ls)-1]
	}
	return ""
}

// size says n bytes in a short, human form.
func size(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	v, u := float64(n)/unit, "KiB"
	for _, next := range []string{"MiB", "GiB", "TiB"} {
		if v < unit {
			break
		}
		v, u = v/unit, next
	}
	return fmt.Sprintf("%.1f %s", v, u)
}

// repoFlags are the global flags that open repo, with the job's upload
// limit winning over the repository's.
func repoFlags(repo *plan.Repository, l *plan.Limits) []string {
	args := []string{"--repo", repo.Location}
	if repo.PasswordFile != "" {
		args = append(args, "--password-file", repo.PasswordFile)
	}
	if repo.PasswordCommand != "" {
		args = append(args, "--password-command", repo.PasswordCommand)
	}
	up := repo.LimitUpload
	if l != nil && l.UploadKiB > 0 {
		up = l.UploadKiB
	}
	if up > 0 {
		args = append(args, "--limit-upload", strconv.Itoa(up))
	}
	if repo.LimitDownload > 0 {
		args = append(args, "--limit-download", strconv.Itoa(repo.LimitDownload))
	}
	return args
}

// backupArgs are the arguments of the backup a files or stdin-command job
// runs, without the repository's.
func (s *state) backupArgs() []string {
	j := s.j
	args := []string{"--tag", JobTag(j.Name), "--host", s.host}
	for _, t := range j.Tags {
		args = append(args, "--tag", t)
	}
	if j.Kind == plan.KindStdinCommand {
		args = append(args, "--stdin-from-command")
		if j.StdinFilename != "" {
			args = append(args, "--stdin-filename", j.StdinFilename)
		}
		return append(append(args, "--"), j.Command...)
	}
	for _, e := range j.Exclude {
		args = append(args, "--exclude", e)
	}
	for _, e := range j.ExcludeIfPresent {
		args = append(args, "--exclude-if-present", e)
	}
	if j.ExcludeLarger != "" {
		args = append(args, "--exclude-larger-than", j.ExcludeLarger)
	}
	if j.OneFileSystem {
		args = append(args, "--one-file-system")
	}
	if j.Inventory != nil && !*j.Inventory {
		args = append(args, "--no-inventory")
	}
	for _, m := range s.readFrom {
		args = append(args, "--read-from", m)
	}
	return append(append(args, "--"), j.Paths...)
}

// retentionArgs are forget's policy flags for ret.
func retentionArgs(ret *plan.Retention) []string {
	var args []string
	for _, k := range []struct {
		flag string
		n    int
	}{
		{"--keep-last", ret.KeepLast}, {"--keep-hourly", ret.KeepHourly}, {"--keep-daily", ret.KeepDaily},
		{"--keep-weekly", ret.KeepWeekly}, {"--keep-monthly", ret.KeepMonthly}, {"--keep-yearly", ret.KeepYearly},
	} {
		if k.n != 0 {
			args = append(args, k.flag, strconv.Itoa(k.n))
		}
	}
	if ret.KeepWithin > 0 {
		args = append(args, "--keep-within", ret.KeepWithin.D().String())
	}
	if ret.Prune == nil || *ret.Prune {
		args = append(args, "--prune")
	}
	return args
}

// JobTag is the tag every snapshot of job name carries.
func JobTag(name string) string { return "job:" + name }
