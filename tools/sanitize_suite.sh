#!/usr/bin/env bash
# Builds the compiler core, the Python module and the C++ unit tests with AddressSanitizer and
# UndefinedBehaviorSanitizer (cmake -DPARPY_SANITIZE=ON, in build/sanitize), then runs the C++
# unit tests and the Python suite against that build. Any sanitizer error, and any leak of memory
# allocated by parpy's own code, fails the run.
#
# Usage: bash tools/sanitize_suite.sh [pytest arguments]     (default: -q)
# Environment:
#   PYTHON   the interpreter (default python3). It needs numpy and pytest (pytest-xdist for -n), and
#            must not have parpy installed in editable mode (that import hook would load the plain
#            module instead of the sanitized one); a regular `pip install .` is fine.
#   PARPY_SANITIZE_GENERATED=1   also compile the code parpy generates at run time with the
#            sanitizers (slower builds; by default generated libraries are plain, as for users).
#
# How it runs: the interpreter is not built with ASan, so the ASan runtime is preloaded
# (LD_PRELOAD, with libstdc++ so that C++ exceptions can be intercepted), and PYTHONMALLOC=malloc
# makes every Python object a heap block that ASan checks and LeakSanitizer scans. Only Python
# processes get the runtime (tools/sanitize/sitecustomize.py): not the compilers they start. Leaks
# are checked once at the end of each pytest process (tools/sanitize/sanitize_support.py), not at
# exit.
# ASan's reports go to build/sanitize/logs, UBSan's to the output.
set -uo pipefail
cd "$(dirname "$0")/.."
root=$PWD
build=$root/build/sanitize
logs=$build/logs
python=${PYTHON:-python3}
flags="-fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined"
start=$SECONDS

fail() {
  echo "sanitize: FAILED ($1)"
  exit 1
}

# 1. The sanitized build. RelWithDebInfo: optimised like a user's build, with line numbers in
#    the reports.
"$python" -c "import nanobind, pytest" 2>/dev/null || fail "$python needs nanobind and pytest (pip install nanobind pytest)"
gen=()
command -v ninja >/dev/null && gen=(-G Ninja)
gtest=OFF
[ -f /usr/include/gtest/gtest.h ] || [ -f /usr/local/include/gtest/gtest.h ] && gtest=ON
mkdir -p "$build/pkg/parpy"
{
  cmake -S "$root" -B "$build" "${gen[@]}" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DPARPY_SANITIZE=ON -DPARPY_BUILD_TESTS=$gtest -DPARPY_WERROR=ON \
    -DPython_EXECUTABLE="$(command -v "$python")" -DPARPY_MODULE_OUTPUT_DIR="$build/pkg/parpy" &&
    cmake --build "$build" -j"$(nproc)"
} >"$build/build.log" 2>&1 || { tail -40 "$build/build.log"; fail "the build failed, see $build/build.log"; }
build_s=$((SECONDS - start))
echo "sanitize: built in ${build_s} s"

# The package: the Python sources next to the sanitized module.
for f in "$root"/python/parpy/*; do
  case $f in
  *.so | */__pycache__) ;;
  *) ln -sfn "$f" "$build/pkg/parpy/" ;;
  esac
done

export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1

# 2. The C++ unit tests: an ordinary executable, so ASan checks leaks at exit as usual.
t=$SECONDS
cpp=skipped
if [ $gtest = ON ]; then
  "$build/parpy_tests" --gtest_brief=1 >"$build/cpp-tests.log" 2>&1 ||
    { tail -80 "$build/cpp-tests.log"; fail "C++ unit tests, see $build/cpp-tests.log"; }
  cpp=passed
fi
cpp_s=$((SECONDS - t))
echo "sanitize: C++ unit tests ${cpp} in ${cpp_s} s"

# 3. The Python suite.
rm -rf "$logs" && mkdir -p "$logs" "$build/bin"
runtime="$(g++ -print-file-name=libasan.so) $(g++ -print-file-name=libstdc++.so)"
for lib in $runtime; do
  [ -f "$lib" ] || fail "$lib not found (g++ -print-file-name)"
done
# Python processes start through this wrapper, which preloads the runtime; other programs do not
# get it (tools/sanitize/sitecustomize.py).
real_python=$("$python" -c 'import sys; print(sys.executable)') || fail "no $python"
printf '#!/bin/sh\nLD_PRELOAD="%s" exec "%s" "$@"\n' "$runtime" "$real_python" >"$build/bin/python"
chmod +x "$build/bin/python"
export PARPY_SANITIZE_PYTHON=$build/bin/python
export PYTHONPATH=$build/pkg:$root/tools/sanitize${PYTHONPATH:+:$PYTHONPATH}
export PYTHONMALLOC=malloc
export ASAN_OPTIONS=detect_leaks=1:leak_check_at_exit=0:log_path=$logs/asan
if [ "${PARPY_SANITIZE_GENERATED:-0}" = 1 ]; then
  cxx=$(command -v "${CXX:-g++}") || fail "no host compiler"
  printf '#!/bin/sh\nexec "%s" %s "$@"\n' "$cxx" "$flags" >"$build/bin/c++"
  chmod +x "$build/bin/c++"
  export CXX=$build/bin/c++
fi
module=$("$build/bin/python" -c "import parpy.parpy as m; print(m.__file__)") ||
  fail "cannot import the sanitized module"
case $module in
"$build"/pkg/*) ;;
*) fail "$python imports $module instead of the sanitized module (an editable install of parpy?)" ;;
esac

t=$SECONDS
args=("$@")
[ ${#args[@]} -eq 0 ] && args=(-q)
# test_cpp_unit builds and runs the plain C++ unit tests: step 2 ran the sanitized ones.
# --capture=sys: what the sanitizers print reaches the output even when they end the process
# (UBSan, a separate runtime with GCC, ignores log_path).
"$build/bin/python" -m pytest -p sanitize_support --capture=sys \
  --deselect tests/python/test_cpp_unit.py::test_cpp_unit_tests "${args[@]}" 2>&1 |
  tee "$build/pytest.log"
status=${PIPESTATUS[0]}
suite_s=$((SECONDS - t))
summary=$(grep -E ' in [0-9.]+s' "$build/pytest.log" | tail -1 | tr -d '=' | sed 's/^ *//; s/ *$//')

"$python" "$root/tools/sanitize/sanitize_support.py" "$logs" "$build/pytest.log"
found=$?
result=passed
[ "$status" -ne 0 ] || [ "$found" -ne 0 ] && result=FAILED
echo "sanitize (ASan+UBSan): ${result}: build ${build_s} s, C++ unit tests ${cpp} in ${cpp_s} s," \
  "Python suite ${suite_s} s (${summary:-no summary})"
[ "$result" = passed ]
