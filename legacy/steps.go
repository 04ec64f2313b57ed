package legacy

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/workos/workos-go/v4/pkg/usermanagement"

	"github.com/syncd/syncd/provision"
	"github.com/syncd/syncd/queries"
	"github.com/syncd/syncd/workosapi"
)

// Steps of one user's import, for afterStep.
const (
	stepUser         = "user"
	stepOrganization = "organization"
	stepMembership   = "membership"
)

// task is one user to import and its map row as it stands (a new row
// when it had none).
type task struct {
	user  User
	links StripeLinks
	row   queries.LegacyUserMap
}

// result is how a task ended.
type result struct {
	outcome string
	err     error
	// interrupted: the run was stopped before the task settled.
	interrupted bool
	expert      bool
	// password: this run created the user with its bcrypt hash;
	// passwordLeftOut: it created the user without its password, why.
	password        bool
	passwordLeftOut string
}

// errPermanent marks a failure that is the data's, not WorkOS's
// availability: the row is marked failed.
var errPermanent = errors.New("refused")

func (im *Importer) runTask(ctx context.Context, t task) result {
	var r result
	var err error
	if im.cfg.MapOnly {
		err = im.mapOnly(ctx, &t)
	} else {
		err = im.importUser(ctx, &t, &r)
	}
	if err == nil {
		r.outcome = t.row.Outcome
		r.expert = deref(t.row.OrgType) == im.cfg.ExpertOrgType
		return r
	}
	if ctx.Err() != nil {
		r.interrupted = true
		return r
	}
	r.err = err
	r.outcome = OutcomeFailed
	if workosapi.IsTransient(err) && !errors.Is(err, errPermanent) {
		r.outcome = OutcomeInProgress
	}
	t.row.Outcome, t.row.Detail = r.outcome, ptr(err.Error())
	if serr := im.save(ctx, &t.row); serr != nil {
		r.err = fmt.Errorf("%w (and storing it: %v)", err, serr)
	}
	im.cfg.Logger.Warn("import user", "clerk_user_id", t.user.ClerkID, "line", t.user.Line, "outcome", r.outcome, "err", err)
	return r
}

