package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"sync"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/syncd/syncd/legacy"
	"github.com/syncd/syncd/provision"
	"github.com/syncd/syncd/redact"
	"github.com/syncd/syncd/workosapi"
)

// importCommand is `syncd import clerk|map|verify`: the one-off move of
// the app's users from Clerk to WorkOS, and the map the app's data
// migration re-keys its rows by.
func importCommand() *cobra.Command {
	c := &cobra.Command{
		Use:   "import clerk|map|verify",
		Short: "move users from Clerk to WorkOS: import clerk FILE, import map, import verify",
		Long:  importUsage,
	}
	return group(c, "name the step: clerk, map or verify",
		func(arg string) error { return usageError("unknown import step %q: want clerk, map or verify", arg) },
		importClerkCommand(), importMapCommand(), importVerifyCommand())
}

const importUsage = `syncd import clerk FILE [--format csv|json] [--dry-run] [--map-only] [--legacy-database-url URL] [--concurrency N]
syncd import map --json|--csv
syncd import verify [--json]

clerk   creates (or adopts) a WorkOS user, personal organization and owner membership for
        every Clerk user of the export and records them in legacy_user_map; run it again to
        resume an interrupted import (finished users are skipped).
map     prints legacy_user_map for the app's data migration.
verify  checks that every mapped user, personal organization and owner membership has
        reached Postgres through the webhooks; exit 1 naming what is missing.`

// importFlags are what import clerk reads besides the connection flags.
type importFlags struct {
	format       string
	dryRun       bool
	mapOnly      bool
	legacyURL    string
	legacyTable  string
	concurrency  int
	orgName      string
	ownerRole    string
	expertType   string
	personalType string
	noProgress   bool
	maxInFlight  int
}

func (f *importFlags) register(c *cobra.Command) {
	d := declare(c)
	d.String(&f.format, "format", "", "", "csv (Clerk dashboard export) or json (Backend API users); default detected", func(v string) error { _, err := legacy.ParseFormat(v); return err })
	d.complete("format", string(legacy.FormatCSV), string(legacy.FormatJSON))
	d.Bool(&f.dryRun, "dry-run", "", false, "validate the file and print what would be done; writes nothing")
	d.Bool(&f.mapOnly, "map-only", "", false, "fill legacy_user_map from what already exists in WorkOS, writing nothing there")
	d.String(&f.legacyURL, "legacy-database-url", "LEGACY_DATABASE_URL", "", "the Clerk-era app's Postgres, for each user's Stripe links", databaseURL)
	d.String(&f.legacyTable, "legacy-users-table", "SYNCD_IMPORT_LEGACY_TABLE", legacy.LegacyUsersTableDefault, "the legacy users table (clerk_user_id, stripe_customer_id, stripe_connect_account_id)", legacy.CheckTable)
	d.Int(&f.concurrency, "concurrency", "SYNCD_IMPORT_CONCURRENCY", legacy.ConcurrencyDefault, fmt.Sprintf("users imported at once, 1 to %d", legacy.ConcurrencyMax), positive, fieldCheck(legacy.Config{}, func(c *legacy.Config, v int) { c.Concurrency = v }))
	d.String(&f.orgName, "org-name", "SYNCD_PROVISION_ORG_NAME", provision.OrgNameDefault, "personal organization name, as provisioning names it", fieldCheck(provision.Config{}, func(c *provision.Config, v string) { c.OrgName = v }))
	d.String(&f.ownerRole, "owner-role", "SYNCD_PROVISION_OWNER_ROLE", provision.OwnerRoleDefault, "role slug of the owner membership", fieldCheck(provision.Config{}, func(c *provision.Config, v string) { c.OwnerRole = v }))
	d.String(&f.expertType, "expert-org-type", "", legacy.ExpertOrgTypeDefault, "organization type of a user with a legacy Stripe Connect account", fieldCheck(legacy.Config{}, func(c *legacy.Config, v string) { c.ExpertOrgType = v }))
	d.String(&f.personalType, "personal-org-type", "", legacy.PersonalOrgTypeDefault, "organization type of every other user", fieldCheck(legacy.Config{}, func(c *legacy.Config, v string) { c.PersonalOrgType = v }))
	d.Bool(&f.noProgress, "no-progress", "", false, "no progress bar on a terminal, no progress lines elsewhere")
}

