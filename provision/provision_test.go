package provision_test

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/syncd/syncd/events"
	"github.com/syncd/syncd/provision"
	"github.com/syncd/syncd/stream"
	"github.com/syncd/syncd/syncdtest"
	"github.com/syncd/syncd/workosapi"
	"github.com/syncd/syncd/workosapi/workosfake"
)

// bundle is one test's world: syncd's harness (Postgres, JetStream,
// ingest), a fake WorkOS, and provisioners started and stopped at will.
type bundle struct {
	t    *testing.T
	h    *syncdtest.Harness
	fake *workosfake.Server
	mode provision.Mode
	n    int
	// running is the provisioner start started last.
	running *provision.Provisioner
	// retryMin is the provisioners' backoff floor (default 20 ms).
	retryMin time.Duration
}

func setup(t *testing.T, mode provision.Mode, opts workosfake.Options) *bundle {
	t.Helper()
	b := &bundle{t: t, h: syncdtest.NewHarness(t), fake: workosfake.New(t, opts), mode: mode}
	// The durable exists before anything is published.
	if err := b.provisioner(nil).Ensure(context.Background()); err != nil {
		t.Fatal(err)
	}
	return b
}

func (b *bundle) provisioner(afterStep func(key, step string) error) *provision.Provisioner {
	b.t.Helper()
	api, err := workosapi.New(workosapi.Config{
		APIKey: workosfake.APIKey, BaseURL: b.fake.URL,
		RetryMin: time.Millisecond, RetryMax: 10 * time.Millisecond,
	})
	if err != nil {
		b.t.Fatal(err)
	}
	p, err := provision.New(provision.Config{
		Mode:     b.mode,
		RetryMin: cmp.Or(b.retryMin, 20*time.Millisecond), RetryMax: max(200*time.Millisecond, b.retryMin),
		AckWait: time.Second,
		// A killed task's message comes back after AckWait.
		Registerer: prometheus.NewRegistry(),
		Logger:     testLogger(b.t),
	}, b.h.Pool, b.h.NATS.JS, api)
	if err != nil {
		b.t.Fatal(err)
	}
	provision.SetAfterStep(p, afterStep)
	return p
}

// start runs a provisioner until the returned stop is called (or the
// test ends).
func (b *bundle) start(afterStep func(key, step string) error) (stop func()) {
	b.t.Helper()
	p := b.provisioner(afterStep)
	b.running = p
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				b.t.Errorf("provisioner: %v", err)
			}
		})
	}
	b.t.Cleanup(stop)
	return stop
}

// waitProvisioned waits until the provisioning durable has nothing
// pending or unsettled. A durable's pending count is updated after the
// PubAck, not with it (see syncdtest.WaitSettled), so its ack floor must
// also have reached the last stored message it reads.
func (b *bundle) waitProvisioned() {
	b.t.Helper()
	subjects := provision.Subjects(b.provisioner(nil))
	syncdtest.Eventually(b.t, 60*time.Second, "provisioning settles", func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		s, err := b.h.NATS.JS.Stream(ctx, stream.Webhooks)
		if err != nil {
			return false
		}
		var last uint64
		for _, subj := range subjects {
			m, err := s.GetLastMsgForSubject(ctx, subj)
			if errors.Is(err, jetstream.ErrMsgNotFound) {
				continue
			}
			if err != nil {
				return false
			}
			last = max(last, m.Sequence)
		}
		c, err := s.Consumer(ctx, stream.ProvisionConsumer)
		if err != nil {
			return false
		}
		info, err := c.Info(ctx)
		return err == nil && info.NumPending == 0 && info.NumAckPending == 0 && info.AckFloor.Stream >= last
	})
}

// testLogger logs to the test when SYNCD_TEST_LOG is set.
func testLogger(t *testing.T) *slog.Logger {
	if os.Getenv("SYNCD_TEST_LOG") == "" {
		return nil
	}
	return slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(b []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(b)))
	return len(b), nil
}

