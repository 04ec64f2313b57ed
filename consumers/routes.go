package consumers

import (
	"fmt"
	"sort"

	"github.com/tidwall/gjson"

	"github.com/syncd/syncd/stream"
)

// Table names a table an event type writes, for ordering the statements of
// a batch: two events whose tables are disjoint may be applied in either
// order; two that share one keep their stream order.
type Table string

const (
	TableUsers                 Table = "users"
	TableOrganizations         Table = "organizations"
	TableMemberships           Table = "user_org_memberships"
	TableDirectories           Table = "directories"
	TableDirectoryUsers        Table = "directory_users"
	TableDirectoryGroups       Table = "directory_groups"
	TableDirectoryGroupMembers Table = "directory_group_members"
	TableStripeCustomers       Table = "stripe_customers"
	TableStripeSubscriptions   Table = "stripe_subscriptions"
	TableStripeConnectAccounts Table = "stripe_connect_accounts"
	TableStripePaymentIntents  Table = "stripe_payment_intents"
	TableStripeCheckouts       Table = "stripe_checkout_sessions"
	TableMeetings              Table = "meetings"
)

// Route declares how one event type is applied: its handler and what the
// engine needs to batch it. Everything else (which events share a
// statement, which run directly, in which order, the types backfill asks
// for) is derived from the routes, never from the type's name.
type Route struct {
	Source, Type string
	// Handle applies one event. It is the per-event path: always used for
	// routes without a set-based apply, and for every route when a batch
	// is redone event by event to isolate a bad one.
	Handle Handler
	// Writes lists the tables whose rows the handler changes.
	Writes []Table
	// Stubs lists the tables where the handler only creates a placeholder
	// row when none exists (INSERT … ON CONFLICT DO NOTHING); a stub
	// commutes with the upserts of its table, so it does not order them.
	// Two stubs of one table keep their order: a directory's stub takes
	// the organization the first of its children names.
	Stubs []Table
	// Reads: the handler uses what its queries return beyond an upsert's
	// stale signal (a RETURNING value, a row it merges). Unless the route
	// applies set-based, it then runs directly against the transaction;
	// otherwise its statements are queued and sent with the batch's in one
	// round trip.
	Reads bool
	// FlushesLinks: the handler runs the links gathered so far (a delete
	// whose tombstone the links must see after the events before it), so
	// everything before it in the batch is applied first.
	FlushesLinks bool
	// Key is the entity the event writes (for routing events among apply
	// workers: events of one key are applied by one worker, in order).
	// Empty: the event id.
	Key func(Event) string
	// SharedOrg is the WorkOS organization the handler inserts or stubs
	// that events routed to another worker can insert too: an
	// organization's own events, and its members' memberships (routed with
	// their users). A batch locks the new ones among its events', in one
	// order, before anything else (Applier.lockShared), so two workers
	// that meet on one wait for each other at the start instead of
	// deadlocking midway.
	SharedOrg func(Event) string

	// set, when not nil, applies the route's events set-based: per batch,
	// one multi-row statement per table (batch.go).
	set *setRoute
}

// kind is how the engine runs a route's events inside a batch, in the
// order of execution of a stage.
type kind uint8

const (
	kindSet    kind = iota // folded per key, one statement per table
	kindPipe               // per-event statements, sent in one round trip
	kindDirect             // per-event, run against the transaction
)

func (r *Route) kind() kind {
	switch {
	case r.set != nil:
		return kindSet
	case r.Reads:
		return kindDirect
	default:
		return kindPipe
	}
}

