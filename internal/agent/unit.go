package agent

import (
	"fmt"
	"strings"
)

// Unit is the systemd unit that runs the agent: bin is the rewind binary
// and config the plan, both absolute. The hardening leaves the whole
// filesystem readable (the agent backs up /) and writable outside /usr,
// /boot, /efi and /etc (local repositories, dumps, snapshots); KillMode=mixed
// lets the agent itself stop its jobs within the grace period.
func Unit(bin, config string) string {
	return fmt.Sprintf(`[Unit]
Description=rewind backup agent
Documentation=https://github.com/rewind-backup/rewind/blob/main/docs/AGENT.md
Wants=network-online.target
After=network-online.target

[Service]
Type=simple
ExecStart=%[1]s agent --config %[2]s
ExecReload=/bin/kill -HUP $MAINPID
Restart=on-failure
RestartSec=10s
# SIGTERM to the agent only: it stops scheduling and lets running jobs
# finish for its grace period (60s), then stops them.
KillMode=mixed
TimeoutStopSec=120s
StateDirectory=rewind/agent
StateDirectoryMode=0700
UMask=0077
# Hardening that keeps / readable for backups.
ProtectSystem=full
PrivateTmp=yes
ProtectKernelTunables=yes
ProtectKernelModules=yes
ProtectControlGroups=yes
ProtectClock=yes
ProtectHostname=yes
RestrictRealtime=yes
RestrictSUIDSGID=yes
LockPersonality=yes
RestrictNamespaces=yes

[Install]
WantedBy=multi-user.target
`, quoteUnitArg(bin), quoteUnitArg(config))
}

// quoteUnitArg quotes a word of ExecStart when it needs it
// (systemd.service(5) "Command lines").
func quoteUnitArg(s string) string {
	if s != "" && !strings.ContainsAny(s, " \t\"'\\$%;") {
		return s
	}
	r := strings.NewReplacer(`\`, `\\`, `"`, `\"`, `$`, `$$`, `%`, `%%`)
	return `"` + r.Replace(s) + `"`
}
