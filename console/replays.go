package console

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/syncd/syncd/backfill"
	"github.com/syncd/syncd/events"
	"github.com/syncd/syncd/replay"
	"github.com/syncd/syncd/stream"
)

// replayForm is a replay as typed: the flags of `syncd replay`.
type replayForm struct {
	Since   string   `json:"since,omitempty"`
	FromSeq seqField `json:"from_seq,omitempty"`
	Until   string   `json:"until,omitempty"`
	ToSeq   seqField `json:"to_seq,omitempty"`
	Source  string   `json:"source,omitempty"`
	Type    string   `json:"type,omitempty"`
}

// backfillForm is a backfill as typed: the flags of `syncd backfill`.
type backfillForm struct {
	Provider string `json:"provider"`
	Since    string `json:"since"`
	Until    string `json:"until,omitempty"`
	Types    string `json:"types,omitempty"`
}

// seqField is a stream sequence as a form gives it (text) and as a
// script sends it (a JSON number or string).
type seqField string

func (s *seqField) UnmarshalJSON(b []byte) error {
	var n json.Number
	if err := json.Unmarshal(b, &n); err == nil {
		*s = seqField(n)
		return nil
	}
	var str string
	if err := json.Unmarshal(b, &str); err != nil {
		return fmt.Errorf("a stream sequence: want a number")
	}
	*s = seqField(str)
	return nil
}

var errForm = errors.New("bad form")

func formErr(format string, args ...any) error {
	return fmt.Errorf("%w: %s", errForm, fmt.Sprintf(format, args...))
}

func parseSeq(name, v string) (uint64, error) {
	if strings.TrimSpace(v) == "" {
		return 0, nil
	}
	n, err := strconv.ParseUint(strings.TrimSpace(v), 10, 64)
	if err != nil || n == 0 {
		return 0, formErr("%s %q: want a stream sequence, 1 or more", name, v)
	}
	return n, nil
}

// config checks the form as `syncd replay` checks its flags.
func (f replayForm) config(now time.Time) (replay.Config, error) {
	var cfg replay.Config
	var err error
	if cfg.FromSeq, err = parseSeq("from sequence", string(f.FromSeq)); err != nil {
		return cfg, err
	}
	if cfg.ToSeq, err = parseSeq("to sequence", string(f.ToSeq)); err != nil {
		return cfg, err
	}
	if cfg.Since, err = events.ParseWhen(f.Since, now); err != nil {
		return cfg, formErr("since %q: %v", f.Since, err)
	}
	if cfg.Until, err = events.ParseWhen(f.Until, now); err != nil {
		return cfg, formErr("until %q: %v", f.Until, err)
	}
	switch {
	case !cfg.Since.IsZero() && cfg.FromSeq != 0:
		return cfg, formErr("since and from sequence both start the window: give one")
	case cfg.Since.IsZero() && cfg.FromSeq == 0:
		return cfg, formErr("give the start of the window: since or from sequence")
	case !cfg.Until.IsZero() && cfg.ToSeq != 0:
		return cfg, formErr("until and to sequence both end the window: give one")
	case cfg.Since.After(now.Add(time.Minute)):
		return cfg, formErr("since %q is in the future", f.Since)
	}
	cfg.Source, cfg.Type = strings.TrimSpace(f.Source), strings.TrimSpace(f.Type)
	if err := cfg.Check(); err != nil {
		return cfg, formErr("%s", strings.TrimPrefix(err.Error(), "replay: "))
	}
	return cfg, nil
}

func (f replayForm) params() []param {
	var ps []param
	for _, p := range []param{{"since", f.Since}, {"from_seq", string(f.FromSeq)}, {"until", f.Until}, {"to_seq", string(f.ToSeq)}, {"source", f.Source}, {"type", f.Type}} {
		if strings.TrimSpace(p.Value) != "" {
			ps = append(ps, p)
		}
	}
	return ps
}

