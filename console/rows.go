package console

import (
	"context"
	"encoding/json"
	"strings"

	"github.com/tidwall/gjson"

	"github.com/syncd/syncd/queries"
	"github.com/syncd/syncd/stream"
)

// touchedRow is a synced row an event writes, as it stands now.
type touchedRow struct {
	Table string          `json:"table"`
	Key   string          `json:"key"`
	Row   json.RawMessage `json:"row"`
}

// touchedRows finds the rows an event of this type writes, by the ids in
// its payload. The ledger does not record them, so this covers the main
// object of each event family; links worked out later (a customer's user)
// are shown on those rows.
func (c *Console) touchedRows(ctx context.Context, source, typ string, payload []byte) []touchedRow {
	q := queries.New()
	var out []touchedRow
	add := func(table, key string, row any, err error) {
		if err != nil || key == "" {
			return
		}
		b, err := json.MarshalIndent(row, "", "  ")
		if err == nil {
			out = append(out, touchedRow{Table: table, Key: key, Row: b})
		}
	}
	p := gjson.ParseBytes(payload)
	if source == stream.SourceWorkOS {
		id := p.Get("data.id").String()
		switch {
		case id == "":
		case strings.HasPrefix(typ, "user."):
			r, err := q.UserGetByWorkOSID(ctx, c.pool, id)
			add("users", id, r, err)
		case strings.HasPrefix(typ, "organization_membership."):
			r, err := q.MembershipGetByWorkOSID(ctx, c.pool, id)
			add("user_org_memberships", id, r, err)
		case strings.HasPrefix(typ, "organization."):
			r, err := q.OrganizationGetByWorkOSID(ctx, c.pool, id)
			add("organizations", id, r, err)
		case strings.HasPrefix(typ, "dsync.user."):
			r, err := q.DirectoryUserGetByWorkOSID(ctx, c.pool, id)
			add("directory_users", id, r, err)
		case typ == "dsync.group.user_added" || typ == "dsync.group.user_removed":
			g, u := p.Get("data.group.id").String(), p.Get("data.user.id").String()
			r, err := q.DirectoryGroupMemberGet(ctx, c.pool, queries.DirectoryGroupMemberGetParams{WorkosDirectoryGroupID: g, WorkosDirectoryUserID: u})
			add("directory_group_members", g+" / "+u, r, err)
		case strings.HasPrefix(typ, "dsync.group."):
			r, err := q.DirectoryGroupGetByWorkOSID(ctx, c.pool, id)
			add("directory_groups", id, r, err)
		case strings.HasPrefix(typ, "dsync."):
			r, err := q.DirectoryGetByWorkOSID(ctx, c.pool, id)
			add("directories", id, r, err)
		}
		return out
	}
	obj := p.Get("data.object")
	id := obj.Get("id").String()
	meetingByPI := func(pi string) {
		if pi == "" {
			return
		}
		r, err := q.StripePaymentIntentGet(ctx, c.pool, pi)
		add("stripe_payment_intents", pi, r, err)
		m, err := q.MeetingGetByPaymentIntentID(ctx, c.pool, &pi)
		add("meetings", pi, m, err)
	}
	switch {
	case strings.HasPrefix(typ, "customer.subscription."):
		r, err := q.StripeSubscriptionGet(ctx, c.pool, id)
		add("stripe_subscriptions", id, r, err)
	case typ == "customer.created" || typ == "customer.updated" || typ == "customer.deleted":
		r, err := q.StripeCustomerGet(ctx, c.pool, id)
		add("stripe_customers", id, r, err)
	case strings.HasPrefix(typ, "account."):
		acct := p.Get("account").String()
		if obj.Get("object").String() == "account" {
			acct = id
		}
		if acct != "" {
			r, err := q.StripeConnectAccountGet(ctx, c.pool, acct)
			add("stripe_connect_accounts", acct, r, err)
		}
	case strings.HasPrefix(typ, "payment_intent."):
		meetingByPI(id)
	case strings.HasPrefix(typ, "charge."):
		meetingByPI(obj.Get("payment_intent").String())
	case strings.HasPrefix(typ, "checkout.session."):
		if id != "" {
			m, err := q.MeetingGetBySessionID(ctx, c.pool, &id)
			add("meetings", id, m, err)
		}
	}
	return out
}
