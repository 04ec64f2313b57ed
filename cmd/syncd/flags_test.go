package main

import (
	"bytes"
	"context"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// treeFlag is one flag of one command of the tree.
type treeFlag struct {
	path string // "syncd dlq list"
	cmd  *cobra.Command
	flag *pflag.Flag
	decl *declared
}

// treeFlags walks the command tree and returns every flag of every
// command, failing for a flag that was not declared (declare).
func treeFlags(t *testing.T) []treeFlag {
	t.Helper()
	var out []treeFlag
	var walk func(*cobra.Command)
	walk = func(c *cobra.Command) {
		c.Flags().VisitAll(func(f *pflag.Flag) {
			d, ok := f.Value.(*declared)
			if !ok {
				t.Errorf("%s --%s is not declared with declare (no variable, no checks)", c.CommandPath(), f.Name)
				return
			}
			out = append(out, treeFlag{c.CommandPath(), c, f, d})
		})
		for _, s := range c.Commands() {
			walk(s)
		}
	}
	walk(rootCommand())
	if len(out) < 100 {
		t.Fatalf("only %d flags in the tree", len(out))
	}
	return out
}

// The configuration table of the README lists every variable a command
// declares, and only those (with the environment-only ones), each with
// its flag.
func TestREADMEConfigurationTableMatchesDeclarations(t *testing.T) {
	declared := map[string][]string{} // variable → its flags
	for _, tf := range treeFlags(t) {
		if v := tf.decl.env; v != "" && !slices.Contains(declared[v], tf.flag.Name) {
			declared[v] = append(declared[v], tf.flag.Name)
		}
	}
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, table, ok := strings.Cut(string(readme), "| variable | flag | default | meaning |")
	if !ok {
		t.Fatal("README has no configuration table")
	}
	table, _, _ = strings.Cut(table, "\n\n")
	name := regexp.MustCompile("`([A-Z][A-Z0-9_]+)`")
	documented := map[string]string{} // variable → its row's flag column
	for _, row := range strings.Split(table, "\n") {
		cells := strings.Split(row, "|")
		if len(cells) < 4 {
			continue
		}
		for _, m := range name.FindAllStringSubmatch(cells[1], -1) {
			documented[m[1]] = cells[2]
		}
	}
	for v, flags := range declared {
		cell, ok := documented[v]
		if !ok {
			t.Errorf("%s (--%s) is declared but not in the README's configuration table", v, strings.Join(flags, ", --"))
			continue
		}
		for _, f := range flags {
			if !strings.Contains(cell, "`--"+f+"`") {
				t.Errorf("README row of %s does not name its flag --%s", v, f)
			}
		}
	}
	for v := range documented {
		if _, ok := declared[v]; !ok && !slices.Contains(environmentOnly, v) {
			t.Errorf("README documents %s, which no command declares", v)
		}
	}
}

// freeStrings are the string flags any value of which is taken: paths,
// secrets, ids, substrings.
var freeStrings = map[string]string{
	"data-dir":              "a path",
	"admin-token-file":      "a path",
	"workos-secret":         "a secret",
	"stripe-secret":         "a secret",
	"stripe-connect-secret": "a secret",
	"secret":                "a secret",
	"provision-org-type":    "a metadata value",
	"org":                   "an organization id",
	"event":                 "an event id",
	"error":                 "a substring",
}

// zeroMeans are the numeric flags for which 0 is a setting, not a
// mistake; their help says what it means.
var zeroMeans = map[string]bool{
	"ingest-memory":    true, // the default budget
	"reconcile-every":  true, // off
	"reconcile-window": true, // the default window
	"ledger-retention": true, // the default retention
	"batch-linger":     true, // no wait
	"analyze-interval": true, // off: autovacuum alone
}

// stringCandidates are values some string check refuses; each checked
// string flag must refuse one of them.
var stringCandidates = []string{"bogus!", "x y", "{nick}'s", ":x", "a..b", "a.b.c", "::not a url::", " ", ""}

// argsFor are the positional arguments a command needs to get as far as
// its flags' checks.
var argsFor = map[string][]string{
	"syncd dlq show":     {"1"},
	"syncd import clerk": {"users.csv"},
	"syncd sign":         {"workos", "ev.json"},
	"syncd send":         {"workos", "ev.json"},
	"syncd replay":       {"--from-seq", "1"},
}

// badValues are the values a flag must refuse: one its type cannot parse,
// a negative number, zero where it makes no sense, and for a checked
// string one of stringCandidates its check refuses.
func badValues(t *testing.T, tf treeFlag) []string {
	t.Helper()
	switch typ := tf.decl.Value.Type(); typ {
	case "bool":
		return []string{"maybe"}
	case "uint64":
		return []string{"x", "-1", "0"} // 0 refused by the command: sequences start at 1
	case "int", "int64", "duration":
		bad := []string{"x", "-1"}
		if typ == "duration" {
			bad = []string{"x", "-1s"}
		}
		if !zeroMeans[tf.flag.Name] {
			bad = append(bad, "0")
		} else if !strings.Contains(tf.flag.Usage, "default") && !strings.Contains(tf.flag.Usage, "0 is") {
			t.Errorf("%s --%s takes 0, but its help does not say what it means", tf.path, tf.flag.Name)
		}
		return bad
	case "string":
		if tf.decl.check == nil {
			if _, ok := freeStrings[tf.flag.Name]; !ok {
				t.Errorf("%s --%s is a string without a check: declare one, or list it in freeStrings", tf.path, tf.flag.Name)
			}
			return nil
		}
		for _, v := range stringCandidates {
			// Probe the check on a tree of its own.
			probe, _, err := rootCommand().Find(strings.Fields(tf.path)[1:])
			if err != nil {
				t.Fatal(err)
			}
			d := probe.Flags().Lookup(tf.flag.Name).Value.(*declared)
			if d.Set(v) == nil && d.check() != nil {
				return []string{v}
			}
		}
		t.Errorf("%s --%s refuses none of %q: add a value it refuses", tf.path, tf.flag.Name, stringCandidates)
		return nil
	default:
		t.Errorf("%s --%s: no bad values known for type %s", tf.path, tf.flag.Name, typ)
		return nil
	}
}

// Every flag of every command, and its variable: a bad value exits 2 and
// names the flag (and the variable). The list comes from the command
// tree, so a new flag is covered by being declared.
func TestEveryFlagAndVariableRefusesABadValue(t *testing.T) {
	// Should a bad value get through, the command stops at once and
	// reaches nothing: the context is done, and the connections point at
	// closed ports.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	baseline := map[string]string{
		"SYNCD_DATA_DIR": t.TempDir(),
		"DATABASE_URL":   "postgres://127.0.0.1:1/none",
		"NATS_URL":       "nats://127.0.0.1:1",
		"HTTP_ADDR":      "127.0.0.1:1",
	}
	for k, v := range baseline {
		t.Setenv(k, v)
	}
	run := func(args []string) (int, string) {
		var out, errOut bytes.Buffer
		code := run(ctx, args, &out, &errOut)
		return code, errOut.String()
	}
	tried := 0
	for _, tf := range treeFlags(t) {
		base := append(strings.Fields(tf.path)[1:], argsFor[tf.path]...)
		for _, bad := range badValues(t, tf) {
			tried++
			code, stderr := run(append(slices.Clone(base), "--"+tf.flag.Name+"="+bad))
			if code != 2 || !strings.Contains(stderr, "--"+tf.flag.Name) || !strings.Contains(stderr, tf.decl.env) {
				t.Errorf("%s --%s=%q: exit %d, %q; want 2 naming --%s and %q", tf.path, tf.flag.Name, bad, code, stderr, tf.flag.Name, tf.decl.env)
			}
			if tf.decl.env == "" || bad == "" {
				continue
			}
			t.Setenv(tf.decl.env, bad)
			code, stderr = run(base)
			if code != 2 || !strings.Contains(stderr, tf.decl.env) || !strings.Contains(stderr, "--"+tf.flag.Name) {
				t.Errorf("%s=%q %s: exit %d, %q; want 2 naming %s and --%s", tf.decl.env, bad, tf.path, code, stderr, tf.decl.env, tf.flag.Name)
			}
			if v, ok := baseline[tf.decl.env]; ok {
				os.Setenv(tf.decl.env, v)
			} else {
				os.Unsetenv(tf.decl.env)
			}
		}
	}
	if tried < 200 {
		t.Fatalf("only %d bad values tried", tried)
	}
	for name := range freeStrings {
		if !slices.ContainsFunc(treeFlags(t), func(tf treeFlag) bool { return tf.flag.Name == name && tf.decl.check == nil }) {
			t.Errorf("freeStrings lists --%s, which is no unchecked string flag", name)
		}
	}
}

