# Two commands matter on a fresh machine: `make demo` and `make test`. Everything else is what they call.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
SCENARIO ?= healthy
# Traffic provider of the demo: istio (VirtualService) or gatewayapi (HTTPRoute).
PROVIDER ?= istio
PYTEST_ARGS ?=
# Parallel test workers, each with its own sandbox; the e2e scenarios run one at a time on one of them.
TEST_WORKERS ?= 3

.PHONY: help venv tools images image kind-e2e crds lint unit integration e2e test demo sandbox-up sandbox-down bench clean

help:
	@echo "make demo      run a real rollout in the local sandbox (SCENARIO=$(SCENARIO) PROVIDER=$(PROVIDER))"
	@echo "make test      lint, type-check and run unit, integration and e2e tests against the sandbox"
	@echo "make tools     build/unpack the pinned control-plane binaries and Prometheus, fetch Istio's and Gateway API's CRDs"
	@echo "make image     build the operator image (and the real node's model-server and pause images), cached"
	@echo "make kind-e2e  with Docker and kind: the operator image and chart on a kind cluster (docs/kind.md)"
	@echo "make crds      regenerate crds/ from the pydantic models"
	@echo "make bench     run the benchmarks (detection latency, queries per tick, writes, memory)"

$(BIN)/.installed: pyproject.toml constraints.txt
	@echo "==> python: creating $(VENV) with $(PYTHON) and installing pinned dependencies"
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@$(BIN)/pip install -q --upgrade 'pip>=24,<26'
	@$(BIN)/pip install -q -c constraints.txt -e '.[dev]'
	@touch $@

venv: $(BIN)/.installed

tools: venv
	@echo "==> tools: pinned binaries and Istio's and Gateway API's CRDs (first run builds/fetches them with Go; later runs reuse the cache)"
	@$(BIN)/modelrollout tools

# The images are built locally (Debian base by debootstrap, the repository's Dockerfile) and cached by hash.
images: venv
	@echo "==> images: operator, model-server and pause (first run bootstraps Debian and builds; later runs reuse the cache)"
	@$(BIN)/modelrollout images

image: images

# Needs Docker, kind and a registry for kind's node image: it cannot run on the development machine (docs/kind.md).
KIND_CLUSTER ?= modelrollout-e2e
OPERATOR_IMAGE ?= modelrollout/operator:dev
kind-e2e: venv tools
	@command -v kind >/dev/null && command -v docker >/dev/null || { echo "kind-e2e needs docker and kind on PATH" >&2; exit 1; }
	docker build --tag $(OPERATOR_IMAGE) .
	kind get clusters | grep -qx $(KIND_CLUSTER) || kind create cluster --name $(KIND_CLUSTER) --wait 120s
	kind load docker-image $(OPERATOR_IMAGE) --name $(KIND_CLUSTER)
	kind get kubeconfig --name $(KIND_CLUSTER) > .kind-kubeconfig
	$$($(BIN)/python -c 'from modelrollout.sandbox import tools; print(tools.binary("helm"))') upgrade --install modelrollout charts/modelrollout-operator --kubeconfig .kind-kubeconfig \
	  --namespace modelrollout-system --create-namespace \
	  --set image.repository=$(firstword $(subst :, ,$(OPERATOR_IMAGE))) \
	  --set image.tag=$(lastword $(subst :, ,$(OPERATOR_IMAGE))) --set image.pullPolicy=Never --wait
	MODELROLLOUT_TEST_KUBECONFIG=$(CURDIR)/.kind-kubeconfig $(BIN)/python -m pytest tests/integration -m integration $(PYTEST_ARGS)

crds: venv
	@$(BIN)/modelrollout crds --output crds/
	@cp crds/modelrollout.yaml charts/modelrollout-operator/crds/modelrollout.yaml
	@$(BIN)/modelrollout docs reference --output docs/reference.md

lint: venv
	@echo "==> lint: ruff, mypy --strict and the import contracts (layers and I/O edges)"
	@$(BIN)/ruff check operator tests bench
	@$(BIN)/ruff format --check operator tests bench
	@$(BIN)/mypy
	@$(BIN)/mypy bench
	@$(BIN)/lint-imports --no-cache

unit: venv
	@echo "==> unit tests (pure core, no I/O)"
	@$(BIN)/python -m pytest tests/unit $(PYTEST_ARGS)

integration: tools
	@echo "==> integration tests (real kube-apiserver, etcd, controller-manager, scheduler, kwok, Prometheus)"
	@$(BIN)/python -m pytest tests/integration $(PYTEST_ARGS)

e2e: tools
	@echo "==> e2e tests (full sandbox: operator, fleet, traffic, Prometheus)"
	@$(BIN)/python -m pytest tests/e2e $(PYTEST_ARGS)

# Images first, outside pytest (a cold build takes minutes); where they cannot be built, the realnode tests say why.
test: lint tools
	-@$(BIN)/modelrollout images
	@echo "==> tests: unit, integration and e2e ($(TEST_WORKERS) workers, one sandbox each; the real node's on the e2e worker)"
	@$(BIN)/python -m pytest tests -n $(TEST_WORKERS) --dist load --no-loadscope-reorder --cov --cov-report= $(PYTEST_ARGS)
	@echo "==> line and branch coverage of the pure core"
	@$(BIN)/coverage report --skip-empty \
		--include='*/plan/*,*/traffic/*,*/workloads/*,*/analysis/judges*,*/analysis/sequential*,*/analysis/distributions*,*/analysis/verdicts*' \
		| grep -v 'empty files skipped'
	@$(BIN)/coverage report --skip-empty | grep '^TOTAL' | sed 's/^TOTAL/whole package/'

demo: tools
	@$(BIN)/modelrollout demo --scenario examples/scenarios/$(SCENARIO).yaml --provider $(PROVIDER)

sandbox-up: tools
	@$(BIN)/modelrollout sandbox up

sandbox-down: venv
	@$(BIN)/modelrollout sandbox down

bench: tools
	@$(BIN)/python -m bench $(BENCH_ARGS)

clean:
	rm -rf $(VENV) .sandbox .mypy_cache .ruff_cache .pytest_cache .coverage
