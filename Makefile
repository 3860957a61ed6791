# Set-up and everyday commands. Everything installs into .venv from the package registries, pinned by
# constraints.txt; the first target run on a fresh machine creates it.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
CHECKED := src tests benchmarks scripts

.PHONY: install demo test lint format bench clean

install: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -c 'import sys; sys.exit("Python >= 3.10 is required") if sys.version_info < (3, 10) else None'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --constraint constraints.txt --editable '.[dev,model,ray]'
	touch $(STAMP)

# The main job on the embedded default: ToonWorld episodes (with ground truth and contact sheets), curated
# into scored, filtered clips with a manifest and an HTML report.
demo: install
	$(BIN)/anisora toonworld --out demo/raw --episodes 3 --seconds 20 --size 320x180 --seed 0 --contact-sheet
	$(BIN)/anisora curate demo/raw --out demo/curated

test: lint
	$(BIN)/pytest -q

lint: install
	$(BIN)/ruff check $(CHECKED)
	$(BIN)/ruff format --check $(CHECKED)

format: install
	$(BIN)/ruff check --fix $(CHECKED)
	$(BIN)/ruff format $(CHECKED)

bench: install
	$(BIN)/python benchmarks/bench_foundation.py
	$(BIN)/python benchmarks/bench_curate.py
	$(BIN)/python benchmarks/bench_generate.py

clean:
	rm -rf $(VENV) demo .pytest_cache .ruff_cache src/*.egg-info
