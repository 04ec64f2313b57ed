package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"text/tabwriter"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/syncd/syncd/status"
	"github.com/syncd/syncd/stream"
)

func runStatus(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var c common
	var asJSON bool
	fs := flag.NewFlagSet("status", flag.ContinueOnError)
	c.register(fs)
	fs.BoolVar(&asJSON, "json", false, "print JSON")
	if err := parseFlags(fs, args, stderr); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageError("unexpected argument %q", fs.Arg(0))
	}
	conn, err := c.jetstream(ctx, slog.New(slog.DiscardHandler), false)
	if err != nil {
		return err
	}
	defer conn.Close()

	var pool *pgxpool.Pool
	if c.databaseURL != "" {
		if pool, err = c.pool(ctx); err != nil {
			return err
		}
		defer pool.Close()
	}
	qctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	r, err := status.Gather(qctx, conn.JS, pool)
	if err != nil {
		return err
	}
	if asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(r)
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "stream %s\t%d messages, %s, seq %d..%d\n", stream.Webhooks, r.Stream.Messages, humanBytes(r.Stream.Bytes), r.Stream.FirstSeq, r.Stream.LastSeq)
	if !r.Stream.Newest.IsZero() {
		fmt.Fprintf(tw, "  window\t%s .. %s\n", r.Stream.Oldest.UTC().Format(time.RFC3339), r.Stream.Newest.UTC().Format(time.RFC3339))
	}
	fmt.Fprintf(tw, "consumer %s\tlag %d undelivered, %d unacknowledged, %d redelivered, last delivered seq %d\n", r.Consumer.Name, r.Consumer.Pending, r.Consumer.AckPending, r.Consumer.Redelivered, r.Consumer.LastDeliveredSeq)
	fmt.Fprintf(tw, "dead letters\t%d\n", r.DeadLetters)
	if c.databaseURL == "" {
		fmt.Fprintf(tw, "ledger\t(set DATABASE_URL to show the last event applied per source)\n")
	}
	for _, s := range r.Sources {
		fmt.Fprintf(tw, "last %s event\t%s %s applied %s (%s ago)\n", s.Source, s.LastType, s.LastEventID, s.AppliedAt.UTC().Format(time.RFC3339), time.Since(s.AppliedAt).Round(time.Second))
	}
	for src, m := range r.Outcomes {
		fmt.Fprintf(tw, "%s ledger\tapplied %d, ignored %d, stale %d\n", src, m["applied"], m["ignored"], m["stale"])
	}
	return tw.Flush()
}

func humanBytes(n uint64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}