// booking is a paid checkout.session.completed for a guest.
func booking(eventID, session, guest, guestName string) []byte {
	meeting, _ := json.Marshal(map[string]any{
		"id": "5b0a6c1e-3a4e-4d0a-9a53-2f3f0c6e2a11", "expert": "user_01EHWNCE74X7JSDV0X3SZ3KJNY",
		"guest": guest, "guestName": guestName, "start": "2026-12-01T10:00:00Z", "dur": 45,
	})
	return syncdtest.StripeEvent(eventID, "checkout.session.completed", time.Now().Unix(), map[string]any{
		"id": session, "object": "checkout.session", "mode": "payment", "status": "complete",
		"payment_status": "paid", "payment_intent": "pi_" + session, "amount_total": 1099, "currency": "usd",
		"customer_details": map[string]any{"email": guest},
		"metadata":         map[string]any{"meeting": string(meeting)},
	})
}

func paymentIntent(eventID, pi, guest, guestName string) []byte {
	meeting, _ := json.Marshal(map[string]any{"id": "5b0a6c1e-3a4e-4d0a-9a53-2f3f0c6e2a11", "guest": guest, "guestName": guestName})
	return syncdtest.StripeEvent(eventID, "payment_intent.succeeded", time.Now().Unix(), map[string]any{
		"id": pi, "object": "payment_intent", "status": "succeeded", "amount": 1099, "currency": "usd",
		"metadata": map[string]any{"meeting": string(meeting)},
	})
}

// redeliver publishes body into WEBHOOKS again under a fresh message id,
// as `syncd dlq retry` and a replay do: a second delivery of the same
// event, past JetStream's duplicate window.
func (b *bundle) redeliver(source string, body []byte) {
	b.t.Helper()
	var env events.Envelope
	var err error
	if source == stream.SourceStripe {
		env, err = events.DecodeStripe(body)
	} else {
		env, err = events.DecodeWorkOS(body)
	}
	if err != nil {
		b.t.Fatal(err)
	}
	b.n++
	msg, err := stream.EventMsg(source, env, body, time.Now(), "")
	if err != nil {
		b.t.Fatal(err)
	}
	msg.Header.Set(jetstream.MsgIDHeader, fmt.Sprintf("%s:%s:again:%d", source, env.ID, b.n))
	if _, err := b.h.NATS.JS.PublishMsg(context.Background(), msg); err != nil {
		b.t.Fatal(err)
	}
}

// checkOneOfEach asserts exactly one user, personal organization, owner
// membership and magic-auth code for the guest, and that each was made
// by exactly one successful create.
func (b *bundle) checkOneOfEach(email, firstName string) workosfake.User {
	b.t.Helper()
	var users []workosfake.User
	for _, u := range b.fake.Users() {
		if strings.EqualFold(u.Email, email) {
			users = append(users, u)
		}
	}
	if len(users) != 1 {
		b.t.Fatalf("%d WorkOS users for %s, want 1: %+v", len(users), email, users)
	}
	u := users[0]
	if u.EmailVerified || u.Metadata["registrationType"] != "guest" || u.Metadata["booking"] == "" {
		b.t.Fatalf("guest user %+v: want unverified, registrationType guest, the booking", u)
	}
	var orgs []workosfake.Organization
	for _, o := range b.fake.Organizations() {
		if o.ExternalID != nil && *o.ExternalID == provision.PersonalOrgExternalID(u.ID) {
			orgs = append(orgs, o)
		}
	}
	if len(orgs) != 1 || orgs[0].Name != firstName+"'s Account" || orgs[0].Metadata["type"] != provision.OrgTypeDefault {
		b.t.Fatalf("personal organizations of %s: %+v; want one, %q, type %s", u.ID, orgs, firstName+"'s Account", provision.OrgTypeDefault)
	}
	var ms []workosfake.Membership
	for _, m := range b.fake.Memberships() {
		if m.UserID == u.ID {
			ms = append(ms, m)
		}
	}
	if len(ms) != 1 || ms[0].OrganizationID != orgs[0].ID || ms[0].Role.Slug != "owner" {
		b.t.Fatalf("memberships of %s: %+v; want one owner membership of %s", u.ID, ms, orgs[0].ID)
	}
	codes := 0
	for _, m := range b.fake.MagicAuths() {
		if strings.EqualFold(m.Email, email) {
			codes++
		}
	}
	if codes != 1 {
		b.t.Fatalf("%d magic-auth codes for %s, want 1", codes, email)
	}
	return u
}