// replayResult is replay.Summary for the page and the API.
type replayResult struct {
	Filter   string   `json:"filter"`
	FirstSeq uint64   `json:"first_seq"`
	LastSeq  uint64   `json:"last_seq"`
	EndSeq   uint64   `json:"end_seq"`
	Events   int      `json:"events"`
	Applied  int      `json:"applied"`
	Skipped  int      `json:"skipped"`
	Ignored  int      `json:"ignored"`
	Stale    int      `json:"stale"`
	Failed   int      `json:"failed"`
	Failures []string `json:"failures"`
	Elapsed  string   `json:"elapsed"`
	Rate     float64  `json:"events_per_second"`
}

func replayResultOf(s replay.Summary) replayResult {
	r := replayResult{Filter: s.Filter, FirstSeq: s.FirstSeq, LastSeq: s.LastSeq, EndSeq: s.EndSeq, Events: s.Events,
		Applied: s.Applied, Skipped: s.Skipped, Ignored: s.Ignored, Stale: s.Stale, Failed: s.Failed,
		Failures: []string{}, Elapsed: s.Elapsed.Round(time.Millisecond).String(), Rate: s.Rate()}
	for _, f := range s.Failures {
		r.Failures = append(r.Failures, fmt.Sprintf("seq %d %s %s %s: %v", f.Seq, f.Source, f.Type, f.EventID, f.Err))
	}
	return r
}

// startReplay checks the form and starts the replay as a job: one at a
// time per subject filter.
func (c *Console) startReplay(r *http.Request, f replayForm) (job, int, error) {
	cfg, err := f.config(c.cfg.Now())
	if err != nil {
		return job{}, http.StatusBadRequest, err
	}
	window, _ := replay.FilterSubject(cfg.Source, cfg.Type)
	cfg.Logger = c.log
	c.log.Info("admin replay started", "filter", window, "remote", r.RemoteAddr)
	jb, err := c.jobs.run("replay", window, f.params(), func(ctx context.Context, update func(func(*job))) (any, error) {
		cfg.Progress = func(p replay.Progress) {
			update(func(j *job) { j.Progress = progress{Done: p.Done, Total: p.Total, Seq: p.Seq} })
		}
		sum, err := replay.Run(ctx, cfg, c.pool, c.conn.JS)
		res := replayResultOf(sum)
		update(func(j *job) { j.Progress.Done, j.Progress.Total = sum.Events, max(j.Progress.Total, sum.Events) })
		switch {
		case errors.Is(err, replay.ErrEmpty):
			return res, fmt.Errorf("no events in the window (filter %s, up to sequence %d): check since/from sequence and the filters", sum.Filter, sum.EndSeq)
		case err != nil:
			return res, fmt.Errorf("replay stopped after %d events (running it again is safe): %w", sum.Events, err)
		case sum.Failed > 0:
			return res, fmt.Errorf("%d events failed to apply (listed); the apply consumer sets such events aside in DEADLETTER", sum.Failed)
		}
		return res, nil
	})
	if errors.Is(err, errJobRunning) {
		return jb, http.StatusConflict, err
	}
	if err != nil {
		return jb, http.StatusServiceUnavailable, err
	}
	return jb, http.StatusAccepted, nil
}

// window checks the form as `syncd backfill` checks its flags.
func (f backfillForm) window(src backfill.Source, now time.Time) (backfill.Window, error) {
	var w backfill.Window
	var err error
	if strings.TrimSpace(f.Since) == "" {
		return w, formErr("since is required: the start of the window to backfill")
	}
	if w.Since, err = events.ParseWhen(f.Since, now); err != nil {
		return w, formErr("since %q: %v", f.Since, err)
	}
	if w.Until, err = events.ParseWhen(f.Until, now); err != nil {
		return w, formErr("until %q: %v", f.Until, err)
	}
	if w.Since.After(now.Add(time.Minute)) {
		return w, formErr("since %q is in the future", f.Since)
	}
	if !w.Until.IsZero() && !w.Until.After(w.Since) {
		return w, formErr("until %s is not after since %s", w.Until.Format(time.RFC3339), w.Since.Format(time.RFC3339))
	}
	for _, t := range strings.Split(f.Types, ",") {
		if t = strings.TrimSpace(t); t != "" {
			if strings.ContainsAny(t, " \t\r\n") {
				return w, formErr("types: %q is not an event type", t)
			}
			w.Types = append(w.Types, t)
		}
	}
	if err := src.Check(w, now); err != nil {
		return w, formErr("since %s: %s", f.Since, strings.TrimPrefix(err.Error(), backfill.ErrWindow.Error()+": "))
	}
	return w, nil
}

