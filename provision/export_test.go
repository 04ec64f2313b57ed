package provision

// The provisioning tests are an external package (they run the service
// harness, which imports this package); these give them the task steps
// and the kill hook.

var ErrKilled = errKilled

const (
	StepUser         = stepUser
	StepOrganization = stepOrganization
	StepMembership   = stepMembership
	StepDone         = stepDone
	OutcomeCreated   = outcomeCreated
	OutcomeFailed    = outcomeFailed
)

// SetAfterStep installs the hook run after each stored step.
func SetAfterStep(p *Provisioner, f func(key, step string) error) { p.afterStep = f }

// Subjects is what p's durable reads.
func Subjects(p *Provisioner) []string { return p.cfg.subjects() }

// AckFloor is the ack floor p last saw of its durable.
func AckFloor(p *Provisioner) uint64 { return p.ackFloor.Load() }
