package cli

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/rewind-backup/rewind/internal/lock"
	"github.com/rewind-backup/rewind/internal/mysql"
	"github.com/rewind-backup/rewind/internal/mysql/binlog"
	"github.com/rewind-backup/rewind/internal/ui"
)

func init() {
	mysqlSubcommands = append(mysqlSubcommands, newMysqlBinlogCmd, newMysqlCheckCmd)
}

// newMysqlBinlogCmd groups the binary log commands.
func newMysqlBinlogCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "binlog",
		Short: "Keep the server's binary log in the repository, as a replica does",
		Long: `binlog receive streams the server's binary log into the repository and keeps
it current; binlog list shows what is stored. docs/MYSQL.md, "The binary
log", explains how it is stored and how it fails.`,
		Example: `  rewind mysql binlog receive --user repl --mysql-password-file /etc/rewind/repl.pw
  rewind mysql binlog list`,
		Args: cobra.NoArgs,
	}
	cmd.AddCommand(newMysqlBinlogReceiveCmd(g), newMysqlBinlogListCmd(g))
	return cmd
}

// MysqlBinlogReceiveJSON is `mysql binlog receive --json`, printed on
// exit (docs/JSON.md).
type MysqlBinlogReceiveJSON struct {
	Source       string `json:"source"`
	ServerID     uint32 `json:"server_id"`
	StartFile    string `json:"start_file"`
	StartPos     uint64 `json:"start_pos"`
	EndFile      string `json:"end_file"`
	EndPos       uint64 `json:"end_pos"`
	LastGTID     string `json:"last_gtid"`
	Stores       int    `json:"stores"`
	Files        int    `json:"files"`
	Transactions int    `json:"transactions"`
	Bytes        int64  `json:"bytes"`
	Reconnects   int    `json:"reconnects"`
	SemiSync     bool   `json:"semi_sync"`
}

type mysqlBinlogReceiveOpts struct {
	conn                      mysqlConnFlags
	source, startFile, stats  string
	startGTID                 string
	serverID                  uint32
	semiSync                  bool
	flushInterval, maxBackoff time.Duration
}

