package service

import (
	"context"
	"log/slog"
	"net/http"
	"net/http/pprof"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// maxHeaderBytes bounds a request's headers: providers send a few hundred
// bytes, and net/http's default (1 MiB) is memory an unauthenticated
// client could hold per connection.
const maxHeaderBytes = 64 << 10

// registerHealth adds /healthz, /readyz and /metrics. The public listener
// says only whether the process serves: the reasons (a driver's error
// names the user, database, host and port) go to the log and to `syncd
// status`.
func (s *Service) registerHealth(mux *http.ServeMux) {
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		writeProbe(w, true)
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		if s.draining.Load() {
			writeProbe(w, false)
			return
		}
		err := s.Ready(r.Context())
		s.readiness.note(err)
		writeProbe(w, err == nil)
	})
	mux.Handle("GET /metrics", promhttp.HandlerFor(s.reg, promhttp.HandlerOpts{Registry: s.reg}))
}

// Ready runs the readiness checks: Postgres (where opened) answers, NATS
// is connected and the stream is there.
func (s *Service) Ready(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, readyCheckTimeout)
	defer cancel()
	for _, check := range s.ready {
		if err := check(ctx); err != nil {
			return err
		}
	}
	return nil
}

// writeProbe answers a health or readiness probe with one word.
func writeProbe(w http.ResponseWriter, ok bool) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	if !ok {
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = w.Write([]byte("not ready\n"))
		return
	}
	_, _ = w.Write([]byte("ready\n"))
}

// readiness logs why the process is not ready when that changes, not on
// every probe: a public endpoint must not be able to flood the log.
type readiness struct {
	log    *slog.Logger
	mu     sync.Mutex
	reason string
	at     time.Time
}

func (r *readiness) note(err error) {
	reason := ""
	if err != nil {
		reason = err.Error()
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if reason == r.reason && (reason == "" || time.Since(r.at) < time.Minute) {
		return
	}
	switch {
	case reason == "":
		r.log.Info("ready again")
	default:
		r.log.Warn("not ready", "reason", reason)
	}
	r.reason, r.at = reason, time.Now()
}

// pprofMux is net/http/pprof, for profiling under load (PprofAddr).
func pprofMux() *http.ServeMux {
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	return mux
}
