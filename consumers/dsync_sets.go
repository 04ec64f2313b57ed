package consumers

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/syncd/syncd/queries"
)

// The set-based apply of directory users and groups (see batch.go): per
// stage, the stubs of their directories in one statement, the directories'
// tombstones in one read, then per table one locked read and one
// multi-row upsert, folded with the rules of DirectoryUserUpsert and
// DirectoryGroupUpsert.
//
// Within a stage a directory's tombstone does not move under these rows:
// only dsync.deleted sets it, and it writes directory_users and
// directory_groups, so a user or group event after it starts a new stage
// (stage.admits) and one before it is applied before it, as in stream
// order.

var (
	directoryUserSet = &setRoute{add: func(s *sets, i int, ev Event) error {
		u, err := decodeDirectoryUser(ev)
		if err != nil {
			return err
		}
		s.dsync.users.add(u.ID, i, directoryUserRow{u.params(ev)}, nil)
		return nil
	}}
	directoryGroupSet = &setRoute{add: func(s *sets, i int, ev Event) error {
		g, err := decodeDirectoryGroup(ev)
		if err != nil {
			return err
		}
		s.dsync.groups.add(g.ID, i, directoryGroupRow{g.params(ev)}, nil)
		return nil
	}}
)

// directoryUserRow and directoryGroupRow are dsync.user.* and
// dsync.group.* events decoded. They link nothing.
type directoryUserRow struct {
	p queries.DirectoryUserUpsertParams
}

func (directoryUserRow) link(*linkSet) {}

type directoryGroupRow struct {
	p queries.DirectoryGroupUpsertParams
}

func (directoryGroupRow) link(*linkSet) {}

// directoryUserMany and directoryGroupMany are the rows the multi-row
// upserts take: the single-row upsert's parameters and the tombstone it
// reads from the directory.
type directoryUserMany struct {
	queries.DirectoryUserUpsertParams
	DeletedAt *time.Time
}

type directoryGroupMany struct {
	queries.DirectoryGroupUpsertParams
	DeletedAt *time.Time
}

// dsyncSets holds a stage's directory users and groups.
type dsyncSets struct {
	users  keyed[directoryUserRow]
	groups keyed[directoryGroupRow]
}

func (d *dsyncSets) empty() bool { return len(d.users.rows)+len(d.groups.rows) == 0 }

// stubs are the directories of the stage's users and groups, in key
// order, each with the organization the first of its events that names
// one names: what ensureDirectory, event after event, leaves on a stub.
func (d *dsyncSets) stubs() []queries.DirectoryEnsureStubParams {
	stubs := map[string]queries.DirectoryEnsureStubParams{}
	named := map[string]int{} // the event the organization comes from
	note := func(i int, dir string, org *string) {
		p, ok := stubs[dir]
		if !ok {
			p.WorkosDirectoryID = dir
		}
		if org != nil && (p.WorkosOrgID == nil || i < named[dir]) {
			p.WorkosOrgID, named[dir] = org, i
		}
		stubs[dir] = p
	}
	for _, rows := range d.users.rows {
		for _, row := range rows {
			note(row.i, row.r.p.WorkosDirectoryID, row.r.p.WorkosOrgID)
		}
	}
	for _, rows := range d.groups.rows {
		for _, row := range rows {
			note(row.i, row.r.p.WorkosDirectoryID, row.r.p.WorkosOrgID)
		}
	}
	out := make([]queries.DirectoryEnsureStubParams, 0, len(stubs))
	for _, dir := range slices.Sorted(maps.Keys(stubs)) {
		out = append(out, stubs[dir])
	}
	return out
}

