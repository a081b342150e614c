#!/usr/bin/env bash
# The GPU-marked tests on a CUDA machine (they skip elsewhere): the worker's CUDA rows with
# per-phase device memory, the one build path on CUDA for the generation worker and the
# sensitivity sweep, and the roofline's CUDA measurement. Run from the repository root on a
# machine with an NVIDIA GPU, torch, transformers, tokenizers, pandas, pyarrow, psutil,
# nvidia-ml-py and pytest; the log goes to ${OUT:-.}/gpu-tests.log.
set -uo pipefail
out="${OUT:-.}"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
python3 -c "import torch, transformers; print('torch', torch.__version__, 'transformers', transformers.__version__, 'cuda', torch.cuda.is_available())"
export TOKENIZERS_PARALLELISM=false PYTHONUNBUFFERED=1
python3 -m pytest -q -p no:cacheprovider -m gpu -rs --durations=10 \
    tests/jobs/test_worker_cuda.py tests/jobs/test_prepare_cuda.py tests/metrics/test_roofline.py \
    2>&1 | tee "$out/gpu-tests.log"
