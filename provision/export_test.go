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
