package service

import (
	"cmp"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/syncd/syncd/ingest"
	"github.com/syncd/syncd/stream"
)

// publisher is what ingest stores webhooks with. An embedded server that
// fsyncs each message gets them through group commit (stream.GroupPublisher):
// there the fsync per message is what bounds ingest, and concurrent
// webhooks can share one. Elsewhere — the embedded server on interval sync,
// where a message costs no fsync, or an external server, whose sync policy
// and replication syncd does not know — each webhook is its own publish.
func (s *Service) publisher() (ingest.Publisher, error) {
	if !s.groupCommit() {
		return s.conn.JS, nil
	}
	g := stream.NewGroupPublisher(s.conn.NC, s.conn.JS, stream.GroupConfig{
		// A send given up on frees its slot as the webhook waiting for it
		// gets its 503.
		AckTimeout: cmp.Or(s.cfg.Ingest.PublishTimeout, ingest.PublishTimeoutDefault),
		Logger:     s.log,
	})
	stat := func(f func(stream.GroupStats) uint64) func() float64 {
		return func() float64 { return float64(f(g.Stats())) }
	}
	for _, c := range []prometheus.Collector{
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "syncd_ingest_group_batches_total", Help: "Atomic batches of webhooks stored with one fsync (group commit)."},
			stat(func(s stream.GroupStats) uint64 { return s.Batches })),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "syncd_ingest_group_batched_total", Help: "Webhooks stored in those batches; the rest went one fsync each."},
			stat(func(s stream.GroupStats) uint64 { return s.Batched })),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "syncd_ingest_group_fallbacks_total", Help: "Batches JetStream refused (a duplicate in them, say), sent again one webhook at a time."},
			stat(func(s stream.GroupStats) uint64 { return s.Fallbacks })),
	} {
		if err := s.reg.Register(c); err != nil {
			return nil, err
		}
	}
	return g, nil
}

// groupCommit says whether ingest stores webhooks with group commit.
func (s *Service) groupCommit() bool {
	always, _, ok := s.conn.EmbeddedSync()
	return ok && always && s.cfg.Role.Ingests()
}