// createCalls counts the successful creates of each kind.
func (b *bundle) createCalls() (users, orgs, memberships, magic int) {
	return b.fake.CountCalls(http.MethodPost, "/user_management/users", http.StatusCreated),
		b.fake.CountCalls(http.MethodPost, "/organizations", http.StatusCreated),
		b.fake.CountCalls(http.MethodPost, "/user_management/organization_memberships", http.StatusCreated),
		b.fake.CountCalls(http.MethodPost, "/user_management/magic_auth", http.StatusCreated)
}

func TestPaidBookingByUnknownGuestProvisionsOnceWhateverTheDeliveries(t *testing.T) {
	t.Parallel()
	// WorkOS rate-limits and fails now and then, and one of its 500s comes
	// after the write was done: retries must adopt, not duplicate.
	b := setup(t, provision.Guests, workosfake.Options{RateLimitEvery: 5, ErrorEvery: 7, ErrorAfterWrite: true})
	b.start(nil)
	body := booking("evt_cs_1", "cs_1", "Marcelina.Davis@example.com", "Marcelina Davis")
	b.h.PostStripe(body, false)
	b.redeliver(stream.SourceStripe, body)
	b.redeliver(stream.SourceStripe, body)
	// The PaymentIntent of the same booking asks for the same guest.
	b.h.PostStripe(paymentIntent("evt_pi_1", "pi_cs_1", "marcelina.davis@example.com", "Marcelina Davis"), false)
	b.waitProvisioned()

	b.checkOneOfEach("marcelina.davis@example.com", "Marcelina")
	var step, outcome string
	if err := b.h.Pool.QueryRow(context.Background(),
		"SELECT step, outcome FROM provisioning_tasks WHERE task_key = 'guest:marcelina.davis@example.com'").Scan(&step, &outcome); err != nil {
		t.Fatal(err)
	}
	if step != provision.StepDone || outcome != provision.OutcomeCreated {
		t.Fatalf("task step %s outcome %s; want done, created", step, outcome)
	}
	// Nothing was written to the app's tables by this path.
	var users, orgs int
	_ = b.h.Pool.QueryRow(context.Background(), "SELECT (SELECT count(*) FROM users), (SELECT count(*) FROM organizations)").Scan(&users, &orgs)
	if users != 0 || orgs != 0 {
		t.Fatalf("users %d, organizations %d in Postgres; provisioning must only write to WorkOS", users, orgs)
	}
}

// The consumer is killed after each step in turn (the step stored, the
// message neither acked nor handed back) and a new one takes over: every
// object still exists once, and no finished step is sent again.
func TestGuestProvisioningResumesAfterAKillBetweenSteps(t *testing.T) {
	t.Parallel()
	for _, killAfter := range []string{provision.StepUser, provision.StepOrganization, provision.StepMembership, provision.StepDone} {
		t.Run("after_"+killAfter, func(t *testing.T) {
			t.Parallel()
			b := setup(t, provision.Guests, workosfake.Options{})
			killed := make(chan struct{})
			var once sync.Once
			stop := b.start(func(key, step string) error {
				if step != killAfter {
					return nil
				}
				once.Do(func() { close(killed) })
				return provision.ErrKilled
			})
			b.h.PostStripe(booking("evt_cs_k", "cs_k", "guest@example.com", "Gil Guest"), false)
			select {
			case <-killed:
			case <-time.After(30 * time.Second):
				t.Fatal("the task never reached the kill point")
			}
			stop()
			before := b.fake.Calls()

			b.start(nil)
			b.waitProvisioned()
			b.checkOneOfEach("guest@example.com", "Gil")
			if u, o, m, a := b.createCalls(); u != 1 || o != 1 || m != 1 || a != 1 {
				t.Fatalf("successful creates: users %d, orgs %d, memberships %d, magic auth %d; want 1 each", u, o, m, a)
			}
			// The resumed consumer started at the step after the kill.
			after := b.fake.Calls()[len(before):]
			for _, c := range after {
				if c.Method == http.MethodPost && c.Path == "/user_management/users" {
					t.Fatalf("resumed task created the user again: %v", after)
				}
				if killAfter == provision.StepDone && c.Method == http.MethodPost {
					t.Fatalf("a finished task wrote again after the restart: %v", after)
				}
			}
		})
	}
}

