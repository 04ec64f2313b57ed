package legacy

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/syncd/syncd/provision"
	"github.com/syncd/syncd/queries"
	"github.com/syncd/syncd/workosapi"
)

// Outcomes of a legacy_user_map row.
const (
	OutcomeInProgress = "in_progress"
	OutcomeCreated    = "created"
	OutcomeAdopted    = "adopted"
	OutcomeMapped     = "mapped"
	OutcomeMissing    = "missing"
	OutcomeFailed     = "failed"
)

// Complete reports an outcome a run leaves alone.
func Complete(outcome string) bool {
	return outcome == OutcomeCreated || outcome == OutcomeAdopted || outcome == OutcomeMapped
}

// ReasonAlreadyImported counts the users a run skips because their row is
// complete.
const ReasonAlreadyImported = "already imported"

// Defaults and bounds of Config.
const (
	ConcurrencyDefault = 4
	ConcurrencyMax     = 32
	// ExpertOrgTypeDefault is the personal organization's type for a
	// legacy user with a Stripe Connect account (an expert who is paid).
	ExpertOrgTypeDefault = "expert_individual"
	// PersonalOrgTypeDefault is everyone else's.
	PersonalOrgTypeDefault = "patient_personal"
)

// LinkSource gives the legacy Stripe links by Clerk id (LegacyDB).
type LinkSource interface {
	Links(ctx context.Context, clerkIDs []string) (map[string]StripeLinks, error)
}

// Config configures an Importer.
type Config struct {
	// OrgName is the personal organization's name template, as
	// provisioning's (provision.OrgNameDefault).
	OrgName string
	// OwnerRole is the membership's role slug (provision.OwnerRoleDefault).
	OwnerRole string
	// ExpertOrgType and PersonalOrgType go into a created organization's
	// metadata "type".
	ExpertOrgType, PersonalOrgType string
	// PersonalTypes make an adopted user's existing organization its
	// personal one (provision.PersonalTypesDefault).
	PersonalTypes []string
	// Concurrency is how many users are imported at once.
	Concurrency int
	// MapOnly fills the map from what exists in WorkOS, writing nothing
	// there.
	MapOnly bool
	// Links, when set, is read once per run for every user's Stripe links.
	Links  LinkSource
	Logger *slog.Logger
	// OnProgress is called after each user with how many of the file's
	// users are settled.
	OnProgress func(done, total int)
}

