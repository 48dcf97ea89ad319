# Lifeboat. `make test` installs and starts what the tests need (see
# scripts/test-services.sh), runs every test, and stops the services.
GO ?= go
STATE ?= /tmp/lifeboat-test-services
export STATE

.PHONY: build test unit race lint bench fuzz clean

build:
	$(GO) build -o bin/lifeboat ./cmd/lifeboat

test: lint
	scripts/test-services.sh start
	set -a; . $(STATE)/env; set +a; \
	  $(GO) test -race -count=1 -timeout 20m ./... ; rc=$$?; \
	  scripts/test-services.sh stop; exit $$rc

unit:
	$(GO) test -short ./...

race:
	$(GO) test -race -short ./...

lint:
	@test -z "$$(gofmt -l cmd internal)" || { gofmt -l cmd internal; echo "gofmt needed"; exit 1; }
	$(GO) vet ./...

bench:
	bench/run.sh

fuzz:
	scripts/fuzz.sh 30s

clean:
	rm -rf bin