func TestTwoReplicasProvisionEachGuestOnce(t *testing.T) {
	t.Parallel()
	b := setup(t, provision.Guests, workosfake.Options{RateLimitEvery: 9, ErrorEvery: 13, ErrorAfterWrite: true})
	b.start(nil)
	b.start(nil)
	const guests = 6
	for i := range guests {
		email := fmt.Sprintf("guest%d@example.com", i)
		cs := fmt.Sprintf("cs_r%d", i)
		body := booking("evt_"+cs, cs, email, fmt.Sprintf("Guest%d Person", i))
		b.h.PostStripe(body, false)
		b.redeliver(stream.SourceStripe, body)
		b.h.PostStripe(paymentIntent("evt_pi_"+cs, "pi_"+cs, email, fmt.Sprintf("Guest%d Person", i)), false)
	}
	b.waitProvisioned()
	for i := range guests {
		b.checkOneOfEach(fmt.Sprintf("guest%d@example.com", i), fmt.Sprintf("Guest%d", i))
	}
	if u, o, m, a := len(b.fake.Users()), len(b.fake.Organizations()), len(b.fake.Memberships()), len(b.fake.MagicAuths()); u != guests || o != guests || m != guests || a != guests {
		t.Fatalf("WorkOS holds %d users, %d orgs, %d memberships, %d codes; want %d each", u, o, m, a, guests)
	}
}

// With two replicas on the booking, the magic-auth create has its answer
// lost once, after WorkOS made the code: the code is found through the
// Events API and adopted, never sent again. (Left to wherever the n-th
// request falls, this fault met TestTwoReplicasProvisionEachGuestOnce's
// magic-auth create about one run in three.)
func TestLostMagicAuthAnswerIsNotASecondCode(t *testing.T) {
	t.Parallel()
	b := setup(t, provision.Guests, workosfake.Options{ErrorOnce: []string{"POST /user_management/magic_auth"}, ErrorAfterWrite: true})
	b.start(nil)
	b.start(nil)
	body := booking("evt_cs_lost", "cs_lost", "lou@example.com", "Lou Lost")
	b.h.PostStripe(body, false)
	b.redeliver(stream.SourceStripe, body)
	b.waitProvisioned()
	b.checkOneOfEach("lou@example.com", "Lou")
	if n := b.fake.CountCalls(http.MethodPost, "/user_management/magic_auth", http.StatusInternalServerError); n != 1 {
		t.Fatalf("%d lost magic-auth answers, want the 1 configured: %v", n, b.fake.Calls())
	}
	var id string
	if err := b.h.Pool.QueryRow(context.Background(),
		"SELECT magic_auth_id FROM provisioning_tasks WHERE task_key = 'guest:lou@example.com' AND step = 'done'").Scan(&id); err != nil {
		t.Fatal(err)
	}
	if codes := b.fake.MagicAuths(); id != codes[0].ID {
		t.Fatalf("task recorded code %s; want the one WorkOS made, %s", id, codes[0].ID)
	}
}

