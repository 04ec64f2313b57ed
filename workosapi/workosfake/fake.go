// Package workosfake is a stateful fake of the WorkOS API parts syncd
// writes to (users, organizations, memberships, magic auth), for tests.
// It answers like WorkOS: unique emails (case-insensitive) and external
// ids, 400 user_creation_error / email_not_available for a taken email,
// 404 entity_not_found, 401 without the API key, X-Request-ID on every
// answer, and, as configured, a 429 with Retry-After or a 500 now and
// then. What it creates it can send back as signed WorkOS webhooks
// (user.created, organization.created, organization_membership.created).
package workosfake

import (
	"crypto/rand"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// APIKey is the key the fake accepts unless Options says otherwise.
const APIKey = "sk_test_workosfake"

// Options shape a fake.
type Options struct {
	// APIKey is the bearer token required (default APIKey).
	APIKey string
	// RateLimitEvery answers every n-th request 429 (0: never), with
	// Retry-After: RetryAfter (default "0": come back at once).
	RateLimitEvery int
	RetryAfter     string
	// ErrorEvery answers every n-th request 500 (0: never).
	ErrorEvery int
	// ErrorAfterWrite makes a 500 of a write come after the write was
	// applied, as when WorkOS did the work but the answer was lost.
	ErrorAfterWrite bool
	// Roles are the role slugs of the environment (default member, admin,
	// owner); a membership with another is refused.
	Roles []string
}

// Call is one request the fake answered.
type Call struct {
	Method, Path string
	Status       int
}

// Server is the fake. Its methods are safe for concurrent use.
type Server struct {
	*httptest.Server
	opts Options

	mu          sync.Mutex
	requests    int
	seq         int
	clock       time.Time
	users       []*User
	orgs        []*Organization
	memberships []*Membership
	magicAuths  []MagicAuth
	calls       []Call
	events      []Event
	delivered   int
	onRequest   func(*http.Request)
}

// User, Organization, Membership and MagicAuth are the fake's records,
// marshalled as WorkOS's objects.
type User struct {
	Object            string            `json:"object"`
	ID                string            `json:"id"`
	Email             string            `json:"email"`
	FirstName         *string           `json:"first_name"`
	LastName          *string           `json:"last_name"`
	EmailVerified     bool              `json:"email_verified"`
	ProfilePictureURL *string           `json:"profile_picture_url"`
	LastSignInAt      *string           `json:"last_sign_in_at"`
	ExternalID        *string           `json:"external_id"`
	Metadata          map[string]string `json:"metadata"`
	Locale            *string           `json:"locale"`
	CreatedAt         string            `json:"created_at"`
	UpdatedAt         string            `json:"updated_at"`
	// PasswordHashType is the password_hash_type the user was created
	// with ("" without a hash); WorkOS never returns it, so neither does
	// the fake: tests read it here.
	PasswordHashType string `json:"-"`
}

type Organization struct {
	Object                           string            `json:"object"`
	ID                               string            `json:"id"`
	Name                             string            `json:"name"`
	AllowProfilesOutsideOrganization bool              `json:"allow_profiles_outside_organization"`
	Domains                          []any             `json:"domains"`
	Metadata                         map[string]string `json:"metadata"`
	ExternalID                       *string           `json:"external_id"`
	StripeCustomerID                 *string           `json:"stripe_customer_id,omitempty"`
	CreatedAt                        string            `json:"created_at"`
	UpdatedAt                        string            `json:"updated_at"`
}

type Role struct {
	Slug string `json:"slug"`
}

type Membership struct {
	Object           string         `json:"object"`
	ID               string         `json:"id"`
	UserID           string         `json:"user_id"`
	OrganizationID   string         `json:"organization_id"`
	OrganizationName string         `json:"organization_name"`
	Status           string         `json:"status"`
	Role             Role           `json:"role"`
	Roles            []Role         `json:"roles"`
	CustomAttributes map[string]any `json:"custom_attributes"`
	DirectoryManaged bool           `json:"directory_managed"`
	CreatedAt        string         `json:"created_at"`
	UpdatedAt        string         `json:"updated_at"`
}

type MagicAuth struct {
	Object    string `json:"object"`
	ID        string `json:"id"`
	UserID    string `json:"user_id"`
	Email     string `json:"email"`
	ExpiresAt string `json:"expires_at"`
	Code      string `json:"code"`
	CreatedAt string `json:"created_at"`
	UpdatedAt string `json:"updated_at"`
}

// New starts a fake for the test; it is closed when the test ends.
func New(t testing.TB, opts Options) *Server {
	t.Helper()
	if opts.APIKey == "" {
		opts.APIKey = APIKey
	}
	if opts.RetryAfter == "" {
		opts.RetryAfter = "0"
	}
	if len(opts.Roles) == 0 {
		opts.Roles = []string{"member", "admin", "owner"}
	}
	s := &Server{opts: opts, clock: time.Now().UTC().Truncate(time.Millisecond)}
	s.Server = httptest.NewServer(http.HandlerFunc(s.serve))
	t.Cleanup(s.Close)
	return s
}

// SetFaults changes how often requests fail: every n-th 429, every m-th
// 500 (0: never).
func (s *Server) SetFaults(rateLimitEvery, errorEvery int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.opts.RateLimitEvery, s.opts.ErrorEvery = rateLimitEvery, errorEvery
}

// OnRequest runs f at the start of every request, outside the fake's lock
// (to block a request, or watch them).
func (s *Server) OnRequest(f func(*http.Request)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.onRequest = f
}

// Users, Organizations, Memberships, MagicAuths and Calls return copies of
// what the fake holds, oldest first.
func (s *Server) Users() []User {
	s.mu.Lock()
	defer s.mu.Unlock()
	return copies(s.users)
}

func (s *Server) Organizations() []Organization {
	s.mu.Lock()
	defer s.mu.Unlock()
	return copies(s.orgs)
}

func (s *Server) Memberships() []Membership {
	s.mu.Lock()
	defer s.mu.Unlock()
	return copies(s.memberships)
}

func (s *Server) MagicAuths() []MagicAuth {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.magicAuths)
}

