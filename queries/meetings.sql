-- The merge of a meeting's events is done in Go (consumers/meetings.go) on
-- rows locked FOR UPDATE: payment status precedence, details versions and
-- the joining of a Session's and a PaymentIntent's rows.

-- name: MeetingGetForUpdate :many
-- The rows of a Checkout Session and of a PaymentIntent: two when each
-- arrived first without the link to the other, then merged.
SELECT * FROM meetings
WHERE stripe_session_id = sqlc.narg(stripe_session_id)
   OR stripe_payment_intent_id = sqlc.narg(stripe_payment_intent_id)
ORDER BY created_at, id
FOR UPDATE;

-- name: MeetingInsert :one
-- No row back means another transaction inserted it first: lock and merge.
INSERT INTO meetings (
    stripe_session_id, stripe_payment_intent_id, stripe_customer_id,
    bookable_event_id, expert_workos_user_id, guest_email, guest_name,
    start_time, duration_minutes, notes, timezone, locale,
    amount, application_fee_amount, amount_refunded, currency,
    payment_status, payment_status_rank, payment_status_version,
    details_version, details_event_id
) VALUES (
    @stripe_session_id, @stripe_payment_intent_id, @stripe_customer_id,
    @bookable_event_id, @expert_workos_user_id, @guest_email, @guest_name,
    @start_time, @duration_minutes, @notes, @timezone, @locale,
    @amount, @application_fee_amount, @amount_refunded, @currency,
    @payment_status, @payment_status_rank, @payment_status_version,
    @details_version, @details_event_id
)
ON CONFLICT DO NOTHING
RETURNING id;

-- name: MeetingUpdate :exec
UPDATE meetings SET
    stripe_session_id        = @stripe_session_id,
    stripe_payment_intent_id = @stripe_payment_intent_id,
    stripe_customer_id       = @stripe_customer_id,
    bookable_event_id        = @bookable_event_id,
    expert_workos_user_id    = @expert_workos_user_id,
    guest_email              = @guest_email,
    guest_name               = @guest_name,
    start_time               = @start_time,
    duration_minutes         = @duration_minutes,
    notes                    = @notes,
    timezone                 = @timezone,
    locale                   = @locale,
    amount                   = @amount,
    application_fee_amount   = @application_fee_amount,
    amount_refunded          = @amount_refunded,
    currency                 = @currency,
    payment_status           = @payment_status,
    payment_status_rank      = @payment_status_rank,
    payment_status_version   = @payment_status_version,
    details_version          = @details_version,
    details_event_id         = @details_event_id,
    updated_at               = now()
WHERE id = @id;

-- name: MeetingDelete :exec
-- Drops the younger of two rows merged into one meeting.
DELETE FROM meetings WHERE id = @id;

-- name: MeetingGetBySessionID :one
SELECT * FROM meetings WHERE stripe_session_id = @stripe_session_id;

-- name: MeetingGetByPaymentIntentID :one
SELECT * FROM meetings WHERE stripe_payment_intent_id = @stripe_payment_intent_id;

-- name: MeetingLinkGuests :exec
-- Links meetings to their guest: the one live user with the guest email
-- (case-insensitive), and that user's organization (a personal one first,
-- then the oldest membership). For the meetings named, those booked under
-- one of the (lower-cased) emails and those of one of the users. A guest
-- whose user was deleted keeps the link while the email still matches.
WITH target AS (
    SELECT m.id, m.guest_email, m.guest_workos_user_id
    FROM meetings m
    WHERE m.id = ANY(@meeting_ids::uuid[])
       OR lower(m.guest_email) = ANY(@emails::text[])
       OR m.guest_workos_user_id = ANY(@workos_user_ids::text[])
       -- An organization that arrived, changed or went: the meetings of
       -- its members and those that point at it choose again.
       OR m.guest_org_id IN (SELECT g.id FROM organizations g WHERE g.workos_org_id = ANY(@workos_org_ids::text[]))
       OR m.guest_workos_user_id IN (SELECT mb.workos_user_id FROM user_org_memberships mb WHERE mb.workos_org_id = ANY(@workos_org_ids::text[]))
), resolved AS (
    SELECT t.id, COALESCE(found.workos_user_id, kept.workos_user_id) AS workos_user_id
    FROM target t
    LEFT JOIN LATERAL (
        SELECT min(u.workos_user_id) AS workos_user_id
        FROM users u
        WHERE u.deleted_at IS NULL AND lower(u.email) = lower(t.guest_email)
        HAVING count(*) = 1
    ) found ON true
    LEFT JOIN users kept
        ON kept.workos_user_id = t.guest_workos_user_id AND lower(kept.email) = lower(t.guest_email)
), linked AS (
    SELECT r.id, r.workos_user_id, g.org_id
    FROM resolved r
    LEFT JOIN LATERAL (
        SELECT mb.org_id
        FROM user_org_memberships mb
        JOIN organizations o ON o.id = mb.org_id
        WHERE mb.workos_user_id = r.workos_user_id AND mb.deleted_at IS NULL AND o.deleted_at IS NULL
        ORDER BY (o.type IN ('member_personal', 'expert_individual')) DESC NULLS LAST,
                 mb.workos_created_at NULLS LAST, mb.workos_org_membership_id
        LIMIT 1
    ) g ON true
)
UPDATE meetings m SET
    guest_workos_user_id = l.workos_user_id,
    guest_org_id         = l.org_id,
    updated_at           = now()
FROM linked l
WHERE m.id = l.id
  AND (m.guest_workos_user_id, m.guest_org_id) IS DISTINCT FROM (l.workos_user_id, l.org_id);

-- name: MeetingLockPaymentIntent :exec
-- Serializes, per PaymentIntent, the transactions that fold payment facts
-- into stripe_payment_intents and meetings: without it a refund recorded
-- by one consumer and a booking inserted by another (a replay beside the
-- live consumer) could each miss the other's uncommitted row.
SELECT pg_advisory_xact_lock(hashtextextended('syncd.meeting:' || @stripe_payment_intent_id::text, 0));
