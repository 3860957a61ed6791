# Set-up and everyday commands. Everything installs into .venv from the package registries, pinned by
# constraints.txt; the first target run on a fresh machine creates it.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
CHECKED := src tests benchmarks scripts

# Debian packages: what `make install` needs to make the venv, and what the tests use (Chromium drives the
# pages, espeak-ng is a studio voice, the CJK font draws subtitles, the studio's queue is tested on a
# PostgreSQL server the tests start). scripts/system-packages.sh installs the missing ones with apt-get when
# run as root, else names the command to run.
SYSTEM_INSTALL := python3-venv
SYSTEM_TEST := chromium espeak-ng fonts-wqy-microhei postgresql

.PHONY: install demo demo-model demo-vae-decoder-mse eval-demo test test-stress system-test lint format bench clean

install: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -c 'import sys; sys.exit("Python >= 3.10 is required") if sys.version_info < (3, 10) else None'
	PYTHON=$(PYTHON) scripts/system-packages.sh $(SYSTEM_INSTALL)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --constraint constraints.txt --editable '.[dev,model,ray,web,studio,postgres,shots]'
	touch $(STAMP)

# The main job on the embedded default: ToonWorld episodes (with ground truth and contact sheets), curated
# into scored, filtered clips with a manifest and an HTML report.
# Then the shipped demo model animates a held-out ToonWorld panel between its first and last keyframes,
# inside a motion mask: demo/generated/keyframes.mp4 and its contact sheet keyframes.preview.png.
demo: install
	$(BIN)/anisora toonworld episodes --out demo/raw --episodes 3 --seconds 20 --size 320x180 --seed 0 --contact-sheet
	$(BIN)/anisora curate run demo/raw --out demo/curated
	$(BIN)/anisora toonworld keyframes --out demo/keyframes
	$(BIN)/anisora generate --image demo/keyframes/first.png --guide last:demo/keyframes/last.png \
		--mask demo/keyframes/mask.png --motion 8 --prompt "$$(cat demo/keyframes/prompt.txt)" \
		--out demo/generated/keyframes.mp4 --preview --overwrite

# Train the shipped demo model from scratch on ToonWorld with the shipped run's settings (times in its
# README.md; the stages use a GPU when one is present). Re-running resumes: the VAE is kept once
# trained and every stage continues from its newest checkpoint. The new model is measured on the held-out
# bench (eval-demo, in $(RUNS)/eval: runs/eval keeps the shipped model's runs, and a run folder holds one
# model's) and its card written from those runs before it replaces the old. COMPUTE: what it ran on, for the
# card.
STAGES := stage1_80x48_4fps stage2_80x48_8fps stage3_160x96_8fps stage4_160x96_8fps stage5_160x96_8fps \
	stage6_160x96_8fps stage7_160x96_8fps
RUNS := runs/toonworld
DEMO_MODEL := src/anisora/model/assets/demo-model
COMPUTE ?=
demo-model: install $(RUNS)/demo-vae/training.json $(RUNS)/demo-vae-decoder/training.json
	$(BIN)/anisora train run $(foreach s,$(STAGES),--config configs/train/toonworld/$(s).yaml)
	$(BIN)/anisora train run --config configs/train/toonworld/region_lora.yaml
	rm -rf $(DEMO_MODEL).new && mkdir -p $(dir $(DEMO_MODEL))
	cp -r $(RUNS)/$(firstword $(subst _, ,$(lastword $(STAGES))))/final $(DEMO_MODEL).new
	cp $(RUNS)/demo-vae-decoder/config.json $(RUNS)/demo-vae-decoder/diffusion_pytorch_model.safetensors \
		$(DEMO_MODEL).new/vae/
	cp -r $(RUNS)/region-lora/final $(DEMO_MODEL).new/region-lora
	$(BIN)/python -c "import json, sys; p = sys.argv[1]; d = json.load(open(p)) | {'mask_lora': 'region-lora'}; \
		open(p, 'w').write(json.dumps(d, indent=2, sort_keys=True) + '\n')" $(DEMO_MODEL).new/model_index.json
	$(BIN)/python -c "import sys, diffusers as d; [getattr(d, c).from_pretrained(f).half().save_pretrained(f) \
		for c, f in zip(sys.argv[1::2], sys.argv[2::2])]" CogVideoXTransformer3DModel $(DEMO_MODEL).new/transformer \
		AutoencoderKLCogVideoX $(DEMO_MODEL).new/vae
	$(MAKE) eval-demo MODEL=$(DEMO_MODEL).new EVAL=$(RUNS)/eval
	$(BIN)/anisora evaluate model-card --model $(DEMO_MODEL).new --vae-run $(RUNS)/demo-vae-decoder \
		$(if $(COMPUTE),--compute "$(COMPUTE)") \
		$(foreach s,$(STAGES),--stage $(RUNS)/$(firstword $(subst _, ,$(s)))) --lora-run $(RUNS)/region-lora \
		--eval-run $(RUNS)/eval/demo-model --round-trip $(RUNS)/eval/baseline-round-trip \
		--crossfade $(RUNS)/eval/baseline-crossfade \
		--ablation "without the mask LoRA=$(RUNS)/eval/demo-model-no-mask-lora" \
		--ablation "without motion guidance=$(RUNS)/eval/demo-model-no-motion-guidance" \
		--ablation "still first frame=$(RUNS)/eval/baseline-still" \
		--ablation "the keyframes' flow interpolation alone, no model=$(RUNS)/eval/baseline-interpolation" \
		--notes docs/demo-model-notes.md
	rm -rf $(DEMO_MODEL) && mv $(DEMO_MODEL).new $(DEMO_MODEL)

