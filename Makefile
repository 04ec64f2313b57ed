SQLC = CGO_ENABLED=0 go tool -modfile=tools.mod sqlc
TESTFLAGS ?=

.PHONY: build generate check-generated test run bench fuzz lint reliability

# The version --version prints: the tag or commit the build is made from.
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo devel)

build:
	go build -ldflags='-X main.version=$(VERSION)' -o bin/syncd ./cmd/syncd

generate:
	$(SQLC) generate

# Fails (non-zero) if the sqlc-generated code is stale.
check-generated:
	$(SQLC) diff

# Each fuzz target (package:name), with its seed corpus in testdata/fuzz.
FUZZ_TARGETS = ingest:FuzzVerifyWorkOS ingest:FuzzVerifyStripe events:FuzzDecodeWorkOS \
	events:FuzzDecodeStripe events:FuzzParseTime consumers:FuzzMeetingMetadata \
	consumers:FuzzDecodeMembers
FUZZTIME ?= 30s

# scripts/chromium.sh installs headless Chromium for the console's browser
# tests when it is missing and it can (root, apt); otherwise they skip.
test: check-generated
	scripts/chromium.sh
	scripts/postgres.sh test -- go test -count=1 -timeout 9m ./... $(TESTFLAGS)
	@$(MAKE) --no-print-directory fuzz FUZZTIME=3s

run: build
	@set -a; if [ -f .env ]; then . ./.env; else . ./.env.example; fi; set +a; \
	port=$${HTTP_ADDR##*:}; \
	echo "syncd: webhooks at http://localhost:$$port/webhooks/workos, /webhooks/stripe, /webhooks/stripe/connect"; \
	echo "syncd: post a signed sample:  ./bin/syncd send --fresh-id workos testdata/fixtures/workos/user.created.json"; \
	echo "syncd: or with curl:          curl -H \"WorkOS-Signature: \$$(./bin/syncd sign workos testdata/fixtures/workos/user.created.json)\" --data-binary @testdata/fixtures/workos/user.created.json localhost:$$port/webhooks/workos"; \
	echo "syncd: (send and sign read the secrets from the environment: set -a; . ./.env.example; set +a)"; \
	echo "syncd: other commands (status, dlq, replay) reach this one with the same env and, unless DATABASE_URL is set, DATABASE_URL=postgres://postgres@127.0.0.1:55433/postgres"; \
	scripts/postgres.sh run -- ./bin/syncd serve

bench:
	scripts/postgres.sh test -- go run ./bench

# Runs every fuzz target for FUZZTIME (make test: 3s each).
fuzz:
	@for t in $(FUZZ_TARGETS); do \
		pkg=$${t%%:*}; fn=$${t##*:}; \
		echo "go test -run=^\$$ -fuzz=^$$fn\$$ -fuzztime=$(FUZZTIME) ./$$pkg"; \
		go test -run='^$$' -fuzz="^$$fn\$$" -fuzztime=$(FUZZTIME) ./$$pkg || exit 1; \
	done

lint:
	go vet ./...
	test -z "$$(gofmt -l .)"

# Fault scenarios against real processes (syncd, nats-server, Postgres),
# then the convergence property test at 10,000 histories; writes
# docs/RELIABILITY.md and fails if any threshold is missed.
reliability:
	scripts/postgres.sh test -- go run ./reliability $(RELIABILITYFLAGS)
