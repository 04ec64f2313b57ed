package main

import (
	"github.com/spf13/cobra"

	"github.com/syncd/syncd/provision"
	"github.com/syncd/syncd/service"
	"github.com/syncd/syncd/workosapi"
)

// provisioning is serve's optional provisioning consumer: WorkOS accounts
// for guests of paid bookings (and, in mode all, personal organizations
// for every new user). On when WORKOS_API_KEY is set and SYNCD_PROVISION
// is not off, in the processes that consume.
type provisioning struct {
	mode      string
	orgName   string
	orgType   string
	ownerRole string
	workers   int
	on        bool
	cfg       provision.Config
	api       workosapi.Config
}

func (p *provisioning) register(c *cobra.Command) {
	d := declare(c)
	d.String(&p.mode, "provision", "SYNCD_PROVISION", string(provision.Guests), "off, guests or all: provision WorkOS accounts for paid bookings' guests (all: also a personal organization for every new user); needs WORKOS_API_KEY", func(v string) error { _, err := provision.ParseMode(v); return err })
	d.String(&p.orgName, "provision-org-name", "SYNCD_PROVISION_ORG_NAME", provision.OrgNameDefault, "name of a provisioned personal organization; {first_name}, {last_name}, {name}, {email}", fieldCheck(provision.Config{}, func(c *provision.Config, v string) { c.OrgName = v }))
	d.String(&p.orgType, "provision-org-type", "SYNCD_PROVISION_ORG_TYPE", provision.OrgTypeDefault, "metadata type of a provisioned personal organization")
	d.String(&p.ownerRole, "provision-owner-role", "SYNCD_PROVISION_OWNER_ROLE", provision.OwnerRoleDefault, "role slug of the owner membership; must exist in the WorkOS environment", fieldCheck(provision.Config{}, func(c *provision.Config, v string) { c.OwnerRole = v }))
	d.Int(&p.workers, "provision-workers", "SYNCD_PROVISION_WORKERS", provision.WorkersDefault, "provisioning tasks run at once", positive, fieldCheck(provision.Config{}, func(c *provision.Config, v int) { c.Workers = v }))
}

// setup validates the flags; consumeOn says whether this process runs
// consumers (and has Postgres).
func (p *provisioning) setup(consumeOn bool) error {
	mode, err := provision.ParseMode(p.mode)
	if err != nil {
		return badFlag("provision", ": %v", err)
	}
	key := env("WORKOS_API_KEY", "")
	if mode == provision.Off || key == "" || !consumeOn {
		return nil
	}
	p.cfg = provision.Config{Mode: mode, OrgName: p.orgName, OrgType: p.orgType, OwnerRole: p.ownerRole, Workers: p.workers}
	if err := p.cfg.Check(); err != nil {
		return usageError("%v", err)
	}
	p.api = workosapi.Config{APIKey: key, BaseURL: env("WORKOS_API_URL", "")}
	if err := p.api.Check(); err != nil {
		return usageError("%v", err)
	}
	p.on = true
	return nil
}

// config is the service's provisioning, nil when off.
func (p *provisioning) config() *service.Provisioning {
	if !p.on {
		return nil
	}
	return &service.Provisioning{Config: p.cfg, API: p.api}
}
