package provision

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/tidwall/gjson"

	"github.com/syncd/syncd/consumers"
	"github.com/syncd/syncd/stream"
)

// Task kinds.
const (
	kindGuest = "guest"
	kindUser  = "user"
)

// request is what an event asks of provisioning.
type request struct {
	kind string
	// key names the task (provisioning_tasks.task_key); lockKey the person,
	// so a guest task and the user task of the same person never run at
	// once.
	key, lockKey         string
	email                string
	firstName, lastName  string
	booking              string
	userID               string
	eventSource, eventID string
}

// errBadInput marks an event provisioning cannot act on because of what it
// carries (a guest email that is not one): permanent.
var errBadInput = errors.New("provision: bad input")

// requestOf reads what ev asks for; ok is false for an event that needs
// nothing (an unpaid checkout, a payment that is not a booking).
func (p *Provisioner) requestOf(ev consumers.Event) (r request, ok bool, err error) {
	body := ev.Body
	switch {
	case ev.Source == stream.SourceStripe:
		return p.bookingRequest(ev, gjson.GetBytes(body, "data.object"))
	case ev.Source == stream.SourceWorkOS && ev.Envelope.Type == "user.created" && p.cfg.Mode == All:
		d := gjson.GetBytes(body, "data")
		r = request{
			kind:      kindUser,
			userID:    d.Get("id").String(),
			email:     normEmail(d.Get("email").String()),
			firstName: d.Get("first_name").String(),
			lastName:  d.Get("last_name").String(),
		}
		if r.userID == "" {
			return r, false, fmt.Errorf("%w: user.created without data.id", errBadInput)
		}
		if r.email == "" {
			return r, false, fmt.Errorf("%w: user.created %s without an email", errBadInput, r.userID)
		}
		r.key, r.lockKey = "user:"+r.userID, r.email
		r.eventSource, r.eventID = ev.Source, ev.Envelope.ID
		return r, true, nil
	}
	return r, false, nil
}

// bookingRequest reads a paid booking: the guest of metadata "meeting".
func (p *Provisioner) bookingRequest(ev consumers.Event, obj gjson.Result) (request, bool, error) {
	r := request{kind: kindGuest, eventSource: ev.Source, eventID: ev.Envelope.ID}
	var fallbackEmail, fallbackName string
	switch ev.Envelope.Type {
	case "checkout.session.completed":
		// Delayed payment methods complete the Session unpaid; the guest
		// is provisioned by async_payment_succeeded then.
		if obj.Get("payment_status").String() != "paid" {
			return r, false, nil
		}
		fallthrough
	case "checkout.session.async_payment_succeeded":
		fallbackEmail = firstNonEmpty(obj.Get("customer_details.email").String(), obj.Get("customer_email").String())
		fallbackName = obj.Get("customer_details.name").String()
	case "payment_intent.succeeded":
		fallbackEmail = obj.Get("receipt_email").String()
	default:
		return r, false, nil
	}
	raw := obj.Get("metadata.meeting")
	if !raw.Exists() || raw.String() == "" {
		return r, false, nil // a payment, not a booking
	}
	var m struct {
		ID        string `json:"id"`
		Guest     string `json:"guest"`
		GuestName string `json:"guestName"`
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal([]byte(raw.String()), &fields); err != nil || fields == nil {
		return r, false, fmt.Errorf("%w: %s %s: metadata.meeting is not a JSON object", errBadInput, ev.Envelope.Type, obj.Get("id").String())
	}
	for name, dst := range map[string]*string{"id": &m.ID, "guest": &m.Guest, "guestName": &m.GuestName} {
		_ = json.Unmarshal(fields[name], dst)
	}
	r.email = normEmail(firstNonEmpty(m.Guest, fallbackEmail))
	if r.email == "" {
		return r, false, fmt.Errorf("%w: %s %s: the booking names no guest email", errBadInput, ev.Envelope.Type, obj.Get("id").String())
	}
	if !plausibleEmail(r.email) {
		return r, false, fmt.Errorf("%w: %s %s: guest email %q is not an email address", errBadInput, ev.Envelope.Type, obj.Get("id").String(), r.email)
	}
	r.firstName, r.lastName = splitName(firstNonEmpty(m.GuestName, fallbackName))
	r.booking = firstNonEmpty(m.ID, obj.Get("id").String())
	r.key, r.lockKey = "guest:"+r.email, r.email
	return r, true, nil
}

func normEmail(s string) string { return strings.ToLower(strings.TrimSpace(s)) }

func plausibleEmail(s string) bool {
	at := strings.IndexByte(s, '@')
	return at > 0 && at < len(s)-1 && !strings.ContainsAny(s, " \t\r\n,;<>") && len(s) <= 320
}

func firstNonEmpty(v ...string) string {
	for _, s := range v {
		if s = strings.TrimSpace(s); s != "" {
			return s
		}
	}
	return ""
}
