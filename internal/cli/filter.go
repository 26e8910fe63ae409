package cli

import (
	"github.com/rewind-backup/rewind/internal/snapshot"
	"github.com/spf13/cobra"
)

// snapFilter holds the --host, --tag and --path flags that narrow which
// snapshots a command looks at (and which one "latest" means).
type snapFilter struct {
	hosts []string
	tags  []string
	paths []string
}

func (s *snapFilter) add(cmd *cobra.Command) {
	f := cmd.Flags()
	f.StringArrayVarP(&s.hosts, "host", "H", nil, "only snapshots of this `host` (repeatable)")
	f.StringArrayVar(&s.tags, "tag", nil, "only snapshots with these `tags` (comma-separated: all of them; repeatable: any)")
	f.StringArrayVar(&s.paths, "path", nil, "only snapshots that include this `path` (repeatable)")
}

func (s *snapFilter) filter() snapshot.Filter {
	return snapshot.Filter{Hosts: s.hosts, Tags: s.tags, Paths: s.paths}
}
