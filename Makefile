# hiresgan: two commands on a fresh machine, `make train` and `make test`. Each creates the
# virtual environment (.venv) on first use.
#
# TORCH pins the PyTorch build: the default is the CPU wheel (a bare `torch` requirement can pull a
# multi-GB CUDA build). On a GPU machine: make TORCH="torch==2.13.0 --index-url https://download.pytorch.org/whl/cu128" ...
PYTHON ?= python3
TORCH ?= torch==2.13.0
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
CONFIG ?= configs/digits.yaml
ARGS ?=
# DeepSpeed JIT-builds its CPU shared-memory op on first use; keep it with this venv so two venvs
# (e.g. CI and a checkout) do not rebuild it in turn under one lock in ~/.cache/torch_extensions.
export TORCH_EXTENSIONS_DIR ?= $(CURDIR)/$(VENV)/torch_extensions

.PHONY: venv train test test-fast lint quality-all eval-digits cas-digits bench bench-kernels gpu-check bench-data bench-metrics clean

$(STAMP): pyproject.toml Makefile
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q "$(TORCH)" || $(PY) -m pip install -q $(TORCH)
	$(PY) -m pip install -q -e ".[test]"
	touch $@

venv: $(STAMP)

## Train the embedded default (conditional StyleGAN2 on the bundled digits, 2 local ranks).
train: $(STAMP)
	$(PY) -m launch train $(CONFIG) $(ARGS)

## The whole test suite (CPU; multi-process DeepSpeed runs included).
test: $(STAMP)
	$(PY) -m pytest -q tests $(ARGS)

## Lint and format check (ruff, configured in pyproject.toml); CI runs it before the tests.
## `make format` rewrites the files in place.
lint: $(STAMP)
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

format: $(STAMP)
	$(PY) -m ruff check --fix .
	$(PY) -m ruff format .

## Tests without the multi-process training runs.
test-fast: $(STAMP)
	$(PY) -m pytest -q -m "not slow" tests $(ARGS)

## Class accuracy and digit coverage of the default run's export (needs `make train` first);
## fails (exit 1) below the bar: >= 90% class accuracy and all ten digits clearly drawn.
eval-digits: $(STAMP)
	$(PY) -m trainer.evaluation.digits_gate runs/digits/export --check --out runs/digits/eval-digits.json

## Classification Accuracy Score of the default run's export (needs `make train` first): a small CNN
## trained on 100 generated digits per class, tested on held-out real digits, beside the same CNN
## trained on 100 real digits per class (docs/SYNTH.md).
cas-digits: $(STAMP)
	$(PY) -m launch eval runs/digits/export --metrics cas --data data/digits --out runs/digits/eval-cas.json

## pix2pix on the embedded digits: train configs/edges2digits.yaml from scratch, then translate the
## held-out (odd-indexed) digits' edge maps and read them with the digit network (>= 90% right).
quality-edges2digits: $(STAMP)
	rm -rf runs/quality-edges2digits
	$(PY) -m launch train configs/edges2digits.yaml run.name=quality-edges2digits $(ARGS)
	$(PY) -m trainer.evaluation.edges2digits_gate runs/quality-edges2digits --check --out runs/quality-edges2digits/eval-edges2digits.json

## The embedded unpaired CycleGAN default (edge maps <-> digits from disjoint halves of the even
## digits): train from scratch, then translate the held-out odd digits' edge maps A -> B and read them.
quality-cyclegan_edges2digits: $(STAMP)
	rm -rf runs/quality-cyclegan_edges2digits
	$(PY) -m launch train configs/cyclegan_edges2digits.yaml run.name=quality-cyclegan_edges2digits $(ARGS)
	$(PY) -m trainer.evaluation.edges2digits_gate runs/quality-cyclegan_edges2digits --check --out runs/quality-cyclegan_edges2digits/eval-edges2digits.json

## Inpainting of real photos: train configs/inpaint_photos.yaml from scratch, then fill a 96x96 centre
## box in 256x256 crops of the held-out photos: PSNR vs biharmonic, detail in the hole, known pixels.
quality-inpaint: $(STAMP)
	rm -rf runs/quality-inpaint
	$(PY) -m launch train configs/inpaint_photos.yaml run.name=quality-inpaint $(ARGS)
	$(PY) -m trainer.evaluation.inpaint_gate runs/quality-inpaint --check --out runs/quality-inpaint/eval-inpaint.json

