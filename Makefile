SQLC = CGO_ENABLED=0 go tool -modfile=tools.mod sqlc
TESTFLAGS ?=

.PHONY: build generate check-generated test run bench fuzz lint

build:
	go build -o bin/syncd ./cmd/syncd

generate:
	$(SQLC) generate

# Fails (non-zero) if the sqlc-generated code is stale.
check-generated:
	$(SQLC) diff

# scripts/chromium.sh installs headless Chromium for the console's browser
# tests when it is missing and it can (root, apt); otherwise they skip.
test: check-generated
	scripts/chromium.sh
	scripts/postgres.sh test -- go test -count=1 -timeout 9m ./... $(TESTFLAGS)

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

fuzz:
	go test -run=^$$ -fuzz=FuzzVerifyWorkOS -fuzztime=30s ./ingest
	go test -run=^$$ -fuzz=FuzzVerifyStripe -fuzztime=30s ./ingest
	go test -run=^$$ -fuzz=FuzzDecodeWorkOS -fuzztime=30s ./events
	go test -run=^$$ -fuzz=FuzzDecodeStripe -fuzztime=30s ./events

lint:
	go vet ./...
	test -z "$$(gofmt -l .)"
