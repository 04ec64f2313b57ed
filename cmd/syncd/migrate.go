package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"text/tabwriter"

	"github.com/syncd/syncd/migrations"
)

func runMigrate(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var c common
	fs := flag.NewFlagSet("migrate", flag.ContinueOnError)
	c.register(fs)
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: syncd migrate up|status [flags]")
		fs.PrintDefaults()
	}
	if len(args) == 0 {
		fs.Usage()
		return usageError("want a subcommand: up or status")
	}
	sub := args[0]
	if err := parseFlags(fs, args[1:], stderr); err != nil {
		return err
	}
	if sub != "up" && sub != "status" {
		return usageError("unknown subcommand %q: want up or status", sub)
	}
	pool, err := c.pool(ctx)
	if err != nil {
		return err
	}
	defer pool.Close()
	if sub == "up" {
		applied, err := migrations.Up(ctx, pool)
		if err != nil {
			return err
		}
		for _, m := range applied {
			fmt.Fprintf(stdout, "applied %05d %s\n", m.Version, m.Name)
		}
		if len(applied) == 0 {
			fmt.Fprintln(stdout, "database is up to date")
		}
		return nil
	}
	st, err := migrations.List(ctx, pool)
	if err != nil {
		return err
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "VERSION\tNAME\tSTATE\tAPPLIED AT")
	for _, s := range st {
		state := "pending"
		if s.Applied {
			state = "applied"
		}
		fmt.Fprintf(tw, "%05d\t%s\t%s\t%s\n", s.Version, s.Name, state, s.AppliedAt)
	}
	return tw.Flush()
}
