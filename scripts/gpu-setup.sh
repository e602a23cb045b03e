#!/usr/bin/env bash
# Build and install the fused CUDA kernels of mamba-ssm and causal-conv1d for THIS machine's GPU only.
#
#   make gpu-setup                               # or: bash scripts/gpu-setup.sh
#   SDIST_DIR=/path/with/tarballs make gpu-setup # offline: the two .tar.gz from PyPI in one folder
#
# Both packages are source-only on PyPI and by default compile for nine GPU architectures,
# which takes far longer than needed. This script
#   1. finds mamba_ssm-2.3.2.post1.tar.gz and causal_conv1d-1.7.0.tar.gz in $SDIST_DIR (default .whl/),
#      downloading them with pip when they are missing and the index is reachable;
#   2. rewrites each setup.py's -gencode list to the local GPU's compute capability alone
#      (read from torch.cuda.get_device_capability(), or $GPU_ARCH such as 90 for H100/H200)
#      and lets nvcc optimise in parallel (--split-compile);
#   3. builds both wheels at the same time (MAX_JOBS split between them) against the torch of
#      $PYTHON (default python3: the environment with a CUDA build of torch, not the CPU-only .venv),
#      with no build isolation and no downloads, into $WHEEL_DIR (default build/gpu-wheels/);
#   4. installs them (pip --no-deps --no-index) and prints available_backends("cuda"),
#      which then lists mamba_ssm, and the causal-conv1d path.
# Needs nvcc matching torch's CUDA major version, ninja (pip install ninja) and a GPU.
set -euo pipefail

PYTHON=${PYTHON:-python3}
SDIST_DIR=${SDIST_DIR:-.whl}
WHEEL_DIR=${WHEEL_DIR:-build/gpu-wheels}
WORK_DIR=${WORK_DIR:-build/gpu-src}
MAMBA_VERSION=2.3.2.post1
CONV_VERSION=1.7.0
NPROC=$(nproc)
export MAX_JOBS=${MAX_JOBS:-$(( NPROC > 1 ? NPROC / 2 : 1 ))}

say() { printf 'gpu-setup: %s\n' "$*" >&2; }
die() { say "error: $*"; exit 2; }

command -v nvcc >/dev/null || die "nvcc not found: install the CUDA toolkit matching torch's CUDA ($($PYTHON -c 'import torch; print(torch.version.cuda)' 2>/dev/null || echo '?')) and put its bin/ on PATH"
$PYTHON -c "import torch, sys; sys.exit(0 if torch.version.cuda else 1)" 2>/dev/null \
    || die "$PYTHON has no CUDA build of torch (the CPU-only .venv cannot build CUDA kernels); set PYTHON to the GPU environment's python (environment.yml)"
$PYTHON -c "import ninja" 2>/dev/null || say "ninja is not importable by $PYTHON: the build will be serial and slow (pip install ninja)"

ARCH=${GPU_ARCH:-$($PYTHON -c "import torch; m, n = torch.cuda.get_device_capability(); print(f'{m}{n}')" 2>/dev/null || true)}
[[ "$ARCH" =~ ^[0-9]+a?$ ]] || die "could not read the GPU's compute capability (no GPU visible?); set GPU_ARCH, e.g. GPU_ARCH=90 for H100/H200, 80 for A100"
say "building for sm_${ARCH} with $($PYTHON -c 'import torch; print("torch", torch.__version__)') and $(nvcc --version | tail -n 1)"

mkdir -p "$SDIST_DIR" "$WHEEL_DIR" "$WORK_DIR"
MAMBA_TGZ=$SDIST_DIR/mamba_ssm-$MAMBA_VERSION.tar.gz
CONV_TGZ=$SDIST_DIR/causal_conv1d-$CONV_VERSION.tar.gz
if [[ ! -f $MAMBA_TGZ || ! -f $CONV_TGZ ]]; then
    say "source distributions missing in $SDIST_DIR; downloading them with pip"
    # the SKIP flags only let pip read the packages' metadata without compiling anything
    MAMBA_SKIP_CUDA_BUILD=TRUE CAUSAL_CONV1D_SKIP_CUDA_BUILD=TRUE $PYTHON -m pip download --no-deps \
        --no-binary :all: --no-build-isolation -d "$SDIST_DIR" \
        "mamba-ssm==$MAMBA_VERSION" "causal-conv1d==$CONV_VERSION" \
        || die "could not download the sdists; offline, copy $(basename "$MAMBA_TGZ") and $(basename "$CONV_TGZ") into $SDIST_DIR"
fi

# keep only the local architecture in each setup.py; nvcc optimises one file on several threads
patch_setup() {
    $PYTHON - "$1" "$ARCH" <<'PY'
import re, sys
path, arch = sys.argv[1], sys.argv[2]
src = open(path).read()
lines = []
for line in src.splitlines():
    if re.search(r'cc_flag\.append\("(-gencode|arch=compute_[0-9a-z]+,code=sm_[0-9a-z]+)"\)', line):
        line = line[: len(line) - len(line.lstrip())] + "pass"
    lines.append(line)
out = "\n".join(lines) + "\n"
out, n = re.subn(r"^(\s*)cc_flag = \[\]\n", rf'\1cc_flag = ["-gencode", "arch=compute_{arch},code=sm_{arch}"]\n', out,
                 count=1, flags=re.M)
assert n == 1, f"{path}: no 'cc_flag = []' line to patch"
out, n = re.subn(r'\["--threads", "4"\]', '["--threads", "1", "--split-compile=0"]', out)
assert n == 1, f"{path}: no nvcc --threads flag to patch"
out = out.replace('"--ptxas-options=-v",', "")
open(path, "w").write(out)
PY
}

build() {  # $1 tarball, $2 package dir name, $3 log
    local src=$WORK_DIR/$2
    rm -rf "$src" && tar -xzf "$1" -C "$WORK_DIR"
    patch_setup "$src/setup.py"
    (cd "$src" && MAMBA_FORCE_BUILD=TRUE CAUSAL_CONV1D_FORCE_BUILD=TRUE \
        $PYTHON -m pip wheel --no-build-isolation --no-deps --no-index -w "$OLDPWD/$WHEEL_DIR" . ) >"$3" 2>&1
}

start=$(date +%s)
build "$MAMBA_TGZ" "mamba_ssm-$MAMBA_VERSION" "$WORK_DIR/mamba_ssm.log" & pid_m=$!
build "$CONV_TGZ" "causal_conv1d-$CONV_VERSION" "$WORK_DIR/causal_conv1d.log" & pid_c=$!
ok=0
wait $pid_m || { say "mamba-ssm build failed; last lines of $WORK_DIR/mamba_ssm.log:"; tail -n 30 "$WORK_DIR/mamba_ssm.log" >&2; ok=1; }
wait $pid_c || { say "causal-conv1d build failed; last lines of $WORK_DIR/causal_conv1d.log:"; tail -n 30 "$WORK_DIR/causal_conv1d.log" >&2; ok=1; }
[[ $ok == 0 ]] || exit 2
say "built in $(( $(date +%s) - start )) s: $(ls "$WHEEL_DIR")"

$PYTHON -m pip install --no-deps --no-index --force-reinstall "$WHEEL_DIR"/mamba_ssm-*.whl "$WHEEL_DIR"/causal_conv1d-*.whl >&2
$PYTHON - <<'PY'
from survmamba_lite.ssm import available_backends
from survmamba_lite.ssm.bimamba import available_conv_backends
print("scan backends on cuda:", available_backends("cuda"))
print("conv backends on cuda:", available_conv_backends("cuda"))
PY
