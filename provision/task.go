package provision

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/workos/workos-go/v4/pkg/usermanagement"

	"github.com/syncd/syncd/queries"
	"github.com/syncd/syncd/workosapi"
)

// Steps of a task, in order; a task's step column is the next to run.
const (
	stepUser         = "user"
	stepOrganization = "organization"
	stepMembership   = "membership"
	stepMagicAuth    = "magic_auth"
	stepDone         = "done"
)

// Outcomes of a task, for the ledger and the metrics.
const (
	outcomeCreated   = "created"   // something was written to WorkOS
	outcomeUnchanged = "unchanged" // everything existed
	outcomeFailed    = "failed"    // WorkOS refused a step: dead-lettered
	outcomeSkipped   = "skipped"   // the task was done already (a redelivery)
	outcomeIgnored   = "ignored"   // the event asks for nothing
)

// errBusy means another worker (here or in another replica) holds the
// person's lock: try again shortly, without counting.
var errBusy = errors.New("provision: task in progress elsewhere")

// errKilled is returned by a test's afterStep hook to stop a task dead,
// as a crash would: nothing more is written and the message is left
// unsettled.
var errKilled = errors.New("provision: killed")

// run performs the task of r, resuming where an earlier attempt stopped.
// It runs on one connection of the provisioner's own pool, holding the
// person's advisory lock there for the whole task, so a crash releases
// the lock with the connection; each step's result is committed on it as
// soon as WorkOS answered, so it survives the crash.
func (p *Provisioner) run(ctx context.Context, r request) (string, error) {
	conn, err := p.tasks.Acquire(ctx)
	if err != nil {
		return "", fmt.Errorf("task connection: %w", err)
	}
	defer conn.Release()
	locked, err := p.q.ProvisioningTaskLockTry(ctx, conn, r.lockKey)
	if err != nil {
		return "", fmt.Errorf("task lock: %w", err)
	}
	if !locked {
		return "", errBusy
	}
	defer func() {
		uctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		if ok, err := p.q.ProvisioningTaskUnlock(uctx, conn, r.lockKey); err != nil || !ok {
			// Never hand back a connection that may still hold the lock.
			_ = conn.Conn().Close(uctx)
		}
	}()
	db := conn
	start := queries.ProvisioningTaskStartParams{
		TaskKey: r.key, Kind: r.kind, Email: r.email,
		FirstName: nonEmpty(r.firstName), LastName: nonEmpty(r.lastName), Booking: nonEmpty(r.booking),
		EventSource: r.eventSource, EventID: r.eventID, Step: stepUser,
	}
	if r.kind == kindUser {
		// WorkOS announced the user: there is nothing to create there.
		start.Step, start.WorkosUserID = stepOrganization, &r.userID
	}
	t, err := p.q.ProvisioningTaskStart(ctx, db, start)
	if err != nil {
		return "", fmt.Errorf("start task %s: %w", r.key, err)
	}
	if t.Step == stepDone {
		return outcomeSkipped, nil
	}
	if r.kind == kindUser && t.Step == stepOrganization && t.WorkosOrgID == nil {
		// The user this task is about may be the guest a booking just
		// provisioned: its task knows the organization without a call.
		if g, err := p.q.ProvisioningTaskGet(ctx, db, "guest:"+r.email); err == nil &&
			g.Step == stepDone && g.WorkosUserID != nil && *g.WorkosUserID == r.userID && g.WorkosOrgID != nil {
			t.WorkosOrgID, t.WorkosMembershipID = g.WorkosOrgID, g.WorkosMembershipID
			t.Step = stepDone
			return p.finish(ctx, db, &t)
		} else if err = queries.Check(err); err != nil && !errors.Is(err, queries.ErrNotFound) {
			return "", fmt.Errorf("look up guest task: %w", err)
		}
	}
	t.Outcome, t.LastError = nil, nil
	for t.Step != stepDone {
		step := t.Step
		var err error
		switch step {
		case stepUser:
			err = p.stepUser(ctx, &t)
		case stepOrganization:
			err = p.stepOrganization(ctx, &t)
		case stepMembership:
			err = p.stepMembership(ctx, &t)
		case stepMagicAuth:
			err = p.stepMagicAuth(ctx, &t)
		default:
			err = fmt.Errorf("task %s: unknown step %q", t.TaskKey, step)
		}
		if err != nil {
			if classify(err) != transientClass {
				t.Outcome, t.LastError = ptr(outcomeFailed), ptr(err.Error())
				if serr := p.save(ctx, db, &t); serr != nil {
					return "", serr
				}
			}
			return "", fmt.Errorf("task %s step %s: %w", t.TaskKey, step, err)
		}
		if t.Step == stepDone {
			return p.finish(ctx, db, &t)
		}
		if err := p.save(ctx, db, &t); err != nil {
			return "", err
		}
		if p.afterStep != nil {
			if err := p.afterStep(t.TaskKey, step); err != nil {
				return "", err
			}
		}
	}
	return p.finish(ctx, db, &t)
}