func (s *sets) applyDsync(ctx context.Context, q *queries.Queries, db queries.DBTX, links *linkSet, set setOutcome) error {
	d := &s.dsync
	if d.empty() {
		return nil
	}
	stubs := d.stubs()
	b, err := rowsJSON(stubs)
	if err != nil {
		return fmt.Errorf("encode directory stubs: %w", err)
	}
	if err := q.DirectoryEnsureStubMany(ctx, db, b); err != nil {
		return fmt.Errorf("directory stubs: %w", err)
	}
	ids := make([]string, len(stubs))
	for i, st := range stubs {
		ids[i] = st.WorkosDirectoryID
	}
	read, err := q.DirectoryDeletedAtMany(ctx, db, ids)
	if err != nil {
		return fmt.Errorf("directory tombstones: %w", err)
	}
	deleted := make(map[string]*time.Time, len(read))
	for _, r := range read {
		deleted[r.WorkosDirectoryID] = r.DeletedAt
	}
	err = applyDirectoryRows(ctx, TableDirectoryUsers, &d.users, links, set, deleted,
		func(keys []string) (map[string]*workosStored, error) {
			locked, err := q.DirectoryUserLockMany(ctx, db, keys)
			stored := make(map[string]*workosStored, len(locked))
			for _, r := range locked {
				stored[r.WorkosDirectoryUserID] = directoryStored(r.WorkosUpdatedAt, r.IsStub)
			}
			return stored, err
		},
		func(r directoryUserRow) (time.Time, string) { return *r.p.WorkosUpdatedAt, r.p.WorkosDirectoryID },
		func(r directoryUserRow, del *time.Time) directoryUserMany { return directoryUserMany{r.p, del} },
		func(b json.RawMessage) ([]string, error) { return q.DirectoryUserUpsertMany(ctx, db, b) })
	if err != nil {
		return err
	}
	return applyDirectoryRows(ctx, TableDirectoryGroups, &d.groups, links, set, deleted,
		func(keys []string) (map[string]*workosStored, error) {
			locked, err := q.DirectoryGroupLockMany(ctx, db, keys)
			stored := make(map[string]*workosStored, len(locked))
			for _, r := range locked {
				stored[r.WorkosDirectoryGroupID] = directoryStored(r.WorkosUpdatedAt, r.IsStub)
			}
			return stored, err
		},
		func(r directoryGroupRow) (time.Time, string) { return *r.p.WorkosUpdatedAt, r.p.WorkosDirectoryID },
		func(r directoryGroupRow, del *time.Time) directoryGroupMany { return directoryGroupMany{r.p, del} },
		func(b json.RawMessage) ([]string, error) { return q.DirectoryGroupUpsertMany(ctx, db, b) })
}

// directoryStored is a stored directory user's or group's version for
// foldWorkOS: a stub is filled whatever its version, as a row without one.
func directoryStored(v *time.Time, stub bool) *workosStored {
	if stub {
		return &workosStored{}
	}
	return &workosStored{v: v}
}

// applyDirectoryRows folds and writes one table's directory rows: at gives
// an event's version and directory, final the row a key's events end in
// with its tombstone. Every event written takes its directory's tombstone
// (the upsert's LEAST(stored, directory's)), so the row ends with the
// earliest of theirs.
func applyDirectoryRows[R interface{ link(*linkSet) }, P any](
	ctx context.Context, table Table, k *keyed[R], links *linkSet, set setOutcome, deleted map[string]*time.Time,
	lock func(keys []string) (map[string]*workosStored, error),
	at func(R) (time.Time, string),
	final func(R, *time.Time) P,
	write func(json.RawMessage) ([]string, error),
) error {
	return applyKeyed(ctx, table, k, links, set, lock,
		func(stored *workosStored, rows []keyedRow[R]) fold {
			return foldWorkOS(stored, len(rows), func(j int) time.Time { v, _ := at(rows[j].r); return v })
		},
		func(rows []keyedRow[R], f fold) P {
			var del *time.Time
			for j, row := range rows {
				if _, dir := at(row.r); f.applied[j] && deleted[dir] != nil && (del == nil || deleted[dir].Before(*del)) {
					del = deleted[dir]
				}
			}
			return final(rows[f.newest].r, del)
		}, write)
}
