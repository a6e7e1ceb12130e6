"""A stand-in CUDA driver for tests without a GPU: a libcuda.so.1 reporting one device of compute
capability 9.0 whose memory is host memory. Enough for backend detection, builds, parpy's copies
and the calls of the toolchain-free path (modules, launches, graphs), which it writes to
$FAKE_CUDA_LOG as JSON lines, cuInit among them (with the process id); it runs no kernel, and the
CUDA runtime inside a program built by nvcc finds it lacking. cuModuleGetFunction finds a kernel
only if its name is in the image. Like a real driver, it refuses to work (CUDA_ERROR_NOT_INITIALIZED)
in a process forked after cuInit."""

import os
import subprocess
import sys

import pytest

import parpy
from common import child_timeout

SOURCE = r"""
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <pthread.h>
#include <unistd.h>
#define _GNU_SOURCE
typedef unsigned long long u64;
static __thread void* current = 0;
static const char* image = 0;
static size_t image_len = 0;
static int capturing = 0;
static FILE* out(void) {
  static FILE* f = 0;
  if (!f) {
    f = fopen(getenv("FAKE_CUDA_LOG") ? getenv("FAKE_CUDA_LOG") : "/dev/null", "a");
    setvbuf(f, 0, _IOLBF, 0);  /* each line written at once: nothing buffered is copied by fork */
  }
  return f;
}
/* Fork after cuInit: the child's driver state is unusable, as with the real driver. */
static int initialised = 0, forked = 0;
static void forked_child(void) { forked = initialised; }
int cuGetErrorName(int e, const char** s) { *s = e == 3 ? "CUDA_ERROR_NOT_INITIALIZED" : "CUDA_ERROR_FAKE"; return 0; }
int cuGetErrorString(int e, const char** s) { *s = e == 3 ? "initialization error" : "fake driver"; return 0; }
int cuInit(unsigned f) {
  fprintf(out(), "{\"op\": \"init\", \"pid\": %d}\n", (int)getpid());
  if (forked) return 3;
  if (!initialised) pthread_atfork(0, 0, forked_child);
  initialised = 1;
  return 0;
}
int cuDriverGetVersion(int* v) { *v = 13000; return 0; }
int cuDeviceGetCount(int* n) { *n = 1; return 0; }
int cuDeviceGet(int* d, int i) { *d = i; return 0; }
int cuDeviceGetName(char* s, int n, int d) { strncpy(s, "Fake GPU", n); return 0; }
int cuDeviceGetAttribute(int* v, int a, int d) { *v = a == 75 ? 9 : 0; return 0; }
int cuDevicePrimaryCtxRetain(void** c, int d) { *c = (void*)0x1234; return 0; }
int cuCtxGetCurrent(void** c) { if (forked) return 3; *c = current; return 0; }
int cuCtxSetCurrent(void* c) { current = c; return 0; }
int cuCtxGetDevice(int* d) { *d = 0; return 0; }
int cuCtxSynchronize(void) { return 0; }
int cuMemAlloc_v2(u64* p, size_t n) {
  if (forked) return 3;
  *p = (u64)calloc(1, n ? n : 1);
  fprintf(out(), "{\"op\": \"alloc\", \"bytes\": %zu}\n", n);
  return 0;
}
int cuMemFree_v2(u64 p) { free((void*)p); return 0; }
int cuMemcpyHtoD_v2(u64 d, const void* s, size_t n) { memcpy((void*)d, s, n); return 0; }
int cuMemcpyDtoH_v2(void* d, u64 s, size_t n) { memcpy(d, (void*)s, n); return 0; }
int cuMemcpyDtoD_v2(u64 d, u64 s, size_t n) { memcpy((void*)d, (void*)s, n); return 0; }
int cuMemcpyHtoDAsync_v2(u64 d, const void* s, size_t n, void* st) { memcpy((void*)d, s, n); return 0; }
int cuMemcpyDtoHAsync_v2(void* d, u64 s, size_t n, void* st) { memcpy(d, (void*)s, n); return 0; }
int cuMemcpyDtoDAsync_v2(u64 d, u64 s, size_t n, void* st) { memcpy((void*)d, (void*)s, n); return 0; }
int cuMemsetD8_v2(u64 d, unsigned char v, size_t n) {
  memset((void*)d, v, n);
  fprintf(out(), "{\"op\": \"memset\", \"bytes\": %zu}\n", n);
  return 0;
}
int cuMemsetD8Async(u64 d, unsigned char v, size_t n, void* st) {
  memset((void*)d, v, n);
  fprintf(out(), "{\"op\": \"memset\", \"bytes\": %zu}\n", n);
  return 0;
}
int cuStreamSynchronize(void* s) { return 0; }
int cuPointerGetAttribute(void* v, int a, u64 p) { *(int*)v = 0; return 0; }
int cuModuleLoadData(void** m, const void* data) {
  image = (const char*)data;
  /* A cubin is an ELF file: its size is in its header (e_shoff + e_shnum * e_shentsize). */
  if (memcmp(image, "\x7f" "ELF", 4) != 0) return 200;
  u64 shoff; unsigned short shentsize, shnum;
  memcpy(&shoff, image + 0x28, 8); memcpy(&shentsize, image + 0x3a, 2); memcpy(&shnum, image + 0x3c, 2);
  image_len = shoff + (u64)shentsize * shnum;
  fprintf(out(), "{\"op\": \"load\", \"bytes\": %llu}\n", (u64)image_len);
  *m = (void*)0x5678;
  return 0;
}
int cuModuleUnload(void* m) { return 0; }
static int in_image(const char* name) {
  size_t n = strlen(name);
  for (size_t i = 0; i + n < image_len; ++i)
    if (memcmp(image + i, name, n + 1) == 0) return 1;
  return 0;
}
int cuModuleGetFunction(void** f, void* m, const char* name) {
  if (!in_image(name)) return 500;  /* CUDA_ERROR_NOT_FOUND */
  *f = strdup(name);
  return 0;
}
int cuModuleGetGlobal_v2(u64* p, size_t* bytes, void* m, const char* name) {
  if (!in_image(name)) return 500;
  *p = (u64)calloc(1, 24);
  *bytes = 24;
  return 0;
}
int cuFuncSetAttribute(void* f, int a, int v) {
  fprintf(out(), "{\"op\": \"attribute\", \"kernel\": \"%s\", \"attribute\": %d}\n", (const char*)f, a);
  return 0;
}
int cuLaunchKernel(void* f, unsigned gx, unsigned gy, unsigned gz, unsigned bx, unsigned by, unsigned bz,
                   unsigned smem, void* stream, void** params, void** extra) {
  fprintf(out(), "{\"op\": \"launch\", \"kernel\": \"%s\", \"grid\": %u, \"block\": %u, \"captured\": %d}\n",
          (const char*)f, gx, bx, capturing);
  return 0;
}
int cuStreamCreate(void** s, unsigned flags) { *s = (void*)0x99; return 0; }
int cuStreamDestroy_v2(void* s) { return 0; }
int cuStreamBeginCapture_v2(void* s, int mode) { capturing = 1; return 0; }
int cuStreamEndCapture(void* s, void** g) { capturing = 0; *g = (void*)0x77; fprintf(out(), "{\"op\": \"capture\"}\n"); return 0; }
int cuGraphInstantiateWithFlags(void** e, void* g, unsigned long long f) { *e = (void*)0x66; return 0; }
int cuGraphExecUpdate_v2(void* e, void* g, void* info) { return 0; }
int cuGraphLaunch(void* e, void* s) { fprintf(out(), "{\"op\": \"graph launch\"}\n"); return 0; }
int cuGraphDestroy(void* g) { return 0; }
int cuGraphExecDestroy(void* e) { return 0; }
"""


