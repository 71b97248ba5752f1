# A multi-process deployment on one machine that mirrors deploy/README.md's
# three machines: three etcd members, two API servers, two controller
# managers, two schedulers (one of each leads) and three agents.
# Included by the Makefile; tests/e2e/test_ha.py drives it.
HA_DIR ?= $(HOME)/.kpy/ha
HA_PORT ?= 7443

.PHONY: ha-up ha-down ha-status

ha-up: install
	$(BIN)/kpy up --ha --dir $(HA_DIR) --port $(HA_PORT)

ha-status:
	$(BIN)/kpy status --dir $(HA_DIR)

ha-down:
	$(BIN)/kpy down --dir $(HA_DIR)
