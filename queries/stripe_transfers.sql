-- name: StripeTransferUpsert :one
-- Mirrors a transfer at version (stripe_created, stripe_event_rank,
-- stripe_event_id): created 0 < updated 1 < reversed 2. A reversal in full
-- is for good, like a tombstone: reversed stays once set, and applies even
-- when a newer update came first, but then only as the reversal (and the
-- amount reversed only grows). No row back means stale.
INSERT INTO stripe_transfers (
    stripe_transfer_id, destination_account_id, amount, amount_reversed, currency, reversed,
    source_transaction, transfer_group, stripe_session_id, stripe_payment_intent_id, metadata,
    object_created, stripe_created, stripe_event_rank, stripe_event_id
) VALUES (
    @stripe_transfer_id, @destination_account_id, @amount, @amount_reversed, @currency, @reversed,
    @source_transaction, @transfer_group, @stripe_session_id, @stripe_payment_intent_id, @metadata,
    @object_created, @stripe_created, @stripe_event_rank, @stripe_event_id
)
ON CONFLICT (stripe_transfer_id) DO UPDATE SET
    destination_account_id   = CASE WHEN (stripe_transfers.stripe_created, stripe_transfers.stripe_event_rank, stripe_transfers.stripe_event_id) < (EXCLUDED.stripe_created, EXCLUDED.stripe_event_rank, EXCLUDED.stripe_event_id)
                               THEN EXCLUDED.destination_account_id ELSE stripe_transfers.destination_account_id END,
    amount                   = CASE WHEN (stripe_transfers.stripe_created, stripe_transfers.stripe_event_rank, stripe_transfers.stripe_event_id) < (EXCLUDED.stripe_created, EXCLUDED.stripe_event_rank, EXCLUDED.stripe_event_id)
                               THEN EXCLUDED.amount ELSE stripe_transfers.amount END,
    currency                 = CASE WHEN (stripe_transfers.stripe_created, stripe_transfers.stripe_event_rank, stripe_transfers.stripe_event_id) < (EXCLUDED.stripe_created, EXCLUDED.stripe_event_rank, EXCLUDED.stripe_event_id)
                               THEN EXCLUDED.currency ELSE stripe_transfers.currency END,
    source_transaction       = CASE WHEN (stripe_transfers.stripe_created, stripe_transfers.stripe_event_rank, stripe_transfers.stripe_event_id) < (EXCLUDED.stripe_created, EXCLUDED.stripe_event_rank, EXCLUDED.stripe_event_id)
                               THEN EXCLUDED.source_transaction ELSE stripe_transfers.source_transaction END,
    transfer_group           = CASE WHEN (stripe_transfers.stripe_created, stripe_transfers.stripe_event_rank, stripe_transfers.stripe_event_id) < (EXCLUDED.stripe_created, EXCLUDED.stripe_event_rank, EXCLUDED.stripe_event_id)
                               THEN EXCLUDED.transfer_group ELSE stripe_transfers.transfer_group END,
    stripe_session_id        = CASE WHEN (stripe_transfers.stripe_created, stripe_transfers.stripe_event_rank, stripe_transfers.stripe_event_id) < (EXCLUDED.stripe_created, EXCLUDED.stripe_event_rank, EXCLUDED.stripe_event_id)
                               THEN EXCLUDED.stripe_session_id ELSE stripe_transfers.stripe_session_id END,
    stripe_payment_intent_id = CASE WHEN (stripe_transfers.stripe_created, stripe_transfers.stripe_event_rank, stripe_transfers.stripe_event_id) < (EXCLUDED.stripe_created, EXCLUDED.stripe_event_rank, EXCLUDED.stripe_event_id)
                               THEN EXCLUDED.stripe_payment_intent_id ELSE stripe_transfers.stripe_payment_intent_id END,
    metadata                 = CASE WHEN (stripe_transfers.stripe_created, stripe_transfers.stripe_event_rank, stripe_transfers.stripe_event_id) < (EXCLUDED.stripe_created, EXCLUDED.stripe_event_rank, EXCLUDED.stripe_event_id)
                               THEN EXCLUDED.metadata ELSE stripe_transfers.metadata END,
    amount_reversed          = GREATEST(stripe_transfers.amount_reversed, EXCLUDED.amount_reversed),
    reversed                 = stripe_transfers.reversed OR EXCLUDED.reversed,
    object_created           = COALESCE(EXCLUDED.object_created, stripe_transfers.object_created),
    stripe_created           = CASE WHEN (stripe_transfers.stripe_created, stripe_transfers.stripe_event_rank, stripe_transfers.stripe_event_id) < (EXCLUDED.stripe_created, EXCLUDED.stripe_event_rank, EXCLUDED.stripe_event_id)
                               THEN EXCLUDED.stripe_created ELSE stripe_transfers.stripe_created END,
    stripe_event_rank        = CASE WHEN (stripe_transfers.stripe_created, stripe_transfers.stripe_event_rank, stripe_transfers.stripe_event_id) < (EXCLUDED.stripe_created, EXCLUDED.stripe_event_rank, EXCLUDED.stripe_event_id)
                               THEN EXCLUDED.stripe_event_rank ELSE stripe_transfers.stripe_event_rank END,
    stripe_event_id          = CASE WHEN (stripe_transfers.stripe_created, stripe_transfers.stripe_event_rank, stripe_transfers.stripe_event_id) < (EXCLUDED.stripe_created, EXCLUDED.stripe_event_rank, EXCLUDED.stripe_event_id)
                               THEN EXCLUDED.stripe_event_id ELSE stripe_transfers.stripe_event_id END,
    updated_at               = now()
