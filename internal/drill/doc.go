// Package drill proves that a host's backups can be recovered, and
// measures how long it takes: it restores the host's newest snapshot as
// a VM disk (ExportVM, the same recovery as `rewind recover` onto a loop
// device over a sparse file, converted to qcow2), boots it under QEMU on
// an isolated network (user networking with restrict=on: the guest
// reaches nothing; the probed ports are forwarded from 127.0.0.1), and
// runs probes against it: a marker on the serial console, TCP and HTTP
// checks, systemd units through the QEMU guest agent.
//
// Each drill is timed in three phases, restore, boot (until the boot
// marker) and probes; their sum is the measured time to recover (RTO).
// The CLI stores the Report as an event of kind "drill" (internal/event);
// a successful drill marks its snapshot "verified by drill". Trend reads
// those events back for `rewind drill --report`.
package drill
