package workosapi

import (
	"context"
	"encoding/json"
	"errors"
	"net/url"
	"strings"
	"time"

	"github.com/workos/workos-go/v4/pkg/events"
	"github.com/workos/workos-go/v4/pkg/organizations"
	"github.com/workos/workos-go/v4/pkg/usermanagement"
)

// Endpoints as Endpoint names them, for errors.
const (
	epCreateUser      = "POST /user_management/users"
	epGetUser         = "GET /user_management/users/{id}"
	epGetUserByExt    = "GET /user_management/users/external_id/{external_id}"
	epListUsers       = "GET /user_management/users"
	epCreateOrg       = "POST /organizations"
	epGetOrg          = "GET /organizations/{id}"
	epGetOrgByExt     = "GET /organizations/external_id/{external_id}"
	epListMemberships = "GET /user_management/organization_memberships"
	epCreateMember    = "POST /user_management/organization_memberships"
	epCreateMagicAuth = "POST /user_management/magic_auth"
	epListEvents      = "GET /events"
)

// ErrInvalidArgument is a call refused before it is sent.
var ErrInvalidArgument = errors.New("workosapi: invalid argument")

// CreateUser creates a user (POST /user_management/users).
func (c *Client) CreateUser(ctx context.Context, opts CreateUserOpts) (User, error) {
	if opts.Email == "" {
		return User{}, errors.Join(ErrInvalidArgument, errors.New("user email is empty"))
	}
	u, err := c.um.CreateUser(ctx, opts)
	return u, wrapErr(epCreateUser, err)
}

// GetUser reads a user by id.
func (c *Client) GetUser(ctx context.Context, id string) (User, error) {
	if id == "" {
		return User{}, errors.Join(ErrInvalidArgument, errors.New("user id is empty"))
	}
	u, err := c.um.GetUser(ctx, usermanagement.GetUserOpts{User: url.PathEscape(id)})
	return u, wrapErr(epGetUser, err)
}

// GetUserByExternalID reads a user by external id; IsNotFound when none.
func (c *Client) GetUserByExternalID(ctx context.Context, externalID string) (User, error) {
	if externalID == "" {
		return User{}, errors.Join(ErrInvalidArgument, errors.New("external id is empty"))
	}
	u, err := c.um.GetUserByExternalID(ctx, usermanagement.GetUserByExternalIDOpts{ExternalID: url.PathEscape(externalID)})
	return u, wrapErr(epGetUserByExt, err)
}

// ListUsersByEmail lists the users with the email (WorkOS matches it
// case-insensitively; at most one in practice).
func (c *Client) ListUsersByEmail(ctx context.Context, email string) ([]User, error) {
	if email == "" {
		return nil, errors.Join(ErrInvalidArgument, errors.New("email is empty"))
	}
	resp, err := c.um.ListUsers(ctx, usermanagement.ListUsersOpts{Email: email, Limit: 10})
	if err != nil {
		return nil, wrapErr(epListUsers, err)
	}
	return resp.Data, nil
}

// CreateOrganization creates an organization (POST /organizations).
func (c *Client) CreateOrganization(ctx context.Context, opts CreateOrganizationOpts) (Organization, error) {
	if opts.Name == "" {
		return Organization{}, errors.Join(ErrInvalidArgument, errors.New("organization name is empty"))
	}
	o, err := c.org.CreateOrganization(ctx, opts)
	return o, wrapErr(epCreateOrg, err)
}

// GetOrganization reads an organization by id.
func (c *Client) GetOrganization(ctx context.Context, id string) (Organization, error) {
	if id == "" {
		return Organization{}, errors.Join(ErrInvalidArgument, errors.New("organization id is empty"))
	}
	o, err := c.org.GetOrganization(ctx, organizations.GetOrganizationOpts{Organization: url.PathEscape(id)})
	return o, wrapErr(epGetOrg, err)
}

// GetOrganizationByExternalID reads an organization by external id;
// IsNotFound when none.
func (c *Client) GetOrganizationByExternalID(ctx context.Context, externalID string) (Organization, error) {
	if externalID == "" {
		return Organization{}, errors.Join(ErrInvalidArgument, errors.New("external id is empty"))
	}
	o, err := c.org.GetOrganizationByExternalID(ctx, organizations.GetOrganizationByExternalIDOpts{ExternalID: url.PathEscape(externalID)})
	return o, wrapErr(epGetOrgByExt, err)
}