WHERE (stripe_transfers.stripe_created, stripe_transfers.stripe_event_rank, stripe_transfers.stripe_event_id)
      < (EXCLUDED.stripe_created, EXCLUDED.stripe_event_rank, EXCLUDED.stripe_event_id)
   OR (NOT stripe_transfers.reversed AND EXCLUDED.reversed)
RETURNING stripe_transfer_id;

-- name: StripeTransferGet :one
SELECT * FROM stripe_transfers WHERE stripe_transfer_id = @stripe_transfer_id;

-- name: StripeTransferLockMany :many
-- As StripeCustomerLockMany, for transfers.
SELECT r.*
FROM unnest(@stripe_transfer_ids::text[]) AS k(id)
CROSS JOIN LATERAL (
    SELECT stripe_transfer_id, stripe_created, stripe_event_rank, stripe_event_id, reversed
    FROM stripe_transfers
    WHERE stripe_transfer_id = k.id
    FOR UPDATE
) r;

-- name: StripeTransferUpsertMany :many
-- StripeTransferUpsert for many transfers at once, one row each (a JSON
-- array of stripe_transfers rows), with the same version guard. Returns
-- the transfers written.
INSERT INTO stripe_transfers (
    stripe_transfer_id, destination_account_id, amount, amount_reversed, currency, reversed,
    source_transaction, transfer_group, stripe_session_id, stripe_payment_intent_id, metadata,
    object_created, stripe_created, stripe_event_rank, stripe_event_id
)
SELECT r.stripe_transfer_id, r.destination_account_id, r.amount, r.amount_reversed, r.currency, r.reversed,
       r.source_transaction, r.transfer_group, r.stripe_session_id, r.stripe_payment_intent_id, r.metadata,
       r.object_created, r.stripe_created, r.stripe_event_rank, r.stripe_event_id
