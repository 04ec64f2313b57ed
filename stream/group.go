package stream

import (
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nuid"
)

// Group commit of webhooks.
//
// A file store that syncs always fsyncs each message before its PubAck, one
// message at a time, so a burst of webhooks queues behind the disk: on a
// disk that Postgres also syncs its WAL to, a few milliseconds' stall holds
// every request that arrives meanwhile, and they drain one fsync each.
// GroupPublisher sends a message on at once while the server keeps up;
// once MaxInFlight sends are outstanding, the messages that arrive queue
// and the whole queue goes out as one JetStream atomic batch, which
// nats-server (2.12 and newer) stores with one sync for all of them before
// it answers. Each message still gets its own PubAck (its own sequence), so
// a 2xx still means the event is on disk.
//
// An atomic batch is all or nothing: the server refuses the whole batch if
// one message in it is a duplicate (a provider's retry of an event already
// stored). A refused or failed batch is sent again message by message, as
// a plain publish each, so one message's fate is never another's: the
// duplicate gets its duplicate PubAck and the rest are stored. To keep
// that rare, an event id seen in the last few thousand messages, or twice
// in one batch, is sent on its own.

const (
	// GroupMinBatchDefault: fewer queued messages than this go out one by
	// one, since an R1 atomic batch costs a few fsyncs of its own (its
	// staging store) and pays off only over several messages.
	GroupMinBatchDefault = 8
	// GroupMaxBatchDefault bounds a batch (the server's limit is 1,000).
	GroupMaxBatchDefault = 256
	// GroupMaxBatchBytesDefault bounds a batch's bodies.
	GroupMaxBatchBytesDefault = 8 << 20
	// GroupMaxInFlightDefault is how many sends (a message or a batch) are
	// outstanding before messages queue for the next batch.
	GroupMaxInFlightDefault = 4
	// GroupAckTimeoutDefault is how long a send waits for its PubAck
	// before its slot is given back (see GroupConfig.AckTimeout).
	GroupAckTimeoutDefault = 5 * time.Second
	// recentIDs is how many message ids GroupPublisher remembers to send a
	// provider's quick retry on its own.
	recentIDs = 8192
)

// Atomic batch headers (ADR-50).
const (
	headerBatchID     = "Nats-Batch-Id"
	headerBatchSeq    = "Nats-Batch-Sequence"
	headerBatchCommit = "Nats-Batch-Commit"
)

// errAtomicDisabled: the stream does not take atomic batches (made
// without AtomicPublish), so GroupPublisher stops trying.
const errAtomicDisabled = jetstream.ErrorCode(server.JSAtomicPublishDisabledErr)

// GroupConfig tunes a GroupPublisher; zero values are the defaults.
type GroupConfig struct {
	MinBatch      int
	MaxBatch      int
	MaxBatchBytes int
	MaxInFlight   int
	// AckTimeout bounds the wait for a send's PubAck. nats-server does
	// not answer a commit that failed after it was staged, and the
	// client would hold the send's slot for its own 30 s: after
	// AckTimeout the send's messages fail with nats.ErrTimeout. The
	// caller's own timeout is the same or shorter, so no caller waits
	// for it.
	AckTimeout time.Duration
	Logger     *slog.Logger
}