func importClerkCommand() *cobra.Command {
	var c common
	var f importFlags
	cmd := &cobra.Command{
		Use:   "clerk FILE",
		Short: "create (or adopt) the WorkOS users of a Clerk export, recorded in legacy_user_map",
		Long:  importUsage + "\n\nenvironment: WORKOS_API_KEY, WORKOS_API_URL, DATABASE_URL",
		Args: func(_ *cobra.Command, args []string) error {
			switch {
			case len(args) == 0:
				return usageError("name the export: syncd import clerk FILE")
			case len(args) > 1:
				return usageError("unexpected argument %q", args[1])
			}
			return nil
		},
	}
	c.register(cmd)
	f.register(cmd)
	cmd.RunE = action(func(cmd *cobra.Command, args []string) error {
		return runImportClerk(cmd.Context(), &c, &f, args[0], resumeCommand(cmd.Flags(), args[0]), cmd.OutOrStdout(), cmd.ErrOrStderr())
	})
	return cmd
}

// runImportClerk is `syncd import clerk FILE`.
func runImportClerk(ctx context.Context, c *common, f *importFlags, file, resume string, stdout, stderr io.Writer) error {
	if f.dryRun && f.mapOnly {
		return usageError("--dry-run and --map-only: choose one")
	}
	format, _ := legacy.ParseFormat(f.format) // checked when parsed
	cfg := legacy.Config{
		OrgName: f.orgName, OwnerRole: f.ownerRole, ExpertOrgType: f.expertType, PersonalOrgType: f.personalType,
		Concurrency: f.concurrency, MapOnly: f.mapOnly,
	}
	if err := cfg.Check(); err != nil {
		return usageError("%v", err)
	}
	api := workosapi.Config{APIKey: env("WORKOS_API_KEY", ""), BaseURL: env("WORKOS_API_URL", ""), MaxInFlight: max(workosapi.MaxInFlightDefault, 2*f.concurrency)}
	if !f.dryRun {
		if api.APIKey == "" {
			return usageError("WORKOS_API_KEY is not set")
		}
		if err := api.Check(); err != nil {
			return usageError("%v", err)
		}
	}
	in, err := os.Open(file)
	if err != nil {
		return usageError("%v", err)
	}
	export, err := legacy.Read(in, format)
	in.Close()
	if err != nil {
		if errors.Is(err, legacy.ErrFile) {
			return usageError("%s: %v", file, err)
		}
		return err
	}
	log := c.logger(stderr)
	if c.databaseURL == "" && !f.dryRun {
		return usageError("DATABASE_URL is not set (or pass --database-url): legacy_user_map lives there")
	}
	if f.legacyURL != "" {
		ldb, err := legacy.OpenLegacyDB(ctx, f.legacyURL, f.legacyTable)
		if err != nil {
			return fmt.Errorf("--legacy-database-url: %s", redact.Error(err))
		}
		defer ldb.Close()
		cfg.Links = ldb
	}
	fmt.Fprintf(stdout, "%s (%s): %d users to import, %d bad rows\n", file, export.Format, len(export.Users), len(export.Bad))
	printBadRows(stdout, export.Bad)

	if f.dryRun && c.databaseURL == "" {
		fmt.Fprintln(stdout, "dry run: legacy_user_map not read (DATABASE_URL is not set); nothing written")
		return badRowsErr(export)
	}
	pool, err := c.pool(ctx)
	if err != nil {
		return err
	}
	defer pool.Close()
	cfg.Logger = log
	var client *workosapi.Client
	if !f.dryRun {
		if client, err = workosapi.New(api); err != nil {
			return usageError("%v", err)
		}
	}
	line := newProgressLine(stderr, f.noProgress)
	cfg.OnProgress = importProgress(line, stderr, f.noProgress)
	im, err := legacy.New(cfg, pool, client)
	if err != nil {
		return usageError("%v", err)
	}
	if f.dryRun {
		p, err := im.Plan(ctx, export)
		if err != nil {
			return err
		}
		printPlan(stdout, p, cfg, f.legacyURL != "")
		return badRowsErr(export)
	}
	if f.legacyURL == "" && !f.mapOnly {
		log.Warn("no --legacy-database-url: every personal organization gets type " + f.personalType + " (experts are recognised by their legacy Stripe Connect account)")
	}
	s, err := im.Run(ctx, export)
	line.done()
	printSummary(stdout, s, f.mapOnly)
	switch {
	case errors.Is(err, legacy.ErrBusy):
		return err
	case err != nil:
		return fmt.Errorf("%w\n%d users not reached; what was done is recorded: resume with: %s", err, s.NotReached, resume)
	case s.Failed > 0:
		return fmt.Errorf("%d users failed (listed above); run the same command again to retry them: %s", s.Failed, resume)
	}
	return badRowsErr(export)
}

