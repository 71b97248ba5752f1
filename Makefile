# kpy's developer entry points. `make install` builds .venv from nothing;
# every other target uses it.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PROTOS := $(shell find proto -name '*.proto' | sort)
# Only files that declare a service get gRPC stubs.
GRPC_PROTOS := $(shell grep -l '^service ' $(PROTOS) 2>/dev/null)

.PHONY: install proto proto-check lint test test-unit test-integration clean bench

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

proto-check: proto
	@git diff --exit-code --stat -- kpy || \
		(echo "generated code in kpy/ differs from proto/: run 'make proto' and commit the result" && exit 1)

lint: install
	$(BIN)/ruff check kpy cmd tests bench
	$(BIN)/ruff format --check kpy cmd tests bench
	$(BIN)/mypy
	$(BIN)/lint-imports

# The README's test command: lint, generated-code drift, then every test.
test: lint proto-check
	$(BIN)/pytest

test-unit: install
	$(BIN)/pytest tests/unit

test-integration: install
	$(BIN)/pytest tests/integration

# kpy against raw etcd, every figure measured in the same run (under a minute);
# writes bench/results/<UTC time>.json and latest.json. BENCH_FLAGS=--quick: a smoke run.
bench: install
	$(BIN)/python -m bench.run $(BENCH_FLAGS)

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