FROM jsonb_populate_recordset(NULL::stripe_transfers, @batch::jsonb) AS r
ORDER BY r.stripe_transfer_id
ON CONFLICT (stripe_transfer_id) DO UPDATE SET
    destination_account_id   = CASE WHEN (stripe_transfers.stripe_created, stripe_transfers.stripe_event_rank, stripe_transfers.stripe_event_id) < (EXCLUDED.stripe_created, EXCLUDED.stripe_event_rank, EXCLUDED.stripe_event_id)
                               THEN EXCLUDED.destination_account_id ELSE stripe_transfers.destination_account_id END,
    amount                   = CASE WHEN (stripe_transfers.stripe_created, stripe_transfers.stripe_event_rank, stripe_transfers.stripe_event_id) < (EXCLUDED.stripe_created, EXCLUDED.stripe_event_rank, EXCLUDED.stripe_event_id)
                               THEN EXCLUDED.amount ELSE stripe_transfers.amount END,
    currency                 = CASE WHEN (stripe_transfers.stripe_created, stripe_transfers.stripe_event_rank, stripe_transfers.stripe_event_id) < (EXCLUDED.stripe_created, EXCLUDED.stripe_event_rank, EXCLUDED.stripe_event_id)
                               THEN EXCLUDED.currency ELSE stripe_transfers.currency END,
    source_transaction       = CASE WHEN (stripe_transfers.stripe_created, stripe_transfers.stripe_event_rank, stripe_transfers.stripe_event_id) < (EXCLUDED.stripe_created, EXCLUDED.stripe_event_rank, EXCLUDED.stripe_event_id)
                               THEN EXCLUDED.source_transaction ELSE stripe_transfers.source_transaction END,
    transfer_group           = CASE WHEN (stripe_transfers.stripe_created, stripe_transfers.stripe_event_rank, stripe_transfers.stripe_event_id) < (EXCLUDED.stripe_created, EXCLUDED.stripe_event_rank, EXCLUDED.stripe_event_id)
                               THEN EXCLUDED.transfer_group ELSE stripe_transfers.transfer_group END,
    stripe_session_id        = CASE WHEN (stripe_transfers.stripe_created, stripe_transfers.stripe_event_rank, stripe_transfers.stripe_event_id) < (EXCLUDED.stripe_created, EXCLUDED.stripe_event_rank, EXCLUDED.stripe_event_id)
                               THEN EXCLUDED.stripe_session_id ELSE stripe_transfers.stripe_session_id END,
    stripe_payment_intent_id = CASE WHEN (stripe_transfers.stripe_created, stripe_transfers.stripe_event_rank, stripe_transfers.stripe_event_id) < (EXCLUDED.stripe_created, EXCLUDED.stripe_event_rank, EXCLUDED.stripe_event_id)
                               THEN EXCLUDED.stripe_payment_intent_id ELSE stripe_transfers.stripe_payment_intent_id END,
    metadata                 = CASE WHEN (stripe_transfers.stripe_created, stripe_transfers.stripe_event_rank, stripe_transfers.stripe_event_id) < (EXCLUDED.stripe_created, EXCLUDED.stripe_event_rank, EXCLUDED.stripe_event_id)
                               THEN EXCLUDED.metadata ELSE stripe_transfers.metadata END,
    amount_reversed          = GREATEST(stripe_transfers.amount_reversed, EXCLUDED.amount_reversed),
    reversed                 = stripe_transfers.reversed OR EXCLUDED.reversed,
    object_created           = COALESCE(EXCLUDED.object_created, stripe_transfers.object_created),
    stripe_created           = CASE WHEN (stripe_transfers.stripe_created, stripe_transfers.stripe_event_rank, stripe_transfers.stripe_event_id) < (EXCLUDED.stripe_created, EXCLUDED.stripe_event_rank, EXCLUDED.stripe_event_id)
                               THEN EXCLUDED.stripe_created ELSE stripe_transfers.stripe_created END,
    stripe_event_rank        = CASE WHEN (stripe_transfers.stripe_created, stripe_transfers.stripe_event_rank, stripe_transfers.stripe_event_id) < (EXCLUDED.stripe_created, EXCLUDED.stripe_event_rank, EXCLUDED.stripe_event_id)
                               THEN EXCLUDED.stripe_event_rank ELSE stripe_transfers.stripe_event_rank END,
    stripe_event_id          = CASE WHEN (stripe_transfers.stripe_created, stripe_transfers.stripe_event_rank, stripe_transfers.stripe_event_id) < (EXCLUDED.stripe_created, EXCLUDED.stripe_event_rank, EXCLUDED.stripe_event_id)
                               THEN EXCLUDED.stripe_event_id ELSE stripe_transfers.stripe_event_id END,
    updated_at               = now()
WHERE (stripe_transfers.stripe_created, stripe_transfers.stripe_event_rank, stripe_transfers.stripe_event_id)
      < (EXCLUDED.stripe_created, EXCLUDED.stripe_event_rank, EXCLUDED.stripe_event_id)
   OR (NOT stripe_transfers.reversed AND EXCLUDED.reversed)
RETURNING stripe_transfer_id;
