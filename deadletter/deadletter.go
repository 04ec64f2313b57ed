// Package deadletter inspects and drains the DEADLETTER stream: it lists
// and filters the dead letters, reads one, retries them into WEBHOOKS and
// purges them. `syncd dlq` is a thin layer over it.
//
// A retry never loses an event: the dead letter is removed only after
// JetStream acknowledged the republished copy.
package deadletter

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/syncd/syncd/stream"
)

// HeaderRetryOf marks a republished event with the DEADLETTER sequence it
// was retried from, so an operator can trace a retry in WEBHOOKS.
const HeaderRetryOf = "Syncd-Retry-Of"

// ErrNotFound means no dead letter has the sequence asked for.
var ErrNotFound = errors.New("no such dead letter")

// Letter is one message of DEADLETTER with its headers read.
type Letter struct {
	// Seq is the sequence in DEADLETTER: what the commands take.
	Seq uint64 `json:"seq"`
	// Time is when the event was dead-lettered.
	Time    time.Time `json:"time"`
	Source  string    `json:"source"`
	Type    string    `json:"type"`
	EventID string    `json:"event_id"`
	// OriginalSubject and OriginalSeq locate the event in WEBHOOKS.
	OriginalSubject string `json:"original_subject"`
	OriginalSeq     uint64 `json:"original_seq"`
	Deliveries      int    `json:"deliveries"`
	Class           string `json:"class"`
	Error           string `json:"error"`
	Consumer        string `json:"consumer"`

	Subject string      `json:"-"`
	Header  nats.Header `json:"-"`
	Data    []byte      `json:"-"`
}

func letterOf(m *jetstream.RawStreamMsg) Letter {
	h := m.Header
	if h == nil {
		h = nats.Header{}
	}
	l := Letter{
		Seq:             m.Sequence,
		Time:            m.Time.UTC(),
		Source:          h.Get(stream.HeaderSource),
		Type:            h.Get(stream.HeaderEventType),
		EventID:         h.Get(stream.HeaderEventID),
		OriginalSubject: h.Get(stream.HeaderDLSubject),
		Class:           h.Get(stream.HeaderDLClass),
		Error:           h.Get(stream.HeaderDLError),
		Consumer:        h.Get(stream.HeaderDLConsumer),
		Subject:         m.Subject,
		Header:          h,
		Data:            m.Data,
	}
	l.OriginalSeq, _ = strconv.ParseUint(h.Get(stream.HeaderDLSequence), 10, 64)
	l.Deliveries, _ = strconv.Atoi(h.Get(stream.HeaderDLDeliveries))
	if l.Source == "" || l.Type == "" {
		// deadletter.<source>.<type…>
		if parts := strings.SplitN(m.Subject, ".", 3); len(parts) == 3 {
			l.Source, l.Type = parts[1], parts[2]
		}
	}
	if l.OriginalSubject == "" {
		l.OriginalSubject = "webhooks." + strings.TrimPrefix(m.Subject, "deadletter.")
	}
	return l
}

// Filter selects dead letters. Zero fields match everything.
type Filter struct {
	// Source and Type match exactly; they narrow the subject read from
	// the server.
	Source, Type string
	// Since and Until bound when the event was dead-lettered, inclusive.
	Since, Until time.Time
	// Error matches a substring of the error message, ignoring case.
	Error string
}

// IsZero reports whether f selects every dead letter.
func (f Filter) IsZero() bool { return f == Filter{} }

// Validate reports a filter that cannot match anything by construction.
func (f Filter) Validate() error {
	if !f.Since.IsZero() && !f.Until.IsZero() && f.Until.Before(f.Since) {
		return fmt.Errorf("until %s is before since %s", f.Until.Format(time.RFC3339), f.Since.Format(time.RFC3339))
	}
	for name, v := range map[string]string{"source": f.Source, "type": f.Type} {
		if strings.ContainsAny(v, " \t\r\n*>") {
			return fmt.Errorf("%s %q: no spaces or wildcards", name, v)
		}
	}
	if strings.Contains(f.Source, ".") {
		return fmt.Errorf("source %q: no dots", f.Source)
	}
	return nil
}

// subject is the DEADLETTER subject filter for Source and Type.
func (f Filter) subject() string {
	src := f.Source
	if src == "" {
		src = "*"
	}
	if f.Type == "" {
		return "deadletter." + src + ".>"
	}
	return "deadletter." + src + "." + stream.SubjectToken(f.Type)
}

