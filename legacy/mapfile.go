package legacy

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/syncd/syncd/queries"
)

// MapEntry is one row of the map as `syncd import map` prints it for the
// app's data migration: a legacy row owned by ClerkUserID gets
// WorkOSUserID and OrgID (the app's organizations.id of the personal
// organization; empty until its webhook arrived).
type MapEntry struct {
	ClerkUserID            string     `json:"clerk_user_id"`
	Email                  string     `json:"email"`
	WorkOSUserID           string     `json:"workos_user_id"`
	WorkOSOrgID            string     `json:"workos_org_id"`
	OrgID                  string     `json:"org_id"`
	OrgType                string     `json:"org_type"`
	StripeCustomerID       string     `json:"stripe_customer_id"`
	StripeConnectAccountID string     `json:"stripe_connect_account_id"`
	Outcome                string     `json:"outcome"`
	Detail                 string     `json:"detail"`
	ImportedAt             *time.Time `json:"imported_at"`
}

var mapColumns = []string{"clerk_user_id", "email", "workos_user_id", "workos_org_id", "org_id", "org_type",
	"stripe_customer_id", "stripe_connect_account_id", "outcome", "detail", "imported_at"}

func entryOf(r queries.LegacyUserMap) MapEntry {
	e := MapEntry{
		ClerkUserID: r.ClerkUserID, Email: r.Email,
		WorkOSUserID: deref(r.WorkosUserID), WorkOSOrgID: deref(r.WorkosOrgID), OrgType: deref(r.OrgType),
		StripeCustomerID: deref(r.StripeCustomerID), StripeConnectAccountID: deref(r.StripeConnectAccountID),
		Outcome: r.Outcome, Detail: deref(r.Detail), ImportedAt: r.ImportedAt,
	}
	if r.OrgID != nil {
		e.OrgID = r.OrgID.String()
	}
	return e
}

func (e MapEntry) record() []string {
	at := ""
	if e.ImportedAt != nil {
		at = e.ImportedAt.UTC().Format(time.RFC3339)
	}
	return []string{e.ClerkUserID, e.Email, e.WorkOSUserID, e.WorkOSOrgID, e.OrgID, e.OrgType,
		e.StripeCustomerID, e.StripeConnectAccountID, e.Outcome, e.Detail, at}
}

const mapPage = 1000

// EachMapEntry calls fn for every map row in Clerk id order, after
// filling org_id from the organizations that have arrived.
func EachMapEntry(ctx context.Context, pool *pgxpool.Pool, fn func(MapEntry) error) error {
	q := queries.New()
	if _, err := q.LegacyUserMapOrgIDsResolve(ctx, pool); err != nil {
		return fmt.Errorf("fill legacy_user_map.org_id: %w", err)
	}
	after := ""
	for {
		rows, err := q.LegacyUserMapPage(ctx, pool, queries.LegacyUserMapPageParams{After: after, PageSize: mapPage})
		if err != nil {
			return fmt.Errorf("read legacy_user_map: %w", err)
		}
		for _, r := range rows {
			if err := fn(entryOf(r)); err != nil {
				return err
			}
		}
		if len(rows) < mapPage {
			return nil
		}
		after = rows[len(rows)-1].ClerkUserID
	}
}

// WriteMap prints the map as a JSON array or as CSV with a header.
func WriteMap(ctx context.Context, pool *pgxpool.Pool, w io.Writer, format Format) (int, error) {
	n := 0
	switch format {
	case FormatCSV:
		cw := csv.NewWriter(w)
		if err := cw.Write(mapColumns); err != nil {
			return 0, err
		}
		err := EachMapEntry(ctx, pool, func(e MapEntry) error {
			n++
			return cw.Write(e.record())
		})
		cw.Flush()
		if err == nil {
			err = cw.Error()
		}
		return n, err
	case FormatJSON:
		if _, err := io.WriteString(w, "["); err != nil {
			return 0, err
		}
		err := EachMapEntry(ctx, pool, func(e MapEntry) error {
			b, err := json.Marshal(e)
			if err != nil {
				return err
			}
			sep := ",\n"
			if n == 0 {
				sep = "\n"
			}
			n++
			_, err = io.WriteString(w, sep+string(b))
			return err
		})
		if err != nil {
			return n, err
		}
		_, err = io.WriteString(w, "\n]\n")
		return n, err
	}
	return 0, fmt.Errorf("map format %q: want csv or json", format)
}
