package stream

import (
	"hash/fnv"
	"strconv"
	"strings"

	"github.com/nats-io/nats.go/jetstream"
)

// Subjects are built from event data — a source and an event type — and
// the dead-letter path builds them from whatever a stored message carries,
// so every builder here is total: any input gives a valid, bounded subject.
// NATS rejects a subject with spaces, control characters, empty tokens or
// wildcards, and a client whose control line (the subject with its PUB
// prefix) exceeds max_control_line (4 KiB by default) loses its connection.
const (
	// MaxSourceToken bounds the source token, in bytes.
	MaxSourceToken = 64
	// MaxTypeTokens bounds the event-type part of a subject, in bytes.
	MaxTypeTokens = 512
	// MaxSubject bounds any subject syncd builds from event data, well
	// under the control-line limit.
	MaxSubject = len("deadletter.") + MaxSourceToken + 1 + MaxTypeTokens
)

// Subject is the WEBHOOKS subject of an event: webhooks.<source>.<type>, the
// type's dots becoming subject tokens.
func Subject(source, eventType string) string {
	return "webhooks." + SourceToken(source) + "." + SubjectToken(eventType)
}

// SplitSubject turns webhooks.<source>.<type…> (or deadletter.…) into
// source and type; "unknown" for a subject without both.
func SplitSubject(subject string) (source, typ string) {
	parts := strings.SplitN(subject, ".", 3)
	if len(parts) < 3 {
		return "unknown", "unknown"
	}
	return parts[1], parts[2]
}

// DeadLetterSubject is the DEADLETTER subject of an event.
func DeadLetterSubject(source, eventType string) string {
	return "deadletter." + SourceToken(source) + "." + SubjectToken(eventType)
}

// SourceToken makes a source one safe subject token.
func SourceToken(source string) string {
	return bound(escapeTokens(source, false), MaxSourceToken, source)
}

// SubjectToken makes an event type safe as subject tokens: characters NATS
// treats specially (spaces, controls, wildcards, anything outside ASCII)
// become '_', empty tokens are filled, and a type longer than MaxTypeTokens
// is cut and given a hash of the whole, so that a provider's odd type can
// never build an invalid subject and two long types stay apart.
func SubjectToken(eventType string) string {
	return bound(escapeTokens(eventType, true), MaxTypeTokens, eventType)
}

// escapeTokens maps s to subject tokens; dots separate tokens only when
// dots is set, else they are escaped too.
func escapeTokens(s string, dots bool) string {
	if s == "" {
		return "_"
	}
	var b strings.Builder
	b.Grow(len(s) + 2)
	prevDot := true
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '.' && dots:
			if prevDot {
				b.WriteByte('_')
			}
			b.WriteByte('.')
			prevDot = true
			continue
		case c <= ' ' || c == '.' || c == '*' || c == '>' || c >= 0x7f:
			b.WriteByte('_')
		default:
			b.WriteByte(c)
		}
		prevDot = false
	}
	if prevDot {
		b.WriteByte('_')
	}
	return b.String()
}

// bound cuts escaped tokens to max bytes, ending on a whole token and a
// hash of the original.
func bound(escaped string, max int, original string) string {
	if len(escaped) <= max {
		return escaped
	}
	h := fnv.New64a()
	_, _ = h.Write([]byte(original))
	sum := strconv.FormatUint(h.Sum64(), 16)
	// Escaped tokens are ASCII and never empty, so cutting and trimming the
	// dots leaves at least one whole token.
	cut := strings.TrimRight(escaped[:max-len(sum)-2], ".")
	return cut + "~" + sum
}

// Deliveries is how many times JetStream has delivered m (at least 1, at
// most 64), for the backoff of a redelivery.
func Deliveries(m jetstream.Msg) int {
	md, err := m.Metadata()
	if err != nil || md.NumDelivered < 1 {
		return 1
	}
	return int(min(md.NumDelivered, 64))
}
