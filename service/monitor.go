package service

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/syncd/syncd/stream"
)

// monitor publishes stream gauges: consumer lag and dead-letter depth.
func (s *Service) monitor(ctx context.Context) {
	pending := prometheus.NewGauge(prometheus.GaugeOpts{Name: "syncd_consumer_pending", Help: "Events stored but not yet delivered to the apply consumer."})
	ackPending := prometheus.NewGauge(prometheus.GaugeOpts{Name: "syncd_consumer_ack_pending", Help: "Events delivered and not yet settled."})
	dlDepth := prometheus.NewGauge(prometheus.GaugeOpts{Name: "syncd_dead_letter_depth", Help: "Messages in DEADLETTER."})
	for _, g := range []prometheus.Collector{pending, ackPending, dlDepth} {
		if err := s.reg.Register(g); err != nil {
			s.log.Warn("monitor: register gauge", "err", err)
			return
		}
	}
	js := s.conn.JS
	tick := time.NewTicker(monitorInterval)
	defer tick.Stop()
	for {
		qctx, cancel := context.WithTimeout(ctx, monitorInterval)
		if c, err := js.Consumer(qctx, stream.Webhooks, stream.Consumer); err == nil {
			if info, err := c.Info(qctx); err == nil {
				pending.Set(float64(info.NumPending))
				ackPending.Set(float64(info.NumAckPending))
			}
		} else if ctx.Err() == nil {
			s.log.Debug("monitor: consumer info", "err", err)
		}
		if st, err := js.Stream(qctx, stream.DeadLetter); err == nil {
			dlDepth.Set(float64(st.CachedInfo().State.Msgs))
		}
		cancel()
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}