func (s *Server) Calls() []Call {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.calls)
}

// CountCalls counts the answered calls of method to path (as the fake saw
// it) with the status; status 0 counts every status.
func (s *Server) CountCalls(method, path string, status int) int {
	n := 0
	for _, c := range s.Calls() {
		if c.Method == method && c.Path == path && (status == 0 || c.Status == status) {
			n++
		}
	}
	return n
}

func copies[T any](list []*T) []T {
	out := make([]T, len(list))
	for i, p := range list {
		out[i] = *p
	}
	return out
}

// UserSpec describes a user made directly (outside the code under test).
type UserSpec struct {
	Email, FirstName, LastName, ExternalID string
	EmailVerified                          bool
	Metadata                               map[string]string
}

// AddUser creates a user as if through WorkOS's dashboard or the app,
// with its user.created event.
func (s *Server) AddUser(spec UserSpec) User {
	s.mu.Lock()
	defer s.mu.Unlock()
	u, status, _ := s.createUser(createUserBody{
		Email: spec.Email, FirstName: spec.FirstName, LastName: spec.LastName,
		ExternalID: spec.ExternalID, EmailVerified: spec.EmailVerified, Metadata: spec.Metadata,
	})
	if status != http.StatusCreated {
		panic(fmt.Sprintf("workosfake: AddUser %s: status %d", spec.Email, status))
	}
	return *u
}

// AddOrganization creates an organization directly, with its event.
func (s *Server) AddOrganization(name, externalID string, metadata map[string]string) Organization {
	s.mu.Lock()
	defer s.mu.Unlock()
	o, status, _ := s.createOrg(createOrgBody{Name: name, ExternalID: externalID, Metadata: metadata})
	if status != http.StatusCreated {
		panic(fmt.Sprintf("workosfake: AddOrganization %s: status %d", name, status))
	}
	return *o
}

