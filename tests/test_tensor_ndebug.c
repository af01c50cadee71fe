/* test_tensor built with NDEBUG, as release builds are: assert() is compiled
 * out, yet every programmer error (wrong shapes, impossible shapes such as an
 * element count beyond int, ndim outside 1..4, a negative dimension) must
 * still stop with its message, and everything else behave the same.
 * cc -O2 tests/test_tensor_ndebug.c -lm && ./a.out */
#define NDEBUG
#define MRL_TEST_PROGRAM "test_tensor_ndebug"
#include "test_tensor.c"
