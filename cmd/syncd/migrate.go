package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"text/tabwriter"

	"github.com/syncd/syncd/migrations"
)

func runMigrate(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var c common
	var asJSON bool
	fs := flag.NewFlagSet("migrate", flag.ContinueOnError)
	c.register(fs)
	declare(fs).Bool(&asJSON, "json", "", false, "status: print JSON (an array of objects) instead of a table")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: syncd migrate up|status [flags]")
		fs.PrintDefaults()
	}
	if len(args) == 0 {
		fs.Usage()
		return usageError("want a subcommand: up or status")
	}
	if args[0] == "-h" || args[0] == "--help" || args[0] == "-help" {
		fs.SetOutput(stderr)
		fs.Usage()
		return flag.ErrHelp
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
	if asJSON {
		type row struct {
			Version   int64  `json:"version"`
			Name      string `json:"name"`
			Applied   bool   `json:"applied"`
			AppliedAt string `json:"applied_at,omitempty"`
		}
		rows := make([]row, 0, len(st))
		for _, s := range st {
			rows = append(rows, row{s.Version, s.Name, s.Applied, s.AppliedAt})
		}
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(rows)
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
