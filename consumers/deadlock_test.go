package consumers_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/url"
	"strings"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/syncd/syncd/consumers"
	"github.com/syncd/syncd/syncdtest"
)

// Two workers' batches that meet on organizations — one's organization
// events and members, the other's members of the same organizations, in
// whatever order the batches hold them — wait for each other instead of
// deadlocking: Postgres counts no deadlock in the database.
func TestWorkersSharingOrganizationsDoNotDeadlock(t *testing.T) {
	t.Parallel()
	dbURL := syncdtest.DatabaseURL(t)
	ctx := context.Background()
	u, err := url.Parse(dbURL)
	if err != nil {
		t.Fatal(err)
	}
	db := strings.TrimPrefix(u.Path, "/")
	admin, err := pgx.Connect(ctx, syncdtest.AdminURL())
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close(ctx)
	// A deadlock, should there be one, is found at once rather than after
	// a second each.
	if _, err := admin.Exec(ctx, "ALTER DATABASE "+pgx.Identifier{db}.Sanitize()+" SET deadlock_timeout = '20ms'"); err != nil {
		t.Fatal(err)
	}
	pool, err := pgxpool.New(ctx, dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	c, err := consumers.New(consumers.Config{}, pool, nil)
	if err != nil {
		t.Fatal(err)
	}
	deadlocks := func() int64 {
		var n int64
		if err := admin.QueryRow(ctx, "SELECT deadlocks FROM pg_stat_database WHERE datname = $1", db).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	before := deadlocks()
	rng := rand.New(rand.NewPCG(7, 11))
	const rounds, orgs = 60, 8
	for r := range rounds {
		org := func(i int) string { return fmt.Sprintf("org_dl%d_%d", r, i) }
		var batches [2][]consumers.Event
		for w := range batches {
			for i := range orgs {
				user := fmt.Sprintf("user_dl%d_%d_%d", r, w, i)
				batches[w] = append(batches[w], workosEvent(t, "e_m_"+user, "organization_membership.created",
					membershipData("om_"+user, user, org(i), "member", "active", 1)))
				if i%2 == w {
					batches[w] = append(batches[w], workosEvent(t, fmt.Sprintf("e_o_%s_%d", org(i), w), "organization.created", orgData(org(i), "Org", 1)))
				}
			}
			rng.Shuffle(len(batches[w]), func(i, j int) { batches[w][i], batches[w][j] = batches[w][j], batches[w][i] })
		}
		var wg sync.WaitGroup
		for w := range batches {
			wg.Go(func() {
				res, err := c.Apply(ctx, batches[w])
				if err != nil {
					t.Errorf("round %d worker %d: %v", r, w, err)
					return
				}
				for i, x := range res {
					if x.Err != nil {
						t.Errorf("round %d worker %d event %d: %v", r, w, i, x.Err)
					}
				}
			})
		}
		wg.Wait()
	}
	if n := deadlocks() - before; n != 0 {
		t.Errorf("%d deadlocks between the workers in %d rounds", n, rounds)
	}
}
