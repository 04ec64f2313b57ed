package consumers

import "github.com/prometheus/client_golang/prometheus"

type metrics struct {
	events       *prometheus.CounterVec
	retries      *prometheus.CounterVec
	deadLettered *prometheus.CounterVec
	lastApplied  *prometheus.GaugeVec
	batch        prometheus.Histogram
	lag          *prometheus.HistogramVec
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
		lag: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "syncd_event_lag_seconds",
			Help:    "Time from storing an event in JetStream to settling it, by source.",
			Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600},
		}, []string{"source"}),
		paused: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "syncd_consumer_paused",
			Help: "1 while the consumer waits for Postgres to come back.",
		}),
	}
	for _, c := range []prometheus.Collector{m.events, m.retries, m.deadLettered, m.lastApplied, m.batch, m.lag, m.paused} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// Label values built from event data are bounded by construction: a
// message can carry any bytes as its source or type (Prometheus panics on
// a label that is not valid UTF-8, and every distinct value is a series
// kept for good), so only the sources and types syncd routes are used as
// they are; anything else is "other".
const otherLabel = "other"

func (c *Consumer) sourceLabel(source string) string {
	if _, ok := c.applier.routes[source]; ok {
		return source
	}
	return otherLabel
}

func (c *Consumer) typeLabel(source, typ string) string {
	if _, ok := c.applier.routes[source][typ]; ok {
		return typ
	}
	return otherLabel
}
