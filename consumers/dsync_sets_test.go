package consumers_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/syncd/syncd/consumers"
	"github.com/syncd/syncd/syncdtest"
)

// statementNames records the sqlc name of every statement a pool sends,
// alone or in a pipelined batch.
type statementNames struct {
	mu    sync.Mutex
	count map[string]int
}

func (s *statementNames) note(sql string) {
	name, ok := strings.CutPrefix(sql, "-- name: ")
	if !ok {
		return
	}
	name, _, _ = strings.Cut(name, " ")
	s.mu.Lock()
	s.count[name]++
	s.mu.Unlock()
}

func (s *statementNames) TraceQueryStart(ctx context.Context, _ *pgx.Conn, d pgx.TraceQueryStartData) context.Context {
	s.note(d.SQL)
	return ctx
}
func (s *statementNames) TraceQueryEnd(context.Context, *pgx.Conn, pgx.TraceQueryEndData) {}
func (s *statementNames) TraceBatchStart(ctx context.Context, _ *pgx.Conn, _ pgx.TraceBatchStartData) context.Context {
	return ctx
}
func (s *statementNames) TraceBatchQuery(_ context.Context, _ *pgx.Conn, d pgx.TraceBatchQueryData) {
	s.note(d.SQL)
}
func (s *statementNames) TraceBatchEnd(context.Context, *pgx.Conn, pgx.TraceBatchEndData) {}

func (s *statementNames) reset() map[string]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.count
	s.count = map[string]int{}
	return c
}