func newMysqlBinlogReceiveCmd(g *globals) *cobra.Command {
	var o mysqlBinlogReceiveOpts
	cmd := &cobra.Command{
		Use:   "receive [--server-id N] [--semi-sync]",
		Short: "Stream the server's binary log into the repository, as a replica",
		Long: `Connect to the server as a replica (COM_BINLOG_DUMP, with a server_id of its
own: --server-id, 4242 by default, which no server of the topology may use)
and store its binary log in the repository under --source ("main"),
continuously. Each binlog file is stored byte for byte at its own offsets,
so positions from mariabackup and mariadb-binlog mean the same in the
repository, with an index of where each transaction commits (its GTID and
time). What arrives is stored as soon as the stream pauses (stores at least
100ms apart), and at least every --flush-interval (1s) under steady writes.

The first run starts at the beginning of the oldest binlog file the server
has (SHOW BINARY LOGS), or of --start-file, or of the file holding the
transactions after --start-gtid. Later runs, and reconnects after
a dropped connection or a server restart, start exactly where the stored
binary log ends: nothing is stored twice and nothing is skipped. It follows
rotations, and runs until SIGINT or SIGTERM, then stores what it received
and exits 0.

--semi-sync acknowledges each transaction to the server only once it is
stored, where the server has semi-sync on (rpl_semi_sync_master_enabled=1):
a commit then returns only once it is in the repository. Without it on the
server, the receiver warns and receives without acknowledging.

A server whose binary log is off, a login the server refuses, and a source
name that holds another server's binary log are errors, and nothing is
stored. The user needs the REPLICATION SLAVE and REPLICATION CLIENT (or
BINLOG MONITOR) privileges.`,
		Example: `  rewind mysql binlog receive --user repl --mysql-password-file /etc/rewind/repl.pw
  rewind mysql binlog receive --host db1 --user repl --mysql-password-file /etc/rewind/repl.pw --source db1
  rewind mysql binlog receive --semi-sync --server-id 9001
  rewind mysql binlog receive --stats /var/log/rewind-binlog.jsonl --json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runMysqlBinlogReceive(cmd.Context(), g, &o)
		},
	}
	f := cmd.Flags()
	o.conn.register(f)
	f.StringVar(&o.source, "source", binlog.DefaultSource, "the `name` the server's binary log is stored under")
	f.Uint32Var(&o.serverID, "server-id", 4242, "the receiver's own server_id as a replica (`N`, not any server's)")
	f.StringVar(&o.startFile, "start-file", "", "on the first run, start at the beginning of this binlog `file` instead of the oldest the server has")
	f.StringVar(&o.startGTID, "start-gtid", "", "on the first run, start at the beginning of the binlog file that holds the transactions after this `GTID` (domain-server-sequence)")
	f.BoolVar(&o.semiSync, "semi-sync", false, "acknowledge each transaction to a semi-sync server only once it is stored")
	f.DurationVar(&o.flushInterval, "flush-interval", time.Second, "store received events after at most this `duration`, also under steady writes")
	f.DurationVar(&o.maxBackoff, "max-backoff", 10*time.Second, "the longest wait between reconnects (`duration`)")
	f.StringVar(&o.stats, "stats", "", "append one JSON line per store (file, end, gtid, time) to this `file`, to measure how soon commits are stored")
	return cmd
}

func runMysqlBinlogReceive(ctx context.Context, g *globals, o *mysqlBinlogReceiveOpts) error {
	conn, err := o.conn.resolve()
	if err != nil {
		return err
	}
	r, done, err := g.openLocked(ctx, lock.Shared, "mysql binlog receive", true)
	if err != nil {
		return err
	}
	defer done()
	host, _ := os.Hostname()
	srv := binlogServer(conn)
	opt := binlog.ReceiveOptions{Conn: srv, Source: o.source, ServerID: o.serverID, StartFile: o.startFile,
		StartGTID: o.startGTID, SemiSync: o.semiSync, FlushInterval: o.flushInterval, MaxBackoff: o.maxBackoff, Host: host, Log: g.log}
	if o.stats != "" {
		sf, err := os.OpenFile(o.stats, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
		if err != nil {
			return err
		}
		defer sf.Close()
		enc := json.NewEncoder(sf)
		opt.OnStore = func(s binlog.Stored) { _ = enc.Encode(s) }
	}
	sum, err := binlog.Receive(ctx, r, opt)
	if err != nil {
		return err
	}
	if g.json {
		return g.ui.JSONDoc(MysqlBinlogReceiveJSON{Source: sum.Source, ServerID: sum.ServerID, StartFile: sum.Start.File, StartPos: sum.Start.Pos,
			EndFile: sum.End.File, EndPos: sum.End.Pos, LastGTID: sum.LastGTID, Stores: sum.Stores, Files: sum.Files,
			Transactions: sum.Txns, Bytes: sum.Bytes, Reconnects: sum.Reconnects, SemiSync: sum.SemiSync})
	}
	end := "nothing new"
	if sum.End.File != "" {
		end = "up to " + sum.End.String()
	}
	g.ui.Printf("received %s of source %q (server_id %d) %s: %s, %s\n", ui.Bytes(sum.Bytes), sum.Source, sum.ServerID, end,
		ui.Count(int64(sum.Txns), "transaction", "transactions"), ui.Count(int64(sum.Stores), "store", "stores"))
	return nil
}

// MysqlBinlogListJSON is `mysql binlog list --json` (docs/JSON.md).
type MysqlBinlogListJSON struct {
	Sources []MysqlBinlogSourceJSON `json:"sources"`
}

// MysqlBinlogSourceJSON is one source of MysqlBinlogListJSON.
type MysqlBinlogSourceJSON struct {
	Source     string                `json:"source"`
	ServerID   uint32                `json:"server_id"`
	ServerUUID string                `json:"server_uuid,omitempty"`
	KeepFrom   string                `json:"keep_from,omitempty"`
	FirstTime  *time.Time            `json:"first_time,omitempty"`
	LastTime   *time.Time            `json:"last_time,omitempty"`
	FirstGTID  string                `json:"first_gtid,omitempty"`
	LastGTID   string                `json:"last_gtid,omitempty"`
	Stored     *time.Time            `json:"stored,omitempty"`
	Files      []MysqlBinlogSpanJSON `json:"files"`
	Gaps       []MysqlBinlogGapJSON  `json:"gaps"`
}

// MysqlBinlogSpanJSON is a run of contiguous stored bytes of one binlog
// file.
type MysqlBinlogSpanJSON struct {
	File         string     `json:"file"`
	Start        uint64     `json:"start"`
	End          uint64     `json:"end"`
	Pieces       int        `json:"pieces"`
	Transactions int        `json:"transactions"`
	Closed       bool       `json:"closed"`
	FirstTime    *time.Time `json:"first_time,omitempty"`
	LastTime     *time.Time `json:"last_time,omitempty"`
	FirstGTID    string     `json:"first_gtid,omitempty"`
	LastGTID     string     `json:"last_gtid,omitempty"`
}

// MysqlBinlogGapJSON is a stretch of the binary log that is not stored.
type MysqlBinlogGapJSON struct {
	AfterFile  string `json:"after_file"`
	AfterPos   uint64 `json:"after_pos"`
	BeforeFile string `json:"before_file"`
	BeforePos  uint64 `json:"before_pos"`
	What       string `json:"what"`
}

func timePtr(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}

func spanJSON(sp binlog.Span) MysqlBinlogSpanJSON {
	return MysqlBinlogSpanJSON{File: sp.Name, Start: sp.Start, End: sp.End, Pieces: sp.Pieces, Transactions: sp.Txns, Closed: sp.Closed,
		FirstTime: timePtr(sp.FirstTime), LastTime: timePtr(sp.LastTime), FirstGTID: sp.FirstGTID, LastGTID: sp.LastGTID}
}

func gapJSON(gp binlog.Gap) MysqlBinlogGapJSON {
	return MysqlBinlogGapJSON{AfterFile: gp.After.File, AfterPos: gp.After.Pos, BeforeFile: gp.Before.File, BeforePos: gp.Before.Pos, What: gp.What}
}

func newMysqlBinlogListCmd(g *globals) *cobra.Command {
	var source string
	cmd := &cobra.Command{
		Use:   "list [--source NAME]",
		Short: "List the binary log stored in the repository",
		Long: `List, per source (server), the stored binlog files as runs of contiguous
bytes (start and end offset, transactions, first and last GTID and event
time) and the gaps between them. It reads only the binlog index.`,
		Example: `  rewind mysql binlog list
  rewind mysql binlog list --source db1 --json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runMysqlBinlogList(cmd.Context(), g, source)
		},
	}
	cmd.Flags().StringVar(&source, "source", "", "list only the binary log stored under this `name`")
	return cmd
}

