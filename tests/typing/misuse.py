"""Wrong uses of the API that the type stubs must reject (tests/python/test_typing.py expects one
mypy error per line marked `# E`)."""

import parpy
from parpy import CompileBackend

parpy.threads("64")  # E
opts = parpy.par({"N": 64})  # E
opts.backend = "Cpu"  # E
opts.bounds_check = 1.5  # E
parpy.backend.is_enabled(CompileBackend.Cpu, "yes")  # E
