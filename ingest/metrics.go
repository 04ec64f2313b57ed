package ingest

import "github.com/prometheus/client_golang/prometheus"

type metrics struct {
	requests        *prometheus.CounterVec
	latency         *prometheus.HistogramVec
	duplicates      *prometheus.CounterVec
	publishFailures *prometheus.CounterVec
	memoryRefused   prometheus.Counter
	shed            *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer, b *bodies) (*metrics, error) {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "syncd_webhook_requests_total",
			Help: "Webhook requests by source, endpoint and HTTP status.",
		}, []string{"source", "endpoint", "status"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "syncd_webhook_duration_seconds",
			Help:    "Time from request to response, including the PubAck wait.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5},
		}, []string{"source"}),
		duplicates: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "syncd_webhook_duplicates_total",
			Help: "Webhooks JetStream recognised as already stored.",
		}, []string{"source"}),
		publishFailures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "syncd_webhook_publish_failures_total",
			Help: "Webhooks answered 503 because JetStream did not store them in time.",
		}, []string{"source"}),
		memoryRefused: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "syncd_webhook_memory_refused_total",
			Help: "Webhooks answered 503 because the ingest memory budget had no room.",
		}),
	}
	m.shed = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "syncd_webhook_shed_total",
		Help: "Verified webhooks answered 503 at once because the ingest in-flight limit was reached (JetStream behind).",
	}, []string{"source"})
	inUse := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "syncd_ingest_memory_bytes",
		Help: "Bytes of webhook bodies held in memory now, against the ingest memory budget.",
	}, func() float64 { return float64(b.inUse.Load()) })
	for _, c := range []prometheus.Collector{m.requests, m.latency, m.duplicates, m.publishFailures, m.memoryRefused, m.shed, inUse} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}