def build(directory, source=SOURCE):
    """Compiles `source` into directory/libcuda.so.1 and returns that path."""
    directory.mkdir(exist_ok=True)
    (directory / "fake_cuda.c").write_text(source)
    lib = directory / "libcuda.so.1"
    subprocess.run([parpy.backend.host_cxx(), "-x", "c", "-shared", "-fPIC", "-O1", str(directory / "fake_cuda.c"),
                    "-o", str(lib)], check=True, capture_output=True)
    return lib


def run(tmp_path, script, source=SOURCE, **env):
    """Runs the Python `script` in a child process against a stand-in driver built from `source`,
    with a private cache, its calls logged to tmp_path/driver.log and `env` added; returns the
    child's result (asserting it exited with 0). Skips the test under compute-sanitizer
    (PARPY_TEST_SANITIZER, set by tools/gpu_check.sh): the child runs no GPU code to check, and the
    sanitizer, injected into it too, crashed or hung there (an H200, 2026-12-02: 9 minutes)."""
    if os.environ.get("PARPY_TEST_SANITIZER"):
        pytest.skip("a stand-in driver's child runs no GPU code for compute-sanitizer to check")
    lib = build(tmp_path / "driver", source)
    path = tmp_path / "child.py"
    path.write_text(script)
    full = dict(os.environ, PARPY_LIBCUDA=str(lib), PARPY_CACHE_DIR=str(tmp_path / "cache"),
                FAKE_CUDA_LOG=str(tmp_path / "driver.log"), **env)
    full.pop("PARPY_CUDA_BUILD", None)
    r = subprocess.run([sys.executable, str(path)], env=full, capture_output=True, text=True,
                       timeout=child_timeout(600),
                       check=False)
    assert r.returncode == 0, r.stdout + r.stderr
    return r
