// Package lock keeps rewind's repository locks: small sealed files in the
// repository's locks/ namespace that say which processes are using the
// repository, and how. Their purpose is that prune never deletes data a
// running backup, restore or check may still need, and that the rare
// exclusive operations (repair) run alone. Nobody ever has to remove a lock
// by hand: locks left by dead processes and dead hosts are recognised as
// stale and ignored. The on-disk format is specified in docs/FORMAT.md
// (locks).
//
// # Kinds and conflicts
//
// A lock has one of three kinds:
//
//   - Shared: backup, restore, dump, check, forget, ls, find, diff, cat,
//     copy, versions, rollback, and each capture of watch. Any
//     number of Shared locks coexist, with each other and with a Prune lock.
//     Backups are therefore never blocked by prune.
//   - Prune: at most one live Prune lock at a time. It coexists with Shared
//     locks; prune keeps its own protocol for data that Shared holders may
//     still use, and relies on every Shared holder having locked the
//     repository before it read the index.
//   - Exclusive: repair. Nothing else may hold a live lock at the same time.
//
// A kind this version does not know is treated as Exclusive.
//
// # Files and refresh
//
// A lock file is the lock's Info sealed as JSON with
// repository.SaveJSON, so its name is the hash of its stored bytes. Every
// lock has a random ID (32 hex digits) that stays the same for its whole
// life. A background goroutine, owned by the Lock and stopped by Release,
// refreshes the lock every Options.RefreshEvery: it saves a new file with
// the same ID and a newer Refreshed time, and only then removes the
// previous file, so that a file with the ID exists at every moment. Readers
// count all files with one ID as one lock and use the newest.
//
// # Acquiring
//
// Acquire first lists the locks and, if a live conflicting lock exists,
// waits without writing anything. Otherwise it saves its own lock file,
// lists the locks again, and if a live conflicting lock exists now it
// removes its own file and waits; if not, the lock is held. Because every
// acquirer saves before its decisive listing, two acquirers that conflict
// can both back off, but never both succeed. Waiting repeats the attempt
// with a growing, jittered delay for up to Options.RetryFor, after which
// Acquire returns a *LockedError naming the holder.
//
// A listing reads the locks/ namespace twice, and again as long as a
// listed file disappeared before it could be read, and counts every lock
// seen in any pass. A refresh saves the new file before removing the old
// one, so a holder refreshing during a listing cannot be missed.
//
// An acquirer that gets a Prune or Exclusive lock removes the files of the
// stale locks it saw (best effort, logged).
//
// # Staleness
//
// A lock is stale when any of these holds:
//
//   - its host is this host (Host equal, not empty), it was taken during
//     this boot (BootID equal), in this PID namespace, and its process no
//     longer exists, is a zombie, or has a different start time (the PID
//     was reused);
//   - its host is this host but its BootID differs: the host rebooted since;
//   - its Refreshed time is older than the stale age (Options.StaleAfter,
//     default 30 minutes): the holder died or lost contact on another host.
//     This time fence assumes that the clocks of hosts sharing a repository
//     agree within a few minutes.
//
// Host is os.Hostname, or REWIND_HOSTNAME when set. Hosts sharing a
// repository must have distinct host names. Processes of another PID
// namespace on the same host (containers sharing the host's name) are
// never judged by PID: only the time fence applies to them.
//
// # Holding a lock
//
// Lock.Check, which does no I/O, returns an error wrapping ErrLost once the
// lock can no longer be trusted: when the last successful refresh is older
// than the stale age minus a safety margin of a sixth of it, when a refresh
// found the lock's file removed by another process, or after Release. A
// refresh counts only if its new file was stored within that limit, and a
// lost lock stays lost: others may already have treated it as stale. The
// age is measured both on the monotonic and on the wall clock and the
// larger is used, so that a suspended machine does not trust a lock that
// others have given up on. A writer calls Check right before it commits
// (backup: before it stores the snapshot file).
//
// # Unreadable lock files
//
// A file in locks/ that does not decrypt, does not match its name or does
// not decode is not a lock: it is reported with a warning and otherwise
// ignored, and it is never removed automatically. A file that cannot be
// read for another reason (an I/O error) makes the listing fail, since it
// may be a live lock.
package lock
