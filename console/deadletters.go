package console

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/syncd/syncd/deadletter"
	"github.com/syncd/syncd/events"
)

// filterForm is the dead-letter filter as typed: the same filters as
// `syncd dlq list` (source, type, since, until, error).
type filterForm struct {
	Source string `json:"source,omitempty"`
	Type   string `json:"type,omitempty"`
	Since  string `json:"since,omitempty"`
	Until  string `json:"until,omitempty"`
	Error  string `json:"error,omitempty"`
}

func filterFormOf(v url.Values) filterForm {
	return filterForm{Source: v.Get("source"), Type: v.Get("type"), Since: v.Get("since"), Until: v.Get("until"), Error: v.Get("error")}
}

// filter reads the form into a deadletter.Filter; a bad time or a filter
// that cannot match is an error naming the field.
func (f filterForm) filter(now time.Time) (deadletter.Filter, error) {
	out := deadletter.Filter{Source: strings.TrimSpace(f.Source), Type: strings.TrimSpace(f.Type), Error: f.Error}
	var err error
	if out.Since, err = events.ParseWhen(f.Since, now); err != nil {
		return out, fmt.Errorf("since %q: %v", f.Since, err)
	}
	if out.Until, err = events.ParseWhen(f.Until, now); err != nil {
		return out, fmt.Errorf("until %q: %v", f.Until, err)
	}
	if err := out.Validate(); err != nil {
		return out, err
	}
	return out, nil
}

// query is the filter as URL query parameters, for paging links and the
// forms acting on everything matching.
func (f filterForm) Query() url.Values {
	v := url.Values{}
	for k, s := range map[string]string{"source": f.Source, "type": f.Type, "since": f.Since, "until": f.Until, "error": f.Error} {
		if s != "" {
			v.Set(k, s)
		}
	}
	return v
}

func (f filterForm) IsZero() bool { return f == filterForm{} }

type deadLettersData struct {
	Filter   filterForm          `json:"filter"`
	Error    string              `json:"error,omitempty"`
	Total    int                 `json:"total"`
	Page     int                 `json:"page"`
	PerPage  int                 `json:"per_page"`
	Pages    int                 `json:"pages"`
	Letters  []deadletter.Letter `json:"letters"`
	PrevURL  string              `json:"-"`
	NextURL  string              `json:"-"`
	Query    string              `json:"-"`
	Now      time.Time           `json:"-"`
	Sources  []string            `json:"-"`
	FormVals map[string]string   `json:"-"`
}

func (c *Console) listDeadLetters(r *http.Request) (deadLettersData, int) {
	q := r.URL.Query()
	d := deadLettersData{Filter: filterFormOf(q), Page: 1, PerPage: c.cfg.PageSize, Now: c.cfg.Now(), Letters: []deadletter.Letter{}}
	if p, err := strconv.Atoi(q.Get("page")); err == nil && p > 0 {
		d.Page = p
	}
	if n, err := strconv.Atoi(q.Get("per_page")); err == nil && n > 0 {
		d.PerPage = min(n, PageSizeMax)
	}
	f, err := d.Filter.filter(d.Now)
	if err != nil {
		d.Error = err.Error()
		return d, http.StatusBadRequest
	}
	letters, err := c.dl.List(r.Context(), f)
	if err != nil {
		d.Error = err.Error()
		return d, http.StatusServiceUnavailable
	}
	// Newest first: what broke last is what an operator looks at.
	sort.Slice(letters, func(i, j int) bool { return letters[i].Seq > letters[j].Seq })
	d.Total = len(letters)
	d.Pages = max(1, (d.Total+d.PerPage-1)/d.PerPage)
	from := min((d.Page-1)*d.PerPage, d.Total)
	to := min(from+d.PerPage, d.Total)
	d.Letters = letters[from:to]
	link := func(page int) string {
		v := d.Filter.Query()
		v.Set("page", strconv.Itoa(page))
		return "/admin/deadletters?" + v.Encode()
	}
	if d.Page > 1 {
		d.PrevURL = link(d.Page - 1)
	}
	if to < d.Total {
		d.NextURL = link(d.Page + 1)
	}
	d.Query = d.Filter.Query().Encode()
	return d, http.StatusOK
}

func (c *Console) deadLettersPage(w http.ResponseWriter, r *http.Request) {
	d, code := c.listDeadLetters(r)
	c.render(w, r, code, "deadletters.html", d)
}

func (c *Console) deadLettersAPI(w http.ResponseWriter, r *http.Request) {
	d, code := c.listDeadLetters(r)
	if code != http.StatusOK {
		writeJSONError(w, code, errorCode(code), d.Error)
		return
	}
	writeJSON(w, http.StatusOK, d)
}

