-- name: StripeTransferUpsert :one
-- Mirrors a transfer at version (stripe_created, stripe_event_rank,
-- stripe_event_id): created 0 < updated 1 < reversed 2. No row back means
-- stale.
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
    destination_account_id   = EXCLUDED.destination_account_id,
    amount                   = EXCLUDED.amount,
    amount_reversed          = EXCLUDED.amount_reversed,
    currency                 = EXCLUDED.currency,
    reversed                 = EXCLUDED.reversed,
    source_transaction       = EXCLUDED.source_transaction,
    transfer_group           = EXCLUDED.transfer_group,
    stripe_session_id        = EXCLUDED.stripe_session_id,
    stripe_payment_intent_id = EXCLUDED.stripe_payment_intent_id,
    metadata                 = EXCLUDED.metadata,
    object_created           = COALESCE(EXCLUDED.object_created, stripe_transfers.object_created),
    stripe_created           = EXCLUDED.stripe_created,
    stripe_event_rank        = EXCLUDED.stripe_event_rank,
    stripe_event_id          = EXCLUDED.stripe_event_id,
    updated_at               = now()
WHERE (stripe_transfers.stripe_created, stripe_transfers.stripe_event_rank, stripe_transfers.stripe_event_id)
      < (EXCLUDED.stripe_created, EXCLUDED.stripe_event_rank, EXCLUDED.stripe_event_id)
RETURNING stripe_transfer_id;

-- name: StripeTransferGet :one
SELECT * FROM stripe_transfers WHERE stripe_transfer_id = @stripe_transfer_id;

-- name: StripeTransferLockMany :many
-- As StripeCustomerLockMany, for transfers.
SELECT stripe_transfer_id, stripe_created, stripe_event_rank, stripe_event_id
FROM stripe_transfers
WHERE stripe_transfer_id = ANY(@stripe_transfer_ids::text[])
ORDER BY stripe_transfer_id
FOR UPDATE;

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
    destination_account_id   = EXCLUDED.destination_account_id,
    amount                   = EXCLUDED.amount,
    amount_reversed          = EXCLUDED.amount_reversed,
    currency                 = EXCLUDED.currency,
    reversed                 = EXCLUDED.reversed,
    source_transaction       = EXCLUDED.source_transaction,
    transfer_group           = EXCLUDED.transfer_group,
    stripe_session_id        = EXCLUDED.stripe_session_id,
    stripe_payment_intent_id = EXCLUDED.stripe_payment_intent_id,
    metadata                 = EXCLUDED.metadata,
    object_created           = COALESCE(EXCLUDED.object_created, stripe_transfers.object_created),
    stripe_created           = EXCLUDED.stripe_created,
    stripe_event_rank        = EXCLUDED.stripe_event_rank,
    stripe_event_id          = EXCLUDED.stripe_event_id,
    updated_at               = now()
WHERE (stripe_transfers.stripe_created, stripe_transfers.stripe_event_rank, stripe_transfers.stripe_event_id)
      < (EXCLUDED.stripe_created, EXCLUDED.stripe_event_rank, EXCLUDED.stripe_event_id)
RETURNING stripe_transfer_id;
