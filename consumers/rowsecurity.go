package consumers

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/syncd/syncd/queries"
)

// ErrRowSecurity: the connected role would have row-level security filter
// the rows syncd writes. Its upserts would then miss rows they must see
// (and create duplicates or fail), so syncd refuses to start instead.
var ErrRowSecurity = errors.New("row-level security applies to syncd's database role")

// CheckWriter reports ErrRowSecurity, naming the tables, when row-level
// security is active for the connected role on any table of the public
// schema: syncd must connect as the tables' owner (without FORCE ROW LEVEL
// SECURITY) or as a role with BYPASSRLS. serve and replay call it before
// applying anything.
func CheckWriter(ctx context.Context, db queries.DBTX) error {
	tables, err := queries.New().RowSecurityFilteredTables(ctx, db)
	if err != nil {
		return fmt.Errorf("check row-level security: %w", err)
	}
	if len(tables) == 0 {
		return nil
	}
	return fmt.Errorf("%w: it would filter %s: connect as the tables' owner (the role that ran the migrations) or a role with BYPASSRLS (ALTER ROLE … BYPASSRLS), and do not FORCE ROW LEVEL SECURITY on them",
		ErrRowSecurity, strings.Join(tables, ", "))
}