// Routes is syncd's route table: every event type it applies, once.
func Routes() []Route {
	const w, s = stream.SourceWorkOS, stream.SourceStripe
	user := []Table{TableUsers}
	org := []Table{TableOrganizations}
	membership := []Table{TableMemberships}
	parents := []Table{TableUsers, TableOrganizations}
	dir := []Table{TableDirectories}
	dirUser := []Table{TableDirectoryUsers}
	dirGroup := []Table{TableDirectoryGroups}
	dirAll := []Table{TableDirectories, TableDirectoryUsers, TableDirectoryGroups, TableDirectoryGroupMembers}
	meeting := []Table{TableMeetings, TableStripePaymentIntents, TableStripeCheckouts, TablePaymentTransfers}
	// A membership goes with its user, a directory's events with the
	// directory, every event of one PaymentIntent together (they are also
	// serialized in Postgres, meetings.go).
	byUser, byOrg := bodyKey("user", "data.id"), bodyKey("org", "data.id")
	byMember, byDir := bodyKey("user", "data.user_id"), bodyKey("directory", "data.directory_id", "data.id")
	orgID, memberOrg := bodyValue("data.id"), bodyValue("data.organization_id")
	byCustomer, bySubscription := bodyKey("customer", "data.object.id"), bodyKey("subscription", "data.object.id")
	byPayment := bodyKey("payment", "data.object.payment_intent", "data.object.id")
	byAccount := func(ev Event) string {
		if id := gjson.GetBytes(ev.Body, "data.object.id").String(); id != "" && ev.Envelope.Type == "account.updated" {
			return "account:" + id
		}
		return "account:" + ev.Envelope.Account
	}
	byPayout, byIdentity := bodyKey("payout", "data.object.id"), bodyKey("identity", "data.object.id")
	// A transfer goes with the payment it pays for, when it names it.
	byTransfer := func(ev Event) string {
		if k := bodyKey("payment", "data.object.metadata.payment_intent_id", "data.object.metadata.paymentIntentId")(ev); k != "" {
			return k
		}
		return bodyKey("transfer", "data.object.id")(ev)
	}
	return []Route{
		{Source: w, Type: "user.created", Handle: applyUser, Writes: user, set: userSet, Key: byUser},
		{Source: w, Type: "user.updated", Handle: applyUser, Writes: user, set: userSet, Key: byUser},
		{Source: w, Type: "user.deleted", Handle: deleteUser, Writes: []Table{TableUsers, TableMemberships}, FlushesLinks: true, Key: byUser},
		{Source: w, Type: "organization.created", Handle: applyOrganization, Writes: org, set: organizationSet, Key: byOrg, SharedOrg: orgID},
		{Source: w, Type: "organization.updated", Handle: applyOrganization, Writes: org, set: organizationSet, Key: byOrg, SharedOrg: orgID},
		{Source: w, Type: "organization.deleted", Handle: deleteOrganization, Writes: []Table{TableOrganizations, TableMemberships}, FlushesLinks: true, Key: byOrg, SharedOrg: orgID},
		{Source: w, Type: "organization_membership.created", Handle: applyMembership, Writes: membership, Stubs: parents, set: membershipSet, Key: byMember, SharedOrg: memberOrg},
		{Source: w, Type: "organization_membership.updated", Handle: applyMembership, Writes: membership, Stubs: parents, set: membershipSet, Key: byMember, SharedOrg: memberOrg},
		{Source: w, Type: "organization_membership.deleted", Handle: deleteMembership, Writes: membership, Stubs: parents, FlushesLinks: true, Key: byMember, SharedOrg: memberOrg},
		// Legacy names of the same events.
		{Source: w, Type: "organization_membership.added", Handle: applyMembership, Writes: membership, Stubs: parents, set: membershipSet, Key: byMember, SharedOrg: memberOrg},
		{Source: w, Type: "organization_membership.removed", Handle: deleteMembership, Writes: membership, Stubs: parents, FlushesLinks: true, Key: byMember, SharedOrg: memberOrg},

		{Source: w, Type: "dsync.activated", Handle: applyDirectory, Writes: dir, Key: byDir},
		{Source: w, Type: "dsync.deleted", Handle: deleteDirectory, Writes: dirAll, Key: byDir},
		{Source: w, Type: "dsync.user.created", Handle: applyDirectoryUser, Writes: dirUser, Stubs: dir, set: directoryUserSet, Key: byDir},
		{Source: w, Type: "dsync.user.updated", Handle: applyDirectoryUser, Writes: dirUser, Stubs: dir, set: directoryUserSet, Key: byDir},
		{Source: w, Type: "dsync.user.deleted", Handle: deleteDirectoryUser, Writes: []Table{TableDirectoryUsers, TableDirectoryGroupMembers}, Stubs: dir, Key: byDir},
		{Source: w, Type: "dsync.group.created", Handle: applyDirectoryGroup, Writes: dirGroup, Stubs: dir, set: directoryGroupSet, Key: byDir},
		{Source: w, Type: "dsync.group.updated", Handle: applyDirectoryGroup, Writes: dirGroup, Stubs: dir, set: directoryGroupSet, Key: byDir},
		{Source: w, Type: "dsync.group.deleted", Handle: deleteDirectoryGroup, Writes: []Table{TableDirectoryGroups, TableDirectoryGroupMembers}, Stubs: dir, Key: byDir},
		// Members fill user and group stubs with their snapshots.
		{Source: w, Type: "dsync.group.user_added", Handle: addDirectoryGroupMember, Writes: dirAll, Key: byDir},
		{Source: w, Type: "dsync.group.user_removed", Handle: removeDirectoryGroupMember, Writes: dirAll, Key: byDir},

		{Source: s, Type: "customer.created", Handle: applyCustomer, Writes: []Table{TableStripeCustomers}, set: customerSet, Key: byCustomer},
		{Source: s, Type: "customer.updated", Handle: applyCustomer, Writes: []Table{TableStripeCustomers}, set: customerSet, Key: byCustomer},
		{Source: s, Type: "customer.deleted", Handle: applyCustomer, Writes: []Table{TableStripeCustomers}, set: customerSet, Key: byCustomer},
		{Source: s, Type: "customer.subscription.created", Handle: applySubscription, Writes: []Table{TableStripeSubscriptions}, set: subscriptionSet, Key: bySubscription},
		{Source: s, Type: "customer.subscription.updated", Handle: applySubscription, Writes: []Table{TableStripeSubscriptions}, set: subscriptionSet, Key: bySubscription},
		{Source: s, Type: "customer.subscription.deleted", Handle: applySubscription, Writes: []Table{TableStripeSubscriptions}, set: subscriptionSet, Key: bySubscription},
		{Source: s, Type: "customer.subscription.paused", Handle: applySubscription, Writes: []Table{TableStripeSubscriptions}, set: subscriptionSet, Key: bySubscription},
		{Source: s, Type: "customer.subscription.resumed", Handle: applySubscription, Writes: []Table{TableStripeSubscriptions}, set: subscriptionSet, Key: bySubscription},
		{Source: s, Type: "account.updated", Handle: applyConnectAccount, Writes: []Table{TableStripeConnectAccounts}, set: connectAccountSet, Key: byAccount},
		{Source: s, Type: "account.application.deauthorized", Handle: deauthorizeConnectAccount, Writes: []Table{TableStripeConnectAccounts}, Key: byAccount},

		{Source: s, Type: "checkout.session.completed", Handle: applyCheckoutSession, Writes: meeting, Reads: true, set: checkoutSessionSet, Key: byPayment},
		{Source: s, Type: "checkout.session.async_payment_succeeded", Handle: applyCheckoutSession, Writes: meeting, Reads: true, set: checkoutSessionSet, Key: byPayment},
		{Source: s, Type: "checkout.session.async_payment_failed", Handle: applyCheckoutSession, Writes: meeting, Reads: true, set: checkoutSessionSet, Key: byPayment},
		{Source: s, Type: "checkout.session.expired", Handle: applyCheckoutSession, Writes: meeting, Reads: true, set: checkoutSessionSet, Key: byPayment},
		{Source: s, Type: "payment_intent.processing", Handle: applyPaymentIntent, Writes: meeting, Reads: true, set: paymentIntentSet, Key: byPayment},
		{Source: s, Type: "payment_intent.succeeded", Handle: applyPaymentIntent, Writes: meeting, Reads: true, set: paymentIntentSet, Key: byPayment},
		{Source: s, Type: "payment_intent.payment_failed", Handle: applyPaymentIntent, Writes: meeting, Reads: true, set: paymentIntentSet, Key: byPayment},
		{Source: s, Type: "payment_intent.canceled", Handle: applyPaymentIntent, Writes: meeting, Reads: true, set: paymentIntentSet, Key: byPayment},
		{Source: s, Type: "charge.refunded", Handle: applyChargeRefunded, Writes: meeting, Reads: true, set: chargeRefundedSet, Key: byPayment},
		{Source: s, Type: "payout.created", Handle: applyPayout, Writes: []Table{TableStripePayouts}, set: payoutSet, Key: byPayout},
		{Source: s, Type: "payout.updated", Handle: applyPayout, Writes: []Table{TableStripePayouts}, set: payoutSet, Key: byPayout},
		{Source: s, Type: "payout.paid", Handle: applyPayout, Writes: []Table{TableStripePayouts}, set: payoutSet, Key: byPayout},
		{Source: s, Type: "payout.failed", Handle: applyPayout, Writes: []Table{TableStripePayouts}, set: payoutSet, Key: byPayout},
		{Source: s, Type: "payout.canceled", Handle: applyPayout, Writes: []Table{TableStripePayouts}, set: payoutSet, Key: byPayout},
		{Source: s, Type: "account.external_account.created", Handle: applyExternalAccount, Writes: []Table{TableStripeExternalAccounts}, set: externalAccountSet, Key: byAccount},
		{Source: s, Type: "account.external_account.updated", Handle: applyExternalAccount, Writes: []Table{TableStripeExternalAccounts}, set: externalAccountSet, Key: byAccount},
		{Source: s, Type: "account.external_account.deleted", Handle: applyExternalAccount, Writes: []Table{TableStripeExternalAccounts}, set: externalAccountSet, Key: byAccount},
		{Source: s, Type: "identity.verification_session.created", Handle: applyIdentitySession, Writes: []Table{TableStripeIdentitySessions}, set: identitySessionSet, Key: byIdentity},
		{Source: s, Type: "identity.verification_session.processing", Handle: applyIdentitySession, Writes: []Table{TableStripeIdentitySessions}, set: identitySessionSet, Key: byIdentity},
		{Source: s, Type: "identity.verification_session.verified", Handle: applyIdentitySession, Writes: []Table{TableStripeIdentitySessions}, set: identitySessionSet, Key: byIdentity},
		{Source: s, Type: "identity.verification_session.requires_input", Handle: applyIdentitySession, Writes: []Table{TableStripeIdentitySessions}, set: identitySessionSet, Key: byIdentity},
		{Source: s, Type: "identity.verification_session.canceled", Handle: applyIdentitySession, Writes: []Table{TableStripeIdentitySessions}, set: identitySessionSet, Key: byIdentity},
		{Source: s, Type: "identity.verification_session.redacted", Handle: applyIdentitySession, Writes: []Table{TableStripeIdentitySessions}, set: identitySessionSet, Key: byIdentity},
		{Source: s, Type: "transfer.created", Handle: applyTransfer, Writes: []Table{TableStripeTransfers}, set: transferSet, Key: byTransfer},
		{Source: s, Type: "transfer.updated", Handle: applyTransfer, Writes: []Table{TableStripeTransfers}, set: transferSet, Key: byTransfer},
		{Source: s, Type: "transfer.reversed", Handle: applyTransfer, Writes: []Table{TableStripeTransfers}, set: transferSet, Key: byTransfer},
		{Source: s, Type: "charge.dispute.created", Handle: applyDisputeCreated, Writes: meeting, Reads: true, set: disputeCreatedSet, Key: bodyKey("payment", "data.object.payment_intent", "data.object.charge")},
	}
}

