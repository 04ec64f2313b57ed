-- name: ProvisioningTaskStart :one
-- Creates the task, or returns it as it stands when it exists: a task is
-- started by its first event and resumed by every later one.
INSERT INTO provisioning_tasks (task_key, kind, email, first_name, last_name, booking, event_source, event_id, step, workos_user_id)
VALUES (@task_key, @kind, @email, @first_name, @last_name, @booking, @event_source, @event_id, @step, @workos_user_id)
ON CONFLICT (task_key) DO UPDATE SET task_key = provisioning_tasks.task_key
RETURNING *;

-- name: ProvisioningTaskGet :one
SELECT * FROM provisioning_tasks WHERE task_key = @task_key;

-- name: ProvisioningTaskSave :exec
-- Stores a step's result and the step to run next.
UPDATE provisioning_tasks SET
    step                 = @step,
    workos_user_id       = @workos_user_id,
    workos_org_id        = @workos_org_id,
    workos_membership_id = @workos_membership_id,
    magic_auth_id        = @magic_auth_id,
    user_created         = @user_created,
    org_created          = @org_created,
    membership_created   = @membership_created,
    send_magic_auth      = @send_magic_auth,
    outcome              = @outcome,
    last_error           = @last_error,
    completed_at         = @completed_at,
    updated_at           = now()
WHERE task_key = @task_key;

-- name: ProvisioningTaskLockTry :one
-- One worker per person at a time, across replicas. A session lock on the
-- connection the task runs on: a crash releases it with the connection.
SELECT pg_try_advisory_lock(hashtextextended('syncd.provision:' || @lock_key::text, 0)) AS locked;

-- name: ProvisioningTaskUnlock :one
SELECT pg_advisory_unlock(hashtextextended('syncd.provision:' || @lock_key::text, 0)) AS unlocked;
