package main

import (
	"context"
	"fmt"
	"syscall"

	"github.com/jackc/pgx/v5"
)

// quiesce writes out what the runs before this one left behind (the
// ledger fill's checkpoint, dropped databases, a stream's prefill, the
// build's files) so a measurement sees its own workload's writes:
// otherwise the kernel's writeback of hundreds of MB of earlier dirty
// pages lands inside it (every fsync of the stream waits behind it, and a
// drain slowed by a third). The apply, limit and end-to-end runs call it
// before their clocks start.
func quiesce(ctx context.Context, adminURL string) error {
	c, err := pgx.Connect(ctx, adminURL)
	if err != nil {
		return err
	}
	defer c.Close(ctx)
	if _, err := c.Exec(ctx, "CHECKPOINT"); err != nil {
		return fmt.Errorf("checkpoint before the load: %w", err)
	}
	syscall.Sync()
	return nil
}
