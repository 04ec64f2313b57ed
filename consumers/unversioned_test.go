package consumers_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/syncd/syncd/consumers"
	"github.com/syncd/syncd/syncdtest"
)

const sdkUser = "directory_user_01HSDKSAMPLEUSER0000000001"

// sdkEvent is the WorkOS Node SDK's sample shape (no object, no
// created_at, a directory user without updated_at), received at
// receivedAt, with edit applied to its body.
func sdkEvent(t *testing.T, receivedAt time.Time, edit func(ev, data map[string]any)) consumers.Event {
	t.Helper()
	var ev map[string]any
	if err := json.Unmarshal(syncdtest.Fixture(t, "workos/dsync.user.created.sdk.json"), &ev); err != nil {
		t.Fatal(err)
	}
	if edit != nil {
		edit(ev, ev["data"].(map[string]any))
	}
	body, err := json.Marshal(ev)
	if err != nil {
		t.Fatal(err)
	}
	e := decoded(t, "workos", body)
	e.ReceivedAt = receivedAt
	return e
}

// deprovisioned is a versioned dsync.user.updated of the SDK's user that
// says it is inactive, at updatedAt.
func deprovisioned(t *testing.T, updatedAt time.Time) consumers.Event {
	return sdkEvent(t, time.Now(), func(ev, data map[string]any) {
		ev["object"], ev["id"], ev["event"] = "event", "event_deprovisioned", "dsync.user.updated"
		ev["created_at"] = syncdtest.Millis(updatedAt)
		data["state"], data["updated_at"] = "inactive", syncdtest.Millis(updatedAt)
	})
}

type dirUserRow struct {
	state, first string
	version      time.Time
}

func sdkUserRow(t *testing.T, pool *pgxpool.Pool) dirUserRow {
	t.Helper()
	var r dirUserRow
	if err := pool.QueryRow(context.Background(), `SELECT state, first_name, workos_updated_at FROM directory_users WHERE workos_directory_user_id = $1`, sdkUser).
		Scan(&r.state, &r.first, &r.version); err != nil {
		t.Fatal(err)
	}
	return r
}

// The SDK-shaped create carries no version at all; a versioned update wins
// over it in either order, whatever its updated_at and however late the
// create was received.
func TestUnversionedCreateNeverOutranksAVersionedUpdate(t *testing.T) {
	for _, updatedAt := range []time.Time{
		time.Date(2001, 1, 1, 0, 0, 0, 0, time.UTC), // older than anything syncd ever received
		time.Now().Add(-time.Minute),
	} {
		for _, createFirst := range []bool{true, false} {
			c, pool, _ := tracedConsumer(t)
			create := sdkEvent(t, time.Now().Add(time.Hour), nil) // received after the update happened
			update := deprovisioned(t, updatedAt)
			if createFirst {
				apply(t, c, create)
				apply(t, c, update)
			} else {
				apply(t, c, update)
				apply(t, c, create)
			}
			if r := sdkUserRow(t, pool); r.state != "inactive" || !r.version.Equal(updatedAt.Truncate(time.Millisecond)) {
				t.Errorf("updated_at %s, create first %v: state %q at version %s; want inactive at the update's version",
					updatedAt, createFirst, r.state, r.version)
			}
		}
	}
}