// bodyKey is a Route.Key: the entity name and the first non-empty of
// paths (gjson syntax) of the body.
func bodyKey(entity string, paths ...string) func(Event) string {
	return func(ev Event) string {
		for _, p := range paths {
			if v := gjson.GetBytes(ev.Body, p); v.Type == gjson.String && v.Str != "" {
				return entity + ":" + v.Str
			}
		}
		return ""
	}
}

// bodyValue is the string at path in an event's body ("" if none).
func bodyValue(path string) func(Event) string {
	return func(ev Event) string { return gjson.GetBytes(ev.Body, path).Str }
}

// routeTable indexes routes by source and type.
type routeTable map[string]map[string]*Route

func newRouteTable(routes []Route) (routeTable, error) {
	t := routeTable{}
	for i := range routes {
		r := &routes[i]
		switch {
		case r.Source == "" || r.Type == "":
			return nil, fmt.Errorf("consumers: route %d has no source or type", i)
		case r.Handle == nil:
			return nil, fmt.Errorf("consumers: route %s %s has no handler", r.Source, r.Type)
		case t[r.Source][r.Type] != nil:
			return nil, fmt.Errorf("consumers: route %s %s declared twice", r.Source, r.Type)
		}
		if t[r.Source] == nil {
			t[r.Source] = map[string]*Route{}
		}
		t[r.Source][r.Type] = r
	}
	return t, nil
}

func (t routeTable) route(ev Event) *Route { return t[ev.Source][ev.Envelope.Type] }

// key is the routing key of ev among apply workers.
func (r *Route) key(ev Event) string {
	if r != nil && r.Key != nil {
		if k := r.Key(ev); k != "" {
			return ev.Source + ":" + k
		}
	}
	return ev.Source + ":" + ev.Envelope.ID
}

// HandledTypes lists the event types of a source that have a route,
// sorted. Backfill asks the providers' Events APIs for these by default, so
// it fetches what syncd applies and not every event an account produces.
func HandledTypes(source string) []string {
	var types []string
	for _, r := range Routes() {
		if r.Source == source {
			types = append(types, r.Type)
		}
	}
	sort.Strings(types)
	return types
}