type backfillResult struct {
	Provider   string `json:"provider"`
	Since      string `json:"since"`
	Until      string `json:"until"`
	Resumed    bool   `json:"resumed"`
	Pages      int    `json:"pages"`
	Listed     int    `json:"listed"`
	Published  int    `json:"published"`
	Duplicates int    `json:"duplicates"`
	Invalid    int    `json:"invalid"`
	Elapsed    string `json:"elapsed"`
}

func (c *Console) startBackfill(r *http.Request, f backfillForm) (job, int, error) {
	if c.cfg.BackfillSource == nil {
		return job{}, http.StatusNotImplemented, formErr("backfill is not configured in this process")
	}
	f.Provider = strings.TrimSpace(f.Provider)
	if f.Provider != stream.SourceWorkOS && f.Provider != stream.SourceStripe {
		return job{}, http.StatusBadRequest, formErr("provider %q: want %s or %s", f.Provider, stream.SourceWorkOS, stream.SourceStripe)
	}
	src, err := c.cfg.BackfillSource(f.Provider)
	if err != nil {
		return job{}, http.StatusBadRequest, formErr("%s", strings.TrimPrefix(err.Error(), "usage: "))
	}
	now := c.cfg.Now()
	w, err := f.window(src, now)
	if err != nil {
		return job{}, http.StatusBadRequest, err
	}
	params := []param{{"provider", f.Provider}, {"since", f.Since}}
	if f.Until != "" {
		params = append(params, param{"until", f.Until})
	}
	if f.Types != "" {
		params = append(params, param{"types", f.Types})
	}
	c.log.Info("admin backfill started", "provider", f.Provider, "window", w.Key(), "remote", r.RemoteAddr)
	jb, err := c.jobs.run("backfill", f.Provider+" "+w.Key(), params, func(ctx context.Context, update func(func(*job))) (any, error) {
		res, err := backfill.Run(ctx, backfill.Config{Logger: c.log, OnPage: func(p backfill.Progress) {
			update(func(j *job) {
				j.Progress = progress{Done: p.Listed, Pages: p.Pages, Note: "at " + p.Oldest.UTC().Format(time.RFC3339)}
			})
		}}, c.pool, c.conn.JS, src, w)
		out := backfillResult{Provider: res.Provider, Since: res.Since.UTC().Format(time.RFC3339), Until: res.Until.UTC().Format(time.RFC3339), Resumed: res.Resumed,
			Pages: res.Pages, Listed: res.Listed, Published: res.Published, Duplicates: res.Duplicates, Invalid: res.Invalid, Elapsed: res.Elapsed.Round(time.Millisecond).String()}
		if err != nil && !errors.Is(err, backfill.ErrBusy) && !errors.Is(err, backfill.ErrWindow) {
			err = fmt.Errorf("%w (the cursor is stored: starting the same backfill again resumes it)", err)
		}
		return out, err
	})
	if errors.Is(err, errJobRunning) {
		return jb, http.StatusConflict, err
	}
	if err != nil {
		return jb, http.StatusServiceUnavailable, err
	}
	return jb, http.StatusAccepted, nil
}

type jobsData struct {
	Jobs       []job
	Replay     replayForm
	Backfill   backfillForm
	Error      string
	Kind       string
	BackfillOn bool
	Now        time.Time
}

