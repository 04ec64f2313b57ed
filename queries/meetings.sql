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
--
-- A link runs once per batch over the union of the keys its events
-- touched, and must cost what those keys reach, not what the table holds.
-- So every lookup is an index probe: each list through its own index and
-- the union of the ids taken after (an OR across the lists, with
-- IN (subquery) among them, was planned as a scan of every meeting), and
-- the ids gathered through unnest(ARRAY(...)), which the planner counts
-- as a handful of rows: the joins that follow, up to the UPDATE's own, are
-- then planned as index probes per row. Counted honestly, a few hundred
-- keys made hash joins over the whole tables look cheaper. The other link
-- queries (stripe_*.sql, payment_transfers.sql) are built the same way.
WITH target AS (
    SELECT m.id, m.guest_email, m.guest_workos_user_id
    FROM unnest(ARRAY(
        SELECT k.id FROM unnest(@meeting_ids::uuid[]) AS k(id)
        UNION
        SELECT x.id FROM meetings x WHERE lower(x.guest_email) = ANY(@emails::text[])
        UNION
        SELECT x.id FROM meetings x WHERE x.guest_workos_user_id = ANY(@workos_user_ids::text[])
        -- An organization that arrived, changed or went: the meetings that
        -- point at it and those of its members choose again.
        UNION
        SELECT x.id FROM organizations g JOIN meetings x ON x.guest_org_id = g.id
        WHERE g.workos_org_id = ANY(@workos_org_ids::text[])
        UNION
        SELECT x.id FROM user_org_memberships mb JOIN meetings x ON x.guest_workos_user_id = mb.workos_user_id
        WHERE mb.workos_org_id = ANY(@workos_org_ids::text[])
    )) AS k(id)
    JOIN meetings m ON m.id = k.id
), resolved AS (
    SELECT t.id, COALESCE(found.workos_user_id, kept.workos_user_id) AS workos_user_id
    FROM target t
    LEFT JOIN LATERAL (
        SELECT min(u.workos_user_id) AS workos_user_id
        FROM users u
        WHERE u.deleted_at IS NULL AND lower(u.email) = lower(t.guest_email)
        HAVING count(*) = 1
    ) found ON true
    -- One row at most (workos_user_id is unique); the LIMIT keeps it an
    -- index probe per meeting.
    LEFT JOIN LATERAL (
        SELECT k.workos_user_id FROM users k
        WHERE k.workos_user_id = t.guest_workos_user_id AND lower(k.email) = lower(t.guest_email)
        LIMIT 1
    ) kept ON true
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

-- The set-based apply of a batch's meeting events (consumers/meetings_sets.go)
-- reads every row the events can touch once, locked, folds the events in Go
-- with the rules above, and writes each row once.

-- name: MeetingLockPaymentIntents :one
-- MeetingLockPaymentIntent for many PaymentIntents, in the order given (the
-- caller sorts them, so two batches take them in one order), and the
-- transaction's time: the created_at and updated_at of the rows it writes.
SELECT now()::timestamptz AS now,
       count(pg_advisory_xact_lock(hashtextextended('syncd.meeting:' || k.id, 0))) AS locked
FROM unnest(@stripe_payment_intent_ids::text[]) AS k(id);

-- name: MeetingLockMany :many
-- The meetings of these Checkout Sessions and PaymentIntents, locked in id
-- order so that two batches lock in one order. One index probe per key (the
-- LIMIT keeps each a nested loop; both keys are unique).
WITH found AS (
    SELECT m.id FROM unnest(@stripe_session_ids::text[]) AS k(id)
    CROSS JOIN LATERAL (SELECT id FROM meetings WHERE stripe_session_id = k.id LIMIT 1) m
    UNION
    SELECT m.id FROM unnest(@stripe_payment_intent_ids::text[]) AS k(id)
    CROSS JOIN LATERAL (SELECT id FROM meetings WHERE stripe_payment_intent_id = k.id LIMIT 1) m
)
SELECT r.*
FROM (SELECT id FROM found ORDER BY id) f
CROSS JOIN LATERAL (SELECT * FROM meetings WHERE meetings.id = f.id FOR UPDATE) r;

-- name: MeetingUpsertMany :many
-- Writes a batch's meetings, one row each (a JSON array of meetings rows):
-- new ones (ids chosen by the caller) inserted, the others updated when
-- they are still as the caller read them (updated_at). Returns the
-- meetings written; a key that another meeting holds fails the statement.
INSERT INTO meetings (
    id, stripe_session_id, stripe_payment_intent_id, stripe_customer_id,
    bookable_event_id, expert_workos_user_id, guest_email, guest_name,
    start_time, duration_minutes, notes, timezone, locale,
    amount, application_fee_amount, amount_refunded, currency,
    payment_status, payment_status_rank, payment_status_version,
    details_version, details_event_id, created_at, updated_at
)
SELECT r.id, r.stripe_session_id, r.stripe_payment_intent_id, r.stripe_customer_id,
       r.bookable_event_id, r.expert_workos_user_id, r.guest_email, r.guest_name,
       r.start_time, r.duration_minutes, r.notes, r.timezone, r.locale,
       r.amount, r.application_fee_amount, r.amount_refunded, r.currency,
       r.payment_status, r.payment_status_rank, r.payment_status_version,
       r.details_version, r.details_event_id, r.created_at, r.updated_at
FROM jsonb_populate_recordset(NULL::meetings, @batch::jsonb) AS r
ORDER BY r.id
ON CONFLICT (id) DO UPDATE SET
    stripe_session_id        = EXCLUDED.stripe_session_id,
    stripe_payment_intent_id = EXCLUDED.stripe_payment_intent_id,
    stripe_customer_id       = EXCLUDED.stripe_customer_id,
    bookable_event_id        = EXCLUDED.bookable_event_id,
    expert_workos_user_id    = EXCLUDED.expert_workos_user_id,
    guest_email              = EXCLUDED.guest_email,
    guest_name               = EXCLUDED.guest_name,
    start_time               = EXCLUDED.start_time,
    duration_minutes         = EXCLUDED.duration_minutes,
    notes                    = EXCLUDED.notes,
    timezone                 = EXCLUDED.timezone,
    locale                   = EXCLUDED.locale,
    amount                   = EXCLUDED.amount,
    application_fee_amount   = EXCLUDED.application_fee_amount,
    amount_refunded          = EXCLUDED.amount_refunded,
    currency                 = EXCLUDED.currency,
    payment_status           = EXCLUDED.payment_status,
    payment_status_rank      = EXCLUDED.payment_status_rank,
    payment_status_version   = EXCLUDED.payment_status_version,
    details_version          = EXCLUDED.details_version,
    details_event_id         = EXCLUDED.details_event_id,
    updated_at               = now()
WHERE meetings.updated_at = EXCLUDED.updated_at
RETURNING id;

-- name: MeetingDeleteMany :many
-- Drops the rows merged into others. Returns those dropped.
DELETE FROM meetings WHERE id = ANY(@ids::uuid[]) RETURNING id;
