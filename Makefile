# Two commands on a fresh machine: `make demo` (a training run on synthetic-shapes) and `make test`. Both create .venv when missing.
# PyTorch: the first install takes $(TORCH) (the CPU build where a local wheel exists); override it, e.g.
#   make test TORCH="torch==2.13.0 --index-url https://download.pytorch.org/whl/cu128"
# An existing torch in .venv is kept, and nothing below asks pip for another one.
PYTHON ?= python3
VENV ?= .venv
TORCH ?= torch==2.13.0
BIN := $(VENV)/bin
STAMP := $(VENV)/.convscale-installed

.PHONY: demo test docs lint bench clean

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@$(BIN)/python -c "import torch" 2>/dev/null || $(BIN)/pip install -q $(TORCH)
	$(BIN)/pip install -q -e ".[test]"
	@touch $@

# the main job: train the default model on the built-in synthetic-shapes dataset (no download), into runs/
demo: $(STAMP)
	$(BIN)/convscale train

test: $(STAMP)
	$(BIN)/ruff check src tests benchmarks scripts
	$(BIN)/python -m pytest -q

# the documentation site (site/), built with --strict: a broken link or a missing API reference fails
DOCS_STAMP := $(VENV)/.convscale-docs-installed
$(DOCS_STAMP): $(STAMP)
	$(BIN)/pip install -q -e ".[docs]"
	@touch $@

docs: $(DOCS_STAMP)
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --quiet

# the measured-speed table, plots and per-layer times of results/bench (a few minutes on 2 CPU cores)
bench: $(STAMP)
	$(BIN)/convscale bench efficientnet_b0 tf_efficientnetv2_b0 convnext_atto resnet50 repvgg_a0 \
		mobilenetv3_large_100 ghostnet_100 --per-layer --out results/bench

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks scripts
	$(BIN)/ruff format --check src tests benchmarks scripts

clean:
	rm -rf $(VENV) build dist site src/*.egg-info .pytest_cache .ruff_cache
