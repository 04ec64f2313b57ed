// Command syncd keeps an application's Postgres in step with WorkOS and
// Stripe: it receives their webhooks, stores them in JetStream and applies
// them idempotently, and gives ops replay, backfill and dead-letter tools.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/syncd/syncd/redact"
	"github.com/syncd/syncd/telemetry"
)

// errUsage marks bad input to a command: exit code 2.
var errUsage = errors.New("usage")

// usageError is a bad flag or argument, reported with what was wrong.
func usageError(format string, args ...any) error {
	return fmt.Errorf("%w: %s", errUsage, fmt.Sprintf(format, args...))
}

type command struct {
	name, summary string
	run           func(ctx context.Context, args []string, stdout, stderr io.Writer) error
}

func commands() []command {
	return []command{
		{"serve", "receive webhooks and apply them to Postgres", runServe},
		{"migrate", "apply (up) or show (status) database migrations", runMigrate},
		{"replay", "re-deliver a window of the stream through the consumers", runReplay},
		{"backfill", "publish a window of a provider's Events API (workos, stripe) into the stream", runBackfill},
		{"status", "show stream and consumer lag, dead letters, last event applied", runStatus},
		{"sign", "print a signature header for a file, for curl", runSign},
		{"send", "sign a file and POST it to a running syncd", runSend},
		{"dlq", "inspect and drain dead letters: list, show, retry, purge", runDLQ},
		{"audit", "list the changes syncd applied (audit_logs) by resource, organization, event or time", runAudit},
		{"import", "move users from Clerk to WorkOS: import clerk FILE, import map, import verify", runImport},
		{"healthcheck", "exit 0 when the running syncd answers /readyz with 200 (for HEALTHCHECK)", runHealthcheck},
	}
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		printUsage(stderr)
		return 2
	}
	var ran *command // the subcommand that ran, if any
	root := rootCommand(ctx, stdout, stderr, &ran)
	root.SetArgs(args)
	err := root.Execute()
	name := ""
	if ran != nil {
		name = " " + ran.name
	}
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
		return 0
	case ran == nil:
		// cobra's own: an unknown command or root flag.
		fmt.Fprintf(stderr, "syncd: %s\n\n", errorText(err))
		printUsage(stderr)
		return 2
	case errors.Is(err, errUsage), errors.Is(err, telemetry.ErrConfig):
		fmt.Fprintf(stderr, "syncd%s: %s\n", name, errorText(err))
		return 2
	default:
		fmt.Fprintf(stderr, "syncd%s: %s\n", name, errorText(err))
		return 1
	}
}

// rootCommand is the command tree on cobra: help (`syncd help serve`),
// --version, shell completion (`syncd completion bash|zsh|fish|
// powershell`). Each subcommand parses its own flags from their
// declarations (flags.go), so cobra hands it the arguments as they are.
func rootCommand(ctx context.Context, stdout, stderr io.Writer, ran **command) *cobra.Command {
	root := &cobra.Command{
		Use:           "syncd",
		Short:         "keep Postgres in step with WorkOS and Stripe webhooks",
		Version:       buildVersion(),
		SilenceErrors: true,
		SilenceUsage:  true,
		CompletionOptions: cobra.CompletionOptions{
			HiddenDefaultCmd: false,
		},
	}
	root.SetVersionTemplate(versionLine() + "\n")
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.SetHelpFunc(func(c *cobra.Command, args []string) {
		if c == root {
			printUsage(stdout)
			return
		}
		c.Run(c, []string{"-h"})
	})
	for _, c := range commands() {
		c := c
		sub := &cobra.Command{
			Use:                c.name,
			Short:              c.summary,
			DisableFlagParsing: true,
			SilenceErrors:      true,
			SilenceUsage:       true,
			RunE: func(_ *cobra.Command, args []string) error {
				*ran = &c
				// Traces are exported when the OTEL_EXPORTER_OTLP_*
				// variables say where; otherwise the tracer provider stays
				// the no-op one.
				shutdown, err := telemetry.Setup(ctx, buildVersion())
				if err != nil {
					return err
				}
				defer func() {
					sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
					defer cancel()
					_ = shutdown(sctx) // flush what is buffered; an unreachable collector loses it
				}()
				return c.run(ctx, args, stdout, stderr)
			},
		}
		// `syncd help serve` is `syncd serve -h`: the flags, with their
		// variables and defaults.
		sub.Run = func(_ *cobra.Command, _ []string) { _ = c.run(ctx, []string{"-h"}, stdout, stderr) }
		root.AddCommand(sub)
	}
	root.AddCommand(&cobra.Command{
		Use:   "version",
		Short: "print the version (as --version)",
		Args:  cobra.NoArgs,
		Run:   func(*cobra.Command, []string) { fmt.Fprintln(stdout, versionLine()) },
	})
	return root
}

// errorText is how a command's error is printed: connection strings
// redacted (the environment's, and any quoted in the message), and event
// data the message may quote escaped for the terminal.
func errorText(err error) string {
	return printableLines(redact.Error(err, os.Getenv("DATABASE_URL"), os.Getenv("NATS_URL")))
}

func printUsage(w io.Writer) {
	fmt.Fprintln(w, "usage: syncd <command> [flags]\n\ncommands:")
	for _, c := range commands() {
		fmt.Fprintf(w, "  %-11s %s\n", c.name, c.summary)
	}
	fmt.Fprintln(w, "  completion  print a shell completion script: bash, zsh, fish or powershell")
	fmt.Fprintln(w, "  version     print the version (as --version)")
	fmt.Fprintln(w, "\nRun 'syncd help <command>' or 'syncd <command> -h' for a command's flags. Flags default to the environment (see README).")
}
