package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/syncd/syncd/telemetry"
)

// A flag is declared once, by decls: its name, its environment variable,
// its type and default (the package's exported one), and its checks.
// Parsing applies the environment first and the command line over it, then
// runs the checks; a bad value from either is a usage error (exit 2) that
// names the flag and the variable.

// decl is one declared flag.
type decl struct {
	name, env string
	check     func() error
}

// decls are a flag set's declarations.
type decls struct {
	fs   *flag.FlagSet
	list []*decl
}

var (
	declMu sync.Mutex
	// declsOf finds a flag set's declarations when it is parsed.
	declsOf = map[*flag.FlagSet]*decls{}
	// declaredEnv is every variable any command declared, with its flags:
	// the README's configuration table is checked against it.
	declaredEnv = map[string][]string{}
)

// declare starts (or continues) the declarations of fs.
func declare(fs *flag.FlagSet) *decls {
	declMu.Lock()
	defer declMu.Unlock()
	if d, ok := declsOf[fs]; ok {
		return d
	}
	d := &decls{fs: fs}
	declsOf[fs] = d
	return d
}

func (d *decls) add(name, env string, check func() error) {
	declMu.Lock()
	defer declMu.Unlock()
	d.list = append(d.list, &decl{name: name, env: env, check: check})
	if env != "" && !slices.Contains(declaredEnv[env], name) {
		declaredEnv[env] = append(declaredEnv[env], name)
	}
}

func usageWithEnv(usage, env string) string {
	if env == "" {
		return usage
	}
	return usage + " (env " + env + ")"
}

// environmentOnly are the variables read without a flag: secrets a flag
// would show in ps, the providers' base URLs beside them, profiling, the
// Go runtime's and OpenTelemetry's own.
var environmentOnly = []string{
	"WORKOS_API_KEY", "STRIPE_API_KEY", "WORKOS_API_URL", "STRIPE_API_URL",
	"ADMIN_TOKEN", "SYNCD_PPROF_ADDR", "GOGC", "GOMEMLIMIT",
	telemetry.EnvEndpoint, telemetry.EnvTracesEndpoint,
}

// checkAll runs checks on v; nil when there are none.
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

func (d *decls) String(p *string, name, env, def, usage string, checks ...func(string) error) {
	d.fs.StringVar(p, name, def, usageWithEnv(usage, env))
	d.add(name, env, checkAll(p, checks))
}

func (d *decls) Bool(p *bool, name, env string, def bool, usage string) {
	d.fs.BoolVar(p, name, def, usageWithEnv(usage, env))
	d.add(name, env, nil)
}

func (d *decls) Int(p *int, name, env string, def int, usage string, checks ...func(int) error) {
	d.fs.IntVar(p, name, def, usageWithEnv(usage, env))
	d.add(name, env, checkAll(p, checks))
}

func (d *decls) Int64(p *int64, name, env string, def int64, usage string, checks ...func(int64) error) {
	d.fs.Int64Var(p, name, def, usageWithEnv(usage, env))
	d.add(name, env, checkAll(p, checks))
}

func (d *decls) Duration(p *time.Duration, name, env string, def time.Duration, usage string, checks ...func(time.Duration) error) {
	d.fs.DurationVar(p, name, def, usageWithEnv(usage, env))
	d.add(name, env, checkAll(p, checks))
}

// parse applies the environment, then args, then the checks.
func (d *decls) parse(args []string) error {
	if err := d.applyEnv(); err != nil {
		return err
	}
	if err := d.fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return usageError("%v", err)
	}
	return d.check()
}

// applyEnv sets the flags whose variable is set.
func (d *decls) applyEnv() error {
	for _, dc := range d.list {
		if dc.env == "" {
			continue
		}
		if v := os.Getenv(dc.env); v != "" {
			if err := d.fs.Set(dc.name, v); err != nil {
				return usageError("%s=%q (--%s): %v", dc.env, v, dc.name, unwrapFlagErr(err))
			}
		}
	}
	return nil
}

// check runs every declared check, naming the flag and its variable.
func (d *decls) check() error {
	for _, dc := range d.list {
		if dc.check == nil {
			continue
		}
		if err := dc.check(); err != nil {
			msg := "--" + dc.name + ": " + err.Error()
			if dc.env != "" {
				msg += " (env " + dc.env + ")"
			}
			return usageError("%s", msg)
		}
	}
	return nil
}

// unwrapFlagErr keeps flag.Value's own words: strconv's "parse error"
// wrapping says nothing the variable's name does not.
func unwrapFlagErr(err error) string {
	msg := err.Error()
	for _, p := range []string{"parse error", "invalid syntax"} {
		if strings.Contains(msg, p) {
			return "not a valid value"
		}
	}
	return msg
}

// declaredVariables lists every declared environment variable, sorted.
func declaredVariables() []string {
	declMu.Lock()
	defer declMu.Unlock()
	out := make([]string, 0, len(declaredEnv))
	for k := range declaredEnv {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// Checks shared by the declarations.

func positive[T int | int64 | time.Duration](v T) error {
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

func oneOf(vals ...string) func(string) error {
	return func(v string) error {
		if !slices.Contains(vals, v) {
			return fmt.Errorf("%q: want %s", v, strings.Join(vals, ", "))
		}
		return nil
	}
}
