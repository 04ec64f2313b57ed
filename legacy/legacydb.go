package legacy

import (
	"context"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// StripeLinks are a legacy user's Stripe ids in the legacy database.
type StripeLinks struct {
	CustomerID       string
	ConnectAccountID string
}

// LegacyUsersTableDefault is the legacy app's users table.
const LegacyUsersTableDefault = "users"

// LegacyDB reads the Clerk-era app's database: for each Clerk user, its
// Stripe customer and Connect account, which decide the personal
// organization's type.
type LegacyDB struct {
	pool  *pgxpool.Pool
	table pgx.Identifier
}

// CheckTable checks a table name as OpenLegacyDB takes it: a table,
// optionally schema-qualified.
func CheckTable(table string) error {
	parts := strings.Split(table, ".")
	if len(parts) > 2 || strings.TrimSpace(parts[0]) == "" || strings.TrimSpace(parts[len(parts)-1]) == "" {
		return fmt.Errorf("%q: want table or schema.table", table)
	}
	return nil
}

// OpenLegacyDB connects to the legacy database. table is the users
// table, optionally schema-qualified ("public.users"); it needs the
// columns clerk_user_id, stripe_customer_id and stripe_connect_account_id.
func OpenLegacyDB(ctx context.Context, url, table string) (*LegacyDB, error) {
	if table == "" {
		table = LegacyUsersTableDefault
	}
	if err := CheckTable(table); err != nil {
		return nil, fmt.Errorf("legacy users table %w", err)
	}
	pool, err := pgxpool.New(ctx, url)
	if err != nil {
		return nil, fmt.Errorf("legacy database: %w", err)
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("reach legacy database: %w", err)
	}
	l := &LegacyDB{pool: pool, table: pgx.Identifier(strings.Split(table, "."))}
	// Fail before any WorkOS write when the table or a column is not there.
	if _, err := l.Links(ctx, nil); err != nil {
		pool.Close()
		return nil, err
	}
	return l, nil
}

// Close closes the connection pool.
func (l *LegacyDB) Close() { l.pool.Close() }

// linksChunk bounds the ids of one query.
const linksChunk = 5000

// Links returns the Stripe links of the Clerk users that have any.
//
// The legacy database is not syncd's: sqlc does not know its schema (and
// the table name is configurable), so this is the one query syncd sends
// without sqlc — a single parameterized SELECT, the table name quoted as
// an identifier.
func (l *LegacyDB) Links(ctx context.Context, clerkIDs []string) (map[string]StripeLinks, error) {
	query := fmt.Sprintf(`SELECT clerk_user_id::text, stripe_customer_id::text, stripe_connect_account_id::text
		FROM %s WHERE clerk_user_id::text = ANY($1::text[])`, l.table.Sanitize())
	out := map[string]StripeLinks{}
	for start := 0; start == 0 || start < len(clerkIDs); start += linksChunk {
		chunk := clerkIDs[start:min(start+linksChunk, len(clerkIDs))]
		rows, err := l.pool.Query(ctx, query, chunk)
		if err != nil {
			return nil, fmt.Errorf("read legacy %s: %w", l.table.Sanitize(), err)
		}
		for rows.Next() {
			var id string
			var customer, connect *string
			if err := rows.Scan(&id, &customer, &connect); err != nil {
				rows.Close()
				return nil, fmt.Errorf("read legacy %s: %w", l.table.Sanitize(), err)
			}
			s := StripeLinks{CustomerID: strings.TrimSpace(deref(customer)), ConnectAccountID: strings.TrimSpace(deref(connect))}
			if s != (StripeLinks{}) {
				out[id] = s
			}
		}
		if err := rows.Err(); err != nil {
			return nil, fmt.Errorf("read legacy %s: %w", l.table.Sanitize(), err)
		}
		if len(clerkIDs) == 0 {
			break
		}
	}
	return out, nil
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}