// Match reports whether l is selected by f.
func (f Filter) Match(l Letter) bool {
	switch {
	case f.Source != "" && l.Source != f.Source,
		f.Type != "" && l.Type != f.Type,
		!f.Since.IsZero() && l.Time.Before(f.Since),
		!f.Until.IsZero() && l.Time.After(f.Until),
		f.Error != "" && !strings.Contains(strings.ToLower(l.Error), strings.ToLower(f.Error)):
		return false
	}
	return true
}

// Store reads and drains DEADLETTER.
type Store struct {
	js jetstream.JetStream
	dl jetstream.Stream
}

// Open finds the DEADLETTER stream.
func Open(ctx context.Context, js jetstream.JetStream) (*Store, error) {
	dl, err := js.Stream(ctx, stream.DeadLetter)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return nil, fmt.Errorf("stream %s not found: has `syncd serve` run against this NATS (check --nats-url / --data-dir)?", stream.DeadLetter)
	}
	if err != nil {
		return nil, fmt.Errorf("open stream %s: %w", stream.DeadLetter, err)
	}
	return &Store{js: js, dl: dl}, nil
}

// Depth is the number of dead letters.
func (s *Store) Depth(ctx context.Context) (uint64, error) {
	info, err := s.dl.Info(ctx)
	if err != nil {
		return 0, fmt.Errorf("stream %s info: %w", stream.DeadLetter, err)
	}
	return info.State.Msgs, nil
}

// List returns the dead letters f selects, oldest first. Letters stored
// after the call started are left out, so a retry that fails again is not
// picked up by the same run.
func (s *Store) List(ctx context.Context, f Filter) ([]Letter, error) {
	info, err := s.dl.Info(ctx)
	if err != nil {
		return nil, fmt.Errorf("stream %s info: %w", stream.DeadLetter, err)
	}
	last := info.State.LastSeq
	var out []Letter
	subject := f.subject()
	for seq := info.State.FirstSeq; seq > 0 && seq <= last; {
		m, err := s.dl.GetMsg(ctx, seq, jetstream.WithGetMsgSubject(subject))
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("read %s from sequence %d: %w", stream.DeadLetter, seq, err)
		}
		if m.Sequence > last {
			break
		}
		if l := letterOf(m); f.Match(l) {
			out = append(out, l)
		}
		seq = m.Sequence + 1
	}
	return out, nil
}

// Get returns the dead letter at seq, or ErrNotFound.
func (s *Store) Get(ctx context.Context, seq uint64) (Letter, error) {
	m, err := s.dl.GetMsg(ctx, seq)
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return Letter{}, fmt.Errorf("sequence %d: %w", seq, ErrNotFound)
	}
	if err != nil {
		return Letter{}, fmt.Errorf("read %s sequence %d: %w", stream.DeadLetter, seq, err)
	}
	return letterOf(m), nil
}

// RetryMsgID is the message id a retried event is republished under. The
// original id would be dropped as a duplicate inside JetStream's window;
// this one is fresh per dead letter, yet the same for two retries of the
// same dead letter, so a retry repeated after a failed delete stores
// nothing twice.
func RetryMsgID(l Letter) string {
	if l.EventID == "" {
		return l.Source + ":retry:" + strconv.FormatUint(l.Seq, 10)
	}
	return stream.MsgID(l.Source, l.EventID) + ":retry:" + strconv.FormatUint(l.Seq, 10)
}

// retryMsg rebuilds the WEBHOOKS message: the original subject, body and
// event headers, without the dead-letter headers, under a fresh id.
func retryMsg(l Letter) (*nats.Msg, error) {
	if !strings.HasPrefix(l.OriginalSubject, "webhooks.") {
		return nil, fmt.Errorf("dead letter %d: original subject %q is not a WEBHOOKS subject", l.Seq, l.OriginalSubject)
	}
	m := nats.NewMsg(l.OriginalSubject)
	m.Data = l.Data
	stream.CopyEventHeaders(m.Header, l.Header,
		stream.HeaderDLSubject, stream.HeaderDLSequence, stream.HeaderDLDeliveries,
		stream.HeaderDLClass, stream.HeaderDLError, stream.HeaderDLFailedAt, stream.HeaderDLConsumer)
	m.Header.Set(jetstream.MsgIDHeader, RetryMsgID(l))
	m.Header.Set(HeaderRetryOf, strconv.FormatUint(l.Seq, 10))
	return m, nil
}