// AddMembership creates a membership directly, with its event.
func (s *Server) AddMembership(userID, orgID, role string) Membership {
	s.mu.Lock()
	defer s.mu.Unlock()
	m, status, _ := s.createMembership(createMembershipBody{UserID: userID, OrganizationID: orgID, RoleSlug: role})
	if status != http.StatusCreated {
		panic(fmt.Sprintf("workosfake: AddMembership %s %s: status %d", userID, orgID, status))
	}
	return *m
}

// now is the fake's clock: strictly increasing milliseconds, so every
// write has a newer updated_at than the last.
func (s *Server) now() string {
	t := time.Now().UTC().Truncate(time.Millisecond)
	if !t.After(s.clock) {
		t = s.clock.Add(time.Millisecond)
	}
	s.clock = t
	return t.Format("2006-01-02T15:04:05.000Z")
}

// newID makes a WorkOS-style id: prefix, underscore, 26 Crockford base32
// characters (a ULID: sortable by creation).
func (s *Server) newID(prefix string) string {
	const alphabet = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
	s.seq++
	var b [26]byte
	ms := uint64(time.Now().UnixMilli())
	for i := 9; i >= 0; i-- {
		b[i] = alphabet[ms&31]
		ms >>= 5
	}
	n := uint64(s.seq)
	for i := 25; i >= 20; i-- {
		b[i] = alphabet[n&31]
		n >>= 5
	}
	var r [10]byte
	_, _ = rand.Read(r[:])
	for i := 10; i < 20; i++ {
		b[i] = alphabet[r[i-10]&31]
	}
	return prefix + "_" + string(b[:])
}