// resumeCommand is the command that takes up this import where it
// stopped: the flags given on the command line, the file. Database URLs
// are left out (their passwords have no place in a log) and said to be
// needed as before; the environment is the same.
func resumeCommand(flags *pflag.FlagSet, file string) string {
	parts := []string{"syncd import clerk"}
	urls := false
	flags.Visit(func(fl *pflag.Flag) {
		switch {
		case strings.HasSuffix(fl.Name, "url"):
			urls = true
		case fl.Value.Type() == "bool":
			parts = append(parts, "--"+fl.Name+"="+fl.Value.String())
		default:
			parts = append(parts, "--"+fl.Name, shellQuote(fl.Value.String()))
		}
	})
	cmd := strings.Join(append(parts, shellQuote(file)), " ")
	if urls {
		cmd += " (and the database URLs given before)"
	}
	return cmd
}

// shellQuote quotes s for a POSIX shell unless it is plain.
func shellQuote(s string) string {
	if s != "" && strings.IndexFunc(s, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("-_./:=@,+", r))
	}) < 0 {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// importProgress draws the bar on a terminal, else logs a line per 1,000
// users.
func importProgress(line *progressLine, stderr io.Writer, noProgress bool) func(done, total int) {
	if line.on {
		return line.count("import")
	}
	var mu sync.Mutex
	return func(done, total int) {
		if noProgress || (done%1000 != 0 && done != total) {
			return
		}
		mu.Lock()
		defer mu.Unlock()
		fmt.Fprintf(stderr, "import: %d/%d users\n", done, total)
	}
}

func badRowsErr(f legacy.File) error {
	if len(f.Bad) > 0 {
		return fmt.Errorf("%d rows of the file were not imported (listed above with their line numbers)", len(f.Bad))
	}
	return nil
}

func printBadRows(w io.Writer, bad []legacy.BadRow) {
	if len(bad) == 0 {
		return
	}
	fmt.Fprintln(w, "bad rows (skipped):")
	for _, b := range bad {
		fmt.Fprintln(w, "  "+b.String())
	}
}

func printPlan(w io.Writer, p legacy.Plan, cfg legacy.Config, legacyRead bool) {
	fmt.Fprintf(w, "dry run: nothing written\n  %d new users: a WorkOS user (external id = Clerk id), a personal organization named %q, an %s membership\n",
		p.New, cfg.OrgName, cfg.OwnerRole)
	fmt.Fprintf(w, "  %d to resume (an earlier run did not finish them)\n  %d already imported (skipped)\n", p.Resume, p.Done)
	if legacyRead {
		fmt.Fprintf(w, "  organization type: %d %s (legacy Stripe Connect account), %d %s\n", p.Experts, cfg.ExpertOrgType, p.New+p.Resume-p.Experts, cfg.PersonalOrgType)
	} else {
		fmt.Fprintf(w, "  organization type: %s for all (no --legacy-database-url)\n", cfg.PersonalOrgType)
	}
	fmt.Fprintf(w, "  passwords: %d bcrypt hashes imported%s\n", p.PasswordsImported, leftOut(p.PasswordsLeftOut))
	if line := skipped(p.Skipped); line != "" {
		fmt.Fprintln(w, "  skipped: "+line)
	}
}

func printSummary(w io.Writer, s legacy.Summary, mapOnly bool) {
	if mapOnly {
		fmt.Fprintf(w, "map only: %d mapped, %d missing in WorkOS, %d failed", s.Mapped, s.Missing, s.Failed)
	} else {
		fmt.Fprintf(w, "import: %d created, %d adopted, %d failed", s.Created, s.Adopted, s.Failed)
	}
	if s.NotReached > 0 {
		fmt.Fprintf(w, ", %d not reached", s.NotReached)
	}
	fmt.Fprintln(w)
	if line := skipped(s.Skipped); line != "" {
		fmt.Fprintln(w, "  skipped: "+line)
	}
	if !mapOnly {
		fmt.Fprintf(w, "  passwords: %d bcrypt hashes imported%s\n", s.PasswordsImported, leftOut(s.PasswordsLeftOut))
		fmt.Fprintf(w, "  expert organizations: %d\n", s.Experts)
	}
	if len(s.Failures) > 0 {
		fmt.Fprintln(w, "failed:")
		for _, f := range s.Failures {
			retry := ""
			if f.Retryable {
				retry = " (WorkOS unavailable; retried next run)"
			}
			fmt.Fprintf(w, "  line %d (%s): %s%s\n", f.Line, f.ClerkID, f.Err, retry)
		}
	}
}

func skipped(m map[string]int) string {
	keys := make([]string, 0, len(m))
	for k, n := range m {
		if n > 0 {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s %d", k, m[k])
	}
	return strings.Join(parts, ", ")
}

func leftOut(m map[string]int) string {
	if line := skipped(m); line != "" {
		return "; not imported (the user signs in another way or resets it): " + line
	}
	return ""
}

func importMapCommand() *cobra.Command {
	var c common
	var asJSON, asCSV bool
	cmd := &cobra.Command{Use: "map --json|--csv", Short: "print legacy_user_map for the app's data migration", Args: noArgs}
	c.register(cmd)
	d := declare(cmd)
	d.Bool(&asJSON, "json", "", false, "print a JSON array")
	d.Bool(&asCSV, "csv", "", false, "print CSV with a header")
	cmd.RunE = action(func(cmd *cobra.Command, _ []string) error {
		if asJSON == asCSV {
			return usageError("choose one of --json and --csv")
		}
		format := legacy.FormatJSON
		if asCSV {
			format = legacy.FormatCSV
		}
		ctx := cmd.Context()
		pool, err := c.pool(ctx)
		if err != nil {
			return err
		}
		defer pool.Close()
		_, err = legacy.WriteMap(ctx, pool, cmd.OutOrStdout(), format)
		return err
	})
	return cmd
}

func importVerifyCommand() *cobra.Command {
	var c common
	var ownerRole string
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "verify [--json]",
		Short: "check every mapped user reached Postgres with its personal organization and owner membership",
		Args:  noArgs,
	}
	c.register(cmd)
	d := declare(cmd)
	d.String(&ownerRole, "owner-role", "SYNCD_PROVISION_OWNER_ROLE", provision.OwnerRoleDefault, "role slug of the owner membership", fieldCheck(provision.Config{}, func(c *provision.Config, v string) { c.OwnerRole = v }))
	d.Bool(&asJSON, "json", "", false, "print JSON: the rows checked and those that do not resolve")
	cmd.RunE = action(func(cmd *cobra.Command, _ []string) error {
		return runImportVerify(cmd.Context(), &c, ownerRole, asJSON, cmd.OutOrStdout())
	})
	return cmd
}

// verifyJSON is the --json form of import verify.
type verifyJSON struct {
	Rows     int           `json:"rows"`
	Problems []problemJSON `json:"problems"`
}

type problemJSON struct {
	ClerkUserID  string   `json:"clerk_user_id"`
	WorkOSUserID string   `json:"workos_user_id"`
	WorkOSOrgID  string   `json:"workos_org_id"`
	Missing      []string `json:"missing"`
}

func runImportVerify(ctx context.Context, c *common, ownerRole string, asJSON bool, stdout io.Writer) error {
	pool, err := c.pool(ctx)
	if err != nil {
		return err
	}
	defer pool.Close()
	v, err := legacy.Verify(ctx, pool, ownerRole)
	if err != nil {
		return err
	}
	if asJSON {
		j := verifyJSON{Rows: v.Rows, Problems: []problemJSON{}}
		for _, p := range v.Problems {
			j.Problems = append(j.Problems, problemJSON{ClerkUserID: p.ClerkUserID, WorkOSUserID: p.WorkOSUserID, WorkOSOrgID: p.WorkOSOrgID, Missing: p.Missing})
		}
		if err := writeJSON(stdout, j); err != nil {
			return err
		}
	} else {
		for _, p := range v.Problems {
			fmt.Fprintln(stdout, p.String())
		}
	}
	if len(v.Problems) > 0 {
		return fmt.Errorf("%d of %d mapped users do not resolve in Postgres (listed above); if the import finished, wait for the webhooks or run syncd backfill workos", len(v.Problems), v.Rows)
	}
	if v.Rows == 0 {
		return errors.New("legacy_user_map is empty: nothing imported yet")
	}
	if !asJSON {
		fmt.Fprintf(stdout, "all %d mapped users resolve: user, personal organization and %s membership in Postgres\n", v.Rows, ownerRole)
	}
	return nil
}