// ListMembershipsOpts filters ListMemberships; at least one of UserID and
// OrganizationID is required by WorkOS.
type ListMembershipsOpts struct {
	UserID, OrganizationID string
	// Statuses filters by status; empty means every status.
	Statuses []usermanagement.OrganizationMembershipStatus
}

// maxPages bounds a listing: a person has a handful of memberships, so
// more pages than this is a loop, not data.
const maxPages = 100

// ListMemberships lists memberships, every page.
func (c *Client) ListMemberships(ctx context.Context, opts ListMembershipsOpts) ([]OrganizationMembership, error) {
	if opts.UserID == "" && opts.OrganizationID == "" {
		return nil, errors.Join(ErrInvalidArgument, errors.New("list memberships needs a user or an organization"))
	}
	var all []OrganizationMembership
	after := ""
	for range maxPages {
		resp, err := c.um.ListOrganizationMemberships(ctx, usermanagement.ListOrganizationMembershipsOpts{
			UserID:         opts.UserID,
			OrganizationID: opts.OrganizationID,
			Statuses:       opts.Statuses,
			Limit:          100,
			Order:          usermanagement.Asc,
			After:          after,
		})
		if err != nil {
			return nil, wrapErr(epListMemberships, err)
		}
		all = append(all, resp.Data...)
		if resp.ListMetadata.After == "" || resp.ListMetadata.After == after || len(resp.Data) == 0 {
			return all, nil
		}
		after = resp.ListMetadata.After
	}
	return all, nil
}

// CreateMembership adds the user to the organization with the role.
func (c *Client) CreateMembership(ctx context.Context, userID, orgID, roleSlug string) (OrganizationMembership, error) {
	if userID == "" || orgID == "" {
		return OrganizationMembership{}, errors.Join(ErrInvalidArgument, errors.New("membership needs a user and an organization"))
	}
	m, err := c.um.CreateOrganizationMembership(ctx, usermanagement.CreateOrganizationMembershipOpts{
		UserID: userID, OrganizationID: orgID, RoleSlug: roleSlug,
	})
	return m, wrapErr(epCreateMember, err)
}

// CreateMagicAuth creates a one-time code for the email; WorkOS emails it
// (POST /user_management/magic_auth).
func (c *Client) CreateMagicAuth(ctx context.Context, email string) (MagicAuth, error) {
	if email == "" {
		return MagicAuth{}, errors.Join(ErrInvalidArgument, errors.New("email is empty"))
	}
	m, err := c.um.CreateMagicAuth(withoutReplay(ctx), usermanagement.CreateMagicAuthOpts{Email: email})
	return m, wrapErr(epCreateMagicAuth, err)
}

// MagicAuthCreatedSince finds a magic-auth code created for the email
// (case-insensitive) at or after since, through the Events API's
// magic_auth.created: WorkOS has no listing of codes, so this is how a
// caller whose create got no answer learns whether it was sent. ok is
// false when there is none.
func (c *Client) MagicAuthCreatedSince(ctx context.Context, email string, since time.Time) (id string, ok bool, err error) {
	if email == "" {
		return "", false, errors.Join(ErrInvalidArgument, errors.New("email is empty"))
	}
	after := ""
	for range maxPages {
		resp, err := c.ev.ListEvents(ctx, events.ListEventsOpts{
			Events:     []string{events.MagicAuthCreated},
			Limit:      100,
			After:      after,
			RangeStart: since.UTC().Format(time.RFC3339Nano),
		})
		if err != nil {
			return "", false, wrapErr(epListEvents, err)
		}
		for _, ev := range resp.Data {
			var m struct {
				ID    string `json:"id"`
				Email string `json:"email"`
			}
			if json.Unmarshal(ev.Data, &m) == nil && m.ID != "" && strings.EqualFold(m.Email, email) {
				return m.ID, true, nil
			}
		}
		if resp.ListMetadata.After == "" || resp.ListMetadata.After == after || len(resp.Data) == 0 {
			return "", false, nil
		}
		after = resp.ListMetadata.After
	}
	return "", false, nil
}
