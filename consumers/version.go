package consumers

import (
	"hash/fnv"
	"strings"
	"time"

	"github.com/syncd/syncd/events"
)

// The one rule for the version of an event, used by every handler:
//
//  1. the object's own version (WorkOS updated_at), where it has one;
//  2. else the event's time (WorkOS created_at, Stripe created);
//  3. else the lowest version there is: a time before events.MinTime, so
//     that any event with a real version wins over it in either order.
//     Two such events of one row are ordered by their type's rank
//     (created < updated < deleted) and then by a hash of their event id,
//     so whichever arrives first, the same one wins.
//
// Never the time syncd received the event, nor now(): those depend on when
// a retry, a replay or a backfill happens to run.

// unversionedBase is where the versions of events without any time
// start. Each rank gets a span of 2^47 µs (about 4.5 years) for the id
// hash, so all three end long before events.MinTime.
var unversionedBase = time.Date(1900, 1, 1, 0, 0, 0, 0, time.UTC)

const unversionedSpan = 1 << 47 // microseconds per rank

func init() {
	if !unversionedBase.Add(3 * unversionedSpan * time.Microsecond).Before(events.MinTime) {
		panic("consumers: unversioned versions reach events.MinTime")
	}
}

// version is the version of the object an event carries: its updatedAt,
// else the event's time.
func version(ev Event, updatedAt events.WorkOSTime) time.Time {
	if !updatedAt.IsZero() {
		return updatedAt.Time
	}
	return eventTime(ev)
}

// eventTime is when the event happened (its envelope's time), else the
// lowest version, ordered among events without a time as described above.
// It is also the time of a delete's tombstone and of a membership change.
func eventTime(ev Event) time.Time {
	if !ev.Envelope.Created.IsZero() {
		return ev.Envelope.Created
	}
	h := fnv.New64a()
	_, _ = h.Write([]byte(ev.Envelope.ID))
	offset := int64(eventRank(ev.Envelope.Type))*unversionedSpan + int64(h.Sum64()>>17)
	return unversionedBase.Add(time.Duration(offset) * time.Microsecond)
}

// eventRank orders the events of one object that happened at the same
// time: a creation (or addition) before an update before a deletion (or
// removal), so the deletion wins a tie.
func eventRank(typ string) int16 {
	switch {
	case strings.HasSuffix(typ, "created"), strings.HasSuffix(typ, "added"):
		return 0
	case strings.HasSuffix(typ, "deleted"), strings.HasSuffix(typ, "removed"), strings.HasSuffix(typ, "deauthorized"):
		return 2
	}
	return 1
}