// finish stores a task as done with its outcome.
func (p *Provisioner) finish(ctx context.Context, db queries.DBTX, t *queries.ProvisioningTask) (string, error) {
	out := outcomeUnchanged
	if t.UserCreated || t.OrgCreated || t.MembershipCreated || t.MagicAuthID != nil {
		out = outcomeCreated
	}
	now := time.Now()
	t.Step, t.Outcome, t.LastError, t.CompletedAt = stepDone, &out, nil, &now
	if err := p.save(ctx, db, t); err != nil {
		return "", err
	}
	if p.afterStep != nil {
		if err := p.afterStep(t.TaskKey, stepDone); err != nil {
			return "", err
		}
	}
	return out, nil
}

func (p *Provisioner) save(ctx context.Context, db queries.DBTX, t *queries.ProvisioningTask) error {
	err := p.q.ProvisioningTaskSave(ctx, db, queries.ProvisioningTaskSaveParams{
		TaskKey:            t.TaskKey,
		Step:               t.Step,
		WorkosUserID:       t.WorkosUserID,
		WorkosOrgID:        t.WorkosOrgID,
		WorkosMembershipID: t.WorkosMembershipID,
		MagicAuthID:        t.MagicAuthID,
		UserCreated:        t.UserCreated,
		OrgCreated:         t.OrgCreated,
		MembershipCreated:  t.MembershipCreated,
		SendMagicAuth:      t.SendMagicAuth,
		Outcome:            t.Outcome,
		LastError:          t.LastError,
		CompletedAt:        t.CompletedAt,
	})
	if err != nil {
		return fmt.Errorf("save task %s: %w", t.TaskKey, err)
	}
	return nil
}

// stepUser finds the guest's WorkOS user or creates it. A user found in
// place of the one to create — made by an earlier attempt whose answer
// was lost, by another writer, or an account the guest already had — is
// adopted; only an unverified guest account gets the magic-auth code.
func (p *Provisioner) stepUser(ctx context.Context, t *queries.ProvisioningTask) error {
	found, err := p.api.UserByEmail(ctx, t.Email)
	if err != nil {
		return err
	}
	var u workosapi.User
	if found != nil {
		u = *found
	} else {
		meta := map[string]string{"registrationType": "guest"}
		if t.Booking != nil {
			meta["booking"] = *t.Booking
		}
		var created bool
		u, created, err = p.api.EnsureUser(ctx, workosapi.CreateUserOpts{
			Email:     t.Email,
			FirstName: deref(t.FirstName),
			LastName:  deref(t.LastName),
			Metadata:  meta,
		})
		if err != nil {
			return err
		}
		t.UserCreated = created
	}
	t.WorkosUserID = &u.ID
	t.SendMagicAuth = t.UserCreated || (u.Metadata["registrationType"] == "guest" && !u.EmailVerified)
	if t.FirstName == nil {
		t.FirstName = nonEmpty(u.FirstName)
	}
	if t.LastName == nil {
		t.LastName = nonEmpty(u.LastName)
	}
	t.Step = stepOrganization
	return nil
}