// letterDetail is one dead letter with its headers and payload.
type letterDetail struct {
	deadletter.Letter
	Subject string              `json:"subject"`
	Headers map[string][]string `json:"headers"`
	// Payload is the body pretty-printed when it is JSON, as text when it
	// is other UTF-8, else Go-quoted; PayloadKind says which.
	Payload     string   `json:"payload"`
	PayloadKind string   `json:"payload_kind"`
	PayloadSize int      `json:"payload_size"`
	HeaderKeys  []string `json:"-"`
}

func detailOf(l deadletter.Letter) letterDetail {
	d := letterDetail{Letter: l, Subject: l.Subject, Headers: map[string][]string(l.Header), PayloadSize: len(l.Data)}
	for k := range l.Header {
		d.HeaderKeys = append(d.HeaderKeys, k)
	}
	sort.Strings(d.HeaderKeys)
	d.Payload, d.PayloadKind = prettyPayload(l.Data)
	return d
}

// prettyPayload is what `syncd dlq show` prints of a payload.
func prettyPayload(data []byte) (text, kind string) {
	var pretty bytes.Buffer
	switch {
	case json.Indent(&pretty, data, "", "  ") == nil:
		return pretty.String(), "json"
	case utf8.Valid(data):
		return string(data), "text"
	}
	return strconv.Quote(string(data)), "binary"
}

func (c *Console) letter(r *http.Request) (deadletter.Letter, int, error) {
	seq, err := strconv.ParseUint(r.PathValue("seq"), 10, 64)
	if err != nil || seq == 0 {
		return deadletter.Letter{}, http.StatusBadRequest, fmt.Errorf("sequence %q: want a positive number", r.PathValue("seq"))
	}
	l, err := c.dl.Get(r.Context(), seq)
	switch {
	case errors.Is(err, deadletter.ErrNotFound):
		return l, http.StatusNotFound, fmt.Errorf("no dead letter with sequence %d (retried or purged already?)", seq)
	case err != nil:
		return l, http.StatusServiceUnavailable, err
	}
	return l, http.StatusOK, nil
}

func (c *Console) deadLetterPage(w http.ResponseWriter, r *http.Request) {
	l, code, err := c.letter(r)
	if err != nil {
		c.renderError(w, r, code, err.Error())
		return
	}
	c.renderView(w, r, http.StatusOK, "deadletter.html", view{Active: "deadletters", D: detailOf(l)})
}

func (c *Console) deadLetterAPI(w http.ResponseWriter, r *http.Request) {
	l, code, err := c.letter(r)
	if err != nil {
		writeJSONError(w, code, errorCode(code), err.Error())
		return
	}
	writeJSON(w, http.StatusOK, detailOf(l))
}

// actionRequest is a retry or purge: sequences, or all matching the
// filter; a dry run or the real thing. MaxSeq, when set, leaves out dead
// letters stored after the dry run the operator confirmed.
type actionRequest struct {
	Action  string   `json:"-"`
	Seqs    []uint64 `json:"seqs,omitempty"`
	All     bool     `json:"all,omitempty"`
	DryRun  bool     `json:"dry_run,omitempty"`
	Confirm bool     `json:"confirm,omitempty"`
	MaxSeq  uint64   `json:"max_seq,omitempty"`
	filterForm
}

// actionResult is the outcome of a retry or purge, or of its dry run.
type actionResult struct {
	Action    string              `json:"action"`
	DryRun    bool                `json:"dry_run"`
	Total     int                 `json:"total"`
	Succeeded int                 `json:"succeeded"`
	Failed    []string            `json:"failed"`
	Stopped   bool                `json:"stopped,omitempty"`
	MaxSeq    uint64              `json:"max_seq,omitempty"`
	Letters   []deadletter.Letter `json:"-"`
	Request   actionRequest       `json:"-"`
}

var errAction = errors.New("bad request")

