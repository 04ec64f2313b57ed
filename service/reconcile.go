package service

import (
	"context"
	"errors"
	"strings"
	"time"

	"github.com/syncd/syncd/backfill"
)

// reconcileKey names the cursors of the scheduled backfill, apart from
// those of an operator's `syncd backfill`.
const reconcileKey = "reconcile"

// reconcile backfills each source over the trailing window, once at start
// and then every period, until ctx ends. A run in progress at stop keeps
// its cursor for the next.
func (s *Service) reconcile(ctx context.Context) {
	r := s.cfg.Reconcile
	log := s.log.With("component", "reconcile")
	names := make([]string, len(r.Sources))
	for i, src := range r.Sources {
		names[i] = src.Name()
	}
	log.Info("reconcile scheduled", "every", r.Every, "window", r.Window, "providers", strings.Join(names, ","), "connect", r.Connect)
	tick := time.NewTicker(r.Every)
	defer tick.Stop()
	for {
		for _, src := range r.Sources {
			if ctx.Err() != nil {
				return
			}
			s.reconcileOne(ctx, src)
		}
		if r.Connect && ctx.Err() == nil {
			s.reconcileConnect(ctx)
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

func (s *Service) reconcileOne(ctx context.Context, src backfill.Source) {
	log := s.log.With("component", "reconcile")
	cfg := backfill.Config{Key: reconcileKey, Logger: log}
	window := func() backfill.Window { return backfill.Window{Since: time.Now().Add(-s.cfg.Reconcile.Window)} }
	res, err := backfill.Run(ctx, cfg, s.pool, s.conn.JS, src, window())
	if err == nil && res.Resumed {
		// That finished the window an interrupted run left; the one asked
		// for now may start after it ended: run it too.
		res, err = backfill.Run(ctx, cfg, s.pool, s.conn.JS, src, window())
	}
	switch {
	case errors.Is(err, backfill.ErrBusy):
		log.Debug("reconcile skipped: another replica is running it", "provider", src.Name())
	case err != nil && ctx.Err() == nil:
		log.Warn("reconcile failed; the next run resumes it", "provider", src.Name(), "err", err)
	case err == nil:
		log.Info("reconcile done", "provider", src.Name(), "listed", res.Listed, "published", res.Published, "resumed", res.Resumed)
	}
}

// reconcileConnect is one scheduled Connect backfill; like the platform's,
// a run that finished an interrupted window runs the one asked for too.
func (s *Service) reconcileConnect(ctx context.Context) {
	log := s.log.With("component", "reconcile")
	cfg := backfill.ConnectConfig{Key: reconcileKey, Logger: log}
	stripe := s.cfg.Reconcile.stripe()
	window := func() backfill.Window { return backfill.Window{Since: time.Now().Add(-s.cfg.Reconcile.Window)} }
	res, err := backfill.RunConnect(ctx, cfg, s.pool, s.conn.JS, stripe, window())
	if err == nil && res.Resumed {
		res, err = backfill.RunConnect(ctx, cfg, s.pool, s.conn.JS, stripe, window())
	}
	switch {
	case errors.Is(err, backfill.ErrBusy):
		log.Debug("Connect reconcile skipped: another replica is running it")
	case err != nil && ctx.Err() == nil:
		log.Warn("Connect reconcile failed; the next run resumes it", "accounts_done", res.Done, "failed", res.Failed, "err", err)
	case err == nil:
		log.Info("Connect reconcile done", "accounts", res.FromStripe+res.OnlySyncd, "inaccessible", res.Inaccessible,
			"listed", res.Listed, "published", res.Published, "resumed", res.Resumed)
	}
}
