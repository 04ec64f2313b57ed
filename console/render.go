package console

import (
	"bytes"
	"encoding/json"
	"fmt"
	"html/template"
	"io/fs"
	"net/http"
	"strings"
	"time"

	"github.com/syncd/syncd/stream"
)

// view is what every page template gets: the page's own data in D.
type view struct {
	Title  string
	Active string
	CSRF   string
	// Refresh, when set, reloads the page after that many seconds for
	// browsers without JavaScript.
	Refresh int
	D       any
}

var funcs = template.FuncMap{
	"printable": printable,
	"when": func(t time.Time) string {
		if t.IsZero() {
			return "–"
		}
		return t.UTC().Format("2006-01-02 15:04:05Z")
	},
	"whenp": func(t *time.Time) string {
		if t == nil || t.IsZero() {
			return "–"
		}
		return t.UTC().Format("2006-01-02 15:04:05Z")
	},
	"ago":   ago,
	"deref": func(b *bool) bool { return b != nil && *b },
	"add":   func(a, b int) int { return a + b },
	"json":  func(v any) string { b, _ := json.MarshalIndent(v, "", "  "); return string(b) },
}

// parsePages parses every page together with the layout it fills.
func parsePages() (map[string]*template.Template, error) {
	names, err := fs.Glob(templateFS, "templates/*.html")
	if err != nil {
		return nil, err
	}
	pages := map[string]*template.Template{}
	for _, n := range names {
		base := strings.TrimPrefix(n, "templates/")
		if base == "layout.html" {
			continue
		}
		t, err := template.New(base).Funcs(funcs).ParseFS(templateFS, "templates/layout.html", n)
		if err != nil {
			return nil, fmt.Errorf("console: template %s: %w", base, err)
		}
		pages[base] = t
	}
	return pages, nil
}

func (c *Console) render(w http.ResponseWriter, r *http.Request, status int, page string, d any) {
	c.renderView(w, r, status, page, view{D: d})
}

func (c *Console) renderView(w http.ResponseWriter, r *http.Request, status int, page string, v view) {
	t, ok := c.pages[page]
	if !ok {
		http.Error(w, "no such page", http.StatusInternalServerError)
		return
	}
	v.CSRF = callerOf(r).csrf
	if ld, ok := v.D.(loginView); ok {
		v.CSRF = ld.CSRF
	}
	if v.Title == "" {
		v.Title = pageTitles[page]
	}
	if v.Active == "" {
		v.Active = strings.TrimSuffix(page, ".html")
	}
	// Rendered to a buffer first: a template error is a clean 500, not
	// half a page.
	var buf bytes.Buffer
	if err := t.ExecuteTemplate(&buf, "layout", v); err != nil {
		c.log.Error("render page", "page", page, "err", err)
		http.Error(w, "internal error rendering the page", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

var pageTitles = map[string]string{
	"overview.html":    "Overview",
	"deadletters.html": "Dead letters",
	"deadletter.html":  "Dead letter",
	"confirm.html":     "Confirm",
	"result.html":      "Result",
	"events.html":      "Events",
	"jobs.html":        "Replay and backfill",
	"job.html":         "Job",
	"error.html":       "Error",
	"login.html":       "Log in",
}

type errorView struct{ Status, Message string }

func (c *Console) renderError(w http.ResponseWriter, r *http.Request, status int, msg string) {
	c.renderView(w, r, status, "error.html", view{Active: "-", D: errorView{Status: fmt.Sprintf("%d %s", status, http.StatusText(status)), Message: msg}})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

func writeJSONError(w http.ResponseWriter, status int, code, msg string) {
	writeJSON(w, status, map[string]string{"error": code, "message": msg})
}

// printable shows control characters (an ESC in an event id, a NUL in a
// header) as escapes instead of passing them to the page (stream's one
// escape); html/template then escapes the markup. Newlines and tabs stay:
// payloads are multi-line.
func printable(s string) string { return stream.EscapeLines(s) }

func ago(t time.Time, now time.Time) string {
	if t.IsZero() {
		return "–"
	}
	d := now.Sub(t)
	switch {
	case d < 0:
		return "in the future"
	case d < time.Minute:
		return fmt.Sprintf("%ds ago", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%dm ago", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%.1fh ago", d.Hours())
	}
	return fmt.Sprintf("%.0fd ago", d.Hours()/24)
}

// errorCode is the API's error word for a status.
func errorCode(status int) string {
	switch status {
	case http.StatusBadRequest:
		return "bad_request"
	case http.StatusNotFound:
		return "not_found"
	case http.StatusConflict:
		return "busy"
	case http.StatusServiceUnavailable:
		return "unavailable"
	}
	return strings.ToLower(strings.ReplaceAll(http.StatusText(status), " ", "_"))
}
