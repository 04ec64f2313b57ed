package consumers

import "github.com/prometheus/client_golang/prometheus"

type metrics struct {
	events       *prometheus.CounterVec
	retries      *prometheus.CounterVec
	deadLettered *prometheus.CounterVec
	lastApplied  *prometheus.GaugeVec
	batch        prometheus.Histogram
	paused       prometheus.Gauge
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		events: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "syncd_events_total",
			Help: "Events settled by the consumer, by source and outcome (applied, ignored, stale, skipped).",
		}, []string{"source", "outcome"}),
		retries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "syncd_event_retries_total",
			Help: "Events handed back for redelivery, by source and error class.",
		}, []string{"source", "class"}),
		deadLettered: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "syncd_dead_lettered_total",
			Help: "Events moved to DEADLETTER, by source, type and error class.",
		}, []string{"source", "type", "class"}),
		lastApplied: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "syncd_last_applied_timestamp_seconds",
			Help: "Unix time of the last event settled per source.",
		}, []string{"source"}),
		batch: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "syncd_apply_batch_duration_seconds",
			Help:    "Time to apply and settle one batch.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 14),
		}),
		paused: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "syncd_consumer_paused",
			Help: "1 while the consumer waits for Postgres to come back.",
		}),
	}
	for _, c := range []prometheus.Collector{m.events, m.retries, m.deadLettered, m.lastApplied, m.batch, m.paused} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}
