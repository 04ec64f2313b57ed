// Command syncd keeps an application's Postgres in step with WorkOS and
// Stripe: it receives their webhooks, stores them in JetStream and applies
// them idempotently, and gives ops replay, backfill and dead-letter tools.
package main

import (
	"context"
	"errors"
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

// failure is a command that ran and failed: exit code 1. Any other error
// comes from reading the command line (exit 2).
type failure struct{ err error }

func (f *failure) Error() string { return f.err.Error() }
func (f *failure) Unwrap() error { return f.err }

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	root := rootCommand()
	root.SetOut(stdout)
	root.SetErr(stderr)
	if len(args) == 0 {
		// What cobra adds when it runs, so the usage lists it.
		root.InitDefaultHelpCmd()
		root.InitDefaultCompletionCmd()
		root.InitDefaultHelpFlag()
		root.InitDefaultVersionFlag()
		fmt.Fprint(stderr, root.UsageString())
		return 2
	}
	root.SetArgs(normalizeArgs(root, args))
	cmd, err := root.ExecuteContextC(ctx)
	if err == nil {
		return 0
	}
	name := "syncd"
	if cmd != nil {
		name = cmd.CommandPath()
	}
	fmt.Fprintf(stderr, "%s: %s\n", name, errorText(err))
	var failed *failure
	switch {
	case errors.Is(err, errUsage), errors.Is(err, telemetry.ErrConfig):
		return 2
	case errors.As(err, &failed):
		return 1
	}
	// cobra's own: an unknown command, arguments a built-in refuses.
	fmt.Fprintf(stderr, "Run '%s --help' for usage.\n", name)
	return 2
}

// rootCommand is the command tree. cobra parses every command's flags
// (interspersed with the arguments) and gives `syncd help COMMAND`,
// --version and shell completion (`syncd completion bash|zsh|fish|
// powershell`, flag values included); the flags' environment variables
// and checks are applied by settle before any command runs.
func rootCommand() *cobra.Command {
	root := &cobra.Command{
		Use:   "syncd",
		Short: "keep Postgres in step with WorkOS and Stripe webhooks",
		Long: "syncd receives WorkOS and Stripe webhooks, stores them in JetStream and applies them to Postgres,\n" +
			"idempotently; the other commands operate it. Flags default to their environment variables (see README).",
		Version:       buildVersion(),
		SilenceErrors: true,
		SilenceUsage:  true,
		PersistentPreRunE: func(c *cobra.Command, _ []string) error {
			return settle(c.Flags())
		},
	}
	root.SetVersionTemplate(versionLine() + "\n")
	root.SetFlagErrorFunc(flagError)
	root.AddCommand(
		serveCommand(), migrateCommand(), replayCommand(), backfillCommand(), statusCommand(),
		signCommand(), sendCommand(), dlqCommand(), auditCommand(), importCommand(), healthcheckCommand(),
		&cobra.Command{
			Use:   "version",
			Short: "print the version (as --version)",
			Args:  noArgs,
			Run:   func(c *cobra.Command, _ []string) { fmt.Fprintln(c.OutOrStdout(), versionLine()) },
		},
	)
	return root
}

// action is a command's work as cobra runs it: traces are exported when
// the OTEL_EXPORTER_OTLP_* variables say where (otherwise the tracer
// provider stays the no-op one), and an error that is not a usage error
// is the command's failure.
func action(work func(c *cobra.Command, args []string) error) func(*cobra.Command, []string) error {
	return func(c *cobra.Command, args []string) error {
		ctx := c.Context()
		shutdown, err := telemetry.Setup(ctx, buildVersion())
		if err != nil {
			return err
		}
		defer func() {
			sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			defer cancel()
			_ = shutdown(sctx) // flush what is buffered; an unreachable collector loses it
		}()
		err = work(c, args)
		nameVariable(c.Flags(), err)
		if err != nil && !errors.Is(err, errUsage) && !errors.Is(err, telemetry.ErrConfig) {
			return &failure{err}
		}
		return err
	}
}

// group is a command of subcommands (dlq, import, migrate, backfill).
// Flags before the subcommand are left to it (`dlq --json list`); without
// one, or with one it does not know, it is a usage error saying which.
func group(c *cobra.Command, want string, unknown func(arg string) error, subs ...*cobra.Command) *cobra.Command {
	c.Args = cobra.ArbitraryArgs
	c.FParseErrWhitelist.UnknownFlags = true
	c.RunE = func(c *cobra.Command, args []string) error {
		switch {
		case len(args) == 0:
			fmt.Fprint(c.ErrOrStderr(), c.UsageString())
			return usageError("%s", want)
		case args[0] == "help":
			return c.Help()
		}
		return unknown(args[0])
	}
	c.AddCommand(subs...)
	return c
}

// noArgs refuses positional arguments.
func noArgs(_ *cobra.Command, args []string) error {
	if len(args) > 0 {
		return usageError("unexpected argument %q", args[0])
	}
	return nil
}

// errorText is how a command's error is printed: connection strings
// redacted (the environment's, and any quoted in the message), and event
// data the message may quote escaped for the terminal.
func errorText(err error) string {
	return printableLines(redact.Error(err, os.Getenv("DATABASE_URL"), os.Getenv("NATS_URL")))
}
