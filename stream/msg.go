package stream

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/syncd/syncd/events"
)

// MaxIdentity bounds an event's id and type, in bytes. Provider ids and
// types are a few dozen bytes; 255 leaves room for any real one while
// keeping subjects, headers and metric labels built from them small.
const MaxIdentity = 255

// ErrInvalidIdentity means an event's id or type cannot be stored: it is
// not valid UTF-8, holds a control character, or is longer than
// MaxIdentity. Such an event would otherwise be stored and then break what
// is built from it downstream.
var ErrInvalidIdentity = errors.New("invalid event identity")

// CheckIdentity reports whether an event's id and type can be stored.
func CheckIdentity(id, eventType string) error {
	for _, f := range []struct{ name, v string }{{"id", id}, {"type", eventType}} {
		switch {
		case f.v == "":
			return fmt.Errorf("%w: %s is empty", ErrInvalidIdentity, f.name)
		case len(f.v) > MaxIdentity:
			return fmt.Errorf("%w: %s is %d bytes, over %d", ErrInvalidIdentity, f.name, len(f.v), MaxIdentity)
		case !utf8.ValidString(f.v):
			return fmt.Errorf("%w: %s is not valid UTF-8", ErrInvalidIdentity, f.name)
		case strings.IndexFunc(f.v, unicode.IsControl) >= 0:
			return fmt.Errorf("%w: %s holds a control character", ErrInvalidIdentity, f.name)
		}
	}
	return nil
}

// EventMsg builds the WEBHOOKS message of a provider event: the raw body
// byte for byte, its subject, message id and headers. Ingest and backfill
// both build messages here, so an event that reaches the stream through
// the Events API is indistinguishable from (and deduplicated against) the
// same event delivered as a webhook, and both refuse an event whose
// identity fails CheckIdentity. endpoint is "connect" for Stripe Connect
// events, else empty.
func EventMsg(source string, env events.Envelope, body []byte, receivedAt time.Time, endpoint string) (*nats.Msg, error) {
	if err := CheckIdentity(env.ID, env.Type); err != nil {
		return nil, err
	}
	msg := nats.NewMsg(Subject(source, env.Type))
	msg.Data = body
	msg.Header.Set(jetstream.MsgIDHeader, MsgID(source, env.ID))
	msg.Header.Set(HeaderSource, HeaderValue(source, MaxSourceToken))
	msg.Header.Set(HeaderEventType, env.Type)
	msg.Header.Set(HeaderEventID, env.ID)
	if !env.Created.IsZero() {
		msg.Header.Set(HeaderProviderAt, env.Created.UTC().Format(time.RFC3339Nano))
	}
	msg.Header.Set(HeaderReceivedAt, receivedAt.UTC().Format(time.RFC3339Nano))
	if endpoint != "" {
		msg.Header.Set(HeaderEndpoint, HeaderValue(endpoint, MaxSourceToken))
	}
	return msg, nil
}

// Bounds of the headers syncd writes, so that a message with a body of at
// most the ingest limit, copied to DEADLETTER with its reason, still fits
// the server's max payload (see HeaderRoom).
const (
	// MaxHeaderValue bounds one header value built from event data.
	MaxHeaderValue = 1024
	// MaxReason bounds a dead letter's error (it may hold a stack).
	MaxReason = 4096
	// maxCopiedHeaders bounds the original's headers a copy carries.
	maxCopiedHeaders = 6 << 10
	// HeaderRoom is what a message's headers take at most, dead-letter
	// copy included: a body must be at most the server's max payload
	// less this.
	HeaderRoom = 16 << 10
)

// HeaderValue makes s safe as one header value of at most max bytes (see
// Escape), so a value can neither end its header line early nor grow
// without bound.
func HeaderValue(s string, max int) string {
	s = Escape(s)
	if len(s) <= max {
		return s
	}
	// Cut on a rune boundary, and not inside an escape, leaving room for
	// the ellipsis.
	n := max - len("…")
	if n <= 0 {
		return ""
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	if k := strings.LastIndexByte(s[:n], '\\'); k >= 0 && n-k < 6 {
		n = k
	}
	return s[:n] + "…"
}

// Escape makes event data printable on one line, as a header value, on an
// operator's terminal or in the console: CR, LF, tab, every other control
// character (C0, DEL, C1 — ESC and CSI included), the bidirectional
// controls (which can make an id read as another) and bytes that are not
// UTF-8 are written as escapes (\n, \x1b, \u009b, \u202e, \xff). Clean
// text is returned as is. It is the one escape for human-readable output.
func Escape(s string) string { return escape(s, false) }

// EscapeLines is Escape for text of several lines (an error, an indented
// payload): line breaks and tabs stay.
func EscapeLines(s string) string { return escape(s, true) }

func unprintable(r rune) bool {
	return r == utf8.RuneError || unicode.IsControl(r) || unicode.Is(unicode.Bidi_Control, r)
}

func escape(s string, lines bool) string {
	clean := true
	for _, r := range s {
		if unprintable(r) && !(lines && (r == '\n' || r == '\t')) {
			clean = false
			break
		}
	}
	if clean {
		return s
	}
	var b strings.Builder
	b.Grow(len(s) + 8)
	for i := 0; i < len(s); {
		r, n := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && n <= 1:
			fmt.Fprintf(&b, `\x%02x`, s[i])
		case lines && (r == '\n' || r == '\t'):
			b.WriteRune(r)
		case r == '\n':
			b.WriteString(`\n`)
		case r == '\r':
			b.WriteString(`\r`)
		case r == '\t':
			b.WriteString(`\t`)
		case unicode.IsControl(r):
			b.WriteString(strings.Trim(strconv.QuoteRune(r), "'"))
		case unicode.Is(unicode.Bidi_Control, r):
			fmt.Fprintf(&b, `\u%04x`, r)
		default:
			b.WriteString(s[i : i+n])
		}
		i += n
	}
	return b.String()
}