// stepOrganization finds the user's personal organization or creates it.
// A user this task did not create may have one already, made by the app
// or before syncd (a membership in an organization typed personal, or
// carrying the derived external id): that one is kept and nothing else
// is written.
func (p *Provisioner) stepOrganization(ctx context.Context, t *queries.ProvisioningTask) error {
	userID := deref(t.WorkosUserID)
	if !t.UserCreated {
		org, membership, err := p.personalOrg(ctx, userID)
		if err != nil {
			return err
		}
		if org != "" {
			t.WorkosOrgID, t.WorkosMembershipID = &org, &membership
			t.Step = p.afterMembership(t)
			return nil
		}
	}
	o, created, err := p.api.EnsureOrganization(ctx, workosapi.CreateOrganizationOpts{
		Name:       OrgName(p.cfg.OrgName, deref(t.FirstName), deref(t.LastName), t.Email),
		ExternalID: PersonalOrgExternalID(userID),
		Metadata:   map[string]string{"type": p.cfg.OrgType},
	})
	if err != nil {
		return err
	}
	t.WorkosOrgID, t.OrgCreated = &o.ID, created
	t.Step = stepMembership
	return nil
}

// personalOrg returns the user's active membership in a personal
// organization, if any.
func (p *Provisioner) personalOrg(ctx context.Context, userID string) (org, membership string, err error) {
	return PersonalOrg(ctx, p.api, userID, p.cfg.PersonalTypes)
}

// PersonalOrg finds the user's active membership in a personal
// organization: one carrying PersonalOrgExternalID, or typed (metadata
// "type") as one of types. Empty ids when there is none. The Clerk import
// uses it too, so an adopted user's existing organization is kept.
func PersonalOrg(ctx context.Context, api *workosapi.Client, userID string, types []string) (org, membership string, err error) {
	list, err := api.ListMemberships(ctx, workosapi.ListMembershipsOpts{
		UserID:   userID,
		Statuses: []usermanagement.OrganizationMembershipStatus{usermanagement.Active},
	})
	if err != nil {
		return "", "", err
	}
	for _, m := range list {
		if m.Status != usermanagement.Active {
			continue
		}
		o, err := api.GetOrganization(ctx, m.OrganizationID)
		if workosapi.IsNotFound(err) {
			continue // deleted since
		}
		if err != nil {
			return "", "", err
		}
		if o.ExternalID == PersonalOrgExternalID(userID) || slices.Contains(types, o.Metadata["type"]) {
			return o.ID, m.ID, nil
		}
	}
	return "", "", nil
}

func (p *Provisioner) stepMembership(ctx context.Context, t *queries.ProvisioningTask) error {
	m, created, err := p.api.EnsureMembership(ctx, deref(t.WorkosUserID), deref(t.WorkosOrgID), p.cfg.OwnerRole)
	if err != nil {
		return err
	}
	t.WorkosMembershipID, t.MembershipCreated = &m.ID, created
	t.Step = p.afterMembership(t)
	return nil
}

func (p *Provisioner) afterMembership(t *queries.ProvisioningTask) string {
	if t.Kind == kindGuest && t.SendMagicAuth {
		return stepMagicAuth
	}
	return stepDone
}

// stepMagicAuth sends the guest a one-time code for the dashboard. WorkOS
// has nothing to look a sent code up by: the step's record is what keeps
// it from being sent twice (a crash between the call and the record sends
// a second code, which is harmless; never sending one is not).
func (p *Provisioner) stepMagicAuth(ctx context.Context, t *queries.ProvisioningTask) error {
	m, err := p.api.CreateMagicAuth(ctx, t.Email)
	if err != nil {
		return err
	}
	t.MagicAuthID = &m.ID
	t.Step = stepDone
	return nil
}

func nonEmpty(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

func ptr[T any](v T) *T { return &v }
