package cli

import (
	"fmt"
	"strings"

	"github.com/rewind-backup/rewind/internal/repair"
	"github.com/rewind-backup/rewind/internal/snapshot"
)

// splitUnreadable takes out of args those that name a snapshot file that
// cannot be read (by full ID or unique prefix): such a snapshot has no
// host, time or tree, so only its file name can name it. The other args
// are left for resolveSnapshots.
func splitUnreadable(sns []*snapshot.Snapshot, bad []repair.UnreadableSnapshot, args []string) (rest []string, named []repair.UnreadableSnapshot, err error) {
	seen := map[int]bool{}
	for _, a := range args {
		prefix := strings.ToLower(a)
		if a == "latest" || a == "" {
			rest = append(rest, a)
			continue
		}
		var match []int
		for n, u := range bad {
			if strings.HasPrefix(u.ID.String(), prefix) {
				match = append(match, n)
			}
		}
		readable := 0
		for _, sn := range sns {
			if strings.HasPrefix(sn.ID.String(), prefix) {
				readable++
			}
		}
		switch {
		case len(match) == 0:
			rest = append(rest, a)
		case len(match)+readable > 1:
			return nil, nil, fmt.Errorf("%w: %q matches %d snapshots; give more digits", snapshot.ErrAmbiguous, a, len(match)+readable) // plural: ambiguous means 2 or more
		case !seen[match[0]]:
			seen[match[0]] = true
			named = append(named, bad[match[0]])
		}
	}
	return rest, named, nil
}