func strPtr(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	hook := s.onRequest
	s.mu.Unlock()
	if hook != nil {
		hook(r)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.requests++
	reqID := "req_" + strconv.Itoa(s.requests)
	w.Header().Set("X-Request-ID", reqID)
	rec := &statusRecorder{ResponseWriter: w}
	defer func() { s.calls = append(s.calls, Call{Method: r.Method, Path: r.URL.Path, Status: rec.status}) }()

	if r.Header.Get("Authorization") != "Bearer "+s.opts.APIKey {
		writeJSON(rec, http.StatusUnauthorized, map[string]any{"message": "Unauthorized", "code": "unauthorized"})
		return
	}
	if n := s.opts.RateLimitEvery; n > 0 && s.requests%n == 0 {
		rec.Header().Set("Retry-After", s.opts.RetryAfter)
		writeJSON(rec, http.StatusTooManyRequests, map[string]any{"message": "Too many requests", "code": "rate_limit_exceeded"})
		return
	}
	fail := s.opts.ErrorEvery > 0 && s.requests%s.opts.ErrorEvery == 0
	if fail && !(s.opts.ErrorAfterWrite && r.Method != http.MethodGet) {
		writeJSON(rec, http.StatusInternalServerError, map[string]any{"message": "Internal server error"})
		return
	}
	status, body := s.route(r)
	if fail {
		// The write happened; the answer is lost.
		status, body = http.StatusInternalServerError, map[string]any{"message": "Internal server error"}
	}
	writeJSON(rec, status, body)
}

type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (r *statusRecorder) WriteHeader(code int) {
	r.status = code
	r.ResponseWriter.WriteHeader(code)
}

func writeJSON(w http.ResponseWriter, status int, body any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(body)
}

func notFound(kind, id string) (int, any) {
	return http.StatusNotFound, map[string]any{
		"code": "entity_not_found", "message": fmt.Sprintf("%s not found: '%s'.", kind, id), "entity_id": id,
	}
}

func list[T any](data []T, after string) map[string]any {
	if data == nil {
		data = []T{}
	}
	var a any
	if after != "" {
		a = after
	}
	return map[string]any{"object": "list", "data": data, "list_metadata": map[string]any{"before": nil, "after": a}}
}

// route answers one request; the caller holds the lock.
func (s *Server) route(r *http.Request) (int, any) {
	path := strings.Trim(r.URL.Path, "/")
	parts := strings.Split(path, "/")
	switch {
	case r.Method == http.MethodPost && path == "user_management/users":
		var b createUserBody
		if err := json.NewDecoder(r.Body).Decode(&b); err != nil {
			return badJSON(err)
		}
		u, status, body := s.createUser(b)
		if u != nil {
			return status, u
		}
		return status, body
	case r.Method == http.MethodGet && path == "user_management/users":
		return s.listUsers(r)
	case r.Method == http.MethodGet && len(parts) == 4 && parts[0] == "user_management" && parts[1] == "users" && parts[2] == "external_id":
		for _, u := range s.users {
			if u.ExternalID != nil && *u.ExternalID == parts[3] {
				return http.StatusOK, u
			}
		}
		return notFound("User", parts[3])
	case r.Method == http.MethodGet && len(parts) == 3 && parts[0] == "user_management" && parts[1] == "users":
		if u := s.user(parts[2]); u != nil {
			return http.StatusOK, u
		}
		return notFound("User", parts[2])
	case r.Method == http.MethodPost && path == "organizations":
		var b createOrgBody
		if err := json.NewDecoder(r.Body).Decode(&b); err != nil {
			return badJSON(err)
		}
		o, status, body := s.createOrg(b)
		if o != nil {
			return status, o
		}
		return status, body
	case r.Method == http.MethodGet && len(parts) == 3 && parts[0] == "organizations" && parts[1] == "external_id":
		for _, o := range s.orgs {
			if o.ExternalID != nil && *o.ExternalID == parts[2] {
				return http.StatusOK, o
			}
		}
		return notFound("Organization", parts[2])
	case r.Method == http.MethodGet && len(parts) == 2 && parts[0] == "organizations":
		if o := s.org(parts[1]); o != nil {
			return http.StatusOK, o
		}
		return notFound("Organization", parts[1])
	case r.Method == http.MethodPost && path == "user_management/organization_memberships":
		var b createMembershipBody
		if err := json.NewDecoder(r.Body).Decode(&b); err != nil {
			return badJSON(err)
		}
		m, status, body := s.createMembership(b)
		if m != nil {
			return status, m
		}
		return status, body
	case r.Method == http.MethodGet && path == "user_management/organization_memberships":
		return s.listMemberships(r)
	case r.Method == http.MethodPost && path == "user_management/magic_auth":
		var b struct {
			Email string `json:"email"`
		}
		if err := json.NewDecoder(r.Body).Decode(&b); err != nil {
			return badJSON(err)
		}
		if !validEmail(b.Email) {
			return invalidEmail()
		}
		now := s.now()
		m := MagicAuth{Object: "magic_auth", ID: s.newID("magic_auth"), Email: b.Email, Code: fmt.Sprintf("%06d", s.seq%1000000),
			ExpiresAt: time.Now().Add(10 * time.Minute).UTC().Format("2006-01-02T15:04:05.000Z"), CreatedAt: now, UpdatedAt: now}
		if u := s.userByEmail(b.Email); u != nil {
			m.UserID = u.ID
		}
		s.magicAuths = append(s.magicAuths, m)
		return http.StatusCreated, m
	}
	return http.StatusNotFound, map[string]any{"message": "Not found: " + r.Method + " " + r.URL.Path}
}

func badJSON(err error) (int, any) {
	return http.StatusBadRequest, map[string]any{"code": "invalid_request", "message": "Invalid JSON body: " + err.Error()}
}

func validEmail(e string) bool {
	at := strings.IndexByte(e, '@')
	return at > 0 && at < len(e)-1 && !strings.ContainsAny(e, " \t\r\n")
}

func invalidEmail() (int, any) {
	return http.StatusUnprocessableEntity, map[string]any{
		"code": "invalid_request_parameters", "message": "Validation failed",
		"errors": []map[string]string{{"field": "email", "code": "email_invalid"}},
	}
}

type createUserBody struct {
	Email            string            `json:"email"`
	Password         string            `json:"password"`
	PasswordHash     string            `json:"password_hash"`
	PasswordHashType string            `json:"password_hash_type"`
	FirstName        string            `json:"first_name"`
	LastName         string            `json:"last_name"`
	EmailVerified    bool              `json:"email_verified"`
	ExternalID       string            `json:"external_id"`
	Metadata         map[string]string `json:"metadata"`
}

func (s *Server) createUser(b createUserBody) (*User, int, any) {
	if !validEmail(b.Email) {
		st, body := invalidEmail()
		return nil, st, body
	}
	if b.PasswordHash != "" && b.PasswordHashType == "" {
		return nil, http.StatusUnprocessableEntity, map[string]any{"code": "invalid_request_parameters", "message": "password_hash_type is required with password_hash"}
	}
	if s.userByEmail(b.Email) != nil {
		return nil, http.StatusBadRequest, map[string]any{
			"code": "user_creation_error", "message": "Could not create user.",
			"errors": []map[string]string{{"code": "email_not_available", "message": "This email is not available."}},
		}
	}
	if b.ExternalID != "" {
		for _, u := range s.users {
			if u.ExternalID != nil && *u.ExternalID == b.ExternalID {
				return nil, http.StatusConflict, map[string]any{"code": "external_id_conflict", "message": "The external ID is already assigned to another user."}
			}
		}
	}
	if b.Metadata == nil {
		b.Metadata = map[string]string{}
	}
	now := s.now()
	u := &User{Object: "user", ID: s.newID("user"), Email: b.Email, FirstName: strPtr(b.FirstName), LastName: strPtr(b.LastName),
		EmailVerified: b.EmailVerified, ExternalID: strPtr(b.ExternalID), Metadata: b.Metadata, CreatedAt: now, UpdatedAt: now,
		PasswordHashType: b.PasswordHashType}
	s.users = append(s.users, u)
	s.record("user.created", u)
	return u, http.StatusCreated, nil
}

func (s *Server) user(id string) *User {
	for _, u := range s.users {
		if u.ID == id {
			return u
		}
	}
	return nil
}

func (s *Server) userByEmail(email string) *User {
	for _, u := range s.users {
		if strings.EqualFold(u.Email, email) {
			return u
		}
	}
	return nil
}

func (s *Server) listUsers(r *http.Request) (int, any) {
	q := r.URL.Query()
	var out []User
	for _, u := range s.users {
		if e := q.Get("email"); e != "" && !strings.EqualFold(u.Email, e) {
			continue
		}
		if org := q.Get("organization_id"); org != "" && !s.isMember(u.ID, org) {
			continue
		}
		out = append(out, *u)
	}
	return page(out, q, func(u User) string { return u.ID })
}

func (s *Server) isMember(userID, orgID string) bool {
	for _, m := range s.memberships {
		if m.UserID == userID && m.OrganizationID == orgID {
			return true
		}
	}
	return false
}

type createOrgBody struct {
	Name       string            `json:"name"`
	ExternalID string            `json:"external_id"`
	Metadata   map[string]string `json:"metadata"`
}

func (s *Server) createOrg(b createOrgBody) (*Organization, int, any) {
	if strings.TrimSpace(b.Name) == "" {
		return nil, http.StatusUnprocessableEntity, map[string]any{
			"code": "invalid_request_parameters", "message": "Validation failed",
			"errors": []map[string]string{{"field": "name", "code": "name_required"}},
		}
	}
	if b.ExternalID != "" {
		for _, o := range s.orgs {
			if o.ExternalID != nil && *o.ExternalID == b.ExternalID {
				return nil, http.StatusConflict, map[string]any{"code": "external_id_conflict", "message": "An organization with this external ID already exists."}
			}
		}
	}
	if b.Metadata == nil {
		b.Metadata = map[string]string{}
	}
	now := s.now()
	o := &Organization{Object: "organization", ID: s.newID("org"), Name: b.Name, Domains: []any{}, Metadata: b.Metadata,
		ExternalID: strPtr(b.ExternalID), CreatedAt: now, UpdatedAt: now}
	s.orgs = append(s.orgs, o)
	s.record("organization.created", o)
	return o, http.StatusCreated, nil
}

func (s *Server) org(id string) *Organization {
	for _, o := range s.orgs {
		if o.ID == id {
			return o
		}
	}
	return nil
}

type createMembershipBody struct {
	UserID         string `json:"user_id"`
	OrganizationID string `json:"organization_id"`
	RoleSlug       string `json:"role_slug"`
}

func (s *Server) createMembership(b createMembershipBody) (*Membership, int, any) {
	if s.user(b.UserID) == nil {
		st, body := notFound("User", b.UserID)
		return nil, st, body
	}
	o := s.org(b.OrganizationID)
	if o == nil {
		st, body := notFound("Organization", b.OrganizationID)
		return nil, st, body
	}
	role := b.RoleSlug
	if role == "" {
		role = "member"
	}
	if !slices.Contains(s.opts.Roles, role) {
		return nil, http.StatusUnprocessableEntity, map[string]any{"code": "invalid_role", "message": fmt.Sprintf("Role '%s' does not exist in this environment.", role)}
	}
	if s.isMember(b.UserID, b.OrganizationID) {
		return nil, http.StatusBadRequest, map[string]any{"code": "organization_membership_already_exists", "message": "The user is already a member of the organization."}
	}
	now := s.now()
	m := &Membership{Object: "organization_membership", ID: s.newID("om"), UserID: b.UserID, OrganizationID: o.ID, OrganizationName: o.Name,
		Status: "active", Role: Role{Slug: role}, Roles: []Role{{Slug: role}}, CustomAttributes: map[string]any{}, CreatedAt: now, UpdatedAt: now}
	s.memberships = append(s.memberships, m)
	s.record("organization_membership.created", m)
	return m, http.StatusCreated, nil
}

func (s *Server) listMemberships(r *http.Request) (int, any) {
	q := r.URL.Query()
	user, org := q.Get("user_id"), q.Get("organization_id")
	if user == "" && org == "" {
		return http.StatusUnprocessableEntity, map[string]any{"code": "invalid_request_parameters", "message": "Either user_id or organization_id is required."}
	}
	var statuses []string
	for _, k := range []string{"statuses", "statuses[]"} {
		for _, v := range q[k] {
			statuses = append(statuses, strings.Split(v, ",")...)
		}
	}
	var out []Membership
	for _, m := range s.memberships {
		if (user != "" && m.UserID != user) || (org != "" && m.OrganizationID != org) {
			continue
		}
		if len(statuses) > 0 && !slices.Contains(statuses, m.Status) {
			continue
		}
		out = append(out, *m)
	}
	return page(out, q, func(m Membership) string { return m.ID })
}

// page applies limit and the after cursor (ids sort by creation).
func page[T any](all []T, q map[string][]string, id func(T) string) (int, any) {
	limit := 10
	if v := first(q["limit"]); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 100 {
			return http.StatusUnprocessableEntity, map[string]any{"code": "invalid_request_parameters", "message": "limit must be between 1 and 100"}
		}
		limit = n
	}
	if first(q["order"]) == "desc" {
		slices.Reverse(all)
	}
	if after := first(q["after"]); after != "" {
		i := slices.IndexFunc(all, func(t T) bool { return id(t) == after })
		all = all[i+1:]
	}
	next := ""
	if len(all) > limit {
		all = all[:limit]
		next = id(all[limit-1])
	}
	return http.StatusOK, list(all, next)
}

func first(v []string) string {
	if len(v) == 0 {
		return ""
	}
	return v[0]
}