// Retry republishes l to its original subject and, once JetStream has
// acknowledged the copy, removes the dead letter. It returns the copy's
// WEBHOOKS sequence. On error the dead letter is still there unless the
// copy was stored, which the error then says.
func (s *Store) Retry(ctx context.Context, l Letter) (_ uint64, err error) {
	m, err := retryMsg(l)
	if err != nil {
		return 0, err
	}
	// The retry's span links to the trace that stored the event; the
	// copy carries the retry's, so its apply joins the retry.
	ctx, span := startRetrySpan(ctx, l)
	defer func() { endSpan(span, err) }()
	stream.InjectTrace(ctx, m.Header)
	ack, err := s.js.PublishMsg(ctx, m)
	if err != nil {
		return 0, fmt.Errorf("dead letter %d: republish to %s: %w (dead letter kept)", l.Seq, l.OriginalSubject, err)
	}
	if ack.Stream != stream.Webhooks {
		return 0, fmt.Errorf("dead letter %d: republished into stream %s, not %s (dead letter kept)", l.Seq, ack.Stream, stream.Webhooks)
	}
	if err := s.remove(ctx, l.Seq); err != nil {
		return ack.Sequence, fmt.Errorf("dead letter %d: republished as %s sequence %d, but not removed: %w", l.Seq, stream.Webhooks, ack.Sequence, err)
	}
	return ack.Sequence, nil
}

// Purge removes the dead letter l for good.
func (s *Store) Purge(ctx context.Context, l Letter) error {
	if err := s.remove(ctx, l.Seq); err != nil {
		return fmt.Errorf("dead letter %d: remove: %w", l.Seq, err)
	}
	return nil
}

// remove deletes seq from DEADLETTER; already gone (another operator's
// run) is fine.
func (s *Store) remove(ctx context.Context, seq uint64) error {
	err := s.dl.DeleteMsg(ctx, seq)
	if err == nil {
		return nil
	}
	// The server words "already gone" in several ways (sequence not found,
	// no message found) that the client does not wrap: look instead.
	if _, gerr := s.dl.GetMsg(ctx, seq); errors.Is(gerr, jetstream.ErrMsgNotFound) {
		return nil
	}
	return err
}

// Options steer RetryAll and PurgeAll.
type Options struct {
	// DryRun reports what would be done and changes nothing.
	DryRun bool
	// Progress, if set, is called after each letter with the count done.
	Progress func(done, total int)
}

// Summary is the outcome of RetryAll or PurgeAll.
type Summary struct {
	Total     int
	Succeeded int
	// Failed holds one error per letter not handled; their dead letters
	// are still in DEADLETTER unless the error says otherwise.
	Failed []error
	// Stopped is set when ctx ended the run before every letter was seen.
	Stopped bool
	DryRun  bool
}

// RetryAll retries each letter in turn, carrying on past failures. It
// stops early only when ctx is done.
func (s *Store) RetryAll(ctx context.Context, letters []Letter, o Options) Summary {
	check := func(l Letter) error { _, err := retryMsg(l); return err }
	return s.each(ctx, letters, o, check, func(l Letter) error {
		_, err := s.Retry(ctx, l)
		return err
	})
}

// PurgeAll removes each letter in turn, carrying on past failures.
func (s *Store) PurgeAll(ctx context.Context, letters []Letter, o Options) Summary {
	return s.each(ctx, letters, o, nil, func(l Letter) error { return s.Purge(ctx, l) })
}

// each applies do to every letter, or only check on a dry run.
func (s *Store) each(ctx context.Context, letters []Letter, o Options, check, do func(Letter) error) Summary {
	sum := Summary{Total: len(letters), DryRun: o.DryRun}
	for i, l := range letters {
		if ctx.Err() != nil {
			sum.Stopped = true
			break
		}
		var err error
		switch {
		case !o.DryRun:
			err = do(l)
		case check != nil:
			err = check(l)
		}
		if err != nil {
			sum.Failed = append(sum.Failed, err)
		} else {
			sum.Succeeded++
		}
		if o.Progress != nil {
			o.Progress(i+1, len(letters))
		}
	}
	return sum
}
