#!/bin/sh
# Runs every test program of `make test` and adds up their counts.
# Usage: run_tests.sh UNIT_TEST... -- LEARNING_TEST...
# Unit tests run twice (plain -O2 and under address/undefined sanitizers);
# learning tests run at -O2 only (sanitizers make them minutes long; the unit
# tests already train every agent a few iterations under the sanitizers).
# Each header is also compiled as C99 -pedantic and as C++ by gcc and clang
# with -Werror, the sources must match .clang-format, and the text shared by
# headers (the common block, the licence at each end) must not drift apart.
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
# examples/quickstart.c (the README's quick start, complete): PPO-LSTM learns
# TMaze-20, is saved, loaded into a fresh agent and deployed step by step.
check "quickstart example learns, saves, loads and deploys (success >= 0.95)" sh -c 'out=$(./build/quickstart) &&
  echo "$out" | tail -n 2 &&
  echo "$out" | grep -Eq "^deployed: success (0[.]9[5-9]|1[.]00) " &&
  echo "$out" | grep -Eq "^final: .* success=(0[.]9[5-9]|1[.]00) "'
grep "^deployed: " "$log" | tail -n 1
# The README's quick start is examples/quickstart.c, byte for byte.
readme_quickstart() {
  sed -n '/^```c$/,/^```$/p' README.md | sed '1d;$d' | awk '/^\/\* PPO with an LSTM memory/{p=1} p' |
    awk 'p && /^}$/{print; exit} {p=1; print}' > build/readme_quickstart.c
  cmp build/readme_quickstart.c examples/quickstart.c
}
check "README quick start is examples/quickstart.c" readme_quickstart

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

# The memory benchmark's smoke subset (make memory-bench-smoke): 2 cores x 2
# tasks x 1 seed; the table must have both task rows, every cell an MMER in [0, 1].
check "memory benchmark smoke table (2 x 2 cells, MMER in [0, 1])" sh -c 'sh tools/memory_benchmark.sh --smoke -o build/memory_bench_smoke.md &&
  sh tools/memory_benchmark.sh --verify build/memory_bench_smoke.md 2 2'

# Text the headers share must not drift apart. The common block stands in
# memrl_tensor.h and memrl_envs.h (both stand alone): once in each, between its
# begin and end marker comments, byte for byte the same.
common_block() { sed -n '/^\/\* ---- memrl common block /,/^\/\* ---- end of memrl common block /p' "$1"; }
same_common_block() { # header header
  for h in "$1" "$2"; do
    [ "$(grep -c '^#ifndef MRL_COMMON_INCLUDED$' "$h")" -eq 1 ] || { echo "$h: not one common block"; return 1; }
  done
  common_block "$1" > build/common_block_1.txt && common_block "$2" > build/common_block_2.txt &&
    tail -n 1 build/common_block_1.txt | grep -q 'end of memrl common block' &&
    grep -q '^#endif /\* MRL_COMMON_INCLUDED \*/$' build/common_block_1.txt &&
    cmp build/common_block_1.txt build/common_block_2.txt
}
check "common block identical in memrl_tensor.h and memrl_envs.h" same_common_block memrl_tensor.h memrl_envs.h
# Every header ends with the licence block: LICENSE's text, byte for byte,
# between two marker lines, as the last bytes of the file (so all are equal).
licence_at_end() { # header...
  { printf '/*\n---- memrl licence: the text of LICENSE (tools/run_tests.sh checks every copy) ----\n'
    cat LICENSE; printf -- '---- end of memrl licence ----\n*/\n'; } > build/licence_block.txt
  n=$(wc -c < build/licence_block.txt)
  for h in "$@"; do
    [ "$(grep -c '^---- memrl licence: ' "$h")" -eq 1 ] || { echo "$h: not one licence block"; return 1; }
    tail -c "$n" "$h" | cmp build/licence_block.txt - || { echo "$h: licence block differs from LICENSE"; return 1; }
  done
}
check "licence block of LICENSE at the end of every header" licence_at_end memrl_tensor.h memrl_nn.h memrl_mem.h memrl_algos.h memrl_envs.h

# Section tags (sokol's greppable >>name) are unique across the headers, and a
# header whose contents list them ("The tags in file order:") lists exactly its own.
section_tags() { grep -o '>>[a-z][a-z_0-9]*' "$1" | sed 's/^>>//'; }
tags_consistent() { # header...
  for h in "$@"; do section_tags "$h"; done | sort | uniq -d > build/tags_twice.txt
  [ ! -s build/tags_twice.txt ] || { echo "tags used twice:"; cat build/tags_twice.txt; return 1; }
  for h in "$@"; do
    grep -q '^ \*   The tags in file order:$' "$h" || continue
    sed -n '/^ \*   The tags in file order:$/,/^ \*$/p' "$h" | sed '1d;$d;s/^ \*//' | tr -s ' ' '\n' |
      grep . > build/tags_listed.txt
    section_tags "$h" | cmp build/tags_listed.txt - || { echo "$h: contents list other tags"; return 1; }
  done
}
check "section tags unique and listed" tags_consistent memrl_tensor.h memrl_nn.h memrl_mem.h memrl_algos.h memrl_envs.h

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
# A3C's actor-learner threads (MRL_THREADS): test_a2c again, with two threads training.
check "A3C with 2 threads (MRL_THREADS)" sh -c '"${CC:-cc}" -std=c99 -O2 -DMRL_THREADS -pthread -o build/threads_test_a2c tests/test_a2c.c -lm &&
  if command -v timeout >/dev/null 2>&1; then timeout 300 ./build/threads_test_a2c; else ./build/threads_test_a2c; fi'
# IMPALA with actor threads (MRL_THREADS): two actors feed the learner through the bounded
# queue; training, save/load and the queue's blocking paths run; a deadlock fails after 120 s.
check "impala (MRL_THREADS): actor threads and learner" sh -c '"${CC:-cc}" -std=c99 -O2 -DMRL_THREADS -pthread -o build/threads_test_impala tests/test_impala.c -lm &&
  if command -v timeout >/dev/null 2>&1; then timeout 120 ./build/threads_test_impala; else ./build/threads_test_impala; fi'
# R2D2's learner on its own thread (num_threads 2, MRL_THREADS): every update made, TMaze-5 learned;
# then 3 Ape-X actor threads (num_actors 3): own blocks and epsilons, TMaze-5 learned, early stop,
# checkpoint; the single-thread checks of tests/test_r2d2.c run in this build too. Deadlock: fails
# after 300 s.
check "r2d2 learner and actor threads (MRL_THREADS)" sh -c '"${CC:-cc}" -std=c99 -O2 -DMRL_THREADS -pthread -o build/threads_test_r2d2 tests/test_r2d2.c -lm &&
  if command -v timeout >/dev/null 2>&1; then timeout 300 ./build/threads_test_r2d2; else ./build/threads_test_r2d2; fi'
# No mutable global state: no writable data symbols in an implementation object.
check "no writable globals" sh -c '! nm build/all_headers.gcc.o | grep -E " [BbDd] "'
# The common block (result codes, RNG) stands in two standalone headers: byte-identical.
check "common block identical in memrl_tensor.h and memrl_envs.h" sh -c '
  for h in memrl_tensor.h memrl_envs.h; do
    sed -n "/^\/\* ---- memrl common block/,/^\/\* ---- end of memrl common block/p" $h > build/common.$h
  done
  [ -s build/common.memrl_tensor.h ] && cmp build/common.memrl_tensor.h build/common.memrl_envs.h'
check "clang-format" make -s format-check

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