// importUser runs the steps the row has not finished: user, personal
// organization, owner membership. Each step's result is stored before the
// next begins, so a stopped run resumes at the first missing id; a step
// whose answer was lost is adopted by the next attempt's lookup.
func (im *Importer) importUser(ctx context.Context, t *task, r *result) error {
	u, row := t.user, &t.row
	row.Email = u.Email
	if t.links != (StripeLinks{}) {
		row.StripeCustomerID, row.StripeConnectAccountID = nonEmpty(t.links.CustomerID), nonEmpty(t.links.ConnectAccountID)
	}
	row.Outcome, row.Detail = OutcomeInProgress, nil
	if row.WorkosUserID == nil {
		opts := workosapi.CreateUserOpts{
			Email:         u.Email,
			FirstName:     u.FirstName,
			LastName:      u.LastName,
			EmailVerified: u.EmailVerified,
			ExternalID:    u.ClerkID,
			Metadata:      im.userMetadata(t),
		}
		if u.bcrypt() {
			opts.PasswordHash, opts.PasswordHashType = u.PasswordDigest, usermanagement.Bcrypt
		}
		wu, created, err := im.api.EnsureUser(ctx, opts)
		if err != nil {
			return fmt.Errorf("user %s: %w", u.Email, err)
		}
		if !created && wu.ExternalID != "" && wu.ExternalID != u.ClerkID {
			// Adopting would give two Clerk users one WorkOS user, and the
			// map would re-key one's rows to the other.
			return fmt.Errorf("%w: email %s belongs to WorkOS user %s, whose external id is %s, not %s",
				errPermanent, u.Email, wu.ID, wu.ExternalID, u.ClerkID)
		}
		row.WorkosUserID, row.UserCreated = &wu.ID, created
		row.PasswordImported = created && opts.PasswordHash != ""
		if created {
			r.password, r.passwordLeftOut = row.PasswordImported, u.passwordLeftOut()
		}
		if err := im.stepDone(ctx, t, stepUser); err != nil {
			return err
		}
	}
	userID := *row.WorkosUserID
	if row.WorkosOrgID == nil {
		if !row.UserCreated {
			// A user that existed may have its personal organization
			// already (provisioned, or the app's): keep it.
			org, membership, err := provision.PersonalOrg(ctx, im.api, userID, im.cfg.PersonalTypes)
			if err != nil {
				return fmt.Errorf("personal organization of %s: %w", userID, err)
			}
			if org != "" {
				row.WorkosOrgID, row.WorkosMembershipID = &org, &membership
				if o, err := im.api.GetOrganization(ctx, org); err == nil {
					row.OrgType = nonEmpty(o.Metadata["type"])
				}
			}
		}
		if row.WorkosOrgID == nil {
			typ := im.cfg.PersonalOrgType
			if t.links.ConnectAccountID != "" {
				typ = im.cfg.ExpertOrgType
			}
			o, created, err := im.api.EnsureOrganization(ctx, workosapi.CreateOrganizationOpts{
				Name:       provision.OrgName(im.cfg.OrgName, u.FirstName, u.LastName, u.Email),
				ExternalID: provision.PersonalOrgExternalID(userID),
				Metadata:   map[string]string{"type": typ},
			})
			if err != nil {
				return fmt.Errorf("personal organization of %s: %w", userID, err)
			}
			// An organization found by its external id keeps its type:
			// it is the app's.
			row.WorkosOrgID, row.OrgCreated = &o.ID, created
			row.OrgType = nonEmpty(o.Metadata["type"])
		}
		if err := im.stepDone(ctx, t, stepOrganization); err != nil {
			return err
		}
	}
	if row.WorkosMembershipID == nil {
		m, created, err := im.api.EnsureMembership(ctx, userID, *row.WorkosOrgID, im.cfg.OwnerRole)
		if err != nil {
			return fmt.Errorf("owner membership of %s in %s: %w", userID, *row.WorkosOrgID, err)
		}
		row.WorkosMembershipID, row.MembershipCreated = &m.ID, created
	}
	row.Outcome = OutcomeAdopted
	if row.UserCreated || row.OrgCreated || row.MembershipCreated {
		row.Outcome = OutcomeCreated
	}
	return im.stepDone(ctx, t, stepMembership)
}

// userMetadata is what a created user carries in WorkOS metadata: where
// it came from and the legacy Stripe links, never a secret of the export.
func (im *Importer) userMetadata(t *task) map[string]string {
	m := map[string]string{"importedFrom": "clerk"}
	if t.links.CustomerID != "" {
		m["stripe_customer_id"] = t.links.CustomerID
	}
	if t.links.ConnectAccountID != "" {
		m["stripe_connect_account_id"] = t.links.ConnectAccountID
	}
	return m
}

