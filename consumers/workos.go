package consumers

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/syncd/syncd/events"
	"github.com/syncd/syncd/queries"
)

// The WorkOS handlers of users, organizations and memberships; their
// routes are in routes.go.

// decodeData decodes a WorkOS event's data object into v.
func decodeData(ev Event, v any) error { return decodeField(ev, "data", v) }

// upserted maps an upsert's RETURNING to an outcome: no row is stale.
func upserted(err error) (Outcome, error) {
	switch err = queries.Check(err); {
	case err == nil:
		return Applied, nil
	case errors.Is(err, queries.ErrNotFound):
		return Stale, nil
	default:
		return "", err
	}
}

// staleOK is upserted for a delete's data write, which runs on quiet(tx):
// stale is no error (nor, pipelined, the event's outcome), as the
// tombstone that follows is written either way.
func staleOK[T any](_ T, err error) error {
	_, err = upserted(err)
	return err
}

func requireID(ev Event, what, id string) error {
	if id == "" {
		return fmt.Errorf("%w: %s without %s", ErrUndecodable, ev.Envelope.Type, what)
	}
	return nil
}

type workosUser struct {
	ID                string            `json:"id"`
	Email             *string           `json:"email"`
	FirstName         *string           `json:"first_name"`
	LastName          *string           `json:"last_name"`
	EmailVerified     bool              `json:"email_verified"`
	ProfilePictureURL *string           `json:"profile_picture_url"`
	ExternalID        *string           `json:"external_id"`
	Metadata          json.RawMessage   `json:"metadata"`
	Locale            *string           `json:"locale"`
	LastSignInAt      events.WorkOSTime `json:"last_sign_in_at"`
	CreatedAt         events.WorkOSTime `json:"created_at"`
	UpdatedAt         events.WorkOSTime `json:"updated_at"`
}

// userRow is a user event decoded.
type userRow struct{ p queries.UserUpsertParams }

func decodeUser(ev Event) (userRow, error) {
	var u workosUser
	if err := decodeData(ev, &u); err != nil {
		return userRow{}, err
	}
	if err := requireID(ev, "id", u.ID); err != nil {
		return userRow{}, err
	}
	return userRow{queries.UserUpsertParams{
		WorkosUserID:      u.ID,
		Email:             u.Email,
		FirstName:         u.FirstName,
		LastName:          u.LastName,
		EmailVerified:     u.EmailVerified,
		ProfilePictureUrl: u.ProfilePictureURL,
		ExternalID:        u.ExternalID,
		Metadata:          jsonObject(u.Metadata),
		Locale:            u.Locale,
		LastSignInAt:      u.LastSignInAt.Ptr(),
		WorkosCreatedAt:   u.CreatedAt.Ptr(),
		WorkosUpdatedAt:   ptr(version(ev, u.UpdatedAt)),
	}}, nil
}

// link: rows of other providers that arrived first wait for this user.
func (r userRow) link(l *linkSet) { linkUser(l, r.p.WorkosUserID, r.p.Email) }

func applyUser(ctx context.Context, tx Tx, ev Event) (Outcome, error) {
	r, err := decodeUser(ev)
	if err != nil {
		return "", err
	}
	_, err = tx.Q.UserUpsert(ctx, tx.DB, r.p)
	out, err := upserted(err)
	if err != nil || out != Applied {
		return out, err
	}
	r.link(tx.Links)
	return out, nil
}

// flushLinks runs the links gathered so far before a delete: links keep
// some of what they saw (a meeting keeps its deleted guest), so they must
// see the row before its tombstone, as they would event by event.
func flushLinks(ctx context.Context, tx Tx) error {
	return tx.Links.run(ctx, tx.Q, tx.DB)
}

// deleteUser applies user.deleted: the user it carries (as it was when
// deleted) is written like an update, under the same version guard, and
// then the tombstone. So a delete newer than the stored row brings its
// data, and updates older than it that arrive later are stale; an older
// delete only sets the tombstone. Either way the same events give the same
// row in any order.
func deleteUser(ctx context.Context, tx Tx, ev Event) (Outcome, error) {
	r, err := decodeUser(ev)
	if err != nil {
		return "", err
	}
	if err := flushLinks(ctx, tx); err != nil {
		return "", err
	}
	if err := staleOK(tx.Q.UserUpsert(ctx, quiet(tx).DB, r.p)); err != nil {
		return "", err
	}
	at := eventTime(ev)
	if err := tx.Q.UserTombstone(ctx, tx.DB, queries.UserTombstoneParams{WorkosUserID: r.p.WorkosUserID, DeletedAt: at}); err != nil {
		return "", err
	}
	return Applied, tx.Q.MembershipDeleteByUser(ctx, tx.DB, queries.MembershipDeleteByUserParams{WorkosUserID: r.p.WorkosUserID, DeletedAt: at})
}

