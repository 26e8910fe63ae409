package plan

import (
	"fmt"
	"slices"
)

// Phases of a job's sequence.
const (
	PhaseBefore    = "before"
	PhaseMain      = "main"
	PhaseAfter     = "after"
	PhaseOnFailure = "on_failure"
)

// Step kinds that only appear in a sequence: the implicit undo of a
// before step, added by rewind.
const (
	StepThaw           = "thaw"            // fsfreeze --unfreeze MOUNT
	StepRemoveSnapshot = "remove_snapshot" // btrfs subvolume delete SNAPSHOT
	StepJob            = "job"             // the job's own work (backup, check, ...)
)

// SeqStep is one line of a job's control list: a step of the plan, the
// job's work itself, or an undo step rewind adds.
type SeqStep struct {
	Phase string `json:"phase"`
	Step
	// Implicit marks an undo step the plan does not write: start after
	// stop, thaw after fsfreeze, snapshot removal after btrfs_snapshot.
	Implicit bool `json:"implicit,omitempty"`
	// Undo marks a step that undoes a before step (implicit, or a start
	// or restart of a stopped unit): it runs even when the job failed.
	Undo bool `json:"undo,omitempty"`
	// RunsOnFailure says whether the step runs when an earlier step or the
	// job's work failed: undo steps, always steps and on_failure steps do.
	RunsOnFailure bool `json:"runs_on_failure"`
}

// Sequence returns the job's steps in the order they run: before steps,
// the job's work, then the after steps. The after phase opens with the
// implicit undo steps of the before steps, latest first (thaw, snapshot
// removal, and start of a stopped unit unless an after step starts or
// restarts it), then the plan's after steps. on_failure steps come last
// and run only when the job failed.
func (j *Job) Sequence() []SeqStep {
	var seq []SeqStep
	for _, s := range j.Before {
		seq = append(seq, SeqStep{Phase: PhaseBefore, Step: *s})
	}
	seq = append(seq, SeqStep{Phase: PhaseMain, Step: Step{Kind: StepJob, Arg: j.Kind}})
	restarted := func(unit string) bool {
		return slices.ContainsFunc(j.After, func(a *Step) bool {
			return (a.Kind == StepStart || a.Kind == StepRestart) && a.Arg == unit
		})
	}
	for i := len(j.Before) - 1; i >= 0; i-- {
		b := j.Before[i]
		var undo string
		switch b.Kind {
		case StepFsfreeze:
			undo = StepThaw
		case StepBtrfsSnapshot:
			undo = StepRemoveSnapshot
		case StepStop:
			if restarted(b.Arg) {
				continue
			}
			undo = StepStart
		default:
			continue
		}
		seq = append(seq, SeqStep{Phase: PhaseAfter, Step: Step{Kind: undo, Arg: b.Arg}, Implicit: true, Undo: true, RunsOnFailure: true})
	}
	stopped := func(unit string) bool {
		return slices.ContainsFunc(j.Before, func(b *Step) bool { return b.Kind == StepStop && b.Arg == unit })
	}
	for _, s := range j.After {
		undo := (s.Kind == StepStart || s.Kind == StepRestart) && stopped(s.Arg)
		seq = append(seq, SeqStep{Phase: PhaseAfter, Step: *s, Undo: undo, RunsOnFailure: undo || s.Always})
	}
	for _, s := range j.OnFailure {
		seq = append(seq, SeqStep{Phase: PhaseOnFailure, Step: *s, RunsOnFailure: true})
	}
	return seq
}

// Describe says what a step does, in a few words, for listings.
func (s *Step) Describe() string {
	switch s.Kind {
	case StepStop, StepStart, StepRestart, StepReload:
		return fmt.Sprintf("systemctl %s %s", s.Kind, s.Arg)
	case StepRun:
		return "run " + s.Command.String()
	case StepCheck:
		return "check " + s.Command.String()
	case StepFsfreeze:
		return "fsfreeze --freeze " + s.Arg
	case StepThaw:
		return "fsfreeze --unfreeze " + s.Arg
	case StepBtrfsSnapshot:
		return "btrfs read-only snapshot of " + s.Arg + " (the job reads from it)"
	case StepRemoveSnapshot:
		return "remove the btrfs snapshot of " + s.Arg
	case StepJob:
		return "rewind " + jobCommand(s.Arg)
	}
	return s.Kind + " " + s.Arg
}

func jobCommand(kind string) string {
	switch kind {
	case KindFiles:
		return "backup"
	case KindStdinCommand:
		return "backup --stdin-from-command"
	case KindCheck:
		return "check"
	case KindCopy:
		return "copy"
	case KindForget:
		return "forget --prune"
	}
	return kind
}
