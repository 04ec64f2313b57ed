package console

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"
)

const (
	sessionCookie = "syncd_admin"
	// loginCookie carries the login form's CSRF token before there is a
	// session (double submit).
	loginCookie = "syncd_admin_login"
	csrfField   = "csrf"
	csrfHeader  = "X-CSRF-Token"
)

// session is one browser login. Its CSRF token goes into every form the
// console renders and must come back with every action.
type session struct {
	csrf    string
	expires time.Time
}

type sessions struct {
	mu  sync.Mutex
	m   map[string]session
	ttl time.Duration
	now func() time.Time
}

func newSessions(ttl time.Duration, now func() time.Time) *sessions {
	return &sessions{m: map[string]session{}, ttl: ttl, now: now}
}

func randomToken() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b) // never fails (crypto/rand panics rather than return short)
	return base64.RawURLEncoding.EncodeToString(b)
}

func (s *sessions) create() (id string, sess session) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	for k, v := range s.m {
		if now.After(v.expires) {
			delete(s.m, k)
		}
	}
	id, sess = randomToken(), session{csrf: randomToken(), expires: now.Add(s.ttl)}
	s.m[id] = sess
	return id, sess
}

func (s *sessions) get(id string) (session, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	sess, ok := s.m[id]
	if ok && s.now().After(sess.expires) {
		delete(s.m, id)
		return session{}, false
	}
	return sess, ok
}

func (s *sessions) delete(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.m, id)
}

// caller is who a request comes from: a Bearer token (scripts; exempt
// from CSRF, since no browser sends it by itself) or a session cookie.
type caller struct {
	bearer    bool
	sessionID string
	csrf      string
}

type callerKey struct{}

func callerOf(r *http.Request) caller {
	c, _ := r.Context().Value(callerKey{}).(caller)
	return c
}

// tokenOK compares in constant time; hashing first makes the comparison
// independent of the lengths too.
func (c *Console) tokenOK(given string) bool {
	sum := sha256.Sum256([]byte(given))
	return subtle.ConstantTimeCompare(sum[:], c.tokenSum[:]) == 1
}

func equalConstantTime(a, b string) bool {
	return a != "" && subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1
}

// authenticate finds the caller of r. ok is false without credentials;
// bad is set when credentials were given and are wrong.
func (c *Console) authenticate(r *http.Request) (who caller, ok, bad bool) {
	if h := r.Header.Get("Authorization"); h != "" {
		tok, found := strings.CutPrefix(h, "Bearer ")
		if !found || !c.tokenOK(strings.TrimSpace(tok)) {
			return caller{}, false, true
		}
		return caller{bearer: true}, true, false
	}
	ck, err := r.Cookie(sessionCookie)
	if err != nil || ck.Value == "" {
		return caller{}, false, false
	}
	sess, found := c.sessions.get(ck.Value)
	if !found {
		return caller{}, false, true
	}
	return caller{sessionID: ck.Value, csrf: sess.csrf}, true, false
}

// sameOrigin refuses a browser request another site sent: an Origin or
// Referer header that is not this host.
func sameOrigin(r *http.Request) bool {
	for _, h := range []string{"Origin", "Referer"} {
		v := r.Header.Get(h)
		if v == "" {
			continue
		}
		u, err := url.Parse(v)
		if err != nil || u.Host != r.Host {
			return false
		}
		return true
	}
	return true
}