func (c Config) withDefaults() Config {
	if c.OrgName == "" {
		c.OrgName = provision.OrgNameDefault
	}
	if c.OwnerRole == "" {
		c.OwnerRole = provision.OwnerRoleDefault
	}
	if c.ExpertOrgType == "" {
		c.ExpertOrgType = ExpertOrgTypeDefault
	}
	if c.PersonalOrgType == "" {
		c.PersonalOrgType = PersonalOrgTypeDefault
	}
	if c.PersonalTypes == nil {
		c.PersonalTypes = provision.PersonalTypesDefault
	}
	if c.Concurrency == 0 {
		c.Concurrency = ConcurrencyDefault
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.OnProgress == nil {
		c.OnProgress = func(int, int) {}
	}
	return c
}

func (c Config) validate() error {
	// The naming rules are provisioning's: check them there.
	if err := (provision.Config{OrgName: c.OrgName, OwnerRole: c.OwnerRole}).Check(); err != nil {
		return fmt.Errorf("legacy: %w", err)
	}
	switch {
	case c.Concurrency < 1 || c.Concurrency > ConcurrencyMax:
		return fmt.Errorf("legacy: Concurrency %d outside 1..%d", c.Concurrency, ConcurrencyMax)
	case strings.TrimSpace(c.ExpertOrgType) == "" || strings.TrimSpace(c.PersonalOrgType) == "":
		return errors.New("legacy: organization types must not be blank")
	}
	return nil
}

// Check reports what New would reject in cfg.
func (c Config) Check() error { return c.withDefaults().validate() }

// Importer imports Clerk users into WorkOS and keeps legacy_user_map.
type Importer struct {
	cfg  Config
	pool *pgxpool.Pool
	api  *workosapi.Client
	q    *queries.Queries
	// afterStep, when set (tests), runs after each step's result is
	// stored.
	afterStep func(clerkID, step string)
}

// New builds an Importer. api may be nil for Plan.
func New(cfg Config, pool *pgxpool.Pool, api *workosapi.Client) (*Importer, error) {
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	if pool == nil {
		return nil, errors.New("legacy: no Postgres pool")
	}
	return &Importer{cfg: cfg, pool: pool, api: api, q: queries.New()}, nil
}

// ErrBusy means another import holds the lock.
var ErrBusy = errors.New("another syncd import is running against this database")

// Failure is a user the run could not import.
type Failure struct {
	Line    int
	ClerkID string
	Err     string
	// Retryable failures (WorkOS unavailable, rate limited past the
	// retries) leave the row in_progress; the others mark it failed.
	// Both are tried again by the next run.
	Retryable bool
}

// Summary is what a run did.
type Summary struct {
	// Users are the importable rows of the file.
	Users            int
	Created, Adopted int
	Mapped, Missing  int
	Failed           int
	Failures         []Failure
	// Skipped counts the rows not imported, by reason: ReasonAlreadyImported
	// and the bad rows' reasons.
	Skipped map[string]int
	// NotReached are the users the run did not settle because it was
	// stopped; the next run picks them up.
	NotReached int
	// Experts got an ExpertOrgType organization.
	Experts           int
	PasswordsImported int
	// PasswordsLeftOut counts the passwords not imported, by hasher.
	PasswordsLeftOut map[string]int
}

// Plan is what a run would do (--dry-run): nothing is written anywhere.
type Plan struct {
	Users int
	// New have no map row, Resume an incomplete one, Done a complete one.
	New, Resume, Done int
	Experts           int
	PasswordsImported int
	PasswordsLeftOut  map[string]int
	Skipped           map[string]int
}

// Plan reads the map and the legacy links and says what Run would do.
func (im *Importer) Plan(ctx context.Context, f File) (Plan, error) {
	p := Plan{Users: len(f.Users), PasswordsLeftOut: map[string]int{}, Skipped: badReasons(f.Bad)}
	rows, err := im.mapRows(ctx, f.Users)
	if err != nil {
		return p, err
	}
	links, err := im.links(ctx, f.Users)
	if err != nil {
		return p, err
	}
	for _, u := range f.Users {
		row, ok := rows[u.ClerkID]
		switch {
		case !ok:
			p.New++
		case Complete(row.Outcome):
			p.Done++
			continue
		default:
			p.Resume++
		}
		if links[u.ClerkID].ConnectAccountID != "" {
			p.Experts++
		}
		if why := u.passwordLeftOut(); why != "" {
			p.PasswordsLeftOut[why]++
		} else if u.bcrypt() {
			p.PasswordsImported++
		}
	}
	return p, nil
}

func badReasons(bad []BadRow) map[string]int {
	m := map[string]int{}
	for _, b := range bad {
		m[b.Reason]++
	}
	return m
}

// Run imports the file's users: those whose map row is complete are
// skipped, the others created, adopted or finished. Every user's failure
// is its own (reported in the summary, the rest carry on); the error is
// for what stops the whole run: the map unreachable, another import
// running, ctx done.
func (im *Importer) Run(ctx context.Context, f File) (Summary, error) {
	s := Summary{Users: len(f.Users), Skipped: badReasons(f.Bad), PasswordsLeftOut: map[string]int{}}
	if im.api == nil {
		return s, errors.New("legacy: Run needs a WorkOS client")
	}
	conn, err := im.pool.Acquire(ctx)
	if err != nil {
		return s, fmt.Errorf("lock connection: %w", err)
	}
	defer conn.Release()
	locked, err := im.q.LegacyUserMapLockTry(ctx, conn)
	if err != nil {
		return s, fmt.Errorf("import lock: %w", err)
	}
	if !locked {
		return s, ErrBusy
	}
	defer func() {
		uctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		if ok, err := im.q.LegacyUserMapUnlock(uctx, conn); err != nil || !ok {
			_ = conn.Conn().Close(uctx)
		}
	}()

	rows, err := im.mapRows(ctx, f.Users)
	if err != nil {
		return s, err
	}
	links, err := im.links(ctx, f.Users)
	if err != nil {
		return s, err
	}

	var mu sync.Mutex
	done, total := 0, len(f.Users)
	settle := func(fn func()) {
		mu.Lock()
		fn()
		done++
		d := done
		mu.Unlock()
		im.cfg.OnProgress(d, total)
	}
	work := make(chan task)
	var wg sync.WaitGroup
	for range im.cfg.Concurrency {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for t := range work {
				res := im.runTask(ctx, t)
				if res.interrupted {
					continue // counted in NotReached
				}
				settle(func() { s.add(t, res) })
			}
		}()
	}
feed:
	for _, u := range f.Users {
		row, ok := rows[u.ClerkID]
		if ok && Complete(row.Outcome) {
			settle(func() { s.Skipped[ReasonAlreadyImported]++ })
			continue
		}
		t := task{user: u, links: links[u.ClerkID]}
		if ok {
			t.row = row
		} else {
			t.row = queries.LegacyUserMap{ClerkUserID: u.ClerkID, Email: u.Email}
		}
		select {
		case work <- t:
		case <-ctx.Done():
			break feed
		}
	}
	close(work)
	wg.Wait()
	mu.Lock()
	s.NotReached = total - done
	mu.Unlock()
	if ctx.Err() == nil {
		if _, err := im.q.LegacyUserMapOrgIDsResolve(ctx, im.pool); err != nil {
			im.cfg.Logger.Warn("fill legacy_user_map.org_id", "err", err)
		}
	}
	return s, ctx.Err()
}

