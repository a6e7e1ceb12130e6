"""Two helper modules for test_helper_resolution.py that define jit functions and externals
under the same names with different bodies."""
