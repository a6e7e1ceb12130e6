#!/usr/bin/env bash
# Builds parpy in place on a GPU machine with no network and runs the GPU benchmark, the test
# suite and compute-sanitizer on the GPU reduction tests. Wheels it lacks (nanobind, pytest and
# its needs, for that machine's Python) go in .whl/ first, e.g.
#   pip download --no-deps --only-binary=:all: --python-version 3.12 -d .whl nanobind pytest \
#       iniconfig pluggy packaging pygments pytest-xdist execnet
# Usage: bash tools/gpu_check.sh [log-dir]   (PARPY_CXX selects the host compiler; default
# /usr/bin/g++-13 where it exists, else $CXX or g++: on the H100 machines $CXX names a g++ wrapper
# whose builds of the module crash)
set -o pipefail
logs=${1:-gpu-logs}
mkdir -p "$logs"
python3 -m pip install -q --no-index --no-deps --no-compile --upgrade --target /tmp/parpy-site .whl/*.whl || exit 1
export PYTHONPATH=/tmp/parpy-site PYTHONUNBUFFERED=1
cmake -S . -B build-dev -G Ninja -DPython_EXECUTABLE="$(command -v python3)" \
  -DCMAKE_CXX_COMPILER="${PARPY_CXX:-$( [ -x /usr/bin/g++-13 ] && echo /usr/bin/g++-13 || echo "${CXX:-g++}")}" >/dev/null && cmake --build build-dev -j"$(nproc)" | tail -1 || exit 1
export PYTHONPATH=$PWD/python:/tmp/parpy-site
python3 -m parpy | tee "$logs/diagnostics.txt"
python3 benchmarks/gpu.py 2>&1 | tee "$logs/bench.txt"
# Tests in parallel processes where pytest-xdist is there (nvcc builds dominate the suite's time).
xdist=$(python3 -c "import xdist" 2>/dev/null && echo "-n 8")
python3 -m pytest -q -p no:cacheprovider $xdist tests/python 2>&1 | tee "$logs/pytest.log" | tail -3
K="(softmax or normalize or row_sum or row_max or seed or split or cluster or graph or cached or fused) and not 10000000 and not 1000003 and not 50001"
# Both tools side by side, each over 4 test processes (--target-processes all follows the xdist
# workers; the tool prints one summary for all of them): about 200 s on an H100 machine.
for tool in memcheck racecheck; do
  compute-sanitizer --tool $tool --target-processes all python3 -m pytest -q -p no:cacheprovider \
    ${xdist:+-n 4} tests/python/test_cuda.py tests/python/test_cuda_clusters_graphs.py \
    tests/python/test_gpu_fusion.py -k "$K" > "$logs/$tool.log" 2>&1 &
done
wait
tail -q -n 2 "$logs/memcheck.log" "$logs/racecheck.log"
