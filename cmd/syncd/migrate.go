package main

import (
	"context"
	"fmt"
	"io"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/syncd/syncd/migrations"
)

func migrateCommand() *cobra.Command {
	c := &cobra.Command{Use: "migrate up|status", Short: "apply (up) or show (status) database migrations"}
	var up, st common
	upCmd := &cobra.Command{Use: "up", Short: "apply the pending migrations", Args: noArgs}
	up.register(upCmd)
	upCmd.RunE = action(func(c *cobra.Command, _ []string) error { return migrateUp(c.Context(), &up, c.OutOrStdout()) })
	var asJSON bool
	stCmd := &cobra.Command{Use: "status", Short: "list the migrations, applied and pending", Args: noArgs}
	st.register(stCmd)
	declare(stCmd).Bool(&asJSON, "json", "", false, "print JSON (an array of objects) instead of a table")
	stCmd.RunE = action(func(c *cobra.Command, _ []string) error {
		return migrateStatus(c.Context(), &st, asJSON, c.OutOrStdout())
	})
	return group(c, "want a subcommand: up or status",
		func(arg string) error { return usageError("unknown subcommand %q: want up or status", arg) },
		upCmd, stCmd)
}

func migrateUp(ctx context.Context, c *common, stdout io.Writer) error {
	pool, err := c.pool(ctx)
	if err != nil {
		return err
	}
	defer pool.Close()
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

func migrateStatus(ctx context.Context, c *common, asJSON bool, stdout io.Writer) error {
	pool, err := c.pool(ctx)
	if err != nil {
		return err
	}
	defer pool.Close()
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
		return writeJSON(stdout, rows)
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