## Super-resolution x4 on the photos bundled in scikit-image: train the PSNR stage (configs/sr_photos.yaml)
## and the GAN stage from its export (configs/sr_photos_gan.yaml), both from scratch, then score both and
## bicubic on the held-out photos: PSNR stage >= bicubic + 0.4 dB (Y); GAN stage PSNR >= bicubic and
## sharpness >= 0.5 of the real images' (docs/SUPERRES.md). Exit 1 below a bar.
quality-sr: $(STAMP)
	rm -rf runs/quality-sr runs/quality-sr-psnr runs/quality-sr-gan
	$(PY) -m launch train configs/sr_photos.yaml run.name=quality-sr-psnr $(ARGS)
	$(PY) -m launch train configs/sr_photos_gan.yaml run.name=quality-sr-gan sr.init_from=runs/quality-sr-psnr/export $(ARGS)
	$(PY) -m trainer.evaluation.superres_gate --psnr runs/quality-sr-psnr/export --gan runs/quality-sr-gan/export --data data/photos/val --check --out runs/quality-sr/eval-sr.json

## Text-to-image on the embedded colour digits: train configs/text2img_digits.yaml from scratch, then
## draw 10 samples for each of the 560 (digit, ink, background) prompts and read the three back
## (all three right: >= 85% of samples for seen (digit, ink) pairs, >= 60% for withheld ones).
quality-text2img: $(STAMP)
	rm -rf runs/quality-text2img
	$(PY) -m launch train configs/text2img_digits.yaml run.name=quality-text2img $(ARGS)
	$(PY) -m trainer.evaluation.text_alignment runs/quality-text2img --check --out runs/quality-text2img/alignment.json

## Quality gate of one family on the embedded digits: train configs/NAME.yaml from scratch into
## runs/quality-NAME, then `digits_eval --check` (all ten digits clearly drawn; conditional
## models also >= 90% class accuracy). E.g. make quality-progan, quality-dcgan, quality-digits.
quality-%: $(STAMP)
	rm -rf runs/quality-$*
	$(PY) -m launch train configs/$*.yaml run.name=quality-$* $(ARGS)
	$(PY) -m trainer.evaluation.digits_gate runs/quality-$* --check --out runs/quality-$*/eval-digits.json

## Every quality gate in turn (hours on 2 CPU cores), then one table of results, wall times and
## headline figures (runs/quality-all.tsv; each gate's log in runs/quality-NAME.log). Choose a
## subset with QUALITY_GATES="mlp biggan".
QUALITY_GATES ?= digits dcgan dcgan_conditional wgan_gp progan mlp mlp_conditional biggan cyclegan_edges2digits \
	edges2digits inpaint text2img sr
quality-all: $(STAMP)
	@mkdir -p runs && rm -f runs/quality-all.tsv
	@for gate in $(QUALITY_GATES); do \
	  start=$$(date +%s); \
	  if $(MAKE) --no-print-directory quality-$$gate > runs/quality-$$gate.log 2>&1; then result=pass; else result=fail; fi; \
	  printf '%s\t%s\t%s\n' $$gate $$result $$(( $$(date +%s) - start )) | tee -a runs/quality-all.tsv; \
	done
	$(PY) -m trainer.evaluation.quality_table runs/quality-all.tsv

## Training throughput of CONFIG on this machine (images/s, sec/kimg), saved to bench/train.json.
bench: $(STAMP)
	$(PY) -m launch bench $(CONFIG) $(ARGS)

## Kernel benchmark (Triton vs reference vs torch.compile); full shapes need a GPU.
bench-kernels: $(STAMP)
	$(PY) -m kernels.bench --out bench/kernels.json $(ARGS)

## One run (<= 8 min) validating the Triton kernels on this machine's GPU: compiled GPU tests,
## compute-sanitizer, 64-bit indexing at 1.7e10 elements, op bench, 256x256 steps Triton on/off;
## JSON + markdown in bench/gpu-check (docs/KERNELS.md). Without a GPU: plumbing mode (tiny, CPU).
gpu-check:
	$(or $(wildcard $(PY)),python) -m kernels.gpu_check --out bench/gpu-check $(ARGS)

## Loader throughput (images/s, workers 0/1/2, local vs HTTP, vs raw PIL decode), saved to bench/data.json.
bench-data: $(STAMP)
	$(PY) -m trainer.data.bench --out bench/data.json $(ARGS)

## Cost of the Prometheus metrics per step, per log step and per scrape.
bench-metrics: $(STAMP)
	$(PY) -m trainer.telemetry.bench

clean:
	rm -rf runs bench .pytest_cache
