// Package qemupull reads a drive of a running QEMU guest for a backup,
// the way Proxmox does: over QMP it freezes a point-in-time view of the
// drive (copy-before-write into a temporary fleecing image), starts a
// new persistent dirty bitmap at that moment, and exports the view
// read-only over NBD with the bitmap of the previous backup, so that an
// incremental reads only the blocks written since (docs/IMAGES.md,
// "Running QEMU guests").
package qemupull

import (
	"context"
	"fmt"
	"sort"
	"strings"

	"github.com/rewind-backup/rewind/internal/qemu"
)

// BitmapPrefix starts the name of every dirty bitmap rewind adds.
const BitmapPrefix = "rewind-"

// bitmap is a dirty bitmap as query-named-block-nodes describes it.
type bitmap struct {
	Name         string `json:"name"`
	Recording    bool   `json:"recording"`
	Busy         bool   `json:"busy"`
	Persistent   bool   `json:"persistent"`
	Inconsistent bool   `json:"inconsistent"`
	Granularity  int64  `json:"granularity"`
	Count        int64  `json:"count"`
}

// node is a block node as query-named-block-nodes describes it.
type node struct {
	NodeName string   `json:"node-name"`
	File     string   `json:"file"`
	Drv      string   `json:"drv"`
	Bitmaps  []bitmap `json:"dirty-bitmaps"`
	Image    struct {
		VirtualSize int64 `json:"virtual-size"`
	} `json:"image"`
}

// blockDev is a drive as query-block describes it.
type blockDev struct {
	Device   string `json:"device"`
	QDev     string `json:"qdev"`
	Inserted *struct {
		NodeName string `json:"node-name"`
	} `json:"inserted"`
}

// drive is the block node a DRIVE argument names.
type drive struct {
	node
	name string // as given
}

// findDrive resolves name, a drive ID (-drive id=, query-block's
// device), a guest device's ID (qdev) or a node name (-blockdev
// node-name=), to its block node.
func findDrive(ctx context.Context, c *qemu.Client, name string) (*drive, error) {
	var devs []blockDev
	if err := c.Execute(ctx, "query-block", nil, &devs); err != nil {
		return nil, err
	}
	want := name
	for _, d := range devs {
		if (d.Device == name && name != "") || d.QDev == name {
			if d.Inserted == nil {
				return nil, fmt.Errorf("drive %q has no medium inserted", name)
			}
			want = d.Inserted.NodeName
		}
	}
	nodes, err := queryNodes(ctx, c)
	if err != nil {
		return nil, err
	}
	for _, n := range nodes {
		if n.NodeName == want {
			return &drive{node: n, name: name}, nil
		}
	}
	var known []string
	for _, d := range devs {
		if d.Device != "" {
			known = append(known, d.Device)
		}
	}
	for _, n := range nodes {
		if !strings.HasPrefix(n.NodeName, "#") && !strings.HasPrefix(n.NodeName, BitmapPrefix) && n.Drv != "file" {
			known = append(known, n.NodeName)
		}
	}
	sort.Strings(known)
	if len(known) == 0 {
		return nil, fmt.Errorf("drive %q not found: this QEMU has no named drive or block node", name)
	}
	return nil, fmt.Errorf("drive %q not found: this QEMU has %s (drive IDs and block node names; see query-block)", name, strings.Join(known, ", "))
}

func queryNodes(ctx context.Context, c *qemu.Client) ([]node, error) {
	var nodes []node
	err := c.Execute(ctx, "query-named-block-nodes", map[string]bool{"flat": true}, &nodes)
	return nodes, err
}

// bitmaps returns the dirty bitmaps on node now.
func bitmaps(ctx context.Context, c *qemu.Client, nodeName string) ([]bitmap, error) {
	nodes, err := queryNodes(ctx, c)
	if err != nil {
		return nil, err
	}
	for _, n := range nodes {
		if n.NodeName == nodeName {
			return n.Bitmaps, nil
		}
	}
	return nil, fmt.Errorf("block node %q is gone", nodeName)
}