type workosOrganization struct {
	ID      string  `json:"id"`
	Name    *string `json:"name"`
	Domains []struct {
		Domain string `json:"domain"`
	} `json:"domains"`
	Metadata         json.RawMessage   `json:"metadata"`
	ExternalID       *string           `json:"external_id"`
	StripeCustomerID *string           `json:"stripe_customer_id"`
	CreatedAt        events.WorkOSTime `json:"created_at"`
	UpdatedAt        events.WorkOSTime `json:"updated_at"`
}

// organizationRow is an organization event decoded.
type organizationRow struct {
	p queries.OrganizationUpsertParams
}

func decodeOrganization(ev Event) (organizationRow, error) {
	var o workosOrganization
	if err := decodeData(ev, &o); err != nil {
		return organizationRow{}, err
	}
	if err := requireID(ev, "id", o.ID); err != nil {
		return organizationRow{}, err
	}
	domains := make([]string, 0, len(o.Domains))
	for _, d := range o.Domains {
		if d.Domain != "" {
			domains = append(domains, d.Domain)
		}
	}
	// The app may keep its own type and slug in WorkOS metadata; sync uses
	// them only to fill a row that has none.
	var meta struct {
		Type *string `json:"type"`
		Slug *string `json:"slug"`
	}
	_ = json.Unmarshal(o.Metadata, &meta)
	return organizationRow{queries.OrganizationUpsertParams{
		WorkosOrgID:      o.ID,
		Name:             o.Name,
		Slug:             meta.Slug,
		Type:             meta.Type,
		Domains:          domains,
		ExternalID:       o.ExternalID,
		Metadata:         jsonObject(o.Metadata),
		StripeCustomerID: o.StripeCustomerID,
		WorkosCreatedAt:  o.CreatedAt.Ptr(),
		WorkosUpdatedAt:  ptr(version(ev, o.UpdatedAt)),
	}}, nil
}

func (r organizationRow) link(l *linkSet) { linkOrganization(l, r.p.WorkosOrgID) }

func applyOrganization(ctx context.Context, tx Tx, ev Event) (Outcome, error) {
	r, err := decodeOrganization(ev)
	if err != nil {
		return "", err
	}
	_, err = tx.Q.OrganizationUpsert(ctx, tx.DB, r.p)
	out, err := upserted(err)
	if err != nil || out != Applied {
		return out, err
	}
	r.link(tx.Links)
	return out, nil
}

// deleteOrganization applies organization.deleted as deleteUser does a
// user's.
func deleteOrganization(ctx context.Context, tx Tx, ev Event) (Outcome, error) {
	r, err := decodeOrganization(ev)
	if err != nil {
		return "", err
	}
	if err := flushLinks(ctx, tx); err != nil {
		return "", err
	}
	if err := staleOK(tx.Q.OrganizationUpsert(ctx, quiet(tx).DB, r.p)); err != nil {
		return "", err
	}
	id := r.p.WorkosOrgID
	at := eventTime(ev)
	if err := tx.Q.OrganizationTombstone(ctx, tx.DB, queries.OrganizationTombstoneParams{WorkosOrgID: id, DeletedAt: at}); err != nil {
		return "", err
	}
	if err := tx.Q.MembershipDeleteByOrg(ctx, tx.DB, queries.MembershipDeleteByOrgParams{WorkosOrgID: id, DeletedAt: at}); err != nil {
		return "", err
	}
	linkOrganization(tx.Links, id)
	return Applied, nil
}

type workosRole struct {
	Slug string `json:"slug"`
}

type workosMembership struct {
	ID               string            `json:"id"`
	UserID           string            `json:"user_id"`
	OrganizationID   string            `json:"organization_id"`
	Status           *string           `json:"status"`
	Role             *workosRole       `json:"role"`
	Roles            []workosRole      `json:"roles"`
	DirectoryManaged bool              `json:"directory_managed"`
	CreatedAt        events.WorkOSTime `json:"created_at"`
	UpdatedAt        events.WorkOSTime `json:"updated_at"`
}