// add counts one settled user.
func (s *Summary) add(t task, r result) {
	switch r.outcome {
	case OutcomeCreated:
		s.Created++
	case OutcomeAdopted:
		s.Adopted++
	case OutcomeMapped:
		s.Mapped++
	case OutcomeMissing:
		s.Missing++
	default:
		s.Failed++
		s.Failures = append(s.Failures, Failure{Line: t.user.Line, ClerkID: t.user.ClerkID, Err: r.err.Error(), Retryable: r.outcome == OutcomeInProgress})
		return
	}
	if r.expert {
		s.Experts++
	}
	if r.password {
		s.PasswordsImported++
	}
	if r.passwordLeftOut != "" {
		s.PasswordsLeftOut[r.passwordLeftOut]++
	}
}

// mapChunk bounds the ids of one map lookup.
const mapChunk = 10000

func (im *Importer) mapRows(ctx context.Context, users []User) (map[string]queries.LegacyUserMap, error) {
	out := make(map[string]queries.LegacyUserMap, len(users))
	ids := clerkIDs(users)
	for start := 0; start < len(ids); start += mapChunk {
		rows, err := im.q.LegacyUserMapListByClerkIDs(ctx, im.pool, ids[start:min(start+mapChunk, len(ids))])
		if err != nil {
			return nil, fmt.Errorf("read legacy_user_map: %w", err)
		}
		for _, r := range rows {
			out[r.ClerkUserID] = r
		}
	}
	return out, nil
}

func (im *Importer) links(ctx context.Context, users []User) (map[string]StripeLinks, error) {
	if im.cfg.Links == nil {
		return map[string]StripeLinks{}, nil
	}
	return im.cfg.Links.Links(ctx, clerkIDs(users))
}

func clerkIDs(users []User) []string {
	ids := make([]string, len(users))
	for i, u := range users {
		ids[i] = u.ClerkID
	}
	return ids
}