// Two events of one row without any version end in the same row whichever
// arrives first: an update outranks a create, and two of the same kind are
// ordered by their event ids, never by arrival.
func TestTwoUnversionedEventsOfOneRowConvergeInEitherOrder(t *testing.T) {
	suspended := func(id, typ string) consumers.Event {
		return sdkEvent(t, time.Now(), func(ev, data map[string]any) {
			ev["id"], ev["event"] = id, typ
			data["state"], data["first_name"] = "suspended", id
		})
	}
	for _, pair := range [][2]consumers.Event{
		{sdkEvent(t, time.Now(), nil), suspended("wh_update", "dsync.user.updated")},
		{suspended("wh_update_a", "dsync.user.updated"), suspended("wh_update_b", "dsync.user.updated")},
	} {
		var rows []dirUserRow
		for _, order := range [][2]int{{0, 1}, {1, 0}} {
			c, pool, _ := tracedConsumer(t)
			a, b := pair[order[0]], pair[order[1]]
			// Received in the order applied: receive time must not matter.
			a.ReceivedAt, b.ReceivedAt = time.Now(), time.Now().Add(time.Hour)
			apply(t, c, a)
			apply(t, c, b)
			rows = append(rows, sdkUserRow(t, pool))
		}
		if rows[0] != rows[1] {
			t.Errorf("%s and %s: rows %+v then %+v; want the same row in both orders",
				pair[0].Envelope.ID, pair[1].Envelope.ID, rows[0], rows[1])
		}
		if pair[0].Envelope.Type == "dsync.user.created" && rows[0].state != "suspended" {
			t.Errorf("create and update without versions: state %q, want the update's", rows[0].state)
		}
	}
}

// A replay or backfill of an unversioned event hours later (its ledger row
// gone, as after a database restore) changes nothing: its version does not
// depend on when it is received.
func TestLateReplayOfAnUnversionedEventChangesNothing(t *testing.T) {
	c, pool, _ := tracedConsumer(t)
	receivedAt := time.Now().Add(-6 * time.Hour)
	apply(t, c, sdkEvent(t, receivedAt, nil))
	first := sdkUserRow(t, pool)
	update := deprovisioned(t, receivedAt.Add(-time.Hour)) // older than the create was received
	apply(t, c, update)
	want := sdkUserRow(t, pool)
	if want.state != "inactive" {
		t.Fatalf("state %q after the versioned update, want inactive", want.state)
	}
	if _, err := pool.Exec(context.Background(), `DELETE FROM webhook_events WHERE event_id = 'wh_01HSDKSAMPLE0000000000001'`); err != nil {
		t.Fatal(err)
	}
	res := apply(t, c, sdkEvent(t, time.Now(), nil))
	if got := sdkUserRow(t, pool); got != want || res[0].Outcome != consumers.Stale {
		t.Errorf("replayed hours later: row %+v (%s), want %+v unchanged (stale)", got, res[0].Outcome, want)
	}

	// And alone, the same event gives the same version whenever received.
	c2, pool2, _ := tracedConsumer(t)
	apply(t, c2, sdkEvent(t, time.Now(), nil))
	if got := sdkUserRow(t, pool2); !got.version.Equal(first.version) {
		t.Errorf("version %s when received now, %s when received 6h ago; want one version", got.version, first.version)
	}
	if first.version.Year() >= 2000 {
		t.Errorf("unversioned event stored at %s; want below any real version", first.version)
	}
}

// Stripe follows the same rule: an event without created never outranks
// one with it.
func TestStripeEventWithoutCreatedNeverOutranksOne(t *testing.T) {
	customer := func(email string) map[string]any {
		return map[string]any{"id": "cus_v", "object": "customer", "email": email, "metadata": map[string]any{}}
	}
	for _, unversionedFirst := range []bool{true, false} {
		c, pool, _ := tracedConsumer(t)
		versioned := decoded(t, "stripe", stripeEventAt("evt_v", "customer.updated", s0, "2023-10-16", customer("real@x.test")))
		var body map[string]any
		_ = json.Unmarshal(stripeEventAt("evt_u", "customer.updated", 0, "2023-10-16", customer("unversioned@x.test")), &body)
		delete(body, "created")
		b, _ := json.Marshal(body)
		unversioned := decoded(t, "stripe", b)
		unversioned.ReceivedAt = time.Now().Add(time.Hour)
		if unversionedFirst {
			apply(t, c, unversioned)
			apply(t, c, versioned)
		} else {
			apply(t, c, versioned)
			apply(t, c, unversioned)
		}
		var email string
		if err := pool.QueryRow(context.Background(), `SELECT email FROM stripe_customers WHERE stripe_customer_id = 'cus_v'`).Scan(&email); err != nil {
			t.Fatal(err)
		}
		if email != "real@x.test" {
			t.Errorf("unversioned first %v: email %q, want the versioned event's", unversionedFirst, email)
		}
	}
}