# A demo model (MODEL, the shipped one by default) on the ToonWorld benchmark (216 cases, sampled with the
# model's own presets as `anisora generate` samples), with its region LoRA serving the masked cases
# (model_index.json's mask_lora, the default) and without it (on the region cases alone: the LoRA serves no
# other request, so the rest are the same videos), without its motion guidance (on the motion cases), next
# to five
# model-free answers (still first frame, cross-fade, the keyframes' flow interpolation, the true clip, the
# true clip through the model's VAE):
# full HTML reports in runs/eval/*/report.html; the comparison and the result tables in
# docs/demo-model-benchmark/.
EVAL := runs/eval
BENCH := $(EVAL)/toonworld-bench/bench.yaml
MODEL ?= $(DEMO_MODEL)
eval-demo: install
	test -f $(BENCH) || $(BIN)/anisora evaluate toonworld --out $(EVAL)/toonworld-bench
	$(BIN)/anisora evaluate run --bench $(BENCH) --model $(MODEL) --out $(EVAL)/demo-model --quiet
	$(BIN)/anisora evaluate run --bench $(BENCH) --model $(MODEL) --out $(EVAL)/demo-model-no-mask-lora \
		--quiet --no-mask-lora --task region --name demo-model-no-mask-lora
	$(BIN)/anisora evaluate run --bench $(BENCH) --model $(MODEL) --out $(EVAL)/demo-model-no-motion-guidance \
		--quiet --motion-guidance 0 --task motion --name demo-model-no-motion-guidance
	for k in still crossfade interpolation truth; do \
		$(BIN)/anisora evaluate baseline --bench $(BENCH) --kind $$k --out $(EVAL)/baseline-$$k --quiet; done
	$(BIN)/anisora evaluate baseline --bench $(BENCH) --kind round-trip --model $(MODEL) \
		--out $(EVAL)/baseline-round-trip --quiet
	$(BIN)/anisora evaluate compare $(EVAL)/demo-model \
		$(foreach k,still crossfade interpolation truth round-trip,$(EVAL)/baseline-$(k)) \
		--out docs/demo-model-benchmark
	for r in demo-model demo-model-no-mask-lora; do cp $(EVAL)/$$r/results.csv docs/demo-model-benchmark/$$r.csv; \
		cp $(EVAL)/$$r/summary.json docs/demo-model-benchmark/$$r.summary.json; done

# The demo VAE (4x spatial, 16 channels): the shipped one's 1,124 steps of batch 16 (2.2 min on one H200);
# interrupted, the same command continues where it stopped.
$(RUNS)/demo-vae/training.json:
	$(BIN)/anisora train vae --out $(RUNS)/demo-vae --steps 1124 --batch-size 16 --bf16 --quiet --eval-every 500

# Then its decoder alone, the encoder and so the latents every stage trained on kept: the shipped one's 1,001
# steps of batch 16 (73 min on this 2-core CPU, sharing it); resumable the same way.
$(RUNS)/demo-vae-decoder/training.json: $(RUNS)/demo-vae/training.json
	$(BIN)/anisora train vae --decoder-of $(RUNS)/demo-vae --out $(RUNS)/demo-vae-decoder --steps 1001 \
		--batch-size 16 --lr 3e-4 --bf16 --quiet --eval-every 100

# Not part of the shipped model (its card's notes say why): the shipped decoder trained on with the squared
# error weighted 20, 7,000 steps of batch 2 (105 min of this 2-core CPU; resumable the same way), which
# reaches 30.03 dB one-frame on the bench's round trip.
demo-vae-decoder-mse: install $(RUNS)/demo-vae-decoder-mse/training.json
$(RUNS)/demo-vae-decoder-mse/training.json:
	$(BIN)/anisora train vae --decoder-of $(DEMO_MODEL)/vae --out $(RUNS)/demo-vae-decoder-mse --steps 7000 \
		--batch-size 2 --lr 3e-4 --mse-weight 20 --quiet --eval-every 250

test: lint system-test
	$(BIN)/pytest -q

# The whole suite three times in a row while another process keeps one core busy (flakiness check).
test-stress: lint system-test
	scripts/test-stress.sh $(BIN)/pytest 3

system-test:
	scripts/system-packages.sh $(SYSTEM_TEST)

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
	$(BIN)/python benchmarks/bench_demo_vae.py
	$(BIN)/python benchmarks/bench_wan.py
	$(BIN)/python benchmarks/bench_train.py
	$(BIN)/python benchmarks/bench_evaluate.py
	$(BIN)/python benchmarks/bench_studio.py

clean:
	rm -rf $(VENV) demo .pytest_cache .ruff_cache src/*.egg-info
