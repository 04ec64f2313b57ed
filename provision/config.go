package provision

import (
	"fmt"
	"log/slog"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/syncd/syncd/stream"
)

// Mode says which events provision accounts.
type Mode string

const (
	// Off: no provisioning consumer.
	Off Mode = "off"
	// Guests: paid bookings by guests without a WorkOS user.
	Guests Mode = "guests"
	// All: guests, and a personal organization for every user.created
	// whose user has none.
	All Mode = "all"
)

// ParseMode reads SYNCD_PROVISION.
func ParseMode(s string) (Mode, error) {
	switch m := Mode(strings.ToLower(strings.TrimSpace(s))); m {
	case Off, Guests, All:
		return m, nil
	}
	return "", fmt.Errorf("provision mode %q: want off, guests or all", s)
}

// Defaults of Config.
const (
	WorkersDefault = 4
	// OrgNameDefault names a personal organization after its owner.
	OrgNameDefault = "{first_name}'s Account"
	// OrgTypeDefault is the app's type for a personal organization, kept
	// in the organization's metadata "type".
	OrgTypeDefault   = "member_personal"
	OwnerRoleDefault = "owner"
)

// PersonalTypesDefault are the organization types (metadata "type") that
// count as a user's personal organization.
var PersonalTypesDefault = []string{"member_personal", "patient_personal", "expert_individual"}

// Config configures the provisioning consumer.
type Config struct {
	Mode Mode
	// Durable is the JetStream consumer it reads (default
	// stream.ProvisionConsumer).
	Durable string
	// Workers is how many tasks run at once.
	Workers int
	// OrgName is the template of a personal organization's name, with
	// {first_name}, {last_name}, {name} and {email}. A missing first name
	// is the email's local part.
	OrgName string
	// OrgType goes into a created organization's metadata "type".
	OrgType string
	// PersonalTypes are the metadata types that make an existing
	// organization personal.
	PersonalTypes []string
	// OwnerRole is the role slug of the owner membership; it must exist in
	// the WorkOS environment.
	OwnerRole string
	// RetryMin and RetryMax bound the backoff of transient failures.
	RetryMin, RetryMax time.Duration
	// AckWait is the durable's; a running task keeps extending it.
	AckWait time.Duration
	// StopTimeout bounds how long a stop waits for the tasks in flight.
	StopTimeout time.Duration
	// DeliverAll starts a new durable at the beginning of WEBHOOKS (the
	// replay window) instead of with the events that arrive after it.
	DeliverAll bool
	Logger     *slog.Logger
	Registerer prometheus.Registerer
}

func (c Config) withDefaults() Config {
	if c.Mode == "" {
		c.Mode = Guests
	}
	if c.Durable == "" {
		c.Durable = stream.ProvisionConsumer
	}
	if c.Workers == 0 {
		c.Workers = WorkersDefault
	}
	if c.OrgName == "" {
		c.OrgName = OrgNameDefault
	}
	if c.OrgType == "" {
		c.OrgType = OrgTypeDefault
	}
	if c.PersonalTypes == nil {
		c.PersonalTypes = PersonalTypesDefault
	}
	if c.OwnerRole == "" {
		c.OwnerRole = OwnerRoleDefault
	}
	if c.RetryMin == 0 {
		c.RetryMin = time.Second
	}
	if c.RetryMax == 0 {
		c.RetryMax = 2 * time.Minute
	}
	if c.AckWait == 0 {
		c.AckWait = 2 * time.Minute
	}
	if c.StopTimeout == 0 {
		c.StopTimeout = 30 * time.Second
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Registerer == nil {
		c.Registerer = prometheus.NewRegistry()
	}
	return c
}

var placeholder = regexp.MustCompile(`\{[^{}]*\}`)

func (c Config) validate() error {
	switch {
	case c.Mode != Guests && c.Mode != All:
		return fmt.Errorf("provision: Mode %q: want guests or all", c.Mode)
	case c.Workers < 1 || c.Workers > 64:
		return fmt.Errorf("provision: Workers %d outside 1..64", c.Workers)
	case c.RetryMin <= 0 || c.RetryMax < c.RetryMin:
		return fmt.Errorf("provision: retry backoff %s..%s is not a range", c.RetryMin, c.RetryMax)
	case c.AckWait < time.Second:
		return fmt.Errorf("provision: AckWait %s below 1s", c.AckWait)
	case c.StopTimeout < 0:
		return fmt.Errorf("provision: StopTimeout %s is negative", c.StopTimeout)
	case strings.TrimSpace(c.OwnerRole) == "" || strings.ContainsAny(c.OwnerRole, " \t\r\n"):
		return fmt.Errorf("provision: OwnerRole %q is not a role slug", c.OwnerRole)
	}
	for _, p := range placeholder.FindAllString(c.OrgName, -1) {
		if !slices.Contains([]string{"{first_name}", "{last_name}", "{name}", "{email}"}, p) {
			return fmt.Errorf("provision: org name template %q: unknown placeholder %s (want {first_name}, {last_name}, {name} or {email})", c.OrgName, p)
		}
	}
	if strings.TrimSpace(c.OrgName) == "" {
		return fmt.Errorf("provision: org name template %q is blank", c.OrgName)
	}
	return nil
}

// Check reports what New would reject in cfg.
func (c Config) Check() error { return c.withDefaults().validate() }

// subjects are the WEBHOOKS subjects the durable reads in a mode.
func (c Config) subjects() []string {
	s := []string{
		stream.Subject(stream.SourceStripe, "checkout.session.completed"),
		stream.Subject(stream.SourceStripe, "checkout.session.async_payment_succeeded"),
		stream.Subject(stream.SourceStripe, "payment_intent.succeeded"),
	}
	if c.Mode == All {
		s = append(s, stream.Subject(stream.SourceWorkOS, "user.created"))
	}
	return s
}