func TestUserCreatedOutsideSyncdGetsOnePersonalOrganization(t *testing.T) {
	t.Parallel()
	b := setup(t, provision.All, workosfake.Options{RateLimitEvery: 6})
	b.start(nil)
	ctx := context.Background()
	hook := b.h.URL + "/webhooks/workos"

	// A user made in the dashboard: no organization.
	ana := b.fake.AddUser(workosfake.UserSpec{Email: "ana@example.com", FirstName: "Ana", EmailVerified: true})
	// A user who already has a personal organization, made by the app
	// before syncd (typed in its metadata, no external id).
	bo := b.fake.AddUser(workosfake.UserSpec{Email: "bo@example.com", FirstName: "Bo", EmailVerified: true})
	boOrg := b.fake.AddOrganization("Bo's Account", "", map[string]string{"type": "member_personal"})
	b.fake.AddMembership(bo.ID, boOrg.ID, "owner")
	if _, err := b.fake.DeliverWebhooks(ctx, hook, syncdtest.WorkOSSecret); err != nil {
		t.Fatal(err)
	}
	b.waitProvisioned()
	// Ana's user.created again (a replay).
	for _, ev := range b.fake.Events() {
		if ev.Type == "user.created" && strings.Contains(string(ev.Body), ana.ID) {
			b.redeliver(stream.SourceWorkOS, ev.Body)
		}
	}
	b.waitProvisioned()

	orgs := b.fake.Organizations()
	if len(orgs) != 2 {
		t.Fatalf("organizations %+v; want Bo's and one new for Ana", orgs)
	}
	anaOrg := orgs[1]
	if anaOrg.ExternalID == nil || *anaOrg.ExternalID != provision.PersonalOrgExternalID(ana.ID) || anaOrg.Name != "Ana's Account" {
		t.Fatalf("Ana's organization %+v", anaOrg)
	}
	var anaMs, boMs int
	for _, m := range b.fake.Memberships() {
		switch m.UserID {
		case ana.ID:
			anaMs++
			if m.OrganizationID != anaOrg.ID || m.Role.Slug != "owner" {
				t.Fatalf("Ana's membership %+v", m)
			}
		case bo.ID:
			boMs++
		}
	}
	if anaMs != 1 || boMs != 1 {
		t.Fatalf("memberships: Ana %d, Bo %d; want 1 each", anaMs, boMs)
	}
	if n := len(b.fake.MagicAuths()); n != 0 {
		t.Fatalf("%d magic-auth codes; users who signed up get none", n)
	}
	if _, o, m, _ := b.createCalls(); o != 1 || m != 1 {
		t.Fatalf("successful creates: %d orgs, %d memberships; want 1 each, for Ana", o, m)
	}
}

