# Descent: one command per job. Every target installs what it needs first.
# `make book` builds the site, `make test` runs every test, `make lab` opens the exercises.

PYTHON      ?= python3.11
VENV        := .venv
BIN         := $(VENV)/bin
# The stamp is keyed on the dependency files: it is remade (and pip re-run) only when they change.
STAMP       := $(VENV)/.stamp-installed
MATHJAX     := book/_mathjax/mathjax/tex-chtml.js
SUBMISSIONS ?= submissions
RESULTS     ?= results
PYTEST_ARGS ?=

.PHONY: install book test lint format lab grade clean help

help:
	@echo "make book   build the site into book/_build/html"
	@echo "make test   run the whole test suite"
	@echo "make lab    JupyterLab on your own copy of the exercises (work/)"
	@echo "make grade SUBMISSIONS=dir [RESULTS=dir]   grade a class"
	@echo "make lint | make format | make clean"

install: $(STAMP)

$(STAMP): requirements.lock pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements.lock
	$(BIN)/python -m pip install --quiet --no-deps --no-build-isolation -e .
	touch $@

# MathJax is served from the site itself so that math renders offline. Only what the site uses
# is shipped: the tex-chtml component, its CHTML fonts, and the TeX extensions it autoloads
# (\boldsymbol, \cancel, ...); the browser test fails on any request the site cannot answer.
# It is copied into book/_mathjax (NOT book/_static: jupyter-book 1 injects every .js under _static into every page).
$(MATHJAX):
	command -v npm >/dev/null || { echo "npm is needed for MathJax: apt-get install npm"; exit 1; }
	mkdir -p build/npm book/_mathjax
	npm install --silent --no-audit --no-fund --prefix build/npm mathjax@3
	rm -rf book/_mathjax/mathjax
	mkdir -p book/_mathjax/mathjax/input/tex book/_mathjax/mathjax/output/chtml/fonts
	cp build/npm/node_modules/mathjax/es5/tex-chtml.js book/_mathjax/mathjax/
	cp -r build/npm/node_modules/mathjax/es5/input/tex/extensions book/_mathjax/mathjax/input/tex/
	cp -r build/npm/node_modules/mathjax/es5/output/chtml/fonts/woff-v2 \
	  book/_mathjax/mathjax/output/chtml/fonts/

book: $(STAMP) $(MATHJAX)
	$(BIN)/jupyter-book build -W -n --keep-going book

test: $(STAMP) $(MATHJAX)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

# A student's working copy: copied once, never overwriting their work or editing book/.
lab: $(STAMP)
	mkdir -p work
	for nb in book/ch*/exercises.ipynb; do \
	  dest=work/$$(basename $$(dirname $$nb)).ipynb; \
	  test -e $$dest || cp $$nb $$dest; \
	done
	$(BIN)/jupyter lab --notebook-dir=work

grade: $(STAMP)
	$(BIN)/python -m autograder grade $(SUBMISSIONS) --out $(RESULTS)

clean:
	rm -rf book/_build book/_mathjax build .jupyter_cache .pytest_cache .ruff_cache
