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

// The set-based apply of organization memberships (see batch.go). A
// membership event does not only write its own row: WorkOS keeps one live
// membership per user and organization, so it supersedes the older live
// ones of its pair, or is born superseded by a newer one. The fold is
// therefore per pair, not per row: the batch's memberships and the live
// ones of its users are read, locked, in key order; each pair's events are
// replayed in stream order through MembershipSupersede and MembershipUpsert
// in Go; then one statement tombstones the stored rows that were
// superseded and one writes every membership an event wrote, in the state
// the batch leaves it.

var membershipSet = &setRoute{add: func(s *sets, i int, ev Event) error {
	r, err := decodeMembership(ev)
	s.memberships.add(r.p.WorkosUserID+"\x00"+r.p.WorkosOrgID, i, r, err)
	return err
}}

// membershipRow is a membership event's MembershipUpsert.
type membershipRow struct {
	p queries.MembershipUpsertParams
}

func decodeMembership(ev Event) (membershipRow, error) {
	var m workosMembership
	if err := decodeData(ev, &m); err != nil {
		return membershipRow{}, err
	}
	if err := m.validate(ev); err != nil {
		return membershipRow{}, err
	}
	return membershipRow{m.upsert(version(ev, m.UpdatedAt), eventTime(ev))}, nil
}

func (r membershipRow) link(l *linkSet) { linkMembership(l, r.p.WorkosUserID) }

// membershipState is a membership as the fold has it so far.
type membershipState struct {
	id, user, org string
	stored        bool       // the row existed before the batch
	storedLive    bool       // and was live
	v, deleted    *time.Time // workos_updated_at, deleted_at (µs)
	// final is the newest written event's row; nil: none written.
	final *queries.MembershipUpsertParams
}

// membershipWrite is a user_org_memberships row for MembershipUpsertMany
// and MembershipSupersedeMany (JSON keys are its columns, rowsJSON).
type membershipWrite struct {
	WorkosOrgMembershipID string
	WorkosUserID          string
	WorkosOrgID           string
	Role                  *string
	Roles                 []string
	Status                *string
	DirectoryManaged      bool
	WorkosCreatedAt       *time.Time
	WorkosUpdatedAt       *time.Time
	DeletedAt             *time.Time
}

