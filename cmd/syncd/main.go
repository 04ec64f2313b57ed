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

	"github.com/syncd/syncd/redact"
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
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		printUsage(stderr)
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	for _, c := range commands() {
		if c.name == args[0] {
			err := c.run(ctx, args[1:], stdout, stderr)
			switch {
			case err == nil:
				return 0
			case errors.Is(err, flag.ErrHelp):
				return 0
			case errors.Is(err, errUsage):
				fmt.Fprintf(stderr, "syncd %s: %s\n", c.name, errorText(err))
				return 2
			default:
				fmt.Fprintf(stderr, "syncd %s: %s\n", c.name, errorText(err))
				return 1
			}
		}
	}
	fmt.Fprintf(stderr, "syncd: unknown command %q\n\n", args[0])
	printUsage(stderr)
	return 2
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
	fmt.Fprintln(w, "\nRun 'syncd <command> -h' for a command's flags. Flags default to the environment (see README).")
}