// A flag's name means one thing across the commands: normalizeArgs finds
// subcommands by knowing which flags take a value.
func TestFlagNamesAreOneTypeAcrossCommands(t *testing.T) {
	typ := map[string]string{}
	for _, tf := range treeFlags(t) {
		have := tf.decl.Value.Type()
		if want, ok := typ[tf.flag.Name]; ok && want != have {
			t.Errorf("%s --%s is a %s, elsewhere a %s", tf.path, tf.flag.Name, have, want)
		}
		typ[tf.flag.Name] = have
	}
}

// The environment is applied under the command line: the flag wins, but a
// malformed variable is reported all the same.
func TestEnvironmentUnderTheCommandLine(t *testing.T) {
	t.Setenv("SYNCD_BATCH_SIZE", "lots")
	code, _, stderr := runCmd(t, "serve", "--batch-size", "3")
	if code != 2 || !strings.Contains(stderr, `SYNCD_BATCH_SIZE="lots" (--batch-size): want an integer`) {
		t.Errorf("malformed variable under a flag: exit %d, %q", code, stderr)
	}
	t.Setenv("SYNCD_BATCH_SIZE", "0")
	t.Setenv("DATABASE_URL", "")
	code, _, stderr = runCmd(t, "serve", "--batch-size", "3")
	if code != 2 || strings.Contains(stderr, "batch-size") || !strings.Contains(stderr, "DATABASE_URL is not set") {
		t.Errorf("a flag over a variable its check refuses: exit %d, %q; want the flag's value to count", code, stderr)
	}
}