// CopyEventHeaders copies the event's headers from src to dst, leaving out
// the Nats-* headers — instructions to the server that stored src (message
// id, expected stream), which on a copy stored elsewhere would be wrong or
// make the server refuse it — and any header named in skip. Values are
// made safe with HeaderValue and the copy is bounded, so a stored message
// with hostile headers cannot make its copy unpublishable.
func CopyEventHeaders(dst, src nats.Header, skip ...string) {
	keys := make([]string, 0, len(src))
	for k := range src {
		if strings.HasPrefix(k, "Nats-") || slices.Contains(skip, k) {
			continue
		}
		keys = append(keys, k)
	}
	slices.Sort(keys) // the same headers survive the bound every time
	total := 0
	for _, k := range keys {
		for _, v := range src[k] {
			v = HeaderValue(v, MaxHeaderValue)
			total += len(k) + len(v) + 4
			if total > maxCopiedHeaders {
				return
			}
			dst[k] = append(dst[k], v)
		}
	}
}

// DeadLetterInfo is what a dead letter records about its original.
type DeadLetterInfo struct {
	Source, Type, EventID string
	// Subject and Sequence are the original's in WEBHOOKS.
	Subject    string
	Sequence   uint64
	Deliveries uint64
	Class      string
	Reason     string
	FailedAt   time.Time
	Consumer   string
}

// DeadLetterMsg builds the DEADLETTER copy of a message: its data and
// headers (see CopyEventHeaders) and the reason it failed. Its message id
// is the original's stream sequence, so a second copy of the same message
// is dropped. Whatever the original carries, the copy's subject and
// headers are valid and bounded (HeaderRoom).
func DeadLetterMsg(data []byte, orig nats.Header, d DeadLetterInfo) *nats.Msg {
	dl := nats.NewMsg(deadLetterSubjectOf(d.Subject, d.Source, d.Type))
	dl.Data = data
	CopyEventHeaders(dl.Header, orig)
	seq := strconv.FormatUint(d.Sequence, 10)
	// Another durable giving up on the same event is its own dead letter,
	// not a duplicate of the apply consumer's.
	id := "dl:" + seq
	if d.Consumer != "" && d.Consumer != Consumer {
		id = "dl:" + HeaderValue(d.Consumer, MaxSourceToken) + ":" + seq
	}
	dl.Header.Set(jetstream.MsgIDHeader, id)
	dl.Header.Set(HeaderSource, HeaderValue(d.Source, MaxSourceToken))
	dl.Header.Set(HeaderEventType, HeaderValue(d.Type, MaxHeaderValue))
	if d.EventID != "" {
		dl.Header.Set(HeaderEventID, HeaderValue(d.EventID, MaxHeaderValue))
	}
	dl.Header.Set(HeaderDLSubject, HeaderValue(d.Subject, MaxSubject))
	dl.Header.Set(HeaderDLSequence, seq)
	dl.Header.Set(HeaderDLDeliveries, strconv.FormatUint(d.Deliveries, 10))
	dl.Header.Set(HeaderDLClass, HeaderValue(d.Class, MaxSourceToken))
	dl.Header.Set(HeaderDLError, HeaderValue(d.Reason, MaxReason))
	if d.FailedAt.IsZero() {
		d.FailedAt = time.Now()
	}
	dl.Header.Set(HeaderDLFailedAt, d.FailedAt.UTC().Format(time.RFC3339Nano))
	dl.Header.Set(HeaderDLConsumer, HeaderValue(d.Consumer, MaxSourceToken))
	return dl
}

// deadLetterSubjectOf is deadletter.<source>.<type> of the original's
// subject where it has one (what dlq filters match, whatever the body
// claims), else of source and type; either way built by DeadLetterSubject,
// so valid and bounded.
func deadLetterSubjectOf(original, source, typ string) string {
	if strings.HasPrefix(original, "webhooks.") && strings.Count(original, ".") >= 2 {
		source, typ = SplitSubject(original)
	}
	return DeadLetterSubject(source, typ)
}