func (m workosMembership) validate(ev Event) error {
	if err := requireID(ev, "id", m.ID); err != nil {
		return err
	}
	if err := requireID(ev, "user_id", m.UserID); err != nil {
		return err
	}
	return requireID(ev, "organization_id", m.OrganizationID)
}

func (m workosMembership) role() *string {
	if m.Role != nil && m.Role.Slug != "" {
		return &m.Role.Slug
	}
	if len(m.Roles) > 0 {
		return &m.Roles[0].Slug
	}
	return nil
}

func (m workosMembership) roles() []string {
	out := make([]string, 0, len(m.Roles)+1)
	for _, r := range m.Roles {
		out = append(out, r.Slug)
	}
	if len(out) == 0 && m.Role != nil && m.Role.Slug != "" {
		out = append(out, m.Role.Slug)
	}
	return out
}

// membershipParents makes sure the user and organization rows exist, as
// stubs when their own events have not arrived yet.
func membershipParents(ctx context.Context, tx Tx, m workosMembership) error {
	if err := tx.Q.UserEnsureStub(ctx, tx.DB, m.UserID); err != nil {
		return err
	}
	return tx.Q.OrganizationEnsureStub(ctx, tx.DB, m.OrganizationID)
}

func applyMembership(ctx context.Context, tx Tx, ev Event) (Outcome, error) {
	var m workosMembership
	if err := decodeData(ev, &m); err != nil {
		return "", err
	}
	if err := m.validate(ev); err != nil {
		return "", err
	}
	if err := membershipParents(ctx, tx, m); err != nil {
		return "", err
	}
	v := version(ev, m.UpdatedAt)
	at := eventTime(ev)
	if _, err := tx.Q.MembershipSupersede(ctx, tx.DB, queries.MembershipSupersedeParams{
		DeletedAt:             &at,
		WorkosUserID:          m.UserID,
		WorkosOrgID:           m.OrganizationID,
		WorkosOrgMembershipID: m.ID,
		WorkosUpdatedAt:       &v,
	}); err != nil {
		return "", err
	}
	_, err := tx.Q.MembershipUpsert(ctx, tx.DB, m.upsert(v, at))
	out, err := upserted(err)
	if err != nil || out != Applied {
		return out, err
	}
	linkMembership(tx.Links, m.UserID)
	return out, nil
}

// deleteMembership applies organization_membership.deleted as deleteUser
// does a user's: the membership it carries under the version guard, then
// the tombstone.
func deleteMembership(ctx context.Context, tx Tx, ev Event) (Outcome, error) {
	var m workosMembership
	if err := decodeData(ev, &m); err != nil {
		return "", err
	}
	if err := m.validate(ev); err != nil {
		return "", err
	}
	if err := membershipParents(ctx, tx, m); err != nil {
		return "", err
	}
	if err := flushLinks(ctx, tx); err != nil {
		return "", err
	}
	at := eventTime(ev)
	if err := staleOK(tx.Q.MembershipUpsert(ctx, quiet(tx).DB, m.upsert(version(ev, m.UpdatedAt), at))); err != nil {
		return "", err
	}
	if err := tx.Q.MembershipTombstone(ctx, tx.DB, queries.MembershipTombstoneParams{WorkosOrgMembershipID: m.ID, DeletedAt: at}); err != nil {
		return "", err
	}
	linkMembership(tx.Links, m.UserID)
	return Applied, nil
}

// upsert is the membership's MembershipUpsert at version v, by an event
// at time at.
func (m workosMembership) upsert(v, at time.Time) queries.MembershipUpsertParams {
	return queries.MembershipUpsertParams{
		WorkosOrgMembershipID: m.ID,
		WorkosUserID:          m.UserID,
		WorkosOrgID:           m.OrganizationID,
		Role:                  m.role(),
		Roles:                 m.roles(),
		Status:                m.Status,
		DirectoryManaged:      m.DirectoryManaged,
		WorkosCreatedAt:       m.CreatedAt.Ptr(),
		WorkosUpdatedAt:       &v,
		SupersededAt:          at,
	}
}

// jsonObject keeps a JSON object as is and turns anything else (absent,
// null, placeholder) into {} for the NOT NULL jsonb columns.
func jsonObject(raw json.RawMessage) json.RawMessage {
	if len(raw) > 0 && raw[0] == '{' {
		return raw
	}
	return json.RawMessage(`{}`)
}

func ptr[T any](v T) *T { return &v }