// Single-dash long flags (the standard library's form, which syncd took
// before) and flags before a subcommand are read as they were meant.
func TestArgumentsAsOperatorsWriteThem(t *testing.T) {
	root := rootCommand()
	for _, c := range []struct{ in, want []string }{
		{[]string{"serve", "-batch-size", "0"}, []string{"serve", "--batch-size", "0"}},
		{[]string{"dlq", "--json", "list"}, []string{"dlq", "list", "--json"}},
		{[]string{"backfill", "--no-progress", "--since", "1h", "stripe", "--connect"}, []string{"backfill", "stripe", "--no-progress", "--since", "1h", "--connect"}},
		{[]string{"dlq", "list", "--error", "-json", "-source=x"}, []string{"dlq", "list", "--error", "-json", "--source=x"}},
		{[]string{"dlq", "retry", "12", "13", "-dry-run"}, []string{"dlq", "retry", "12", "13", "--dry-run"}},
		{[]string{"replay", "--since", "-5h", "-h"}, []string{"replay", "--since", "-5h", "-h"}},
		{[]string{"sign", "--", "-x"}, []string{"sign", "--", "-x"}},
	} {
		if got := normalizeArgs(root, c.in); !slices.Equal(got, c.want) {
			t.Errorf("normalizeArgs(%q) = %q, want %q", c.in, got, c.want)
		}
	}
	if code, _, stderr := runCmd(t, "serve", "-batch-size", "0"); code != 2 || !strings.Contains(stderr, "--batch-size: 0: want a positive value (env SYNCD_BATCH_SIZE)") {
		t.Errorf("serve -batch-size 0: exit %d, %q", code, stderr)
	}
}

// Every command that prints a table, a list or a summary of counts has
// --json.
func TestTableCommandsHaveJSON(t *testing.T) {
	for _, path := range []string{"status", "migrate status", "dlq list", "dlq retry", "dlq purge", "audit", "replay", "backfill workos", "backfill stripe", "import map", "import verify"} {
		c, _, err := rootCommand().Find(strings.Fields(path))
		if err != nil || c.CommandPath() != "syncd "+path {
			t.Fatalf("%s: %v", path, err)
		}
		if f := c.Flags().Lookup("json"); f == nil || f.Value.Type() != "bool" {
			t.Errorf("syncd %s has no --json", path)
		}
	}
}

func TestVersionHelpAndCompletion(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--version"}, "syncd "},
		{[]string{"version"}, "syncd "},
		{[]string{"help"}, "Available Commands:"},
		{[]string{"help", "serve"}, "--batch-size int"},
		{[]string{"help", "dlq", "retry"}, "--dry-run"},
		{[]string{"dlq", "list", "-h"}, "(env SYNCD_DATA_DIR)"},
		{[]string{"completion", "bash"}, "bash completion"},
		{[]string{"completion", "zsh"}, "#compdef syncd"},
		{[]string{"__complete", "serve", "--role", ""}, "consume"},
		{[]string{"__complete", "backfill", ""}, "stripe"},
		{[]string{"__complete", "sign", ""}, "stripe-connect"},
	} {
		code, out, stderr := runCmd(t, c.args...)
		if code != 0 || !strings.Contains(out, c.want) {
			t.Errorf("%v: exit %d, stdout %.200q, stderr %q; want 0 and %q", c.args, code, out, stderr, c.want)
		}
	}
	if code, _, stderr := runCmd(t); code != 2 || !strings.Contains(stderr, "Available Commands:") {
		t.Errorf("no command: exit %d, %q; want 2 and the usage", code, stderr)
	}
}