// mapOnly fills the row from what WorkOS holds, writing nothing there:
// the user by external id (else email), its personal organization by the
// derived external id (else an active membership in one typed personal),
// and its membership there.
func (im *Importer) mapOnly(ctx context.Context, t *task) error {
	u, row := t.user, &t.row
	row.Email = u.Email
	if t.links != (StripeLinks{}) {
		row.StripeCustomerID, row.StripeConnectAccountID = nonEmpty(t.links.CustomerID), nonEmpty(t.links.ConnectAccountID)
	}
	missing := func(detail string) error {
		row.Outcome, row.Detail = OutcomeMissing, &detail
		return im.save(ctx, row)
	}
	wu, err := im.api.GetUserByExternalID(ctx, u.ClerkID)
	if workosapi.IsNotFound(err) {
		var found *workosapi.User
		if found, err = im.api.UserByEmail(ctx, u.Email); err == nil && found == nil {
			return missing(fmt.Sprintf("no WorkOS user with external id %s or email %s", u.ClerkID, u.Email))
		}
		if found != nil {
			wu = *found
		}
	}
	if err != nil {
		return fmt.Errorf("user %s: %w", u.Email, err)
	}
	if wu.ExternalID != "" && wu.ExternalID != u.ClerkID {
		row.WorkosUserID, row.WorkosOrgID, row.WorkosMembershipID = nil, nil, nil
		return missing(fmt.Sprintf("email %s belongs to WorkOS user %s, whose external id is %s", u.Email, wu.ID, wu.ExternalID))
	}
	row.WorkosUserID = &wu.ID
	var orgID, membershipID string
	o, err := im.api.GetOrganizationByExternalID(ctx, provision.PersonalOrgExternalID(wu.ID))
	switch {
	case err == nil:
		orgID = o.ID
		row.OrgType = nonEmpty(o.Metadata["type"])
	case workosapi.IsNotFound(err):
		if orgID, membershipID, err = provision.PersonalOrg(ctx, im.api, wu.ID, im.cfg.PersonalTypes); err != nil {
			return fmt.Errorf("personal organization of %s: %w", wu.ID, err)
		}
		if orgID == "" {
			row.WorkosOrgID, row.WorkosMembershipID = nil, nil
			return missing(fmt.Sprintf("WorkOS user %s has no personal organization", wu.ID))
		}
		if po, err := im.api.GetOrganization(ctx, orgID); err == nil {
			row.OrgType = nonEmpty(po.Metadata["type"])
		}
	default:
		return fmt.Errorf("personal organization of %s: %w", wu.ID, err)
	}
	row.WorkosOrgID = &orgID
	if membershipID == "" {
		list, err := im.api.ListMemberships(ctx, workosapi.ListMembershipsOpts{UserID: wu.ID, OrganizationID: orgID})
		if err != nil {
			return fmt.Errorf("memberships of %s: %w", wu.ID, err)
		}
		for _, m := range list {
			if m.OrganizationID == orgID && m.UserID == wu.ID {
				membershipID = m.ID
				break
			}
		}
	}
	if membershipID == "" {
		row.WorkosMembershipID = nil
		return missing(fmt.Sprintf("WorkOS user %s is not a member of its personal organization %s", wu.ID, orgID))
	}
	row.WorkosMembershipID = &membershipID
	row.Outcome, row.Detail = OutcomeMapped, nil
	return im.save(ctx, row)
}

func (im *Importer) stepDone(ctx context.Context, t *task, step string) error {
	if err := im.save(ctx, &t.row); err != nil {
		return err
	}
	if im.afterStep != nil {
		im.afterStep(t.user.ClerkID, step)
	}
	return nil
}

// save stores the row. It outlives a cancelled run by a few seconds, so
// that what WorkOS already answered is recorded by a soft stop.
func (im *Importer) save(ctx context.Context, row *queries.LegacyUserMap) error {
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	err := im.q.LegacyUserMapSave(sctx, im.pool, queries.LegacyUserMapSaveParams{
		ClerkUserID:            row.ClerkUserID,
		Email:                  row.Email,
		WorkosUserID:           row.WorkosUserID,
		WorkosOrgID:            row.WorkosOrgID,
		WorkosMembershipID:     row.WorkosMembershipID,
		OrgType:                row.OrgType,
		StripeCustomerID:       row.StripeCustomerID,
		StripeConnectAccountID: row.StripeConnectAccountID,
		UserCreated:            row.UserCreated,
		OrgCreated:             row.OrgCreated,
		MembershipCreated:      row.MembershipCreated,
		PasswordImported:       row.PasswordImported,
		Outcome:                row.Outcome,
		Detail:                 row.Detail,
	})
	if err != nil {
		return fmt.Errorf("store legacy_user_map row %s: %w", row.ClerkUserID, err)
	}
	return nil
}

func nonEmpty(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

func ptr[T any](v T) *T { return &v }
