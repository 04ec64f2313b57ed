package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"sync"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/syncd/syncd/provision"
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

func (p *provisioning) register(fs *flag.FlagSet) {
	fs.StringVar(&p.mode, "provision", string(provision.Guests), "off, guests or all: provision WorkOS accounts for paid bookings' guests (all: also a personal organization for every new user); needs WORKOS_API_KEY (env SYNCD_PROVISION)")
	fs.StringVar(&p.orgName, "provision-org-name", provision.OrgNameDefault, "name of a provisioned personal organization; {first_name}, {last_name}, {name}, {email} (env SYNCD_PROVISION_ORG_NAME)")
	fs.StringVar(&p.orgType, "provision-org-type", provision.OrgTypeDefault, "metadata type of a provisioned personal organization (env SYNCD_PROVISION_ORG_TYPE)")
	fs.StringVar(&p.ownerRole, "provision-owner-role", provision.OwnerRoleDefault, "role slug of the owner membership; must exist in the WorkOS environment (env SYNCD_PROVISION_OWNER_ROLE)")
	fs.IntVar(&p.workers, "provision-workers", provision.WorkersDefault, "provisioning tasks run at once (env SYNCD_PROVISION_WORKERS)")
}

// setup validates the flags; consumeOn says whether this process runs
// consumers (and has Postgres).
func (p *provisioning) setup(consumeOn bool) error {
	mode, err := provision.ParseMode(p.mode)
	if err != nil {
		return usageError("--provision: %v", err)
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

// start runs the provisioner in the background until ctx is done.
func (p *provisioning) start(ctx context.Context, wg *sync.WaitGroup, errc chan<- error, pool *pgxpool.Pool, js jetstream.JetStream, log *slog.Logger, reg prometheus.Registerer) error {
	if !p.on {
		return nil
	}
	p.api.Registerer = reg
	api, err := workosapi.New(p.api)
	if err != nil {
		return usageError("%v", err)
	}
	p.cfg.Logger, p.cfg.Registerer = log, reg
	prov, err := provision.New(p.cfg, pool, js, api)
	if err != nil {
		return usageError("%v", err)
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		if err := prov.Run(ctx); err != nil {
			errc <- fmt.Errorf("provisioning: %w", err)
		}
	}()
	return nil
}
