// Package runbook writes a host's recovery runbook: the seeds' "Recovery
// Expert", generated from facts the repository holds rather than written
// by hand, so that it can be written (and read) after the host is gone.
//
// Build turns the facts (the snapshot to restore and its inventory, where
// the repository and its password are kept, the plan, the last drill and
// recover, the host's database backups) into a Doc: sections of
// paragraphs, lists, tables and steps with exact commands. Markdown and
// HTML render the same Doc, so the two formats say the same thing; both
// are deterministic (sorted, no clock), which the golden test holds.
//
// Save, List and Newest keep runbooks in the repository (the runbooks/
// folder, docs/FORMAT.md §20), the newest Keep of each host.
package runbook
