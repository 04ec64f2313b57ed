package main

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/syncd/syncd/events"
	"github.com/syncd/syncd/service"
	"github.com/syncd/syncd/telemetry"
)

// A flag is declared once, on the command that takes it (declare): its
// name, its environment variable, its type and default (the package's
// exported one), and its checks. Before the command runs, settle applies
// the environment under the command line and runs the checks; a bad value
// from either is a usage error (exit 2) that names the flag and the
// variable. The declaration lives in the flag itself (declared), so the
// command tree is the one list of flags: help, completion, the README
// test and the bad-value test all read it there.

// declared is a flag's value with what its declaration adds.
type declared struct {
	pflag.Value
	// env is the variable read when the command line does not set the flag.
	env string
	// want says what a value of the type looks like, for the message when
	// one does not parse ("an integer"); empty keeps the value's own error.
	want string
	// check refuses values of the right type that make no sense; nil when
	// any value of the type does.
	check func() error
}

func (d *declared) Set(s string) error {
	if err := d.Value.Set(s); err != nil {
		if d.want != "" {
			return errors.New("want " + d.want)
		}
		return err
	}
	return nil
}

// decls declares the flags of one command.
type decls struct{ c *cobra.Command }

func declare(c *cobra.Command) decls { return decls{c} }

// add wraps the flag just defined with its declaration.
func (d decls) add(name, env, want string, check func() error) *pflag.Flag {
	f := d.c.Flags().Lookup(name)
	f.Value = &declared{Value: f.Value, env: env, want: want, check: check}
	if env != "" {
		f.Usage += " (env " + env + ")"
	}
	return f
}

// checkAll runs checks on *p; nil when there are none.
func checkAll[T any](p *T, checks []func(T) error) func() error {
	if len(checks) == 0 {
		return nil
	}
	return func() error {
		for _, c := range checks {
			if err := c(*p); err != nil {
				return err
			}
		}
		return nil
	}
}

func (d decls) String(p *string, name, env, def, usage string, checks ...func(string) error) {
	d.c.Flags().StringVar(p, name, def, usage)
	d.add(name, env, "", checkAll(p, checks))
}

// Enum is a string flag that takes one of values; the shell completes them.
func (d decls) Enum(p *string, name, env, def, usage string, values ...string) {
	d.String(p, name, env, def, usage, oneOf(values...))
	d.complete(name, values...)
}

// complete makes the shell offer values for the flag.
func (d decls) complete(name string, values ...string) {
	_ = d.c.RegisterFlagCompletionFunc(name, cobra.FixedCompletions(values, cobra.ShellCompDirectiveNoFileComp))
}

func (d decls) Bool(p *bool, name, env string, def bool, usage string) {
	d.c.Flags().BoolVar(p, name, def, usage)
	d.add(name, env, "true or false", nil)
}

func (d decls) Int(p *int, name, env string, def int, usage string, checks ...func(int) error) {
	d.c.Flags().IntVar(p, name, def, usage)
	d.add(name, env, "an integer", checkAll(p, checks))
}

func (d decls) Int64(p *int64, name, env string, def int64, usage string, checks ...func(int64) error) {
	d.c.Flags().Int64Var(p, name, def, usage)
	d.add(name, env, "an integer", checkAll(p, checks))
}

func (d decls) Uint64(p *uint64, name, env string, def uint64, usage string, checks ...func(uint64) error) {
	d.c.Flags().Uint64Var(p, name, def, usage)
	d.add(name, env, "a whole number", checkAll(p, checks))
}

func (d decls) Duration(p *time.Duration, name, env string, def time.Duration, usage string, checks ...func(time.Duration) error) {
	d.c.Flags().DurationVar(p, name, def, usage)
	d.add(name, env, "a duration (90s, 5m, 36h)", checkAll(p, checks))
}

// Days is a duration flag that also takes days (365d, 1d12h), printed in
// days when whole.
func (d decls) Days(p *time.Duration, name, env string, def time.Duration, usage string, checks ...func(time.Duration) error) {
	*p = def
	d.c.Flags().Var((*daysValue)(p), name, usage)
	d.add(name, env, "days (365d) or a duration (8760h)", checkAll(p, checks))
}

