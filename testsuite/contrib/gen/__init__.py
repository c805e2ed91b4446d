"""Case builders for testsuite/contrib/generate.py. Importing the submodules registers their cases in
common.CASES, in the order they are written (transformer ops first, then quantized / fused matmul ops)."""
