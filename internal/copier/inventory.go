package copier

import (
	"context"
	"fmt"

	"github.com/rewind-backup/rewind/internal/backend"
	"github.com/rewind-backup/rewind/internal/id"
	"github.com/rewind-backup/rewind/internal/inventory"
)

// copyInventory stores in the destination the source's inventory file
// src, unless an inventory with the same content is there already, and
// returns the destination's name for it. The destination's inventories
// are read once, on first use, to find such files.
func (c *Copier) copyInventory(ctx context.Context, src id.ID) (id.ID, error) {
	if d, ok := c.invCopies[src]; ok {
		return d, nil
	}
	doc, err := inventory.Load(ctx, c.src, src)
	if err != nil {
		return id.ID{}, err
	}
	if c.invInDst == nil {
		c.invInDst = map[id.ID]*inventory.Document{}
		_, err := c.dst.LoadEach(ctx, backend.InventoryFile, func(name id.ID, plain []byte) error {
			d, err := inventory.Decode(plain)
			if err == nil {
				c.invInDst[name] = d
			}
			return nil
		})
		if err != nil {
			return id.ID{}, fmt.Errorf("list the destination's inventories: %w", err)
		}
	}
	for name, d := range c.invInDst {
		if d.Host == doc.Host && inventory.SameContent(d, doc) {
			c.invCopies[src] = name
			return name, nil
		}
	}
	name, err := inventory.Save(ctx, c.dst, doc)
	if err != nil {
		return id.ID{}, err
	}
	c.invInDst[name] = doc
	c.invCopies[src] = name
	return name, nil
}