func (c *Console) jobsPage(w http.ResponseWriter, r *http.Request) {
	c.render(w, r, http.StatusOK, "jobs.html", jobsData{Jobs: c.jobs.all(), BackfillOn: c.cfg.BackfillSource != nil, Now: c.cfg.Now()})
}

func (c *Console) jobStartPage(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		c.renderError(w, r, http.StatusBadRequest, "Bad form: "+err.Error())
		return
	}
	v := r.PostForm
	d := jobsData{Kind: r.PathValue("kind"), BackfillOn: c.cfg.BackfillSource != nil, Now: c.cfg.Now()}
	var jb job
	var code int
	var err error
	switch d.Kind {
	case "replay":
		d.Replay = replayForm{Since: v.Get("since"), FromSeq: seqField(v.Get("from_seq")), Until: v.Get("until"), ToSeq: seqField(v.Get("to_seq")), Source: v.Get("source"), Type: v.Get("type")}
		jb, code, err = c.startReplay(r, d.Replay)
	case "backfill":
		d.Backfill = backfillForm{Provider: v.Get("provider"), Since: v.Get("since"), Until: v.Get("until"), Types: v.Get("types")}
		jb, code, err = c.startBackfill(r, d.Backfill)
	default:
		c.renderError(w, r, http.StatusNotFound, "No such job kind: want replay or backfill.")
		return
	}
	if err != nil {
		d.Error = strings.TrimPrefix(err.Error(), errForm.Error()+": ")
		d.Jobs = c.jobs.all()
		c.renderView(w, r, code, "jobs.html", view{Active: "jobs", D: d})
		return
	}
	http.Redirect(w, r, "/admin/jobs/"+url.PathEscape(jb.ID), http.StatusSeeOther)
}

func (c *Console) jobPage(w http.ResponseWriter, r *http.Request) {
	jb, ok := c.jobs.get(r.PathValue("id"))
	if !ok {
		c.renderError(w, r, http.StatusNotFound, "No such job (jobs are kept in memory until the console restarts).")
		return
	}
	v := view{Active: "jobs", D: jb}
	if jb.State == jobRunning {
		v.Refresh = 2
	}
	c.renderView(w, r, http.StatusOK, "job.html", v)
}

func (c *Console) jobsAPI(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]any{"jobs": c.jobs.all()})
}

func (c *Console) jobAPI(w http.ResponseWriter, r *http.Request) {
	jb, ok := c.jobs.get(r.PathValue("id"))
	if !ok {
		writeJSONError(w, http.StatusNotFound, "not_found", "no such job")
		return
	}
	writeJSON(w, http.StatusOK, jb)
}

func decodeBody(r *http.Request, v any) error {
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return formErr("body: want a JSON object: %v", err)
	}
	return nil
}

func (c *Console) startAPI(w http.ResponseWriter, start func() (job, int, error)) {
	jb, code, err := start()
	if err != nil {
		writeJSONError(w, code, errorCode(code), strings.TrimPrefix(err.Error(), errForm.Error()+": "))
		return
	}
	w.Header().Set("Location", "/admin/api/jobs/"+url.PathEscape(jb.ID))
	writeJSON(w, code, jb)
}

func (c *Console) replayAPI(w http.ResponseWriter, r *http.Request) {
	var f replayForm
	if err := decodeBody(r, &f); err != nil {
		writeJSONError(w, http.StatusBadRequest, "bad_request", strings.TrimPrefix(err.Error(), errForm.Error()+": "))
		return
	}
	c.startAPI(w, func() (job, int, error) { return c.startReplay(r, f) })
}

func (c *Console) backfillAPI(w http.ResponseWriter, r *http.Request) {
	var f backfillForm
	if err := decodeBody(r, &f); err != nil {
		writeJSONError(w, http.StatusBadRequest, "bad_request", strings.TrimPrefix(err.Error(), errForm.Error()+": "))
		return
	}
	c.startAPI(w, func() (job, int, error) { return c.startBackfill(r, f) })
}
