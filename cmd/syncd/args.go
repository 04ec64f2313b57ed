package main

import (
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// normalizeArgs readies a command line for cobra, which reads less than
// syncd has always taken:
//   - single-dash long flags (-data-dir): syncd parsed its flags with the
//     standard library before, which takes both, so scripts may use either;
//   - flags before a subcommand (`backfill --no-progress stripe`, `dlq
//     --json list`): cobra finds the subcommand without knowing which flags
//     take a value, so a boolean flag would eat the subcommand's name. The
//     subcommands are moved in front of such flags.
//
// A flag's value is passed as it is, whatever it looks like.
func normalizeArgs(root *cobra.Command, args []string) []string {
	takesValue := map[string]bool{"help": false, "version": false}
	var walk func(*cobra.Command)
	walk = func(c *cobra.Command) {
		c.Flags().VisitAll(func(f *pflag.Flag) { takesValue[f.Name] = f.NoOptDefVal == "" })
		for _, s := range c.Commands() {
			walk(s)
		}
	}
	walk(root)
	long := func(a string) string {
		if strings.HasPrefix(a, "-") && !strings.HasPrefix(a, "--") {
			if name, _, _ := strings.Cut(a[1:], "="); len(name) > 1 {
				if _, ok := takesValue[name]; ok {
					return "-" + a
				}
			}
		}
		return a
	}
	// valued reports whether a is a flag whose value is the next argument.
	valued := func(a string) bool {
		name, _, inline := strings.Cut(strings.TrimPrefix(a, "--"), "=")
		return strings.HasPrefix(a, "--") && !inline && takesValue[name]
	}

	var path, flags []string
	cur, i := root, 0
	for ; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			break
		}
		if strings.HasPrefix(a, "-") {
			a = long(a)
			flags = append(flags, a)
			if valued(a) && i+1 < len(args) {
				i++
				flags = append(flags, args[i])
			}
			continue
		}
		sub := subcommand(cur, a)
		if sub == nil {
			break
		}
		path, cur = append(path, a), sub
	}
	out := append(path, flags...)
	for ; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			return append(out, args[i:]...)
		}
		a = long(a)
		out = append(out, a)
		if valued(a) && i+1 < len(args) {
			i++
			out = append(out, args[i])
		}
	}
	return out
}

func subcommand(c *cobra.Command, name string) *cobra.Command {
	for _, s := range c.Commands() {
		if s.Name() == name {
			return s
		}
	}
	return nil
}
