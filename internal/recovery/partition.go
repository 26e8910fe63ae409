package recovery

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"github.com/rewind-backup/rewind/internal/inventory"
	"github.com/rewind-backup/rewind/internal/loopdev"
)

// SfdiskScript is the sfdisk input that writes table t: its label and
// identifier, sector size, and each partition with its start, size,
// type, UUID, name, attributes and boot flag.
func SfdiskScript(t *inventory.PartitionTable) string {
	var b strings.Builder
	fmt.Fprintf(&b, "label: %s\n", t.Type)
	if t.ID != "" {
		fmt.Fprintf(&b, "label-id: %s\n", t.ID)
	}
	b.WriteString("unit: sectors\n")
	if t.SectorSize != 0 && t.SectorSize != 512 {
		fmt.Fprintf(&b, "sector-size: %d\n", t.SectorSize)
	}
	if t.Type == "gpt" && t.FirstLBA > 0 {
		fmt.Fprintf(&b, "first-lba: %d\n", t.FirstLBA)
	}
	b.WriteString("\n")
	for _, p := range t.Partitions {
		fields := []string{
			"start=" + strconv.FormatInt(p.Start, 10),
			"size=" + strconv.FormatInt(p.Size, 10),
			"type=" + p.Type,
		}
		if t.Type == "gpt" {
			if p.UUID != "" {
				fields = append(fields, "uuid="+p.UUID)
			}
			if p.Name != "" {
				fields = append(fields, "name="+sfdiskQuote(p.Name))
			}
			if p.Attrs != "" {
				fields = append(fields, "attrs="+sfdiskQuote(p.Attrs))
			}
		}
		if p.Bootable {
			fields = append(fields, "bootable")
		}
		fmt.Fprintf(&b, "%s : %s\n", p.Path, strings.Join(fields, ", "))
	}
	return b.String()
}

// writeTable writes the plan's table onto its target with sfdisk, wiping
// the signatures of what the disk held, and makes the kernel see the new
// partitions (partx, then their device nodes).
func writeTable(ctx context.Context, d DiskPlan) error {
	c := cmd{name: "sfdisk", args: []string{"--quiet", "--no-reread", "--no-tell-kernel", "--wipe", "always", "--wipe-partitions", "always", d.Target}, stdin: SfdiskScript(d.Table)}
	if _, err := c.run(ctx); err != nil {
		return fmt.Errorf("partition %s: %w", d.Target, err)
	}
	if err := loopdev.Rescan(ctx, d.Target); err != nil {
		return fmt.Errorf("partition %s: %w", d.Target, err)
	}
	return nil
}

// sfdiskQuote quotes a value of an sfdisk script. sfdisk reads \xHH
// escapes in quoted values (not \"), so quotes, backslashes and control
// characters are written that way.
func sfdiskQuote(v string) string {
	var b strings.Builder
	b.WriteByte('"')
	for i := 0; i < len(v); i++ {
		c := v[i]
		if c == '"' || c == '\\' || c < 0x20 || c == 0x7f {
			fmt.Fprintf(&b, "\\x%02x", c)
			continue
		}
		b.WriteByte(c)
	}
	b.WriteByte('"')
	return b.String()
}