// securityHeaders go on every answer, the login page and errors included.
func securityHeaders(h http.Header) {
	h.Set("Content-Security-Policy", "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
	h.Set("X-Frame-Options", "DENY")
	h.Set("X-Content-Type-Options", "nosniff")
	// same-origin, not no-referrer: with no-referrer browsers send "Origin: null"
	// on the console's own form posts, which the origin check must refuse.
	h.Set("Referrer-Policy", "same-origin")
	h.Set("Cross-Origin-Opener-Policy", "same-origin")
	h.Set("Cross-Origin-Resource-Policy", "same-origin")
}

const maxFormBody = 1 << 20

// ServeHTTP authenticates every request but the login page and the
// static assets, checks CSRF on every action, then routes.
func (c *Console) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	securityHeaders(w.Header())
	r.Body = http.MaxBytesReader(w, r.Body, maxFormBody)
	if strings.HasPrefix(r.URL.Path, "/admin/static/") {
		w.Header().Set("Cache-Control", "private, max-age=300")
		c.static.ServeHTTP(w, r)
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	if r.URL.Path == "/admin/login" {
		c.login(w, r)
		return
	}
	api := strings.HasPrefix(r.URL.Path, "/admin/api/")
	who, ok, _ := c.authenticate(r)
	if !ok {
		if api || r.Header.Get("Authorization") != "" || (r.Method != http.MethodGet && r.Method != http.MethodHead) {
			w.Header().Set("WWW-Authenticate", `Bearer realm="syncd admin"`)
			writeJSONError(w, http.StatusUnauthorized, "unauthorized", "an admin token is required: Authorization: Bearer <ADMIN_TOKEN>, or log in at /admin/login")
			return
		}
		next := r.URL.Path
		if r.URL.RawQuery != "" {
			next += "?" + r.URL.RawQuery
		}
		http.Redirect(w, r, "/admin/login?next="+url.QueryEscape(next), http.StatusSeeOther)
		return
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead && !who.bearer {
		given := r.Header.Get(csrfHeader)
		if given == "" {
			given = r.PostFormValue(csrfField)
		}
		if !sameOrigin(r) || !equalConstantTime(given, who.csrf) {
			c.log.Warn("admin request refused: CSRF token missing or wrong", "method", r.Method, "path", r.URL.Path, "remote", r.RemoteAddr)
			if api {
				writeJSONError(w, http.StatusForbidden, "csrf", "missing or wrong CSRF token (send X-CSRF-Token, or use a Bearer token)")
			} else {
				c.renderError(w, r, http.StatusForbidden, "This form has expired or did not come from the console (CSRF check failed). Go back, reload the page and try again.")
			}
			return
		}
	}
	c.mux.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), callerKey{}, who)))
}

// safeNext keeps the login redirect on the console.
func safeNext(next string) string {
	if !strings.HasPrefix(next, "/admin/") || strings.HasPrefix(next, "//") || strings.ContainsAny(next, "\\\r\n") {
		return "/admin/"
	}
	return next
}

func (c *Console) login(w http.ResponseWriter, r *http.Request) {
	secure := r.TLS != nil
	switch r.Method {
	case http.MethodGet, http.MethodHead:
		// Keep the token a browser already has: it may load the login page
		// twice (a redirected favicon), and the form it shows must still
		// match the cookie.
		tok := randomToken()
		if ck, err := r.Cookie(loginCookie); err == nil && len(ck.Value) == len(tok) {
			tok = ck.Value
		}
		http.SetCookie(w, &http.Cookie{Name: loginCookie, Value: tok, Path: "/admin/login", HttpOnly: true, SameSite: http.SameSiteStrictMode, Secure: secure, MaxAge: 3600})
		c.render(w, r, http.StatusOK, "login.html", loginView{CSRF: tok, Next: safeNext(r.URL.Query().Get("next"))})
	case http.MethodPost:
		ck, err := r.Cookie(loginCookie)
		form := r.PostFormValue(csrfField)
		next := safeNext(r.PostFormValue("next"))
		if err != nil || !sameOrigin(r) || !equalConstantTime(form, ck.Value) {
			c.renderError(w, r, http.StatusForbidden, "The login form has expired or did not come from the console (CSRF check failed). Reload the login page and try again.")
			return
		}
		if !c.tokenOK(r.PostFormValue("token")) {
			// Where from, never what was typed.
			c.log.Warn("admin login failed: wrong token", "remote", r.RemoteAddr)
			c.render(w, r, http.StatusUnauthorized, "login.html", loginView{CSRF: ck.Value, Next: next, Error: "Wrong token."})
			return
		}
		id, _ := c.sessions.create()
		http.SetCookie(w, &http.Cookie{Name: sessionCookie, Value: id, Path: "/admin/", HttpOnly: true, SameSite: http.SameSiteStrictMode, Secure: secure, MaxAge: int(c.cfg.SessionTTL.Seconds())})
		http.SetCookie(w, &http.Cookie{Name: loginCookie, Value: "", Path: "/admin/login", MaxAge: -1})
		c.log.Info("admin login", "remote", r.RemoteAddr)
		http.Redirect(w, r, next, http.StatusSeeOther)
	default:
		w.Header().Set("Allow", "GET, POST")
		writeJSONError(w, http.StatusMethodNotAllowed, "method_not_allowed", "GET or POST")
	}
}

func (c *Console) logout(w http.ResponseWriter, r *http.Request) {
	if who := callerOf(r); who.sessionID != "" {
		c.sessions.delete(who.sessionID)
	}
	http.SetCookie(w, &http.Cookie{Name: sessionCookie, Value: "", Path: "/admin/", MaxAge: -1})
	http.Redirect(w, r, "/admin/login", http.StatusSeeOther)
}

type loginView struct {
	CSRF, Next, Error string
}
