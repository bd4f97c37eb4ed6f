# Two entry points (see README):  make book  |  make test
# Both create .venv and install ltdd_utils with its dependencies first.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
PRESET ?= cpu
# The data root: $LTDD_DATA if set, else ../shared/data when it exists beside the checkout.
export LTDD_DATA ?= $(if $(wildcard ../shared/data),$(abspath ../shared/data),)

.PHONY: setup book reproduce build-book test clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e ".[test]"
	touch $@

# The site's browser test needs a Chromium: Debian's package where apt-get runs as root, else the test says why
# it skipped (LTDD_CHROMIUM names another browser).
setup: $(VENV)/.installed
	@command -v chromium >/dev/null || command -v chromium-browser >/dev/null || [ -n "$${LTDD_CHROMIUM:-}" ] || \
	  { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null && apt-get install -y -q chromium >/dev/null 2>&1; } || \
	  echo "no Chromium could be installed: the site's browser test will be skipped"

reproduce: setup
	$(PY) -m ltdd_utils reproduce --preset $(PRESET)

build-book: setup
	$(PY) -m ltdd_utils claims
	$(PY) -m ltdd_utils sets
	$(VENV)/bin/jupyter-book build . --toc book/_toc.yml --config _config.yml -W -n --keep-going

book: reproduce build-book
	@echo "book: open _build/html/index.html"

test: setup
	$(PY) -m pytest -q

clean:
	rm -rf _build .failed
