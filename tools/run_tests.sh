#!/bin/sh
# Runs every test program of `make test` and adds up their counts.
# Usage: run_tests.sh UNIT_TEST... -- LEARNING_TEST...
# Unit tests run twice (plain -O2 and under address/undefined sanitizers);
# learning tests run at -O2 only (sanitizers make them minutes long; the unit
# tests already train every agent a few iterations under the sanitizers).
# Each header is also compiled as C99 -pedantic and as C++ by gcc and clang
# with -Werror, and the sources must match .clang-format.
passed=0
failed=0
log=build/test.log
: > "$log"

count() { # program label: runs it, adds its "N passed, N failed" line
  out=$("$1" 2>&1)
  status=$?
  echo "$out" >> "$log"
  line=$(echo "$out" | grep -E '[0-9]+ passed, [0-9]+ failed' | tail -n 1)
  p=$(echo "$line" | sed -E 's/.* ([0-9]+) passed, ([0-9]+) failed.*/\1/')
  f=$(echo "$line" | sed -E 's/.* ([0-9]+) passed, ([0-9]+) failed.*/\2/')
  if [ -z "$line" ]; then p=0; f=1; fi
  if [ "$status" -ne 0 ] && [ "$f" -eq 0 ]; then f=1; fi
  passed=$((passed + p))
  failed=$((failed + f))
  echo "$out" | grep -E '^FAIL|^final:' | head -20
  echo "$2: $p passed, $f failed"
}

check() { # label command...: one pass or one failure
  label=$1
  shift
  if "$@" >> "$log" 2>&1; then
    passed=$((passed + 1))
  else
    failed=$((failed + 1))
    echo "FAIL $label"
  fi
}

unit=""
learning=""
mode=unit
for t in "$@"; do
  if [ "$t" = "--" ]; then mode=learning; continue; fi
  if [ $mode = unit ]; then unit="$unit $t"; else learning="$learning $t"; fi
done

for t in $unit; do count "./build/$t" "$t (-O2)"; done
for t in $unit; do count "./build/san_$t" "$t (sanitizers)"; done
for t in $learning; do count "./build/$t" "$t (-O2)"; done

# examples/custom_env.c (a game defined in user code, trained by PPO-LSTM)
# learns it: success at least 0.9 (chance is 1/3) in 100k steps, seed 1.
check "custom_env example learns (success >= 0.9)" sh -c 'out=$(./build/custom_env 100000 1) &&
  final=$(echo "$out" | grep "^final:") && echo "$final" &&
  echo "$final" | grep -Eq " success=(0[.]9[0-9]|1[.]00) "'
grep "^final: env=Signal" "$log" | tail -n 1

# A checkpoint written by memrl (test_checkpoint leaves it in build/) read by
# Python's standard library, when python3 is installed.
if command -v python3 >/dev/null 2>&1; then
  check "python reads a memrl checkpoint" python3 tools/safetensors_io.py check \
    build/memrl_written.safetensors build/memrl_written.expect
fi
# mrl_gemm with OpenMP: a -fopenmp build passes test_gemm on 2 threads and
# prints the same bitwise checksums of large products on 1 and 2 threads, and
# so does a build with tiny blocks (blocking never changes a result).
check "gemm bitwise across OpenMP threads and blockings" sh -c '"${CC:-cc}" -O2 -fopenmp -o build/test_gemm_omp tests/test_gemm.c -lm &&
  "${CC:-cc}" -O2 -DMRL_GEMM_KC=7 -DMRL_GEMM_NC=32 -o build/test_gemm_blocks tests/test_gemm.c -lm &&
  OMP_NUM_THREADS=2 ./build/test_gemm_omp &&
  one=$(OMP_NUM_THREADS=1 ./build/test_gemm_omp --checksum) &&
  two=$(OMP_NUM_THREADS=2 ./build/test_gemm_omp --checksum) &&
  blk=$(./build/test_gemm_blocks --checksum) &&
  echo "gemm checksums: 1 thread $one, 2 threads $two, small blocks $blk" &&
  [ -n "$one" ] && [ "$one" = "$two" ] && [ "$one" = "$blk" ]'

# Headers as C99 and C++, gcc and clang, warnings as errors.
printf '#define MEMRL_IMPLEMENTATION\n#include "../memrl_algos.h"\nint main(void) { return 0; }\n' > build/all_headers.c
printf '#define MEMRL_IMPLEMENTATION\n#include "../memrl_envs.h"\nint main(void) { return 0; }\n' > build/envs_alone.c
printf '#define MEMRL_IMPLEMENTATION\n#include "../memrl_tensor.h"\nint main(void) { return 0; }\n' > build/tensor_alone.c
printf '#define MRL_STATIC\n#define MEMRL_IMPLEMENTATION\n#include "../memrl_algos.h"\nint main(void) { return 0; }\n' > build/static_headers.c
printf '#define MRL_THREADS\n#define MEMRL_IMPLEMENTATION\n#include "../memrl_algos.h"\nint main(void) { return 0; }\n' > build/threads_headers.c
for cc in gcc clang; do
  for src in all_headers envs_alone tensor_alone static_headers threads_headers; do
    check "$cc C99 $src" $cc -std=c99 -pedantic -Wall -Wextra -Werror -c build/$src.c -o build/$src.$cc.o
  done
done
for cxx in g++ clang++; do
  for src in all_headers envs_alone tensor_alone static_headers threads_headers; do
    check "$cxx C++ $src" $cxx -x c++ -std=c++11 -pedantic -Wall -Wextra -Werror -c build/$src.c -o build/$src.$cxx.o
  done
done
# conv2d splits images over OpenMP threads: a -fopenmp build compares 1 and 2 threads bit for bit.
check "conv2d OpenMP equals serial" sh -c "${CC:-cc} -std=c99 -O2 -fopenmp -o build/omp_test_tensor_fused tests/test_tensor_fused.c -lm && ./build/omp_test_tensor_fused"
# The vector env's OpenMP path steps environments in parallel bit for bit like the serial loop.
check "vecenv OpenMP equals serial" sh -c "${CC:-cc} -std=c99 -O2 -fopenmp -o build/omp_test_envs_popgym tests/test_envs_popgym.c -lm && OMP_NUM_THREADS=4 ./build/omp_test_envs_popgym"
# The thread wrapper (MRL_THREADS only): 4 threads count under a mutex, 2 producers and 2
# consumers share a bounded queue through condition variables; a deadlock fails after 120 s.
check "threads (MRL_THREADS): mutex counter, producer/consumer" sh -c '"${CC:-cc}" -std=c99 -O2 -DMRL_THREADS -pthread -o build/threads_test_shared tests/test_shared.c -lm &&
  if command -v timeout >/dev/null 2>&1; then timeout 120 ./build/threads_test_shared; else ./build/threads_test_shared; fi'
# No mutable global state: no writable data symbols in an implementation object.
check "no writable globals" sh -c '! nm build/all_headers.gcc.o | grep -E " [BbDd] "'
check "clang-format" make -s format-check

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