func (c GroupConfig) withDefaults() GroupConfig {
	if c.MinBatch <= 1 {
		c.MinBatch = GroupMinBatchDefault
	}
	if c.MaxBatch <= 0 {
		c.MaxBatch = GroupMaxBatchDefault
	}
	c.MaxBatch = min(c.MaxBatch, 1000)
	if c.MaxBatchBytes <= 0 {
		c.MaxBatchBytes = GroupMaxBatchBytesDefault
	}
	if c.MaxInFlight <= 0 {
		c.MaxInFlight = GroupMaxInFlightDefault
	}
	if c.AckTimeout <= 0 {
		c.AckTimeout = GroupAckTimeoutDefault
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c
}

// GroupPublisher publishes messages to JetStream with group commit (see
// above). It has the PublishMsgAsync of jetstream.JetStream.
type GroupPublisher struct {
	nc  *nats.Conn
	js  jetstream.JetStream
	cfg GroupConfig

	mu       sync.Mutex
	queue    []*groupFuture
	inFlight int
	// atomic is cleared when the server refuses atomic batches.
	atomic bool
	recent *recent

	batches, batched, fallbacks uint64
}

// NewGroupPublisher publishes through js on nc (the connection js uses).
func NewGroupPublisher(nc *nats.Conn, js jetstream.JetStream, cfg GroupConfig) *GroupPublisher {
	return &GroupPublisher{nc: nc, js: js, cfg: cfg.withDefaults(), atomic: true, recent: newRecent(recentIDs)}
}

// GroupStats counts what a GroupPublisher did.
type GroupStats struct {
	// Batches is the atomic batches stored; Batched the messages in them.
	Batches, Batched uint64
	// Fallbacks is the batches refused and sent again message by message.
	Fallbacks uint64
}

// Stats reports the batches sent so far.
func (g *GroupPublisher) Stats() GroupStats {
	g.mu.Lock()
	defer g.mu.Unlock()
	return GroupStats{g.batches, g.batched, g.fallbacks}
}

// PublishMsgAsync stores msg; the future reports its PubAck or error. opts
// are not supported and refused.
func (g *GroupPublisher) PublishMsgAsync(msg *nats.Msg, opts ...jetstream.PublishOpt) (jetstream.PubAckFuture, error) {
	if len(opts) > 0 {
		return nil, errors.New("stream: GroupPublisher takes no publish options")
	}
	f := &groupFuture{msg: msg, ok: make(chan *jetstream.PubAck, 1), err: make(chan error, 1)}
	g.mu.Lock()
	if g.inFlight < g.cfg.MaxInFlight && len(g.queue) == 0 {
		g.inFlight++
		g.mu.Unlock()
		g.single(f)
		return f, nil
	}
	g.queue = append(g.queue, f)
	g.mu.Unlock()
	return f, nil
}

// single sends one message as a plain publish.
func (g *GroupPublisher) single(f *groupFuture) {
	g.recent.add(f.msg.Header.Get(jetstream.MsgIDHeader))
	fut, err := g.js.PublishMsgAsync(f.msg)
	if err != nil {
		f.fail(err)
		g.done()
		return
	}
	go func() {
		timeout := time.NewTimer(g.cfg.AckTimeout)
		defer timeout.Stop()
		var ack *jetstream.PubAck
		var err error
		select {
		case ack = <-fut.Ok():
		case err = <-fut.Err():
		case <-timeout.C:
			err = fmt.Errorf("no PubAck within %s: %w", g.cfg.AckTimeout, nats.ErrTimeout)
		}
		// The slot is free before the caller hears, so what it sends next
		// never queues behind this send.
		g.done()
		if err != nil {
			f.fail(err)
		} else {
			f.ok <- ack
		}
	}()
}

// done ends one send and starts what has queued meanwhile: as one atomic
// batch, or one by one when fewer than MinBatch queued (which may take
// inFlight past MaxInFlight, by less than MinBatch).
func (g *GroupPublisher) done() {
	g.mu.Lock()
	g.inFlight--
	take, bytes := 0, 0
	for take < len(g.queue) && take < g.cfg.MaxBatch {
		bytes += len(g.queue[take].msg.Data)
		if take > 0 && bytes > g.cfg.MaxBatchBytes {
			break
		}
		take++
	}
	if take == 0 {
		g.mu.Unlock()
		return
	}
	group := g.queue[:take:take]
	if g.queue = g.queue[take:]; len(g.queue) == 0 {
		g.queue = nil
	}
	var batch, alone []*groupFuture
	if g.atomic && len(group) >= g.cfg.MinBatch {
		// Ids sent lately, or twice here, go on their own after the batch,
		// so a duplicate does not fail the batch.
		batch, alone = g.split(group)
	} else {
		alone = group
	}
	if len(batch) < 2 {
		batch, alone = nil, append(alone, batch...)
		g.inFlight += len(alone)
	} else {
		g.inFlight++
	}
	g.mu.Unlock()
	if batch == nil {
		for _, f := range alone {
			g.single(f)
		}
		return
	}
	go g.sendBatch(batch, alone)
}

// split separates the messages whose id was sent lately or repeats in
// group from the rest, and remembers the rest's ids as sent.
func (g *GroupPublisher) split(group []*groupFuture) (batch, alone []*groupFuture) {
	for _, f := range group {
		if id := f.msg.Header.Get(jetstream.MsgIDHeader); id != "" && !g.recent.add(id) {
			alone = append(alone, f)
			continue
		}
		batch = append(batch, f)
	}
	return batch, alone
}

// sendBatch stores batch as one atomic batch, then sends alone one by one;
// a batch the server refuses is sent one by one too.
func (g *GroupPublisher) sendBatch(batch, alone []*groupFuture) {
	if ack, err := g.publishBatch(batch); err == nil {
		first := ack.Sequence - uint64(len(batch)) + 1
		for i, f := range batch {
			a := *ack
			a.Sequence = first + uint64(i)
			f.ok <- &a
		}
		g.mu.Lock()
		g.batches++
		g.batched += uint64(len(batch))
	} else if errors.Is(err, nats.ErrTimeout) {
		// Unanswered: the callers have had their timeouts by now, and
		// sending the batch again would double the load on a server that
		// is slow already. Their providers send again.
		g.cfg.Logger.Warn("atomic batch unanswered", "messages", len(batch), "err", err)
		for _, f := range batch {
			f.fail(err)
		}
		g.mu.Lock()
	} else {
		var apiErr *jetstream.APIError
		disabled := errors.As(err, &apiErr) && apiErr.ErrorCode == errAtomicDisabled
		if disabled {
			g.cfg.Logger.Warn("JetStream refuses atomic batches: webhooks are stored one fsync each", "err", err)
		} else {
			g.cfg.Logger.Debug("atomic batch refused, sending its messages one by one", "messages", len(batch), "err", err)
		}
		alone = append(batch, alone...)
		g.mu.Lock()
		g.atomic = g.atomic && !disabled
		g.fallbacks++
	}
	g.inFlight += len(alone)
	g.mu.Unlock()
	for _, f := range alone {
		g.single(f)
	}
	g.done()
}

// publishBatch sends batch with the atomic batch headers: all but the last
// as plain publishes, the last, the commit, for the batch's PubAck.
func (g *GroupPublisher) publishBatch(batch []*groupFuture) (*jetstream.PubAck, error) {
	id := nuid.Next()
	last := len(batch) - 1
	for i, f := range batch[:last] {
		if err := g.nc.PublishMsg(batchCopy(f.msg, id, i+1, false)); err != nil {
			return nil, fmt.Errorf("atomic batch %s: %w", id, err)
		}
	}
	fut, err := g.js.PublishMsgAsync(batchCopy(batch[last].msg, id, last+1, true))
	if err != nil {
		return nil, fmt.Errorf("atomic batch %s: %w", id, err)
	}
	timeout := time.NewTimer(g.cfg.AckTimeout)
	defer timeout.Stop()
	select {
	case ack := <-fut.Ok():
		return ack, nil
	case err := <-fut.Err():
		return nil, fmt.Errorf("atomic batch %s: %w", id, err)
	case <-timeout.C:
		return nil, fmt.Errorf("atomic batch %s: no PubAck within %s: %w", id, g.cfg.AckTimeout, nats.ErrTimeout)
	}
}

// batchCopy is msg with the batch headers, leaving msg as it was for a
// plain publish if the batch fails.
func batchCopy(msg *nats.Msg, id string, seq int, commit bool) *nats.Msg {
	m := &nats.Msg{Subject: msg.Subject, Data: msg.Data, Header: make(nats.Header, len(msg.Header)+3)}
	for k, v := range msg.Header {
		m.Header[k] = v
	}
	m.Header.Set(headerBatchID, id)
	m.Header.Set(headerBatchSeq, strconv.Itoa(seq))
	if commit {
		m.Header.Set(headerBatchCommit, "1")
	}
	return m
}

// groupFuture is one message's PubAck or error.
type groupFuture struct {
	msg *nats.Msg
	ok  chan *jetstream.PubAck
	err chan error
}

func (f *groupFuture) Ok() <-chan *jetstream.PubAck { return f.ok }
func (f *groupFuture) Err() <-chan error            { return f.err }
func (f *groupFuture) Msg() *nats.Msg               { return f.msg }
func (f *groupFuture) fail(err error)               { f.err <- err }

// recent remembers the last n distinct message ids.
type recent struct {
	mu   sync.Mutex
	ring []string
	next int
	ids  map[string]struct{}
}

func newRecent(n int) *recent {
	return &recent{ring: make([]string, n), ids: make(map[string]struct{}, n)}
}

func (r *recent) add(id string) (fresh bool) {
	if id == "" {
		return true
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, seen := r.ids[id]; seen {
		return false
	}
	if old := r.ring[r.next]; old != "" {
		delete(r.ids, old)
	}
	r.ring[r.next] = id
	r.ids[id] = struct{}{}
	r.next = (r.next + 1) % len(r.ring)
	return true
}