// settle makes the flags of the command about to run final: the
// environment first, the command line over it, then every check. A
// variable the command line overrides is still parsed, so a malformed one
// is reported rather than lying in wait.
func settle(fs *pflag.FlagSet) error {
	var err error
	fs.VisitAll(func(f *pflag.Flag) {
		d, ok := f.Value.(*declared)
		if err != nil || !ok || d.env == "" {
			return
		}
		v := os.Getenv(d.env)
		if v == "" {
			return
		}
		if f.Changed {
			given := d.Value.String()
			if e := d.Set(v); e != nil {
				err = usageError("%s=%q (--%s): %v", d.env, v, f.Name, e)
				return
			}
			_ = d.Value.Set(given) // it parsed from the command line
			return
		}
		if e := fs.Set(f.Name, v); e != nil {
			err = usageError("%s=%q (--%s): %v", d.env, v, f.Name, errors.Unwrap(e))
		}
	})
	if err != nil {
		return err
	}
	fs.VisitAll(func(f *pflag.Flag) {
		d, ok := f.Value.(*declared)
		if err != nil || !ok || d.check == nil {
			return
		}
		if e := d.check(); e != nil {
			err = usageError("--%s: %v%s", f.Name, e, envNote(d))
		}
	})
	return err
}

func envNote(d *declared) string {
	if d == nil || d.env == "" {
		return ""
	}
	return " (env " + d.env + ")"
}

// flagUsageError is bad input about one flag found after the checks
// (against another flag, or by a package when the command runs); action
// names the flag's variable in it.
type flagUsageError struct{ name, msg, env string }

// badFlag is a usage error about the flag name: "--name" and then what
// format says (": …", " needs …").
func badFlag(name, format string, args ...any) error {
	return &flagUsageError{name: name, msg: fmt.Sprintf(format, args...)}
}

func (e *flagUsageError) Error() string {
	msg := errUsage.Error() + ": --" + e.name + e.msg
	if e.env != "" {
		msg += " (env " + e.env + ")"
	}
	return msg
}

func (e *flagUsageError) Is(target error) bool { return target == errUsage }

// nameVariable adds the variable of the flag err is about, if it has one.
func nameVariable(fs *pflag.FlagSet, err error) {
	var fe *flagUsageError
	if !errors.As(err, &fe) {
		return
	}
	if f := fs.Lookup(fe.name); f != nil {
		if d, ok := f.Value.(*declared); ok {
			fe.env = d.env
		}
	}
}

// flagError is how a flag the command line gets wrong is reported: a
// usage error, naming the flag and its variable.
func flagError(_ *cobra.Command, err error) error {
	var bad *pflag.InvalidValueError
	if errors.As(err, &bad) {
		d, _ := bad.GetFlag().Value.(*declared)
		return usageError("--%s: %q: %v%s", bad.GetFlag().Name, bad.GetValue(), errors.Unwrap(err), envNote(d))
	}
	return usageError("%v", err)
}

// environmentOnly are the variables read without a flag: secrets a flag
// would show in ps, the providers' base URLs beside them, profiling, the
// Go runtime's and OpenTelemetry's own.
var environmentOnly = []string{
	"WORKOS_API_KEY", "STRIPE_API_KEY", "WORKOS_API_URL", "STRIPE_API_URL",
	"ADMIN_TOKEN", "SYNCD_PPROF_ADDR", "GOGC", "GOMEMLIMIT",
	telemetry.EnvEndpoint, telemetry.EnvTracesEndpoint,
}

// daysValue is a time.Duration that also reads days.
type daysValue time.Duration

func (v *daysValue) Set(s string) error {
	d, err := events.ParseDays(s, 36500)
	if err != nil {
		return err
	}
	*v = daysValue(d)
	return nil
}

func (v *daysValue) String() string {
	d := time.Duration(*v)
	if d > 0 && d%(24*time.Hour) == 0 {
		return fmt.Sprintf("%dd", d/(24*time.Hour))
	}
	return d.String()
}

