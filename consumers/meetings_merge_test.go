package consumers

import (
	"testing"
	"time"

	"github.com/syncd/syncd/queries"
)

// TestPaymentStatusSupersedes: the merge rule of a meeting's payment
// status, as a pure function: tiers only go up, inside the unpaid tier the
// newer event wins (a failed payment retried), pending never replaces
// anything, and in one second the later status in the order wins.
func TestPaymentStatusSupersedes(t *testing.T) {
	t.Parallel()
	at := func(sec int) time.Time { return time.Unix(1_767_225_600+int64(sec), 0) }
	s := func(status string, sec int) paymentStatus { return newPaymentStatus(status, at(sec)) }
	for _, c := range []struct {
		name   string
		next   paymentStatus
		stored paymentStatus
		want   bool
	}{
		{"anything over nothing", s("processing", 0), paymentStatus{}, true},
		{"nothing over anything", paymentStatus{}, s("processing", 0), false},
		{"pending never replaces", s("pending", 9), s("failed", 0), false},
		{"pending first", s("pending", 0), paymentStatus{}, true},
		{"retry after a failure", s("processing", 2), s("failed", 1), true},
		{"older failure after processing", s("failed", 1), s("processing", 2), false},
		{"same second: failed after processing", s("failed", 1), s("processing", 1), true},
		{"same second: processing after failed", s("processing", 1), s("failed", 1), false},
		{"paid over any unpaid, even older", s("succeeded", 0), s("canceled", 5), true},
		{"never back from paid", s("failed", 9), s("succeeded", 0), false},
		{"refund after payment", s("refunded", 0), s("succeeded", 5), true},
		{"partial then full refund", s("refunded", 3), s("partially_refunded", 3), true},
		{"no refund over a dispute", s("refunded", 9), s("disputed", 0), false},
		{"same status again", s("succeeded", 3), s("succeeded", 3), false},
	} {
		if got := c.next.supersedes(c.stored); got != c.want {
			t.Errorf("%s: %+v over %+v = %v, want %v", c.name, c.next, c.stored, got, c.want)
		}
	}
}

// TestMergeDetailsTakesNewerAndFillsFromOlder: booking details of a newer
// event win; an older one only fills what is missing; ties by event id.
func TestMergeDetailsTakesNewerAndFillsFromOlder(t *testing.T) {
	t.Parallel()
	str := func(s string) *string { return &s }
	t1, t2 := time.Unix(100, 0).UTC(), time.Unix(200, 0).UTC()
	for _, c := range []struct {
		name           string
		first, second  meetingDetails
		wantGuest      string
		wantNotes      *string
		wantDetailsVer time.Time
	}{
		{"newer second wins", meetingDetails{guestEmail: str("a@x"), at: t1, eventID: "evt_1"}, meetingDetails{guestEmail: str("b@x"), at: t2, eventID: "evt_2"}, "b@x", nil, t2},
		{"older second only fills", meetingDetails{guestEmail: str("a@x"), at: t2, eventID: "evt_2"}, meetingDetails{guestEmail: str("b@x"), notes: str("n"), at: t1, eventID: "evt_1"}, "a@x", str("n"), t2},
		{"tie by event id", meetingDetails{guestEmail: str("a@x"), at: t1, eventID: "evt_2"}, meetingDetails{guestEmail: str("b@x"), at: t1, eventID: "evt_1"}, "a@x", nil, t1},
	} {
		var row queries.Meeting
		mergeDetails(&row, c.first)
		mergeDetails(&row, c.second)
		if deref(row.GuestEmail) != c.wantGuest || (c.wantNotes == nil) != (row.Notes == nil) || !row.DetailsVersion.Equal(c.wantDetailsVer) {
			t.Errorf("%s: guest %q notes %v version %v", c.name, deref(row.GuestEmail), row.Notes, row.DetailsVersion)
		}
	}
}
