package cli

import (
	"context"
	"encoding/json"
	"os"
	"strconv"
	"time"

	"github.com/rewind-backup/rewind/internal/lock"
	"github.com/rewind-backup/rewind/internal/pg/receive"
	"github.com/rewind-backup/rewind/internal/pg/wal"
	"github.com/rewind-backup/rewind/internal/ui"
	"github.com/spf13/cobra"
)

// PgReceiveJSON is `pg receive --json`, printed on exit (docs/JSON.md).
type PgReceiveJSON struct {
	Cluster    string `json:"cluster"`
	SystemID   string `json:"system_id"`
	Slot       string `json:"slot"`
	Timeline   uint32 `json:"timeline"`
	StartLSN   string `json:"start_lsn"`
	EndLSN     string `json:"end_lsn"`
	Segments   int    `json:"segments"`
	Partials   int    `json:"partials"`
	Histories  int    `json:"histories"`
	Bytes      int64  `json:"bytes"`
	Reconnects int    `json:"reconnects"`
}

type pgReceiveOpts struct {
	dsn, cluster, slot, appName, stats string
	createSlot, synchronous            bool
	interval                           time.Duration
}

func newPgReceiveCmd(g *globals) *cobra.Command {
	var o pgReceiveOpts
	cmd := &cobra.Command{
		Use:   "receive --slot NAME [--create-slot] [--synchronous]",
		Short: "Stream WAL over physical replication into the repository",
		Long: `Connect to the server as a physical replication client, from the replication
slot --slot, and store its WAL in the repository under --cluster ("main"),
continuously: the segment being filled is stored as a growing .partial at
least every --interval (500ms), and each segment whole once it is complete.
It starts where the WAL stored for the cluster ends (else at the slot's
restart_lsn), follows timeline switches (storing the .history files), and
reconnects with a growing wait when the server restarts. It runs until
SIGINT or SIGTERM, then stores what it received, acknowledges it and exits 0.

The slot keeps the server's WAL until it is stored: the receiver reports
as flushed only what the repository holds. A missing slot is an error;
--create-slot creates it. A server whose system identifier is not the one
of the WAL stored under --cluster is refused, and nothing is stored.

--synchronous stores what arrives as soon as the stream pauses. With the
receiver named in synchronous_standby_names (its application_name is
--application-name, "rewind"), a commit returns only once its WAL is in
the repository: no acknowledged commit is lost with the server.

wal-fetch serves a segment of which only a partial is stored padded with
zeros, so a restore reaches the newest streamed commit. The user needs the
REPLICATION attribute and a pg_hba.conf "replication" line.`,
		Example: `  rewind pg receive --slot rewind --create-slot
  rewind pg receive --dsn 'host=db1 user=rewind' --slot rewind --cluster db1
  rewind pg receive --slot rewind --synchronous --application-name rewind
  rewind pg receive --slot rewind --stats /var/log/rewind-receive.jsonl --json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return g.pgAccess(runPgReceive(cmd.Context(), g, o))
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.dsn, "dsn", "", "PostgreSQL connection `string` (libpq keywords or URL); default: the PG* environment variables")
	f.StringVar(&o.cluster, "cluster", wal.DefaultCluster, "the `name` the cluster's WAL is stored under")
	f.StringVar(&o.slot, "slot", "", "the physical replication `slot` to stream from (required)")
	f.BoolVar(&o.createSlot, "create-slot", false, "create the slot (reserving WAL) if it does not exist")
	f.BoolVar(&o.synchronous, "synchronous", false, "store received WAL at once, for a receiver listed in synchronous_standby_names")
	f.StringVar(&o.appName, "application-name", "rewind", "the `name` the server knows the receiver by (synchronous_standby_names)")
	f.DurationVar(&o.interval, "interval", 0, "store received WAL as a partial segment after at most this `duration` (default 500ms; 5ms with --synchronous)")
	f.StringVar(&o.stats, "stats", "", "append one JSON line per store (file, end_lsn, time) to this `file`, to measure how soon WAL is stored")
	_ = cmd.MarkFlagRequired("slot")
	return cmd
}

func runPgReceive(ctx context.Context, g *globals, o pgReceiveOpts) error {
	r, done, err := g.openLocked(ctx, lock.Shared, "pg receive", true)
	if err != nil {
		return err
	}
	defer done()
	host, _ := os.Hostname()
	opt := receive.Options{DSN: o.dsn, Cluster: o.cluster, Slot: o.slot, CreateSlot: o.createSlot,
		Synchronous: o.synchronous, ApplicationName: o.appName, Interval: o.interval, Host: host, Log: g.log}
	if o.stats != "" {
		sf, err := os.OpenFile(o.stats, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
		if err != nil {
			return err
		}
		defer sf.Close()
		enc := json.NewEncoder(sf)
		opt.OnStore = func(s receive.Stored) { _ = enc.Encode(s) }
	}
	sum, err := receive.Run(ctx, r, opt)
	if err != nil {
		return err
	}
	if g.json {
		return g.ui.JSONDoc(PgReceiveJSON{Cluster: sum.Cluster, SystemID: strconv.FormatUint(sum.SystemID, 10), Slot: sum.Slot,
			Timeline: sum.Timeline, StartLSN: sum.StartLSN.String(), EndLSN: sum.EndLSN.String(), Segments: sum.Segments,
			Partials: sum.Partials, Histories: sum.Histories, Bytes: sum.Bytes, Reconnects: sum.Reconnects})
	}
	g.ui.Printf("received %s of cluster %q up to %s on timeline %d: %s, %s stored\n", ui.Bytes(sum.Bytes), sum.Cluster,
		sum.EndLSN, sum.Timeline, ui.Count(int64(sum.Segments), "segment", "segments"), ui.Count(int64(sum.Partials), "partial", "partials"))
	return nil
}
