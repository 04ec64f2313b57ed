package consumers_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/syncd/syncd/consumers"
	"github.com/syncd/syncd/syncdtest"
)

type timer struct {
	mu sync.Mutex
	d  map[string]time.Duration
	n  map[string]int
}
type key struct{}

func (r *timer) TraceQueryStart(ctx context.Context, _ *pgx.Conn, d pgx.TraceQueryStartData) context.Context {
	name := strings.SplitN(d.SQL, "\n", 2)[0]
	return context.WithValue(ctx, key{}, [2]any{name, time.Now()})
}
func (r *timer) TraceQueryEnd(ctx context.Context, _ *pgx.Conn, d pgx.TraceQueryEndData) {
	v := ctx.Value(key{}).([2]any)
	r.mu.Lock()
	r.d[v[0].(string)] += time.Since(v[1].(time.Time))
	r.n[v[0].(string)]++
	r.mu.Unlock()
}

func TestZZProf(t *testing.T) {
	if os.Getenv("ZZPROF") == "" {
		t.Skip()
	}
	cfg, _ := pgxpool.ParseConfig(syncdtest.DatabaseURL(t))
	tr := &timer{d: map[string]time.Duration{}, n: map[string]int{}}
	cfg.ConnConfig.Tracer = tr
	pool, _ := pgxpool.NewWithConfig(context.Background(), cfg)
	a, _ := consumers.NewApplier(consumers.ApplierConfig{}, pool)
	rng := rand.New(rand.NewPCG(1, 2))
	var evs []consumers.Event
	pad := strings.Repeat("x", 560)
	for i := range 30000 {
		c := rng.IntN(5000)
		evs = append(evs, decoded(t, "stripe", stripeEventAt(fmt.Sprintf("evt_%d", i), "customer.updated", s0+int64(i/400), "2023-10-16",
			map[string]any{"id": fmt.Sprintf("cus_%d", c), "email": fmt.Sprintf("h%d@x.test", c), "description": pad, "metadata": map[string]any{"plan": "pro"}})))
	}
	start := time.Now()
	for i := 0; i < len(evs); i += 256 {
		if _, err := a.Apply(context.Background(), evs[i:min(i+256, len(evs))]); err != nil {
			t.Fatal(err)
		}
	}
	took := time.Since(start)
	fmt.Printf("%d events in %s: %.0f/s\n", len(evs), took, float64(len(evs))/took.Seconds())
	var names []string
	for k := range tr.d {
		names = append(names, k)
	}
	sort.Slice(names, func(i, j int) bool { return tr.d[names[i]] > tr.d[names[j]] })
	for _, k := range names {
		fmt.Printf("%8s %5d %s\n", tr.d[k].Round(time.Millisecond), tr.n[k], k)
	}
}
