package legacy

import (
	"context"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/syncd/syncd/provision"
	"github.com/syncd/syncd/queries"
)

// Problem is a map row that does not resolve in Postgres.
type Problem struct {
	ClerkUserID  string
	WorkOSUserID string
	WorkOSOrgID  string
	// Missing names what is wrong: "import not complete (failed: …)",
	// "user", "personal organization", "owner membership".
	Missing []string
}

func (p Problem) String() string {
	s := p.ClerkUserID
	if p.WorkOSUserID != "" {
		s += " (" + p.WorkOSUserID + ")"
	}
	return s + ": " + strings.Join(p.Missing, ", ")
}

// Verification is the result of Verify.
type Verification struct {
	// Rows are the map's rows; Problems those that do not resolve.
	Rows     int
	Problems []Problem
}

// Verify checks the map against what the webhooks brought into Postgres:
// every row complete, its user, its personal organization and the user's
// active owner membership there present (not deleted, not a stub). It
// fills org_id where the organization has arrived. ownerRole "" is
// provisioning's default.
func Verify(ctx context.Context, pool *pgxpool.Pool, ownerRole string) (Verification, error) {
	if ownerRole == "" {
		ownerRole = provision.OwnerRoleDefault
	}
	q := queries.New()
	var v Verification
	if _, err := q.LegacyUserMapOrgIDsResolve(ctx, pool); err != nil {
		return v, fmt.Errorf("fill legacy_user_map.org_id: %w", err)
	}
	counts, err := q.LegacyUserMapCountByOutcome(ctx, pool)
	if err != nil {
		return v, fmt.Errorf("count legacy_user_map: %w", err)
	}
	for _, c := range counts {
		v.Rows += int(c.Rows)
	}
	rows, err := q.LegacyUserMapVerify(ctx, pool, ownerRole)
	if err != nil {
		return v, fmt.Errorf("verify legacy_user_map: %w", err)
	}
	for _, r := range rows {
		p := Problem{ClerkUserID: r.ClerkUserID, WorkOSUserID: deref(r.WorkosUserID), WorkOSOrgID: deref(r.WorkosOrgID)}
		if !Complete(r.Outcome) {
			what := "import not complete (" + r.Outcome
			if d := deref(r.Detail); d != "" {
				what += ": " + d
			}
			p.Missing = append(p.Missing, what+")")
		}
		switch {
		case r.WorkosUserID == nil:
			p.Missing = append(p.Missing, "no WorkOS user mapped")
		case !r.UserFound:
			p.Missing = append(p.Missing, "user "+*r.WorkosUserID+" not in users")
		}
		switch {
		case r.WorkosOrgID == nil:
			p.Missing = append(p.Missing, "no personal organization mapped")
		case !r.OrgFound:
			p.Missing = append(p.Missing, "personal organization "+*r.WorkosOrgID+" not in organizations")
		}
		if r.WorkosUserID != nil && r.WorkosOrgID != nil && !r.OwnerFound {
			p.Missing = append(p.Missing, fmt.Sprintf("no active %s membership in user_org_memberships", ownerRole))
		}
		v.Problems = append(v.Problems, p)
	}
	return v, nil
}
