package consumers

import "context"

// linkUser links rows that other providers stored before this WorkOS user
// arrived (Stripe customers, meetings booked under the user's email).
func linkUser(ctx context.Context, tx Tx, workosUserID string, email *string) error {
	return nil
}