func (*daysValue) Type() string { return "duration" }

// Checks shared by the declarations.

func positive[T int | int64 | uint64 | time.Duration](v T) error {
	if v <= 0 {
		return fmt.Errorf("%v: want a positive value", v)
	}
	return nil
}

func notNegative[T int | int64 | time.Duration](v T) error {
	if v < 0 {
		return fmt.Errorf("%v: want zero or a positive value", v)
	}
	return nil
}

func between[T int | int64](lo, hi T) func(T) error {
	return func(v T) error {
		if v < lo || v > hi {
			return fmt.Errorf("%d: want %d to %d", v, lo, hi)
		}
		return nil
	}
}

func atLeast(min time.Duration) func(time.Duration) error {
	return func(v time.Duration) error {
		if v < min {
			return fmt.Errorf("%s: want at least %s", v, min)
		}
		return nil
	}
}

// offOrAtLeast is a schedule: 0 is off, otherwise at least min.
func offOrAtLeast(min time.Duration) func(time.Duration) error {
	return func(v time.Duration) error {
		if v != 0 && v < min {
			return fmt.Errorf("%s: want at least %s (or 0 for off)", v, min)
		}
		return nil
	}
}

func oneOf(vals ...string) func(string) error {
	return func(v string) error {
		if !slices.Contains(vals, v) {
			return fmt.Errorf("%q: want %s", v, strings.Join(vals, ", "))
		}
		return nil
	}
}

// when is a time flag's form (events.ParseWhen); empty is unset.
func when(v string) error {
	if _, err := events.ParseWhen(v, time.Now()); err != nil {
		return fmt.Errorf("%q: %v", strings.TrimSpace(v), err)
	}
	return nil
}

// listenAddr is host:port, either part may be empty (":8080").
func listenAddr(optional bool) func(string) error {
	return func(v string) error {
		if v == "" && optional {
			return nil
		}
		if _, _, err := net.SplitHostPort(v); err != nil {
			return fmt.Errorf("%q: want host:port (:8080, 127.0.0.1:8080)", v)
		}
		return nil
	}
}

// httpURL is the base URL of a running syncd.
func httpURL(v string) error {
	u, err := url.Parse(v)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("%q: want an http(s) URL (http://localhost:8080)", v)
	}
	return nil
}

// optional lets check pass the empty value (unset).
func optional(check func(string) error) func(string) error {
	return func(v string) error {
		if v == "" {
			return nil
		}
		return check(v)
	}
}

// databaseURL is a Postgres connection string as service.OpenPool reads
// it; empty is unset (the commands that need one say so).
func databaseURL(v string) error {
	if v == "" {
		return nil
	}
	if err := service.CheckDatabaseURL(v); err != nil {
		return errors.New(strings.TrimPrefix(err.Error(), service.ErrConfig.Error()+": database URL: "))
	}
	return nil
}

// natsServers is what the NATS client dials: URLs separated by commas, the
// scheme nats:// when left out; empty is the embedded server.
func natsServers(v string) error {
	if v == "" {
		return nil
	}
	for _, part := range strings.Split(v, ",") {
		part = strings.TrimSpace(part)
		if !strings.Contains(part, "://") {
			part = "nats://" + part
		}
		u, err := url.Parse(part)
		if err != nil || u.Host == "" || !slices.Contains([]string{"nats", "tls", "ws", "wss"}, u.Scheme) {
			return errors.New("want nats://host:port (tls://, ws:// and wss:// too), several separated by commas")
		}
	}
	return nil
}

// fieldCheck checks one flag's value as its package's Config.Check does:
// the value set on base (the other fields at what passes), the package's
// name left out of the error, since the flag's name leads it.
func fieldCheck[C interface{ Check() error }, T any](base C, set func(*C, T)) func(T) error {
	return func(v T) error {
		c := base
		set(&c, v)
		err := c.Check()
		if err == nil {
			return nil
		}
		if pkg, rest, ok := strings.Cut(err.Error(), ": "); ok && !strings.ContainsAny(pkg, " \t") {
			return errors.New(rest)
		}
		return err
	}
}
