package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// declareAll runs every command's -h, which declares its flags.
func declareAll(t *testing.T) {
	t.Helper()
	for _, args := range [][]string{
		{"serve"}, {"migrate", "status"}, {"replay"}, {"backfill"}, {"status"}, {"sign"}, {"send"},
		{"dlq", "list"}, {"dlq", "show"}, {"dlq", "retry"}, {"dlq", "purge"},
		{"import", "clerk"}, {"import", "map"}, {"import", "verify"}, {"healthcheck"},
	} {
		var out, errOut bytes.Buffer
		if code := run(context.Background(), append(args, "-h"), &out, &errOut); code != 0 {
			t.Fatalf("%v -h: exit %d: %s", args, code, errOut.String())
		}
	}
}

// flagSetNamed is the declarations of the last flag set called name.
func flagSetNamed(t *testing.T, name string) *decls {
	t.Helper()
	declMu.Lock()
	defer declMu.Unlock()
	for fs, d := range declsOf {
		if fs.Name() == name {
			return d
		}
	}
	t.Fatalf("no flag set %q declared", name)
	return nil
}

// The configuration table of the README lists every variable a command
// declares, and only those (with the environment-only ones), each with
// its flag.
func TestREADMEConfigurationTableMatchesDeclarations(t *testing.T) {
	declareAll(t)
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
	declared := declaredVariables()
	for _, v := range declared {
		cell, ok := documented[v]
		if !ok {
			t.Errorf("%s (%s) is declared but not in the README's configuration table", v, strings.Join(declaredEnv[v], ", "))
			continue
		}
		for _, f := range declaredEnv[v] {
			if !strings.Contains(cell, "`--"+f+"`") {
				t.Errorf("README row of %s does not name its flag --%s", v, f)
			}
		}
	}
	for v := range documented {
		if !slices.Contains(declared, v) && !slices.Contains(environmentOnly, v) {
			t.Errorf("README documents %s, which no command declares", v)
		}
	}
}

// badValues are values a flag of each kind refuses: one its type cannot
// parse, and one its checks refuse (where it has checks).
func badValues(f *flag.Flag, checked bool) []string {
	// Strings the package's checks refuse, where "bogus!" is a fine value.
	if v, ok := map[string]string{"provision-org-name": "{nick}'s", "provision-owner-role": "big boss"}[f.Name]; ok {
		return []string{v}
	}
	switch fmt.Sprintf("%T", f.Value) {
	case "*flag.boolValue":
		return []string{"maybe"}
	case "*flag.intValue", "*flag.int64Value":
		if checked {
			return []string{"x", "-1"}
		}
		return []string{"x"}
	case "*flag.durationValue":
		if checked {
			return []string{"x", "-1s"}
		}
		return []string{"x"}
	default: // strings: only those with checks refuse anything
		if checked {
			return []string{"bogus!"}
		}
	}
	return nil
}

// Every serve flag and its variable: a bad value exits 2 and names the
// flag (and the variable, when it came from the environment).
func TestEveryServeFlagAndVariableRefusesABadValue(t *testing.T) {
	declareAll(t)
	d := flagSetNamed(t, "serve")
	tested := 0
	for _, dc := range d.list {
		f := d.fs.Lookup(dc.name)
		for _, bad := range badValues(f, dc.check != nil) {
			tested++
			var out, errOut bytes.Buffer
			code := run(context.Background(), []string{"serve", "--" + dc.name + "=" + bad}, &out, &errOut)
			if code != 2 || !strings.Contains(errOut.String(), "-"+dc.name) {
				t.Errorf("serve --%s=%s: exit %d, %q; want 2 naming the flag", dc.name, bad, code, errOut.String())
			}
			if dc.env == "" {
				continue
			}
			t.Setenv(dc.env, bad)
			errOut.Reset()
			code = run(context.Background(), []string{"serve"}, &out, &errOut)
			if code != 2 || !strings.Contains(errOut.String(), dc.env) || !strings.Contains(errOut.String(), "--"+dc.name) {
				t.Errorf("%s=%s serve: exit %d, %q; want 2 naming the variable and the flag", dc.env, bad, code, errOut.String())
			}
			os.Unsetenv(dc.env)
		}
	}
	if tested < 20 {
		t.Fatalf("only %d bad values tried", tested)
	}
	// Zero is no default in disguise where it makes no sense.
	for _, args := range [][]string{{"--batch-size", "0"}, {"--max-attempts", "0"}, {"--publish-timeout", "0s"}, {"--apply-workers", "0"}, {"--shutdown-timeout", "0s"}} {
		var out, errOut bytes.Buffer
		if code := run(context.Background(), append([]string{"serve"}, args...), &out, &errOut); code != 2 || !strings.Contains(errOut.String(), args[0]+": ") {
			t.Errorf("serve %v: exit %d, %q; want 2 naming %s", args, code, errOut.String(), args[0])
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
		{[]string{"help"}, "commands:"},
		{[]string{"completion", "bash"}, "bash completion"},
		{[]string{"completion", "zsh"}, "#compdef syncd"},
	} {
		var out, errOut bytes.Buffer
		if code := run(context.Background(), c.args, &out, &errOut); code != 0 || !strings.Contains(out.String(), c.want) {
			t.Errorf("%v: exit %d, stdout %.80q, stderr %q; want 0 and %q", c.args, code, out.String(), errOut.String(), c.want)
		}
	}
	var out, errOut bytes.Buffer
	if code := run(context.Background(), []string{"help", "serve"}, &out, &errOut); code != 0 || !strings.Contains(errOut.String()+out.String(), "-batch-size") {
		t.Errorf("help serve: exit %d; want serve's flags", code)
	}
}
