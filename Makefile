# The two commands of the README:
#   make demo   set up (first time) and open napari with the plugin and a synthetic CT
#   make test   set up (first time) and run the test suite (GUI tests under Xvfb)
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: setup demo test lint bench clean-venv

$(STAMP): pyproject.toml
	PYTHON=$(PYTHON) VENV=$(VENV) ./scripts/install_system_deps.sh
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	# PyTorch: any torch>=2.2 works. From plain PyPI a Linux `torch` is the multi-GB CUDA build;
	# for a CPU-only one: make setup TORCH_INDEX=https://download.pytorch.org/whl/cpu
	$(BIN)/python -m pip install -q $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX)) "torch==2.13.0" \
		|| $(BIN)/python -m pip install -q $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX)) "torch>=2.2"
	$(BIN)/python -m pip install -q -e ".[testing]"
	touch $(STAMP)

setup: $(STAMP)

# without a display that answers, `livertumor demo --screenshot` runs itself under xvfb-run
demo: $(STAMP)
	@$(BIN)/livertumor demo $${SCREENSHOT:+--screenshot "$$SCREENSHOT"}

# the tests run in pytest-xdist workers, one a core up to four (torch keeps to one thread in each)
test: $(STAMP)
	$(BIN)/python -m pytest -q -n auto --maxprocesses 4 --dist worksteal tests

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

bench: $(STAMP)
	for b in benchmarks/bench_*.py; do $(BIN)/python $$b || exit 1; done

clean-venv:
	rm -rf $(VENV)
