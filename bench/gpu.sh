#!/usr/bin/env bash
# The checks that need a CUDA GPU, as one script: the CUDA tests (tests/test_gpu.py), then
# a SMASH step split by phase with what compiling costs a step (prefetched in a background
# thread, as `smashc search` does on a GPU, and inline), and scoring, in fp32 and bf16.
#
# For a machine without network access whose torch is already installed (any version, not
# necessarily the pin), with networkx, numpy, scipy, matplotlib, tqdm, pytest and
# hypothesis. smashc goes into /tmp without its dependencies, so the machine's torch stays;
# lark, interegular and graphviz come from wheels in .whl/ (ignored by git), downloaded
# beforehand on a machine with network access (--python-version: the GPU machine's Python):
#   python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 \
#     --implementation cp --platform any -d .whl lark==1.3.1 interegular graphviz==0.21
# Run from the repository root; every part has its own timeout, all together 530 s:
#   bash bench/gpu.sh
# The log goes to $OUT/gpu.log where OUT names a folder, else to ./gpu.log.
set -uo pipefail
log="${OUT:-.}/gpu.log"
exec > >(tee "$log") 2>&1
export PYTHONUNBUFFERED=1
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site \
    .whl/*.whl || exit 1
# smashc itself without its dependencies, so that pip leaves the image's torch alone
python3 -m pip install -q --no-deps --no-build-isolation --no-compile --target /tmp/smashc . \
    || exit 1
export PYTHONPATH=/tmp/smashc:/tmp/site
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
python3 -c "import torch; print('torch', torch.__version__, torch.cuda.get_device_name())"
status=0
timeout 240 python3 -m pytest -q -m gpu tests/test_gpu.py -p no:cacheprovider || status=1
for p in fp32 bf16; do
    timeout 100 python3 bench/train_step.py --device cuda --precision "$p" || status=1
    timeout 45 python3 bench/score.py --device cuda --precision "$p" --archs 2 || status=1
done
exit $status
