package provision

import (
	"errors"
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

type metrics struct {
	tasks   *prometheus.CounterVec
	retries *prometheus.CounterVec
	lag     prometheus.Histogram
	pending prometheus.Gauge
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		tasks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "syncd_provision_tasks_total",
			Help: "Provisioning events settled, by kind (guest, user) and outcome (created, unchanged, skipped, ignored, failed).",
		}, []string{"kind", "outcome"}),
		retries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "syncd_provision_retries_total",
			Help: "Provisioning events handed back for later, by reason (transient: WorkOS, Postgres or NATS failed; busy: another worker holds the person).",
		}, []string{"reason"}),
		lag: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "syncd_provision_lag_seconds",
			Help:    "From storing an event to settling its provisioning.",
			Buckets: prometheus.ExponentialBuckets(0.05, 2, 16),
		}),
		pending: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "syncd_provision_pending",
			Help: "Events waiting for or held by the provisioning consumer.",
		}),
	}
	for _, c := range []prometheus.Collector{m.tasks, m.retries, m.lag, m.pending} {
		if err := reg.Register(c); err != nil {
			var are prometheus.AlreadyRegisteredError
			if errors.As(err, &are) {
				return nil, fmt.Errorf("provision metrics: %w (one provisioner per registry)", err)
			}
			return nil, fmt.Errorf("provision metrics: %w", err)
		}
	}
	return m, nil
}
