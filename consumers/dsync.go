package consumers

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"

	"github.com/syncd/syncd/events"
	"github.com/syncd/syncd/queries"
)

// The WorkOS Directory Sync handlers; their routes are in routes.go.
//
// Directories, users and groups are versioned by their updated_at;
// memberships, which have no WorkOS object, by the time of the add or
// remove event. Deletes are tombstones that only ever move earlier, and
// rows under a tombstone still take newer data, so every arrival order of
// the same events ends in the same rows.

type dsyncDirectory struct {
	ID             string  `json:"id"`
	OrganizationID *string `json:"organization_id"`
	Name           *string `json:"name"`
	Type           *string `json:"type"`
	State          *string `json:"state"`
	// Older payloads carry one domain, newer ones a list of domain objects.
	Domain      *string           `json:"domain"`
	Domains     json.RawMessage   `json:"domains"`
	ExternalKey *string           `json:"external_key"`
	CreatedAt   events.WorkOSTime `json:"created_at"`
	UpdatedAt   events.WorkOSTime `json:"updated_at"`
}

// domains accepts ["a.com"] and [{"domain":"a.com"}] alike, plus the
// single domain of older payloads.
func (d dsyncDirectory) domains() []string {
	out := []string{}
	seen := map[string]bool{}
	add := func(s string) {
		if s != "" && !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	if d.Domain != nil {
		add(*d.Domain)
	}
	var items []json.RawMessage
	_ = json.Unmarshal(d.Domains, &items)
	for _, it := range items {
		var s string
		var obj struct {
			Domain string `json:"domain"`
		}
		if json.Unmarshal(it, &s) == nil {
			add(s)
		} else if json.Unmarshal(it, &obj) == nil {
			add(obj.Domain)
		}
	}
	return out
}

// upsertDirectory stores the directory's data at its version: Stale when
// the stored version is newer.
func upsertDirectory(ctx context.Context, tx Tx, ev Event) (dsyncDirectory, Outcome, error) {
	var d dsyncDirectory
	if err := decodeData(ev, &d); err != nil {
		return d, "", err
	}
	if err := requireID(ev, "id", d.ID); err != nil {
		return d, "", err
	}
	_, err := tx.Q.DirectoryUpsert(ctx, tx.DB, queries.DirectoryUpsertParams{
		WorkosDirectoryID: d.ID,
		WorkosOrgID:       nonEmptyPtr(d.OrganizationID),
		Name:              d.Name,
		Type:              d.Type,
		State:             d.State,
		Domains:           d.domains(),
		ExternalKey:       d.ExternalKey,
		WorkosCreatedAt:   d.CreatedAt.Ptr(),
		WorkosUpdatedAt:   ptr(version(ev, d.UpdatedAt)),
	})
	out, err := upserted(err)
	return d, out, err
}

func applyDirectory(ctx context.Context, tx Tx, ev Event) (Outcome, error) {
	_, out, err := upsertDirectory(ctx, tx, ev)
	return out, err
}

// deleteDirectory handles dsync.deleted, the only event WorkOS sends when a
// directory goes: its users, groups and memberships go with it.
func deleteDirectory(ctx context.Context, tx Tx, ev Event) (Outcome, error) {
	d, _, err := upsertDirectory(ctx, quiet(tx), ev)
	if err != nil {
		return "", err
	}
	at := eventTime(ev)
	if err := tx.Q.DirectoryTombstone(ctx, tx.DB, queries.DirectoryTombstoneParams{WorkosDirectoryID: d.ID, DeletedAt: at}); err != nil {
		return "", fmt.Errorf("tombstone directory: %w", err)
	}
	if err := tx.Q.DirectoryUserTombstoneByDirectory(ctx, tx.DB, queries.DirectoryUserTombstoneByDirectoryParams{WorkosDirectoryID: d.ID, DeletedAt: at}); err != nil {
		return "", fmt.Errorf("tombstone directory users: %w", err)
	}
	if err := tx.Q.DirectoryGroupTombstoneByDirectory(ctx, tx.DB, queries.DirectoryGroupTombstoneByDirectoryParams{WorkosDirectoryID: d.ID, DeletedAt: at}); err != nil {
		return "", fmt.Errorf("tombstone directory groups: %w", err)
	}
	if err := tx.Q.DirectoryGroupMemberTombstoneByDirectory(ctx, tx.DB, queries.DirectoryGroupMemberTombstoneByDirectoryParams{WorkosDirectoryID: d.ID, DeletedAt: at}); err != nil {
		return "", fmt.Errorf("tombstone directory group members: %w", err)
	}
	return Applied, nil
}

type dsyncUser struct {
	ID               string            `json:"id"`
	DirectoryID      string            `json:"directory_id"`
	OrganizationID   *string           `json:"organization_id"`
	IdpID            *string           `json:"idp_id"`
	Email            *string           `json:"email"`
	Emails           json.RawMessage   `json:"emails"`
	Username         *string           `json:"username"`
	FirstName        *string           `json:"first_name"`
	LastName         *string           `json:"last_name"`
	JobTitle         *string           `json:"job_title"`
	State            *string           `json:"state"`
	Role             *workosRole       `json:"role"`
	Roles            []workosRole      `json:"roles"`
	CustomAttributes json.RawMessage   `json:"custom_attributes"`
	RawAttributes    json.RawMessage   `json:"raw_attributes"`
	CreatedAt        events.WorkOSTime `json:"created_at"`
	UpdatedAt        events.WorkOSTime `json:"updated_at"`
}

// email is the user's primary address: the email field of newer payloads,
// else the primary entry of emails, else its first.
func (u dsyncUser) email() *string {
	if e := nonEmptyPtr(u.Email); e != nil {
		return e
	}
	var list []struct {
		Primary bool   `json:"primary"`
		Value   string `json:"value"`
	}
	_ = json.Unmarshal(u.Emails, &list)
	for _, e := range list {
		if e.Primary && e.Value != "" {
			return &e.Value
		}
	}
	for _, e := range list {
		if e.Value != "" {
			return &e.Value
		}
	}
	return nil
}

func (u dsyncUser) role() *string {
	if u.Role != nil && u.Role.Slug != "" {
		return &u.Role.Slug
	}
	if len(u.Roles) > 0 && u.Roles[0].Slug != "" {
		return &u.Roles[0].Slug
	}
	return nil
}

func (u dsyncUser) roles() []string {
	out := make([]string, 0, len(u.Roles)+1)
	for _, r := range u.Roles {
		if r.Slug != "" {
			out = append(out, r.Slug)
		}
	}
	if len(out) == 0 && u.Role != nil && u.Role.Slug != "" {
		out = append(out, u.Role.Slug)
	}
	return out
}

func (u dsyncUser) params(ev Event) queries.DirectoryUserUpsertParams {
	emails := json.RawMessage(`[]`)
	if t := bytes.TrimSpace(u.Emails); len(t) > 0 && t[0] == '[' {
		emails = t
	}
	return queries.DirectoryUserUpsertParams{
		WorkosDirectoryUserID: u.ID,
		WorkosDirectoryID:     u.DirectoryID,
		WorkosOrgID:           nonEmptyPtr(u.OrganizationID),
		IdpID:                 u.IdpID,
		Email:                 u.email(),
		Emails:                emails,
		Username:              u.Username,
		FirstName:             u.FirstName,
		LastName:              u.LastName,
		JobTitle:              u.JobTitle,
		State:                 u.State,
		Role:                  u.role(),
		Roles:                 u.roles(),
		CustomAttributes:      jsonObject(u.CustomAttributes),
		RawAttributes:         optionalObject(u.RawAttributes),
		WorkosCreatedAt:       u.CreatedAt.Ptr(),
		WorkosUpdatedAt:       ptr(version(ev, u.UpdatedAt)),
	}
}

// decodeDirectoryUser decodes a dsync.user.* payload, which must name the
// user and its directory.
func decodeDirectoryUser(ev Event) (dsyncUser, error) {
	var u dsyncUser
	if err := decodeData(ev, &u); err != nil {
		return u, err
	}
	if err := requireID(ev, "id", u.ID); err != nil {
		return u, err
	}
	return u, requireID(ev, "directory_id", u.DirectoryID)
}

// upsertDirectoryUser stores a dsync.user.* payload, creating its directory
// as a stub when the directory's own event has not arrived.
func upsertDirectoryUser(ctx context.Context, tx Tx, ev Event) (dsyncUser, Outcome, error) {
	u, err := decodeDirectoryUser(ev)
	if err != nil {
		return u, "", err
	}
	if err := ensureDirectory(ctx, tx, u.DirectoryID, u.OrganizationID); err != nil {
		return u, "", err
	}
	_, err = tx.Q.DirectoryUserUpsert(ctx, tx.DB, u.params(ev))
	out, err := upserted(err)
	return u, out, err
}

func applyDirectoryUser(ctx context.Context, tx Tx, ev Event) (Outcome, error) {
	_, out, err := upsertDirectoryUser(ctx, tx, ev)
	return out, err
}

func deleteDirectoryUser(ctx context.Context, tx Tx, ev Event) (Outcome, error) {
	u, _, err := upsertDirectoryUser(ctx, quiet(tx), ev)
	if err != nil {
		return "", err
	}
	at := eventTime(ev)
	if err := tx.Q.DirectoryUserTombstone(ctx, tx.DB, queries.DirectoryUserTombstoneParams{WorkosDirectoryUserID: u.ID, DeletedAt: at}); err != nil {
		return "", fmt.Errorf("tombstone directory user: %w", err)
	}
	if err := tx.Q.DirectoryGroupMemberTombstoneByUser(ctx, tx.DB, queries.DirectoryGroupMemberTombstoneByUserParams{WorkosDirectoryUserID: u.ID, DeletedAt: at}); err != nil {
		return "", fmt.Errorf("tombstone memberships of directory user: %w", err)
	}
	return Applied, nil
}

type dsyncGroup struct {
	ID             string            `json:"id"`
	DirectoryID    string            `json:"directory_id"`
	OrganizationID *string           `json:"organization_id"`
	IdpID          *string           `json:"idp_id"`
	Name           *string           `json:"name"`
	RawAttributes  json.RawMessage   `json:"raw_attributes"`
	CreatedAt      events.WorkOSTime `json:"created_at"`
	UpdatedAt      events.WorkOSTime `json:"updated_at"`
}

func (g dsyncGroup) params(ev Event) queries.DirectoryGroupUpsertParams {
	return queries.DirectoryGroupUpsertParams{
		WorkosDirectoryGroupID: g.ID,
		WorkosDirectoryID:      g.DirectoryID,
		WorkosOrgID:            nonEmptyPtr(g.OrganizationID),
		IdpID:                  g.IdpID,
		Name:                   g.Name,
		RawAttributes:          optionalObject(g.RawAttributes),
		WorkosCreatedAt:        g.CreatedAt.Ptr(),
		WorkosUpdatedAt:        ptr(version(ev, g.UpdatedAt)),
	}
}

// decodeDirectoryGroup decodes a dsync.group.* payload, which must name
// the group and its directory.
func decodeDirectoryGroup(ev Event) (dsyncGroup, error) {
	var g dsyncGroup
	if err := decodeData(ev, &g); err != nil {
		return g, err
	}
	if err := requireID(ev, "id", g.ID); err != nil {
		return g, err
	}
	return g, requireID(ev, "directory_id", g.DirectoryID)
}

func upsertDirectoryGroup(ctx context.Context, tx Tx, ev Event) (dsyncGroup, Outcome, error) {
	g, err := decodeDirectoryGroup(ev)
	if err != nil {
		return g, "", err
	}
	if err := ensureDirectory(ctx, tx, g.DirectoryID, g.OrganizationID); err != nil {
		return g, "", err
	}
	_, err = tx.Q.DirectoryGroupUpsert(ctx, tx.DB, g.params(ev))
	out, err := upserted(err)
	return g, out, err
}

func applyDirectoryGroup(ctx context.Context, tx Tx, ev Event) (Outcome, error) {
	_, out, err := upsertDirectoryGroup(ctx, tx, ev)
	return out, err
}

func deleteDirectoryGroup(ctx context.Context, tx Tx, ev Event) (Outcome, error) {
	g, _, err := upsertDirectoryGroup(ctx, quiet(tx), ev)
	if err != nil {
		return "", err
	}
	at := eventTime(ev)
	if err := tx.Q.DirectoryGroupTombstone(ctx, tx.DB, queries.DirectoryGroupTombstoneParams{WorkosDirectoryGroupID: g.ID, DeletedAt: at}); err != nil {
		return "", fmt.Errorf("tombstone directory group: %w", err)
	}
	if err := tx.Q.DirectoryGroupMemberTombstoneByGroup(ctx, tx.DB, queries.DirectoryGroupMemberTombstoneByGroupParams{WorkosDirectoryGroupID: g.ID, DeletedAt: at}); err != nil {
		return "", fmt.Errorf("tombstone members of directory group: %w", err)
	}
	return Applied, nil
}

// dsyncMembership is the data of dsync.group.user_added and user_removed.
type dsyncMembership struct {
	DirectoryID string     `json:"directory_id"`
	User        dsyncUser  `json:"user"`
	Group       dsyncGroup `json:"group"`
}

func addDirectoryGroupMember(ctx context.Context, tx Tx, ev Event) (Outcome, error) {
	return applyDirectoryGroupMember(ctx, tx, ev, false)
}

func removeDirectoryGroupMember(ctx context.Context, tx Tx, ev Event) (Outcome, error) {
	return applyDirectoryGroupMember(ctx, tx, ev, true)
}

// applyDirectoryGroupMember records an add or remove at the event's time.
// The user and group it names become stubs, holding the snapshots the
// event carries, until their own events arrive; those snapshots may lack
// fields (the user's directory and organization), so they never replace
// what a user's or group's own event stored.
func applyDirectoryGroupMember(ctx context.Context, tx Tx, ev Event, removed bool) (Outcome, error) {
	var m dsyncMembership
	if err := decodeData(ev, &m); err != nil {
		return "", err
	}
	if m.DirectoryID == "" {
		m.DirectoryID = m.Group.DirectoryID
	}
	for _, req := range []struct{ what, id string }{
		{"directory_id", m.DirectoryID}, {"user.id", m.User.ID}, {"group.id", m.Group.ID},
	} {
		if err := requireID(ev, req.what, req.id); err != nil {
			return "", err
		}
	}
	// The membership's directory is the event's, whatever the snapshots say.
	m.User.DirectoryID, m.Group.DirectoryID = m.DirectoryID, m.DirectoryID
	if nonEmptyPtr(m.User.OrganizationID) == nil {
		m.User.OrganizationID = m.Group.OrganizationID
	}
	org := m.Group.OrganizationID
	if nonEmptyPtr(org) == nil {
		org = m.User.OrganizationID
	}
	if err := ensureDirectory(ctx, tx, m.DirectoryID, org); err != nil {
		return "", err
	}
	if err := tx.Q.DirectoryUserFillStub(ctx, tx.DB, queries.DirectoryUserFillStubParams(m.User.params(ev))); err != nil {
		return "", fmt.Errorf("directory user stub: %w", err)
	}
	if err := tx.Q.DirectoryGroupFillStub(ctx, tx.DB, queries.DirectoryGroupFillStubParams(m.Group.params(ev))); err != nil {
		return "", fmt.Errorf("directory group stub: %w", err)
	}
	_, err := tx.Q.DirectoryGroupMemberApply(ctx, tx.DB, queries.DirectoryGroupMemberApplyParams{
		WorkosDirectoryGroupID: m.Group.ID,
		WorkosDirectoryUserID:  m.User.ID,
		WorkosDirectoryID:      m.DirectoryID,
		WorkosEventAt:          eventTime(ev),
		Removed:                removed,
	})
	return upserted(err)
}

// ensureDirectory creates the directory as a stub when a child arrives
// before the directory's own event.
func ensureDirectory(ctx context.Context, tx Tx, id string, org *string) error {
	if err := tx.Q.DirectoryEnsureStub(ctx, tx.DB, queries.DirectoryEnsureStubParams{
		WorkosDirectoryID: id,
		WorkosOrgID:       nonEmptyPtr(org),
	}); err != nil {
		return fmt.Errorf("directory stub: %w", err)
	}
	return nil
}

// optionalObject keeps a JSON object and turns anything else into NULL.
func optionalObject(raw json.RawMessage) json.RawMessage {
	if t := bytes.TrimSpace(raw); len(t) > 0 && t[0] == '{' {
		return t
	}
	return nil
}

// nonEmptyPtr treats "" like an absent id.
func nonEmptyPtr(s *string) *string {
	if s == nil {
		return nil
	}
	return nonEmpty(*s)
}