// The fake's webhooks for what provisioning created, sent through ingest
// and applied by the apply consumer, leave the rows an inline flow would:
// the user, the personal organization (typed), the owner membership, and
// the meeting's guest linked to both.
func TestProvisionedAccountsFlowBackThroughIngest(t *testing.T) {
	t.Parallel()
	b := setup(t, provision.All, workosfake.Options{})
	b.h.StartConsumer()
	b.start(nil)
	b.h.PostStripe(booking("evt_cs_in", "cs_in", "Carla@Example.com", "Carla Chen"), false)
	b.waitProvisioned()
	if _, err := b.fake.DeliverWebhooks(context.Background(), b.h.URL+"/webhooks/workos", syncdtest.WorkOSSecret); err != nil {
		t.Fatal(err)
	}
	b.h.WaitSettled()
	// The guest's user.created reached provisioning too: nothing more.
	b.waitProvisioned()
	u := b.checkOneOfEach("carla@example.com", "Carla")
	org := b.fake.Organizations()[0]
	m := b.fake.Memberships()[0]

	ctx := context.Background()
	var email, orgName, orgType, extID, role, status, guestUser string
	var orgRow, guestOrg string
	if err := b.h.Pool.QueryRow(ctx, "SELECT email FROM users WHERE workos_user_id = $1 AND NOT is_stub", u.ID).Scan(&email); err != nil {
		t.Fatalf("users row of %s: %v", u.ID, err)
	}
	if err := b.h.Pool.QueryRow(ctx, "SELECT id::text, name, type, external_id FROM organizations WHERE workos_org_id = $1 AND NOT is_stub", org.ID).Scan(&orgRow, &orgName, &orgType, &extID); err != nil {
		t.Fatalf("organizations row of %s: %v", org.ID, err)
	}
	if err := b.h.Pool.QueryRow(ctx, "SELECT role, status FROM user_org_memberships WHERE workos_org_membership_id = $1 AND workos_user_id = $2 AND deleted_at IS NULL", m.ID, u.ID).Scan(&role, &status); err != nil {
		t.Fatalf("membership row of %s: %v", m.ID, err)
	}
	if err := b.h.Pool.QueryRow(ctx, "SELECT guest_workos_user_id, guest_org_id::text FROM meetings WHERE stripe_session_id = 'cs_in'").Scan(&guestUser, &guestOrg); err != nil {
		t.Fatalf("meeting: %v", err)
	}
	if email != u.Email || orgName != "Carla's Account" || orgType != provision.OrgTypeDefault || extID != provision.PersonalOrgExternalID(u.ID) || role != "owner" || status != "active" {
		t.Fatalf("rows: email %s, org %q type %s ext %s, membership %s %s", email, orgName, orgType, extID, role, status)
	}
	if guestUser != u.ID || guestOrg != orgRow {
		t.Fatalf("meeting guest %s org %s; want %s and %s", guestUser, guestOrg, u.ID, orgRow)
	}
	if _, o, mm, _ := b.createCalls(); o != 1 || mm != 1 {
		t.Fatalf("creates after the webhooks came back: %d orgs, %d memberships; want 1 each", o, mm)
	}
}

// A request WorkOS refuses (here: the owner role does not exist in the
// environment) is dead-lettered with WorkOS's error and request id, and
// the task records it; the rest keeps flowing.
func TestRefusedRequestIsDeadLetteredWithTheWorkOSError(t *testing.T) {
	t.Parallel()
	b := setup(t, provision.Guests, workosfake.Options{Roles: []string{"member"}})
	b.start(nil)
	b.h.PostStripe(booking("evt_cs_bad", "cs_bad", "dee@example.com", "Dee"), false)
	// A booking whose guest email is not one: set aside without a call.
	b.h.PostStripe(booking("evt_cs_junk", "cs_junk", "not an email", "X"), false)
	// An unpaid checkout asks for nothing.
	unpaid := booking("evt_cs_unpaid", "cs_unpaid", "eve@example.com", "Eve")
	unpaid = []byte(strings.Replace(string(unpaid), `"payment_status":"paid"`, `"payment_status":"unpaid"`, 1))
	b.h.PostStripe(unpaid, false)
	b.waitProvisioned()

	ctx := context.Background()
	dl, err := b.h.NATS.JS.Stream(ctx, stream.DeadLetter)
	if err != nil {
		t.Fatal(err)
	}
	var letters []*jetstream.RawStreamMsg
	for seq := uint64(1); ; seq++ {
		m, err := dl.GetMsg(ctx, seq)
		if err != nil {
			break
		}
		letters = append(letters, m)
	}
	if len(letters) != 2 {
		t.Fatalf("%d dead letters, want 2", len(letters))
	}
	byEvent := map[string]nats.Header{}
	for _, l := range letters {
		byEvent[l.Header.Get(stream.HeaderEventID)] = l.Header
	}
	h := byEvent["evt_cs_bad"]
	if h == nil || h.Get(stream.HeaderDLConsumer) != stream.ProvisionConsumer ||
		!strings.Contains(h.Get(stream.HeaderDLError), "invalid_role") || !strings.Contains(h.Get(stream.HeaderDLError), "request id req_") {
		t.Fatalf("dead letter of the refused membership: %v", h)
	}
	if h := byEvent["evt_cs_junk"]; h == nil || !strings.Contains(h.Get(stream.HeaderDLError), "not an email address") {
		t.Fatalf("dead letter of the bad email: %v", h)
	}
	var outcome, lastErr string
	if err := b.h.Pool.QueryRow(ctx, "SELECT outcome, last_error FROM provisioning_tasks WHERE task_key = 'guest:dee@example.com'").Scan(&outcome, &lastErr); err != nil {
		t.Fatal(err)
	}
	if outcome != provision.OutcomeFailed || !strings.Contains(lastErr, "invalid_role") {
		t.Fatalf("task outcome %s, error %q", outcome, lastErr)
	}
	if n := b.fake.CountCalls(http.MethodPost, "/user_management/magic_auth", 0); n != 0 {
		t.Fatalf("%d magic-auth calls after the membership was refused", n)
	}
	for _, u := range b.fake.Users() {
		if u.Email == "eve@example.com" {
			t.Fatal("an unpaid checkout provisioned its guest")
		}
	}
}

