package main

import "testing"

// The limit leaves out the applier's reads and keeps every write.
func TestLimitLeavesOutReadsOnly(t *testing.T) {
	for sql, read := range map[string]bool{
		"-- name: UserLockMany :many\nSELECT r.workos_user_id FROM unnest($1::text[]) FOR NO KEY UPDATE": true,
		"-- name: MeetingLockPaymentIntents :exec\nSELECT pg_advisory_xact_lock(k)":                      true,
		"-- name: StripeCheckoutSessionGetMany :many\nSELECT":                                            true,
		"-- name: OrganizationsLockNew :exec\nSELECT count(pg_advisory_xact_lock(s.k))":                  true,
		"-- name: StripePaymentIntentIDsByCharges :many\nSELECT":                                         true,
		"-- name: UserUpsertMany :many\nINSERT INTO users":                                               false,
		"-- name: MembershipParentsMany :many\nWITH user_stubs AS (INSERT":                               false,
		"-- name: MembershipSupersedeMany :many\nUPDATE":                                                 false,
		"INSERT INTO webhook_events":                                                                     false,
	} {
		if got := isRead(sql); got != read {
			t.Errorf("isRead(%.40q) = %v, want %v", sql, got, read)
		}
	}
}
