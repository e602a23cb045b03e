#!/usr/bin/env bash
# The slide benchmarks of the book's extraction section, on one CUDA machine.
#
#   bash benchmarks/wsi_gpu_benchmarks.sh OUT_DIR WORK_DIR [SLIDES_DIR]
#   WORKERS="4 8 14" PRECISIONS="bf16 fp32" bash benchmarks/wsi_gpu_benchmarks.sh ...
#
# 1. two benchmark slides assembled from the tissue of the public slides in SLIDES_DIR
#    (default ../shared/data/wsi): 50,000 x 40,000 px (extracted) and 100,000 x 80,000 px
#    (tiled only), pyramidal JPEG TIFFs at 0.5 um/px written into WORK_DIR (about 1.6 GB);
# 2. benchmarks/wsi_throughput.py on the 50k slide and the public slides (EfficientNet-Lite0
#    and the CTransPath-size stand-in; the public slides also through the one-process path),
#    writing OUT_DIR/wsi_throughput_cuda.json and torch.profiler tables in OUT_DIR/profiles.
set -euo pipefail
out=${1:?usage: wsi_gpu_benchmarks.sh OUT_DIR WORK_DIR [SLIDES_DIR]}
work=${2:?usage: wsi_gpu_benchmarks.sh OUT_DIR WORK_DIR [SLIDES_DIR]}
here=$(cd "$(dirname "$0")" && pwd)
slides=${3:-$here/../../shared/data/wsi}
workers=${WORKERS:-4 8 14}
precisions=${PRECISIONS:-bf16 fp32}
mkdir -p "$out" "$work"
for size in "50000 40000 50k" "100000 80000 100k"; do
    set -- $size
    [ -f "$work/mosaic_$3.tiff" ] || python3 "$here/make_wsi_mosaic.py" --out "$work/mosaic_$3.tiff" \
        --width "$1" --height "$2" --slides "$slides"/*.svs > "$work/mosaic_$3.json"
done
python3 "$here/wsi_throughput.py" --slides "$work/mosaic_50k.tiff" "$slides"/*.svs \
    --tiling-only "$work/mosaic_100k.tiff" --slide-info "$work/mosaic_50k.json" "$work/mosaic_100k.json" \
    --encoders efficientnet-lite0 standin --workers $workers --precisions $precisions \
    --one-process-max-patches 500 --tiling-repeats 2 --device cuda --out "$out" --profile "$out/profiles"