func TestConfigAndNaming(t *testing.T) {
	for _, cfg := range []provision.Config{
		{Mode: "sometimes"},
		{OrgName: "{nickname}'s place"},
		{OwnerRole: "big boss"},
		{Workers: 1000},
	} {
		if err := cfg.Check(); err == nil {
			t.Errorf("Config %+v accepted", cfg)
		}
	}
	if err := (provision.Config{}).Check(); err != nil {
		t.Errorf("defaults refused: %v", err)
	}
	for _, c := range []struct{ tmpl, first, last, email, want string }{
		{provision.OrgNameDefault, "Ana", "Lima", "ana@x.io", "Ana's Account"},
		{provision.OrgNameDefault, "", "", "bo.b@x.io", "bo.b's Account"},
		{"{name} ({email})", "Ana", "Lima", "ana@x.io", "Ana Lima (ana@x.io)"},
	} {
		if got := provision.OrgName(c.tmpl, c.first, c.last, c.email); got != c.want {
			t.Errorf("OrgName(%q, %q, %q, %q) = %q, want %q", c.tmpl, c.first, c.last, c.email, got, c.want)
		}
	}
	if m, err := provision.ParseMode("ALL"); err != nil || m != provision.All {
		t.Errorf("ParseMode(ALL) = %v, %v", m, err)
	}
	if _, err := provision.ParseMode("yes"); err == nil {
		t.Error("ParseMode(yes) accepted")
	}
}

// The provisioning durable deleted under a running provisioner (an
// operator's reset, a consumer lost in a cluster) is made again and
// provisioning goes on: it never stops quietly while serve runs.
func TestProvisionerMakesItsDurableAgainWhenItIsDeleted(t *testing.T) {
	t.Parallel()
	b := setup(t, provision.Guests, workosfake.Options{})
	// The durable is made again a second or so after it is lost: what
	// arrives meanwhile must not be skipped.
	b.retryMin = 2 * time.Second
	b.start(nil)
	b.h.PostStripe(booking("evt_cs_a", "cs_a", "ada@example.com", "Ada Lovelace"), false)
	b.waitProvisioned()
	ctx := context.Background()
	syncdtest.Eventually(t, 30*time.Second, "the provisioner to have seen its ack floor", func() bool {
		c, err := b.h.NATS.JS.Consumer(ctx, stream.Webhooks, stream.ProvisionConsumer)
		return err == nil && provision.AckFloor(b.running) >= c.CachedInfo().AckFloor.Stream && c.CachedInfo().AckFloor.Stream > 0
	})

	if err := b.h.NATS.JS.DeleteConsumer(ctx, stream.Webhooks, stream.ProvisionConsumer); err != nil {
		t.Fatal(err)
	}
	b.h.PostStripe(booking("evt_cs_b", "cs_b", "grace@example.com", "Grace Hopper"), false)
	syncdtest.Eventually(t, 30*time.Second, "the provisioning durable made again", func() bool {
		_, err := b.h.NATS.JS.Consumer(ctx, stream.Webhooks, stream.ProvisionConsumer)
		return err == nil
	})
	b.waitProvisioned()
	b.checkOneOfEach("grace@example.com", "Grace")
	b.checkOneOfEach("ada@example.com", "Ada")
}