func runMysqlBinlogList(ctx context.Context, g *globals, only string) error {
	r, done, err := g.openLocked(ctx, lock.Shared, "mysql binlog list", true)
	if err != nil {
		return err
	}
	defer done()
	cat, err := binlog.Load(ctx, r)
	if err != nil {
		return err
	}
	for _, u := range cat.Unreadable {
		g.ui.Warnf("binlog index file binlog/%s cannot be read: %v\n", u.File.Short(), u.Err)
	}
	if only != "" && cat.Source(only) == nil {
		return fmt.Errorf("no binary log is stored under source %q", only)
	}
	out := MysqlBinlogListJSON{Sources: []MysqlBinlogSourceJSON{}}
	for _, s := range cat.Sources() {
		if only != "" && s.Name != only {
			continue
		}
		first, last := s.GTIDRange()
		sj := MysqlBinlogSourceJSON{Source: s.Name, ServerID: s.ServerID, ServerUUID: s.ServerUUID, KeepFrom: s.KeepFrom,
			FirstTime: timePtr(s.FirstTime()), LastTime: timePtr(s.LastTime()), FirstGTID: first, LastGTID: last,
			Stored: timePtr(s.Stored()), Files: []MysqlBinlogSpanJSON{}, Gaps: []MysqlBinlogGapJSON{}}
		for _, sp := range s.Spans() {
			sj.Files = append(sj.Files, spanJSON(sp))
		}
		for _, gp := range s.Gaps() {
			sj.Gaps = append(sj.Gaps, gapJSON(gp))
		}
		out.Sources = append(out.Sources, sj)
	}
	if g.json {
		return g.ui.JSONDoc(out)
	}
	if len(out.Sources) == 0 {
		g.ui.Printf("no binary log stored (rewind mysql binlog receive stores it)\n")
	}
	for _, s := range out.Sources {
		g.ui.Printf("source %q, server_id %d", s.Source, s.ServerID)
		if s.FirstGTID != "" {
			g.ui.Printf(", GTID %s to %s", s.FirstGTID, s.LastGTID)
		}
		if s.FirstTime != nil {
			g.ui.Printf(", events %s to %s", s.FirstTime.Local().Format(time.DateTime), s.LastTime.Local().Format(time.DateTime))
		}
		g.ui.Printf("\n")
		for _, f := range s.Files {
			state := "growing"
			if f.Closed {
				state = "closed"
			}
			g.ui.Printf("  %-20s %10d .. %-10d %s, %s, %s\n", f.File, f.Start, f.End, ui.Count(int64(f.Transactions), "transaction", "transactions"),
				ui.Count(int64(f.Pieces), "piece", "pieces"), state)
		}
		for _, gp := range s.Gaps {
			g.ui.Printf("  GAP  %s\n", gp.What)
		}
	}
	return nil
}

// binlogServer is how the receiver reaches the server of a resolved
// connection.
func binlogServer(conn mysql.ConnOptions) binlog.Server {
	srv := binlog.Server{User: conn.User, Password: conn.Password, Addr: conn.Addr(),
		Open: func(ctx context.Context) (*sql.DB, error) { return mysql.Open(ctx, conn) }}
	if conn.UsesSocket() {
		srv.Socket = conn.Socket
	} else {
		srv.Host, srv.Port = conn.Host, conn.Port
	}
	return srv
}
