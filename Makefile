# kpy's developer entry points. `make install` builds .venv from nothing;
# every other target uses it.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PROTOS := $(shell find proto -name '*.proto' | sort)
# Only files that declare a service get gRPC stubs.
GRPC_PROTOS := $(shell grep -l '^service ' $(PROTOS) 2>/dev/null)

.PHONY: install proto proto-check lint test test-unit test-integration clean bench up down

install: $(BIN)/kpyctl

$(BIN)/kpyctl: pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@echo "installing kpy and its test tools into $(VENV) (a minute on a fresh machine)..."
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	@touch $@

# Regenerate the Python messages (and their type stubs) from proto/.
# The generated code is committed; proto-check fails when it has drifted.
proto: install
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/python -m grpc_tools.protoc -I proto --python_out=. --mypy_out=quiet:. $(PROTOS)
	$(if $(GRPC_PROTOS),PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/python -m grpc_tools.protoc -I proto \
		--grpc_python_out=. --mypy_grpc_out=quiet:. $(GRPC_PROTOS))
	$(BIN)/python tools/proto_descriptions.py  # the comments `kpyctl explain` prints

proto-check: proto
	@git diff --exit-code --stat -- kpy || \
		(echo "generated code in kpy/ differs from proto/: run 'make proto' and commit the result" && exit 1)

lint: install
	$(BIN)/ruff check kpy cmd tests bench tools
	$(BIN)/ruff format --check kpy cmd tests bench tools
	$(BIN)/mypy
	$(BIN)/lint-imports

# The README's test command: lint, generated-code drift, then every test, on
# TEST_WORKERS pytest-xdist workers (a module's shared cluster stays on one
# worker, and tests that start a whole cluster run one at a time:
# tests/conftest.py). Most tests wait on processes and timers, so on 2 cores
# 3 workers finish sooner than 2 (with two busy loops beside the suite:
# 8m57s against 9m58s); more make timing tests contend.
TEST_WORKERS ?= 3
test: lint proto-check
	$(BIN)/pytest -n $(TEST_WORKERS) --dist loadgroup

test-unit: install
	$(BIN)/pytest tests/unit

test-integration: install
	$(BIN)/pytest tests/integration

# kpy against raw etcd, every figure measured in the same run (under a minute);
# writes bench/results/<UTC time>.json and latest.json. BENCH_FLAGS=--quick: a smoke run.
bench: install
	$(BIN)/python -m bench.run $(BENCH_FLAGS)

# The README's first command: a local cluster (etcd, API server, controller
# manager, scheduler, NODES agents) with the demo workload Running. The
# host's perl gets a working bignum first (deploy/host-perl.sh: only where
# it is broken and apt-get and root are at hand) for the seed's job-pi.yaml.
NODES ?= 2
CLUSTER_DIR ?= $(HOME)/.kpy/cluster
up: install
	@bash deploy/host-perl.sh
	$(BIN)/kpy up --nodes $(NODES) --dir $(CLUSTER_DIR)
	KPY_CONFIG=$(CLUSTER_DIR)/config $(BIN)/kpyctl apply -f examples/demo.yaml
	KPY_CONFIG=$(CLUSTER_DIR)/config $(BIN)/kpyctl rollout status deployment/hello --timeout 120
	KPY_CONFIG=$(CLUSTER_DIR)/config $(BIN)/kpyctl get pods,svc -o wide
	@ip=$$(KPY_CONFIG=$(CLUSTER_DIR)/config $(BIN)/kpyctl get svc hello -o jsonpath='{.spec.clusterIP}'); \
	pod=$$(KPY_CONFIG=$(CLUSTER_DIR)/config $(BIN)/kpyctl get pods -l app=hello -o jsonpath='{.items[0].metadata.name}'); \
	echo "the demo runs behind its Service hello ($$ip). Try:"; \
	echo "  curl http://$$ip/                                   # from this host, through kpy-proxy"; \
	echo "  KPY_CONFIG=$(CLUSTER_DIR)/config $(BIN)/kpyctl exec $$pod -- wget -qO- http://hello/   # by name, from inside a pod"; \
	echo "and stop it all with: make down"

down:
	$(BIN)/kpy down --dir $(CLUSTER_DIR)

include deploy/local.mk

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