// TestDsyncUpsertsAreSetBased: a batch of directory user and group
// creates and updates is applied set-based — one stub statement for its
// directories, one multi-row upsert per table, no per-event statement —
// with the outcomes and rows of the per-event path: a stub filled whatever
// its version, a tie won by the later event, a stale update, a user first
// seen under its deleted directory stored deleted (and staying so when it
// moves), a new directory's stub keeping the first organization named. A
// directory stub made by a per-event delete before them keeps its order.
func TestDsyncUpsertsAreSetBased(t *testing.T) {
	t.Parallel()
	cfg, err := pgxpool.ParseConfig(syncdtest.DatabaseURL(t))
	if err != nil {
		t.Fatal(err)
	}
	names := &statementNames{}
	cfg.ConnConfig.Tracer = names
	batched, err := pgxpool.NewWithConfig(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(batched.Close)
	single := syncdtest.DB(t)
	a, ref := applier(t, batched, nil), applier(t, single, nil)
	ctx := context.Background()
	n := 0
	ev := func(typ string, sec int, data map[string]any) consumers.Event {
		n++
		return decoded(t, "workos", dsyncEvent(fmt.Sprintf("evt_ds_%02d", n), typ, sec, data))
	}
	const dA, dB, dC, dD = "dir_ds_a", "dir_ds_b", "dir_ds_c", "dir_ds_d"
	apply := func(evs []consumers.Event, want []consumers.Outcome) map[string]int {
		t.Helper()
		names.reset()
		got, failed, err := a.ApplyBatchedOnly(ctx, evs)
		if err != nil || failed {
			t.Fatalf("batched: failed %v, %v", failed, err)
		}
		statements := names.reset()
		ev, err := ref.ApplyEventByEvent(ctx, evs)
		if err != nil {
			t.Fatal(err)
		}
		for i := range evs {
			w := ev[i].Outcome
			if want != nil {
				w = want[i]
			}
			if got[i].Err != nil || got[i].Outcome != ev[i].Outcome || got[i].Outcome != w {
				t.Fatalf("%s %s: batched %q %v, event by event %q, want %q", evs[i].Envelope.ID, evs[i].Envelope.Type, got[i].Outcome, got[i].Err, ev[i].Outcome, w)
			}
		}
		if g, w := dump(t, batched), dump(t, single); g != w {
			t.Fatalf("rows differ (batched, then event by event):\n%s", firstDiff(g, w))
		}
		return statements
	}

	snap := dsyncUserData("du_ds_s", dB, "org_ds_b", "Snap", "active", 30)
	apply([]consumers.Event{
		ev("dsync.activated", 1, dsyncDirectoryData(dA, "org_ds_a", "active", 1)),
		ev("dsync.activated", 1, dsyncDirectoryData(dB, "org_ds_b", "active", 1)),
		ev("dsync.deleted", 5, dsyncDirectoryData(dA, "org_ds_a", "deleting", 5)),
		// Stubs of a user and a group, holding newer snapshots than their
		// own events below.
		ev("dsync.group.user_added", 30, dsyncMemberData(dB, snap, dsyncGroupData("dg_ds_s", dB, "org_ds_b", "Snap", 30))),
	}, nil)

	noOrg := dsyncGroupData("dg_ds_c", dC, "", "C", 2)
	noOrg["organization_id"] = nil
	A, S := consumers.Applied, consumers.Stale
	statements := apply([]consumers.Event{
		ev("dsync.user.created", 6, dsyncUserData("du_ds_1", dA, "org_ds_a", "Ann", "active", 6)),
		ev("dsync.user.updated", 7, dsyncUserData("du_ds_1", dB, "org_ds_b", "Anna", "active", 7)),
		ev("dsync.user.updated", 7, dsyncUserData("du_ds_1", dB, "org_ds_b", "Anne", "active", 7)),
		ev("dsync.user.updated", 3, dsyncUserData("du_ds_1", dB, "org_ds_b", "Old", "active", 3)),
		ev("dsync.user.created", 1, dsyncUserData("du_ds_s", dB, "org_ds_b", "Sam", "active", 1)),
		ev("dsync.user.updated", 1, dsyncUserData("du_ds_s", dB, "org_ds_b", "Older", "active", 0)),
		ev("dsync.group.created", 2, noOrg),
		ev("dsync.user.created", 2, dsyncUserData("du_ds_c", dC, "org_ds_c", "Cy", "active", 2)),
		ev("dsync.group.updated", 3, dsyncGroupData("dg_ds_c", dC, "org_ds_x", "C2", 3)),
		ev("dsync.group.updated", 1, dsyncGroupData("dg_ds_s", dB, "org_ds_b", "Support", 1)),
	}, []consumers.Outcome{A, A, A, S, A, S, A, A, A, A})
	for name, want := range map[string]int{
		"DirectoryEnsureStubMany": 1, "DirectoryUserUpsertMany": 1, "DirectoryGroupUpsertMany": 1,
		"DirectoryEnsureStub": 0, "DirectoryUserUpsert": 0, "DirectoryGroupUpsert": 0,
	} {
		if statements[name] != want {
			t.Errorf("%s ran %d times, want %d (statements %v)", name, statements[name], want, statements)
		}
	}
	if u := directoryUser(t, batched, "du_ds_1"); str(u.FirstName) != "Anne" || u.WorkosDirectoryID != dB || !sameTime(u.DeletedAt, sec(5)) {
		t.Errorf("user under a deleted directory, then moved: %+v", u)
	}
	if u := directoryUser(t, batched, "du_ds_s"); u.IsStub || str(u.FirstName) != "Sam" {
		t.Errorf("user stub not filled by its own older event: %+v", u)
	}
	if g := directoryGroup(t, batched, "dg_ds_s"); g.IsStub || str(g.Name) != "Support" {
		t.Errorf("group stub not filled by its own older event: %+v", g)
	}
	if d := directory(t, batched, dC); !d.IsStub || str(d.WorkosOrgID) != "org_ds_c" {
		t.Errorf("new directory's stub: %+v, want the first organization named", d)
	}

	// A per-event delete stubs the directory before a set-based group
	// names it: the delete's organization stays.
	apply([]consumers.Event{
		ev("dsync.user.deleted", 4, dsyncUserData("du_ds_d", dD, "org_ds_d", "Dee", "inactive", 4)),
		ev("dsync.group.created", 4, dsyncGroupData("dg_ds_d", dD, "org_ds_y", "D", 4)),
	}, []consumers.Outcome{A, A})
	if d := directory(t, batched, dD); str(d.WorkosOrgID) != "org_ds_d" {
		t.Errorf("directory stubbed by a delete, then a group: %+v", d)
	}
}