// act selects the dead letters a request names and retries or purges
// them, or counts what would happen on a dry run.
func (c *Console) act(r *http.Request, req actionRequest) (actionResult, int, error) {
	res := actionResult{Action: req.Action, DryRun: req.DryRun, Failed: []string{}, Request: req}
	if req.Action != "retry" && req.Action != "purge" {
		return res, http.StatusNotFound, fmt.Errorf("%w: unknown action %q: want retry or purge", errAction, req.Action)
	}
	f, err := req.filter(c.cfg.Now())
	if err != nil {
		return res, http.StatusBadRequest, fmt.Errorf("%w: %v", errAction, err)
	}
	letters, err := c.dl.Select(r.Context(), deadletter.Selection{Seqs: req.Seqs, All: req.All, Filter: f})
	var missing *deadletter.MissingError
	switch {
	case errors.Is(err, deadletter.ErrNoMatch):
		return res, http.StatusNotFound, fmt.Errorf("%w: no dead letters match; nothing was changed", errAction)
	case errors.As(err, &missing):
		return res, http.StatusNotFound, fmt.Errorf("%w: %v; nothing was changed", errAction, missing)
	case errors.Is(err, deadletter.ErrBadSelection):
		return res, http.StatusBadRequest, fmt.Errorf("%w: %v", errAction, strings.TrimPrefix(err.Error(), deadletter.ErrBadSelection.Error()+": "))
	case err != nil:
		return res, http.StatusServiceUnavailable, err
	}
	if req.MaxSeq != 0 {
		kept := letters[:0]
		for _, l := range letters {
			if l.Seq <= req.MaxSeq {
				kept = append(kept, l)
			}
		}
		if letters = kept; len(letters) == 0 {
			return res, http.StatusNotFound, fmt.Errorf("%w: the dead letters confirmed are gone (retried or purged meanwhile); nothing was changed", errAction)
		}
	}
	for _, l := range letters {
		res.MaxSeq = max(res.MaxSeq, l.Seq)
	}
	res.Letters = letters
	if !req.DryRun && !req.Confirm && (req.Action == "purge" || req.All || len(letters) > 1) {
		return res, http.StatusBadRequest, fmt.Errorf("%w: %s of %d dead letter(s) needs confirm (or a dry run first)", errAction, req.Action, len(letters))
	}
	opts := deadletter.Options{DryRun: req.DryRun}
	var sum deadletter.Summary
	if req.Action == "retry" {
		sum = c.dl.RetryAll(r.Context(), letters, opts)
	} else {
		sum = c.dl.PurgeAll(r.Context(), letters, opts)
	}
	res.Total, res.Succeeded, res.Stopped = sum.Total, sum.Succeeded, sum.Stopped
	for _, e := range sum.Failed {
		res.Failed = append(res.Failed, e.Error())
	}
	if !req.DryRun {
		c.log.Info("admin "+req.Action, "total", sum.Total, "succeeded", sum.Succeeded, "failed", len(sum.Failed), "all", req.All, "remote", r.RemoteAddr)
	}
	return res, http.StatusOK, nil
}

func (c *Console) deadLetterActionAPI(w http.ResponseWriter, r *http.Request) {
	req := actionRequest{}
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		writeJSONError(w, http.StatusBadRequest, "bad_request", "body: want a JSON object like {\"seqs\":[12]} or {\"all\":true,\"source\":\"workos\",\"dry_run\":true}: "+err.Error())
		return
	}
	req.Action = r.PathValue("action")
	res, code, err := c.act(r, req)
	if err != nil {
		writeJSONError(w, code, errorCode(code), strings.TrimPrefix(err.Error(), errAction.Error()+": "))
		return
	}
	writeJSON(w, code, res)
}

// deadLetterActionPage is the forms' retry and purge. Anything that
// removes dead letters or touches more than one goes through a dry run
// and a confirmation page first; retrying one is done at once (it loses
// nothing: the dead letter goes only after the PubAck).
func (c *Console) deadLetterActionPage(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		c.renderError(w, r, http.StatusBadRequest, "Bad form: "+err.Error())
		return
	}
	req := actionRequest{Action: r.PathValue("action"), filterForm: filterFormOf(r.PostForm), All: r.PostFormValue("all") == "1", Confirm: r.PostFormValue("confirm") == "yes"}
	for _, s := range r.PostForm["seq"] {
		n, err := strconv.ParseUint(s, 10, 64)
		if err != nil || n == 0 {
			c.renderError(w, r, http.StatusBadRequest, fmt.Sprintf("Sequence %q is not a positive number.", s))
			return
		}
		req.Seqs = append(req.Seqs, n)
	}
	if !req.All {
		// The list's filter fields travel with the selection form only
		// to come back to the same list.
		req.filterForm = filterForm{}
	}
	back := "/admin/deadletters"
	if q := filterFormOf(r.PostForm).Query().Encode(); q != "" {
		back += "?" + q
	}
	if len(req.Seqs) == 0 && !req.All {
		c.renderError(w, r, http.StatusBadRequest, "Select at least one dead letter (tick its box), or use the buttons acting on everything matching the filter.")
		return
	}
	req.MaxSeq, _ = strconv.ParseUint(r.PostFormValue("max_seq"), 10, 64)
	oneRetry := req.Action == "retry" && !req.All && len(req.Seqs) == 1
	if !req.Confirm && !oneRetry {
		req.DryRun = true
	}
	res, code, err := c.act(r, req)
	if err != nil {
		c.renderError(w, r, code, strings.TrimPrefix(err.Error(), errAction.Error()+": "))
		return
	}
	type page struct {
		actionResult
		Back   string
		Shown  []deadletter.Letter
		Hidden int
		Seqs   []uint64
		Filter filterForm
	}
	p := page{actionResult: res, Back: back, Seqs: req.Seqs, Filter: req.filterForm}
	p.Shown = res.Letters[:min(len(res.Letters), 100)]
	p.Hidden = len(res.Letters) - len(p.Shown)
	if req.DryRun {
		c.renderView(w, r, http.StatusOK, "confirm.html", view{Active: "deadletters", D: p})
		return
	}
	c.renderView(w, r, http.StatusOK, "result.html", view{Active: "deadletters", D: p})
}
