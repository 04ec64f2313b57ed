package console

import "net/http"

// routes lists every page and API route; ServeHTTP has authenticated the
// caller and checked CSRF before any of them runs.
func (c *Console) routes() {
	m := c.mux
	m.HandleFunc("GET /admin", func(w http.ResponseWriter, r *http.Request) { http.Redirect(w, r, "/admin/", http.StatusSeeOther) })
	m.HandleFunc("POST /admin/logout", c.logout)

	m.HandleFunc("GET /admin/{$}", c.overviewPage)
	m.HandleFunc("GET /admin/deadletters", c.deadLettersPage)
	m.HandleFunc("GET /admin/deadletters/{seq}", c.deadLetterPage)
	m.HandleFunc("POST /admin/deadletters/{action}", c.deadLetterActionPage)
	m.HandleFunc("GET /admin/events", c.eventsPage)
	m.HandleFunc("GET /admin/jobs", c.jobsPage)
	m.HandleFunc("POST /admin/jobs/{kind}", c.jobStartPage)
	m.HandleFunc("GET /admin/jobs/{id}", c.jobPage)

	m.HandleFunc("GET /admin/api/overview", c.overviewAPI)
	m.HandleFunc("GET /admin/api/deadletters", c.deadLettersAPI)
	m.HandleFunc("GET /admin/api/deadletters/{seq}", c.deadLetterAPI)
	m.HandleFunc("POST /admin/api/deadletters/{action}", c.deadLetterActionAPI)
	m.HandleFunc("GET /admin/api/events/{id}", c.eventAPI)
	m.HandleFunc("GET /admin/api/jobs", c.jobsAPI)
	m.HandleFunc("GET /admin/api/jobs/{id}", c.jobAPI)
	m.HandleFunc("POST /admin/api/replays", c.replayAPI)
	m.HandleFunc("POST /admin/api/backfills", c.backfillAPI)

	m.HandleFunc("/admin/api/", func(w http.ResponseWriter, r *http.Request) {
		writeJSONError(w, http.StatusNotFound, "not_found", "no such API route")
	})
	m.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		c.renderError(w, r, http.StatusNotFound, "No such page.")
	})
}