func (s *sets) applyMemberships(ctx context.Context, q *queries.Queries, db queries.DBTX, links *linkSet, set setOutcome) error {
	if len(s.memberships.rows) == 0 {
		return nil
	}
	pairs := s.memberships.keys()
	var users, orgs, ids []string
	for _, pair := range pairs {
		for _, r := range s.memberships.rows[pair] {
			users, orgs, ids = append(users, r.r.p.WorkosUserID), append(orgs, r.r.p.WorkosOrgID), append(ids, r.r.p.WorkosOrgMembershipID)
		}
	}
	users, orgs, ids = sortedSet(users), sortedSet(orgs), sortedSet(ids)
	// The parents first, as membershipParents does for each event.
	parents, err := q.MembershipParentsMany(ctx, db, queries.MembershipParentsManyParams{WorkosUserIds: users, WorkosOrgIds: orgs})
	if err != nil {
		return fmt.Errorf("membership parents: %w", err)
	}
	userDeleted, orgDeleted := map[string]*time.Time{}, map[string]*time.Time{}
	for _, p := range parents {
		if p.Parent == "user" {
			userDeleted[p.ID] = micro(p.DeletedAt)
		} else {
			orgDeleted[p.ID] = micro(p.DeletedAt)
		}
	}
	locked, err := q.MembershipLockMany(ctx, db, queries.MembershipLockManyParams{WorkosOrgMembershipIds: ids, WorkosUserIds: users})
	if err != nil {
		return fmt.Errorf("lock memberships: %w", err)
	}
	byID := make(map[string]*membershipState, len(locked))
	byPair := map[string][]*membershipState{}
	for _, r := range locked {
		m := &membershipState{id: r.WorkosOrgMembershipID, user: r.WorkosUserID, org: r.WorkosOrgID,
			stored: true, storedLive: r.DeletedAt == nil, v: micro(r.WorkosUpdatedAt), deleted: micro(r.DeletedAt)}
		byID[m.id] = m
		byPair[m.user+"\x00"+m.org] = append(byPair[m.user+"\x00"+m.org], m)
	}

	for _, pair := range pairs {
		rows := s.memberships.rows[pair]
		for _, row := range rows {
			p := row.r.p
			v, at := p.WorkosUpdatedAt.Truncate(time.Microsecond), p.SupersededAt.Truncate(time.Microsecond)
			cur := byID[p.WorkosOrgMembershipID]
			if cur != nil && (cur.user != p.WorkosUserID || cur.org != p.WorkosOrgID) {
				// The stored row names another pair: the per-event path
				// has the rules for that.
				return fmt.Errorf("%w: membership %s is stored for another user or organization", errSetMismatch, cur.id)
			}
			// MembershipSupersede: the older live memberships of the pair go.
			for _, o := range byPair[pair] {
				if o != cur && o.deleted == nil && (o.v == nil || !o.v.After(v)) {
					o.deleted = &at
				}
			}
			// MembershipUpsert.
			switch {
			case cur == nil:
				cur = &membershipState{id: p.WorkosOrgMembershipID, user: p.WorkosUserID, org: p.WorkosOrgID}
				// Born deleted under a newer live membership of the pair,
				// or a deleted user or organization.
				cur.deleted = userDeleted[cur.user]
				if cur.deleted == nil {
					cur.deleted = orgDeleted[cur.org]
				}
				for _, o := range byPair[pair] {
					if o.deleted == nil {
						cur.deleted = &at
						break
					}
				}
				byID[cur.id] = cur
				byPair[pair] = append(byPair[pair], cur)
			case cur.v != nil && cur.v.After(v):
				set(row.i, Stale)
				continue
			}
			cur.v, cur.final = &v, &row.r.p
			set(row.i, Applied)
			row.r.link(links)
		}
	}

	var superseded, written []membershipWrite
	for _, id := range slices.Sorted(maps.Keys(byID)) {
		m := byID[id]
		if m.stored && m.storedLive && m.deleted != nil {
			superseded = append(superseded, membershipWrite{WorkosOrgMembershipID: id, DeletedAt: m.deleted})
		}
		if m.final != nil {
			p := m.final
			written = append(written, membershipWrite{
				WorkosOrgMembershipID: id, WorkosUserID: m.user, WorkosOrgID: m.org,
				Role: p.Role, Roles: p.Roles, Status: p.Status, DirectoryManaged: p.DirectoryManaged,
				WorkosCreatedAt: p.WorkosCreatedAt, WorkosUpdatedAt: m.v, DeletedAt: m.deleted,
			})
		}
	}
	// The tombstones first: a new live membership must not meet the one it
	// supersedes still live (user_org_memberships_live_key).
	if err := writeKeyed(ctx, TableMemberships, superseded, func(b json.RawMessage) ([]string, error) {
		return q.MembershipSupersedeMany(ctx, db, b)
	}); err != nil {
		return err
	}
	return writeKeyed(ctx, TableMemberships, written, func(b json.RawMessage) ([]string, error) {
		return q.MembershipUpsertMany(ctx, db, b)
	})
}

// writeKeyed is writeMany for rows that must all be written.
func writeKeyed(ctx context.Context, table Table, rows []membershipWrite, write func(json.RawMessage) ([]string, error)) error {
	if len(rows) == 0 {
		return nil
	}
	want := make(map[string]bool, len(rows))
	for _, r := range rows {
		want[r.WorkosOrgMembershipID] = true
	}
	return writeMany(ctx, table, rows, want, write)
}

// micro is t at the microseconds Postgres keeps.
func micro(t *time.Time) *time.Time {
	if t == nil {
		return nil
	}
	return ptr(t.Truncate(time.Microsecond))
}

func sortedSet(xs []string) []string {
	slices.Sort(xs)
	return slices.Compact(xs)
}
