package workosapi

import (
	"context"
	"errors"
	"fmt"
	"strings"
)

// The Ensure helpers write through lookups, so that retries, replays,
// restarts and concurrent callers never make a second object. Each reports
// whether it created the object or adopted one that existed.

// EnsureUser creates the user, or adopts the one that already holds the
// external id (when opts has one) or the email: WorkOS answers a taken
// email with 400 user_creation_error / email_not_available.
func (c *Client) EnsureUser(ctx context.Context, opts CreateUserOpts) (u User, created bool, err error) {
	if opts.ExternalID != "" {
		u, err := c.GetUserByExternalID(ctx, opts.ExternalID)
		if err == nil {
			return u, false, nil
		}
		if !IsNotFound(err) {
			return User{}, false, err
		}
	}
	u, err = c.CreateUser(ctx, opts)
	if err == nil {
		return u, true, nil
	}
	if IsTransient(err) {
		return User{}, false, err
	}
	if IsEmailTaken(err) {
		found, lerr := c.userByEmail(ctx, opts.Email)
		if lerr != nil {
			return User{}, false, lerr
		}
		if found != nil {
			return *found, false, nil
		}
		// Taken but not listed: another writer's user is not visible
		// yet. Worth another try later.
		return User{}, false, fmt.Errorf("%w: %w", ErrNotVisible, err)
	}
	if opts.ExternalID != "" {
		// Another writer may have taken the external id meanwhile.
		if u, gerr := c.GetUserByExternalID(ctx, opts.ExternalID); gerr == nil {
			return u, false, nil
		}
	}
	return User{}, false, err
}

// UserByEmail finds the user holding the email (case-insensitive); nil
// when there is none.
func (c *Client) UserByEmail(ctx context.Context, email string) (*User, error) {
	return c.userByEmail(ctx, email)
}

func (c *Client) userByEmail(ctx context.Context, email string) (*User, error) {
	list, err := c.ListUsersByEmail(ctx, email)
	if err != nil {
		return nil, err
	}
	for i := range list {
		if strings.EqualFold(list[i].Email, email) {
			return &list[i], nil
		}
	}
	return nil, nil
}

// EnsureOrganization returns the organization with opts.ExternalID,
// creating it when there is none. If a create fails because another writer
// made it meanwhile, that one is adopted.
func (c *Client) EnsureOrganization(ctx context.Context, opts CreateOrganizationOpts) (o Organization, created bool, err error) {
	if opts.ExternalID == "" {
		return Organization{}, false, errors.Join(ErrInvalidArgument, errors.New("EnsureOrganization needs an external id"))
	}
	o, err = c.GetOrganizationByExternalID(ctx, opts.ExternalID)
	if err == nil {
		return o, false, nil
	}
	if !IsNotFound(err) {
		return Organization{}, false, err
	}
	o, err = c.CreateOrganization(ctx, opts)
	if err == nil {
		return o, true, nil
	}
	if IsTransient(err) {
		return Organization{}, false, err
	}
	if o, gerr := c.GetOrganizationByExternalID(ctx, opts.ExternalID); gerr == nil {
		return o, false, nil
	}
	return Organization{}, false, err
}

// EnsureMembership returns the user's membership in the organization,
// creating one with the role when there is none. An existing membership
// is adopted whatever its role and status.
func (c *Client) EnsureMembership(ctx context.Context, userID, orgID, roleSlug string) (m OrganizationMembership, created bool, err error) {
	find := func() (*OrganizationMembership, error) {
		list, err := c.ListMemberships(ctx, ListMembershipsOpts{UserID: userID, OrganizationID: orgID})
		if err != nil {
			return nil, err
		}
		for i := range list {
			if list[i].UserID == userID && list[i].OrganizationID == orgID {
				return &list[i], nil
			}
		}
		return nil, nil
	}
	found, err := find()
	if err != nil {
		return OrganizationMembership{}, false, err
	}
	if found != nil {
		return *found, false, nil
	}
	m, err = c.CreateMembership(ctx, userID, orgID, roleSlug)
	if err == nil {
		return m, true, nil
	}
	if IsTransient(err) {
		return OrganizationMembership{}, false, err
	}
	if found, ferr := find(); ferr == nil && found != nil {
		return *found, false, nil
	}
	return OrganizationMembership{}, false, err
}

// ErrNotVisible means WorkOS refused a create because the object exists,
// but no lookup shows it yet; IsTransient holds for it.
var ErrNotVisible = errors.New("workosapi: taken, but not visible to lookups yet")
