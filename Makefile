# The project's verbs. Every target sets up the virtual environment first.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-$(shell sha256sum pyproject.toml | cut -c1-12)

SPECTRAL := .tools/node_modules/.bin/spectral

.PHONY: run run-tls test lint bench demo clean openapi

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@$(BIN)/python -m pip install -q --upgrade pip
	@$(BIN)/python -m pip install -q -e '.[dev]'
	@rm -f $(VENV)/.installed-*
	@touch $@

run: $(STAMP)  ## start the hub with demo partners, simulators, API docs
	$(BIN)/knooppunt run --demo

PKI := var/pki
run-tls: $(STAMP)  ## the demo over HTTPS with partner certificates (mutual TLS) from a development CA
	@test -f $(PKI)/ca.pem || $(BIN)/knooppunt pki init --dir $(PKI)
	@$(BIN)/knooppunt pki crl --dir $(PKI) >/dev/null  # a fresh revocation list each start (revoked stay revoked)
	KNOOPPUNT_TLS__CERTFILE=$(PKI)/server.pem KNOOPPUNT_TLS__KEYFILE=$(PKI)/server-key.pem \
	KNOOPPUNT_TLS__CA_CERTS=$(PKI)/ca.pem KNOOPPUNT_TLS__CRL_FILES='["$(PKI)/crl.pem"]' \
	KNOOPPUNT_PUBLIC_URL=https://127.0.0.1:8443 \
	$(BIN)/knooppunt run --demo --port 8443
	@# try: curl --cacert $(PKI)/ca.pem --cert $(PKI)/duo.pem --key $(PKI)/duo-key.pem https://127.0.0.1:8443/v1/inbox
	@# revoke: knooppunt pki revoke duo --dir $(PKI) (the running hub refuses it within 5 minutes)

demo: $(STAMP)  ## drive a realistic scenario and print what went where
	$(BIN)/knooppunt demo

$(SPECTRAL):
	@npm install --silent --no-audit --no-fund --prefix .tools @stoplight/spectral-cli@6 >/dev/null

test: $(STAMP) $(SPECTRAL)  ## the whole test suite
	$(BIN)/pytest

lint: $(STAMP)  ## ruff, mypy (strict), import-linter contracts
	$(BIN)/ruff check hub adapters tests bench
	$(BIN)/ruff format --check hub adapters tests bench
	$(BIN)/mypy
	$(BIN)/lint-imports

bench: $(STAMP)  ## benchmarks with a baseline measured in the same run
	$(BIN)/python -m bench.ingest
	$(BIN)/python -m bench.lookup
	$(BIN)/python -m bench.directory
	$(BIN)/python -m bench.audit
	$(BIN)/python -m bench.convert

openapi: $(STAMP)  ## regenerate the committed OpenAPI document and WSDL
	$(BIN)/python -m hub.api.contracts write

clean:
	rm -rf $(VENV) var .tools
