#!/usr/bin/env python3
"""Differential fuzzer of parpy: generated programs, compiled and run, compared with plain Python.

Usage (from the repository root, with parpy installed or PYTHONPATH=python):

    python tools/fuzz.py --programs 100000 --backend cpu --jobs 2 --seed 1 --time-limit 5400

Program `i` of seed `S` is generated deterministically from (S, i): a function
`g<i>(x, y, z, u, k, w, d, a, N, M)` that is valid and deterministic by construction (see `Gen`),
fresh random inputs and random parallel options. Candidates whose plain-Python run raises or gives
a non-finite output are replaced (counted as skipped), and so are those the Cuda backend rejects
with a user error (counted as rejected). Each program is compiled and called through the public
API (`@parpy.jit`, then a call with `opts=`), and every element of every array argument is
compared with the undecorated function run on copies of the same inputs. Three programs in ten
pass some arrays as non-contiguous views holding the same values (`LAYOUTS`; the elements of the
larger arrays outside the views must stay unwritten); each program is then called a second time
with new values of its float arguments, which must build nothing and match plain Python again.

The programs run in `--jobs` worker processes, so a crash (a segfault in the native core or in
generated code) or a hang kills only its worker: the program is reported with its seed and index,
the worker is restarted, and the run goes on. Each failing program is written to `--fail-dir`
with the command that runs it again (`--only I`). The last line printed is the summary

    fuzz: programs=... built=... ok=... skipped=... rejected=... mismatches=0 crashes=0
          internal=0 errors=0 timeouts=0 time=...s (backend ..., seed ..., jobs ...)

(`internal`: an exception whose message starts with "Internal error"; `errors`: any other
exception of a valid program), and the exit status is 0 only when nothing failed. `--backend cuda`
runs the same programs with their bodies in `with parpy.gpu:` and Cuda parallel options (needs a
GPU; `--codegen-only` stops at `parpy.print_compiled`, which needs none). `--time-limit` stops
handing out programs after that many seconds; the summary counts those that ran.
"""

from __future__ import annotations

import argparse
import json
import linecache
import os
import random
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
import traceback
import warnings
from dataclasses import dataclass, field

import numpy as np
import parpy

# ===== The generator =============================================================================

P = "parpy.operators."


class _Scope:
    def __init__(self, parent=None):
        self.parent = parent
        self.vars = {}  # name -> dict(t=type, bound=int bound or None, pd=parallel depth)

    def lookup_all(self):
        out = {}
        s = self
        chain = []
        while s is not None:
            chain.append(s)
            s = s.parent
        for sc in reversed(chain):
            out.update(sc.vars)
        return out


class Gen:
    """Generates the body of `f(x, y, z, u, k, w, d, a, N, M)`.

    x: float64 (N, M) input, multiples of 1/64 in [-2, 2]; k: int64 (N,) input in [-5, 5];
    y: float64 (N, M), z: float64 (N,), u: float64 (M,), w: int64 (N,) outputs (random initial
    values, so reads before writes are deterministic); d: {"s": float, "n": int}; a: float.
    """

    ARRAYS = {  # noqa: RUF012 - read only
        "x": ("f", "NM", False), "k": ("i", "N", False), "y": ("f", "NM", True),
        "z": ("f", "N", True), "u": ("f", "M", True), "w": ("i", "N", True),
    }  # fmt: skip
    IBOUND = 10_000

    def __init__(self, rng, N, M):
        self.rng = rng
        self.N, self.M = N, M
        self.n = 0
        self.lines = []
        self.scope = _Scope()
        self.par = {}  # dim -> loop var of the active parallel loop over that dim
        self.loops = []  # (var, dim or None, trip count)
        self.in_reduce = False
        self.counters = set()
        self.slice_target = None

    # ----- helpers -------------------------------------------------------------------------
    def fresh(self, p):
        self.n += 1
        return f"{p}{self.n}"

    def emit(self, ind, s):
        self.lines.append("    " * ind + s)

    def pd(self):
        return len(self.par)

    def iters(self):
        r = 1
        for _, _, t in self.loops:
            r *= t
        return r

    def dimsize(self, dim):
        return self.N if dim == "N" else self.M

    def locals_of(self, t, assignable=False):
        out = []
        for name, v in self.scope.lookup_all().items():
            if v["t"] != t:
                continue
            if assignable and (v["pd"] != self.pd() or name in self.counters):
                continue
            out.append((name, v))
        return out

    # ----- indices ---------------------------------------------------------------------------
    def index(self, dim, depth):
        """Any expression whose value lies in [0, size(dim)) (or a negative literal)."""
        r = self.rng.random()
        lv = [v for v, d, _ in self.loops if d == dim]
        if lv and r < 0.5:
            return self.rng.choice(lv)
        if r < 0.7:
            n = self.dimsize(dim)
            return str(self.rng.choice([self.rng.randrange(n), -self.rng.randint(1, n)]))
        if r < 0.8:
            return f"{dim} - 1"
        e, _ = self.iexpr(depth + 1)
        return f"({e}) % {dim}"

    def access(self, arr, depth, write=False):
        """A subscript of `arr` that is race free under the active parallel loops, or None."""
        _, dims, out = self.ARRAYS[arr]
        if out and write and any(dim not in dims for dim in self.par):
            return None  # e.g. z under a parallel 'M' loop
        idx = []
        for dim in dims:
            if out and dim in self.par:
                idx.append(self.par[dim])
            else:
                idx.append(self.index(dim, depth))
        return f"{arr}[{', '.join(idx)}]"

    # ----- expressions (return (text, int bound or None)) ------------------------------------
    def leaf(self, t, depth):
        rng = self.rng
        for _ in range(10):
            r = rng.random()
            if t == "f":
                if r < 0.2:
                    return rng.choice(["0.5", "1.0", "2.0", "0.25", "3.0", "1.5", "-0.75"]), None
                if r < 0.45:
                    return self.access("x", depth), None
                if r < 0.6:
                    arr = rng.choice(["y", "z", "u"])
                    if self.slice_target == arr:
                        continue
                    a = self.access(arr, depth)
                    if a is not None:
                        return a, None
                    continue
                if r < 0.75:
                    ls = self.locals_of("f")
                    if ls:
                        return rng.choice(ls)[0], None
                    continue
                if r < 0.8:
                    return rng.choice(["a", 'd["s"]']), None
                if r < 0.9 and depth < 3:
                    e, _ = self.iexpr(depth + 1)
                    return f"{P}float64({e})", None
                if depth < 3:
                    return f"{P}float64({self.f32(depth + 1)})", None
                continue
            else:
                if r < 0.2:
                    v = rng.randint(-3, 7)
                    return str(v), abs(v)
                if r < 0.35:
                    return self.access("k", depth), 5
                if r < 0.45 and self.slice_target != "w":
                    a = self.access("w", depth)
                    if a is not None:
                        return a, self.IBOUND
                    continue
                if r < 0.65 and self.loops:
                    v, _, _ = rng.choice(self.loops)
                    return v, 16
                if r < 0.8:
                    ls = self.locals_of("i")
                    if ls:
                        n, v = rng.choice(ls)
                        return n, v["bound"]
                    continue
                if r < 0.9:
                    return rng.choice([("N", 16), ("M", 16), ('d["n"]', 9)])
                if depth < 3:
                    return f"{P}int32({self.access('x', depth)} * 4.0)", 8
                continue
        return ("1.0", None) if t == "f" else ("1", 1)

    def f32(self, depth):
        """A float32 expression whose value is exact in float32 (and so equal in plain Python)."""
        r = self.rng.random()
        if r < 0.4 or depth > 3:
            return f"{P}float32({self.access('x', depth)})"
        if r < 0.55:
            return f"{P}float32({self.access('k', depth)})"
        if r < 0.7:
            return f"({self.f32(depth + 1)} * {self.rng.choice(['0.5', '2.0', '-1.0'])})"
        op = self.rng.choice(["+", "-", "*"])
        return f"({P}float32({self.access('x', depth)}) {op} {P}float32({self.access('x', depth)}))"

    def bexpr(self, depth):
        rng = self.rng
        r = rng.random()
        if r < 0.6 or depth > 2:
            t = rng.choice("fi")
            a = self.fexpr(depth + 1) if t == "f" else self.iexpr(depth + 1)[0]
            b = self.fexpr(depth + 1) if t == "f" else self.iexpr(depth + 1)[0]
            return f"{a} {rng.choice(['<', '<=', '>', '>=', '==', '!='])} {b}"
        if r < 0.75:
            return f"not ({self.bexpr(depth + 1)})"
        return f"({self.bexpr(depth + 1)}) {rng.choice(['and', 'or'])} ({self.bexpr(depth + 1)})"

    def fexpr(self, depth=0):
        rng = self.rng
        if depth >= 3 or rng.random() < 0.3:
            return self.leaf("f", depth)[0]
        r = rng.random()
        a = self.fexpr(depth + 1)
        if r < 0.35:
            return f"({a} {rng.choice(['+', '-', '*'])} {self.fexpr(depth + 1)})"
        if r < 0.45:
            op = rng.choice(["/", "//", "%"])
            return f"({a} {op} (abs({self.fexpr(depth + 1)}) + 1.0))"
        if r < 0.5:
            return rng.choice([f"((abs({a}) + 1.0) ** 0.5)", f"({a} ** 2)", f"(-{a})"])
        if r < 0.6:
            return rng.choice([f"{P}exp(-abs({a}))", f"{P}exp({a})"])
        if r < 0.68:
            return rng.choice([f"{P}log(abs({a}) + 1.0)", f"{P}sqrt(abs({a}))", f"abs({a})"])
        if r < 0.78:
            return f"{P}{rng.choice(['min', 'max'])}({a}, {self.fexpr(depth + 1)})"
        if r < 0.88:
            return f"({a} if {self.bexpr(depth + 1)} else {self.fexpr(depth + 1)})"
        return f"({a} + {P}float64({self.f32(depth + 1)}))"

    def iexpr(self, depth=0):
        """An int64 expression and a bound on its magnitude."""
        rng = self.rng
        if depth >= 3 or rng.random() < 0.3:
            return self.leaf("i", depth)
        r = rng.random()
        a, ba = self.iexpr(depth + 1)
        if r < 0.35:
            b, bb = self.iexpr(depth + 1)
            op = rng.choice(["+", "-", "*"])
            bound = ba * bb if op == "*" else ba + bb
            if bound > 10**9:
                return a, ba
            return f"({a} {op} {b})", bound
        if r < 0.5:
            b, bb = self.iexpr(depth + 1)
            op = rng.choice(["//", "%"])
            return f"({a} {op} (abs({b}) + 1))", (ba if op == "//" else bb + 1)
        if r < 0.6:
            c = rng.randint(2, 5)
            op = rng.choice(["//", "%"])
            return f"({a} {op} {c})", (ba if op == "//" else c)
        if r < 0.65 and ba <= 1000:
            return f"({a} ** 2)", ba * ba
        if r < 0.72:
            return rng.choice([f"(-{a})", f"abs({a})"]), ba
        if r < 0.82:
            b, bb = self.iexpr(depth + 1)
            return f"{P}{rng.choice(['min', 'max'])}({a}, {b})", max(ba, bb)
        if r < 0.92:
            b, bb = self.iexpr(depth + 1)
            return f"({a} if {self.bexpr(depth + 1)} else {b})", max(ba, bb)
        return f"{P}int32({self.access('x', depth)} * 4.0)", 8

    # ----- statements -----------------------------------------------------------------------
    def block(self, ind, n):
        for _ in range(n):
            self.stmt(ind)

    def push(self):
        self.scope = _Scope(self.scope)

    def pop(self):
        self.scope = self.scope.parent

    def define(self, name, t, bound):
        self.scope.vars[name] = {"t": t, "bound": bound, "pd": self.pd()}

    def int_store(self, ind, target, op, bound_old, assignable_name=None):
        e, b = self.iexpr()
        if op == "=":
            if b > self.IBOUND:
                e, b = f"({e}) % 1009", 1009
            self.emit(ind, f"{target} = {e}")
            return b
        nb = bound_old + b * self.iters()
        if nb > self.IBOUND:
            self.emit(ind, f"{target} = ({target} {op} {e}) % 1009")
            return 1009
        self.emit(ind, f"{target} {op}= {e}")
        return nb

    def stmt(self, ind):
        rng = self.rng
        depth = len(self.loops)
        kinds = ["def", "def", "set", "arr", "arr", "if", "slice", "sred"]
        if depth < 3:
            kinds += ["seq", "while", "red"]
            if "N" not in self.par and "M" not in self.par:
                kinds += ["parN", "parN"]
            if "M" not in self.par:
                kinds += ["parM"]
        if depth == 0 and not self.par and not self.in_reduce:
            kinds += ["cols", "ared"]
        if "N" in self.par and "M" not in self.par and not self.in_reduce:
            kinds += ["xred"]
        k = rng.choice(kinds)
        getattr(self, "s_" + k)(ind)

    def s_cols(self, ind):
        """Loops down columns, the forms the Cpu backend runs a tile of columns at a time: a
        parallel loop over columns around a loop over rows, or a loop over rows around a parallel
        loop over columns (one form reads what another column wrote in the row before)."""
        rng = self.rng
        c = rng.choice(["a", "0.5", 'd["s"]', "1.25"])
        j, i = self.fresh("j"), self.fresh("i")
        if rng.random() < 0.5:
            rows = rng.choice(["range(N)", "range(N - 1, -1, -1)", "range(1, N)"])
            self.emit(ind, "parpy.label('M')")
            self.emit(ind, f"for {j} in range(M):")
            if rng.random() < 0.6:
                self.emit(ind + 1, f"u[{j}] = {c}")
            self.emit(ind + 1, f"for {i} in {rows}:")
            self.emit(ind + 2, rng.choice([f"u[{j}] += x[{i}, {j}] * {c}",
                                           f"y[{i}, {j}] = y[{i}, {j}] * {c} + x[{i}, {j}]",
                                           f"u[{j}] = {P}max(u[{j}], y[{i}, {j}])"]))
            if rng.random() < 0.5:
                self.emit(ind + 1, f"u[{j}] = u[{j}] * {c}")
            return
        rows = rng.choice(["range(N)", "range(1, N)"])
        bodies = [f"u[{j}] += x[{i}, {j}]", f"y[{i}, {j}] = y[{i}, {j}] + x[{i}, {j} + 1] * {c}"]
        if rows == "range(1, N)":
            bodies.append(f"y[{i}, {j} + 1] = y[{i}, {j} + 1] + y[{i} - 1, {j}]")
        self.emit(ind, f"for {i} in {rows}:")
        self.emit(ind + 1, "parpy.label('M')")
        self.emit(ind + 1, f"for {j} in range(M - 1):")
        self.emit(ind + 2, rng.choice(bodies))

    def s_def(self, ind):
        if self.rng.random() < 0.6:
            name = self.fresh("t")
            self.emit(ind, f"{name} = {self.fexpr()}")
            self.define(name, "f", None)
        else:
            name = self.fresh("c")
            b = self.int_store(ind, name, "=", 0)
            self.define(name, "i", b)

    def s_set(self, ind):
        rng = self.rng
        t = rng.choice("fi")
        ls = self.locals_of(t, assignable=True)
        if not ls:
            return self.s_def(ind)
        name, v = rng.choice(ls)
        if t == "f":
            op = rng.choice(["", "+", "-", "*"])
            self.emit(ind, f"{name} {op}= {self.fexpr()}")
        else:
            v["bound"] = max(v["bound"], self.int_store(ind, name, rng.choice("=+-"), v["bound"]))

    def s_arr(self, ind):
        rng = self.rng
        arr = rng.choice(["y", "y", "z", "u", "w"])
        tgt = self.access(arr, 0, write=True)
        if tgt is None:
            return self.s_def(ind)
        if arr == "w":
            self.int_store(ind, tgt, rng.choice("=+"), self.IBOUND // 2)
        else:
            op = rng.choice(["", "", "+", "-", "*"])
            self.emit(ind, f"{tgt} {op}= {self.fexpr()}")

    def s_if(self, ind):
        self.emit(ind, f"if {self.bexpr(0)}:")
        self.push()
        self.block(ind + 1, self.rng.randint(1, 2))
        self.pop()
        if self.rng.random() < 0.5:
            self.emit(ind, "else:")
            self.push()
            self.block(ind + 1, self.rng.randint(1, 2))
            self.pop()

    def s_while(self, ind):
        c = self.fresh("w")
        n = self.rng.randint(1, 3)
        self.emit(ind, f"{c} = 0")
        self.define(c, "i", 3)
        self.counters.add(c)
        self.emit(ind, f"while {c} < {n}:")
        self.push()
        self.loops.append((c, None, n))
        self.block(ind + 1, self.rng.randint(1, 2))
        self.emit(ind + 1, f"{c} += 1")
        self.loops.pop()
        self.pop()

    def ranges(self, dim):
        n = self.dimsize(dim)
        forms = [(f"range({dim})", n), (f"range(0, {dim})", n), (f"range({dim} - 1, -1, -1)", n)]
        if n >= 2:
            forms += [(f"range(1, {dim})", n - 1), (f"range(0, {dim}, 2)", (n + 1) // 2)]
        return self.rng.choice(forms)

    def loop(self, ind, dim, label, par):
        v = self.fresh("i" if dim == "N" else "j")
        rg, trip = self.ranges(dim) if not par else (f"range({dim})", self.dimsize(dim))
        if label:
            self.emit(ind, f"parpy.label('{label}')")
        self.emit(ind, f"for {v} in {rg}:")
        self.push()
        if par:
            self.par[dim] = v
        self.loops.append((v, dim, trip))
        self.block(ind + 1, self.rng.randint(1, 3))
        self.loops.pop()
        if par:
            del self.par[dim]
        self.pop()

    def s_seq(self, ind):
        self.loop(ind, self.rng.choice("NM"), None, False)

    def s_parN(self, ind):
        self.loop(ind, "N", "N", True)

    def s_parM(self, ind):
        self.loop(ind, "M", "M", True)

    def s_red(self, ind):
        rng = self.rng
        dim = rng.choice("NM")
        t = rng.choice("fi")
        name = self.fresh("s")
        v = self.fresh("r")
        trip = self.dimsize(dim)
        op = rng.choice(["+", "+", "max", "min"])
        if t == "f":
            self.emit(ind, f"{name} = {rng.choice(['0.0', '1.0', self.fexpr()])}")
        else:
            self.emit(ind, f"{name} = {rng.choice(['0', '1'])}")
        self.emit(ind, "parpy.label('R')")
        self.emit(ind, f"for {v} in range({dim}):")
        self.loops.append((v, dim, trip))
        self.in_reduce = True
        if t == "f":
            e = self.fexpr(1)
        else:
            e, b = self.iexpr(1)
            if b * trip > self.IBOUND:
                op = rng.choice(["max", "min"])
        self.in_reduce = False
        self.loops.pop()
        if op == "+":
            self.emit(ind + 1, rng.choice([f"{name} += {e}", f"{name} = {name} + {e}"]))
        else:
            self.emit(ind + 1, f"{name} = {P}{op}({name}, {e})")
        self.define(name, t, (1 + (b if op != "+" else b * trip)) if t == "i" else None)

    # slices: a mapping statement or a reduction
    def slice_operand(self, shape_dims, fixed):
        """Text for an operand with slices over `shape_dims` ('M', 'N' or 'NM')."""
        rng = self.rng
        if shape_dims == "M":
            arr = rng.choice(["x", "y", "u"])
            if arr == "u" and "M" not in self.par and self.slice_target != "u":
                return "u[:]"
            if arr == "y" and self.slice_target != "y" and "M" not in self.par:
                if "N" in self.par:
                    return f"y[{self.par['N']}, :]"
                return f"y[{self.index('N', 2)}, :]"
            return f"x[{fixed or self.index('N', 2)}, :]"
        if shape_dims == "N":
            arr = rng.choice(["x", "k", "z"])
            if arr == "k":
                return "float64"  # marker, handled by caller
            if arr == "z" and self.slice_target != "z":
                return "z[:]"
            return f"x[:, {self.index('M', 2)}]"
        return "x[:, :]" if self.slice_target == "y" or rng.random() < 0.5 else "y[:, :]"

    def slice_expr(self, dims, depth=0, fixed=None):
        rng = self.rng
        r = rng.random()
        if depth >= 2 or r < 0.35:
            op = self.slice_operand(dims, fixed)
            if op == "float64":
                return "(k[:] * 0.5)"
            return op
        a = self.slice_expr(dims, depth + 1, fixed)
        if r < 0.6:
            b = self.slice_expr(dims, depth + 1, fixed) if rng.random() < 0.6 else self.fexpr(2)
            return f"({a} {rng.choice(['+', '-', '*'])} {b})"
        if r < 0.7:
            return f"({a} / (abs({self.slice_expr(dims, depth + 1, fixed)}) + 1.0))"
        if r < 0.8:
            return f"{P}{rng.choice(['min', 'max'])}({a}, {self.fexpr(2)})"
        return rng.choice([f"{P}exp(-abs({a}))", f"abs({a})", f"{P}sqrt(abs({a}))",
                           f"({a} ** 2)", f"{P}log(abs({a}) + 1.0)"])

    def s_slice(self, ind):
        rng = self.rng
        if "M" in self.par or self.in_reduce:
            return self.s_def(ind)
        if "N" in self.par:
            i = self.par["N"]
            self.slice_target = "y"
            rhs = self.slice_expr("M", fixed=None)
            self.slice_target = None
            if rng.random() < 0.5:
                self.emit(ind, "parpy.label('M')")
            self.emit(ind, f"y[{i}, :] {rng.choice(['', '', '+'])}= {rhs}")
            return
        form = rng.choice(["row", "all", "z", "u", "w", "part"])
        if form == "row" or (form == "part" and self.M < 3):
            self.slice_target = "y"
            rhs = self.slice_expr("M")
            self.slice_target = None
            if rng.random() < 0.5:
                self.emit(ind, "parpy.label('M')")
            self.emit(ind, f"y[{self.index('N', 1)}, :] = {rhs}")
        elif form == "part":
            lo = rng.randrange(self.M - 1)
            hi = rng.randint(lo + 1, self.M)
            r = f"x[{self.index('N', 1)}, {lo}:{hi}]"
            self.slice_target = "y"  # the scalar factor must not read y either
            factor = self.fexpr(2)
            self.slice_target = None
            self.emit(ind, f"y[{self.index('N', 1)}, {lo}:{hi}] = {r} * {factor}")
        elif form == "all":
            self.slice_target = "y"
            rhs = self.slice_expr("NM")
            self.slice_target = None
            if rng.random() < 0.5:
                self.emit(ind, "parpy.label('N')")
                self.emit(ind, "parpy.label('M')")
            self.emit(ind, f"y[:, :] = {rhs}")
        elif form == "z":
            self.slice_target = "z"
            rhs = self.slice_expr("N")
            self.slice_target = None
            if rng.random() < 0.5:
                self.emit(ind, "parpy.label('N')")
            self.emit(ind, f"z[:] {rng.choice(['', '+'])}= {rhs}")
        elif form == "u":
            self.slice_target = "u"
            rhs = self.slice_expr("M", fixed=None)
            self.slice_target = None
            self.emit(ind, f"u[:] = {rhs}")
        else:
            self.emit(ind, f"w[:] = k[:] * {rng.randint(-3, 3)} + {rng.randint(0, 5)}")

    def s_sred(self, ind):
        rng = self.rng
        if "M" in self.par or self.in_reduce:
            return self.s_def(ind)
        red = rng.choice(["sum", "max", "min"])
        if "N" in self.par:
            i = self.par["N"]
            name = self.fresh("q")
            # The target is set to the neutral element before the reduction
            # (docs/language.md, Reductions), so the operand must not read it.
            self.slice_target = "z"
            src = rng.choice([f"x[{self.index('N', 1)}, :]", f"y[{i}, :]",
                              f"(x[{i}, :] * {self.fexpr(2)})"])
            self.slice_target = None
            if rng.random() < 0.5:
                self.emit(ind, "parpy.label('M')")
            if rng.random() < 0.5:
                self.emit(ind, f"{name} = {P}{red}({src})")
                self.define(name, "f", None)
            else:
                self.emit(ind, f"z[{i}] = {P}{red}({src})")
            return
        form = rng.choice(["full", "axis1", "axis0", "vec"])
        if form == "full":
            name = self.fresh("q")
            if rng.random() < 0.5:
                self.emit(ind, "parpy.label('M')")
            self.emit(ind, f"{name} = {P}{red}({rng.choice(['x[:, :]', 'y[:, :]'])})")
            self.define(name, "f", None)
        elif form == "vec":
            if rng.random() < 0.5:
                self.emit(ind, "parpy.label('N')")
            # Neither index may read u: the target is set to the neutral element first.
            self.slice_target = "u"
            target, column = self.index("M", 1), self.index("M", 1)
            self.slice_target = None
            self.emit(ind, f"u[{target}] = {P}{red}(x[:, {column}])")
        elif form == "axis1":
            if rng.random() < 0.5:
                self.emit(ind, "parpy.label('N')")
                self.emit(ind, "parpy.label('M')")
            self.emit(ind, f"z[:] = {P}{red}({rng.choice(['x[:, :]', 'y[:, :]'])}, axis=1)")
        else:
            if rng.random() < 0.5:
                self.emit(ind, "parpy.label('N')")
                self.emit(ind, "parpy.label('M')")
            ax = rng.choice(["0", "-2"])
            self.emit(ind, f"u[:] = {P}{red}({rng.choice(['x[:, :]', 'y[:, :]'])}, axis={ax})")

    def s_xred(self, ind):
        """Full reductions of a row inside an expression (docs/language.md, Reductions): each is
        computed first into a local of its own; a label before a statement with no slices of its
        own outside its reductions goes to them."""
        rng = self.rng
        i = self.par["N"]

        def red():
            self.slice_target = "z"
            src = rng.choice([f"x[{self.index('N', 2)}, :]", f"y[{i}, :]", f"(x[{i}, :] * {self.fexpr(2)})"])
            self.slice_target = None
            return f"{P}{rng.choice(['sum', 'max', 'min'])}({src})"

        form = rng.choice(["local", "store", "two", "cond"])
        if form != "cond" and rng.random() < 0.5:
            self.emit(ind, "parpy.label('M')")
        if form == "local":
            name = self.fresh("q")
            self.emit(ind, f"{name} = ({red()} {rng.choice(['+', '-', '*'])} {self.fexpr(1)})")
            self.define(name, "f", None)
        elif form == "store":
            # The factor may not read z: `z[i] -= f(z[i]) * m`, repeated by enclosing loops, can
            # amplify the last-bit differences of fused multiply-adds (docs/language.md, Parallel
            # semantics) past any tolerance.
            self.slice_target = "z"
            e = self.fexpr(1)
            self.emit(ind, f"z[{i}] {rng.choice(['', '+', '-'])}= ({e} * {red()})")
        elif form == "two":
            name = self.fresh("q")
            self.emit(ind, f"{name} = ({red()} - {red()}) / (abs({self.fexpr(1)}) + 1.0)")
            self.define(name, "f", None)
        else:
            self.emit(ind, f"if {red()} > {self.fexpr(1)}:")
            self.push()
            self.block(ind + 1, rng.randint(1, 2))
            self.pop()

    def s_ared(self, ind):
        """An array reduction across a loop labelled reduce(): the rows of x (times a factor)
        combined into u, each element reduced on its own (docs/language.md, Reductions)."""
        rng = self.rng
        v = self.fresh("r")
        op = rng.choice(["+", "+", "max", "min"])
        self.emit(ind, "parpy.label('R')")
        self.emit(ind, f"for {v} in range(N):")
        self.loops.append((v, "N", self.N))
        self.in_reduce = True
        self.slice_target = "u"
        e = rng.choice([f"x[{v}, :]", f"(x[{v}, :] * {self.fexpr(2)})", f"y[{v}, :]"])
        self.slice_target = None
        self.in_reduce = False
        self.loops.pop()
        if op == "+":
            self.emit(ind + 1, rng.choice([f"u[:] += {e}", f"u[:] = u[:] + {e}"]))
        else:
            self.emit(ind + 1, f"u[:] = {P}{op}(u[:], {e})")

    def program(self, name, nstmts):
        """Source of one jit function; it always has a top-level parallel 'N' loop."""
        self.lines = []
        pos = self.rng.randint(0, nstmts)
        for s in range(nstmts + 1):
            if s == pos:
                self.s_parN(1)
            else:
                self.stmt(1)
        return f"def {name}(x, y, z, u, k, w, d, a, N, M):\n" + "\n".join(self.lines) + "\n"


def make_inputs(rng, N, M):
    """Fresh numpy inputs in the argument order of generated functions."""
    return [
        rng.integers(-128, 129, (N, M)).astype(np.float64) / 64.0,
        rng.standard_normal((N, M)),
        rng.standard_normal(N),
        rng.standard_normal(M),
        rng.integers(-5, 6, N).astype(np.int64),
        rng.integers(-5, 6, N).astype(np.int64),
        {"s": float(rng.integers(-8, 9)) / 4.0, "n": int(rng.integers(0, 9))},
        float(rng.integers(-8, 9)) / 8.0,
        N,
        M,
    ]



# ===== Invalid programs: mutants of valid ones (tests/python/test_fuzz.py, parts A and C) =====

# Invalid statements inserted at a random position (with the indentation of that position).
BAD_STMTS = [
    "pass", "break", "continue", "del x", "assert N > 0", "import math", "raise ValueError()",
    "global g", "x[0, 0]: float = 1.0", "print(N)", "return", "return 1.0",
    "def g():\n{ind}    return 1", "try:\n{ind}    y[0, 0] = 1.0\n{ind}except Exception:\n{ind}    y[0, 0] = 2.0",
    "z[0] = x[0] + 1.0", "z[0, 0] = 1.0", "z[{Nb}] = 1.0", "y[0, {Mb}] = x[0, -{Mb1}]",
    "y[{Nb}, 0] = 2.0", "z[-{Nb1}] = 0.0", "z[0] = x[0, 0] + k[0]", "w[0] = x[0, 0]",
    "w[0] = 1.5", "z[0] = True", "t = True + 1", "z[0] = k[0] + 1.5", "z[0] = a + N",
    "parpy.label(3)", "parpy.label()", "parpy.label('a', 'b')", "parpy.label(N)",
    "parpy.label('N')", "parpy.label('N')\n{ind}if N > 0:\n{ind}    z[0] = 1.0",
    "parpy.label('N')\n{ind}while N < 0:\n{ind}    z[0] = 1.0",
    "parpy.label('N')\n{ind}parpy.label('M')\n{ind}for q in range(N):\n{ind}    z[q] = 1.0",
    "if x[0, :] > 0.0:\n{ind}    z[0] = 1.0", "z[0] = x[0, :]", "t = x[0, :]",
    "z[0] = parpy.operators.sum(x[0, :]) + 1.0", "z[0] = parpy.operators.sum(x)",
    "y[0, 3:1] = x[0, 3:1]", "y[0, 0:k[0]] = 1.0", "y[0, -2:] = x[0, -2:]", "y[0, :] = x[:, 0]",
    "z[:] = parpy.operators.sum(x[:, :], axis=2)", "z[:] = parpy.operators.sum(x[:, :], axis=-3)",
    "z[:] = parpy.operators.sum(x[:, :])", "t = qq + 1.0", "z[0] = undefined_fn(1.0)",
    "z[0] = min(1.0, 2.0)", "z[0] = float(N)", "N = 3", "a += 1.0",
    "for q in range(0, N, 0):\n{ind}    z[q] = 1.0", "for q in range(1, 2, 3, 4):\n{ind}    z[q] = 1.0",
    "for q in range():\n{ind}    z[0] = 1.0", "for q, r in range(N):\n{ind}    z[0] = 1.0",
    "for q in range(N):\n{ind}    z[q] = 1.0\n{ind}else:\n{ind}    z[0] = 2.0",
    "while N < 0:\n{ind}    z[0] = 1.0\n{ind}else:\n{ind}    z[0] = 2.0",
    "if 0 < N < 5:\n{ind}    z[0] = 1.0", "if N is 3:\n{ind}    z[0] = 1.0",
    "if N in k:\n{ind}    z[0] = 1.0", "t = b = 1.0", "t, s = 1.0, 2.0", "z[0] = +x[0, 0]",
    "z[0] = x @ x", "t = [1, 2]", "t = lambda q: q", "t = f'{{N}}'", "t = x.shape[0]",
    "t = 1.0 & 2.0", "t = ~x[0, 0]", "t = True ** 2", "t = not x[0, 0]", "t = 1 and 2",
    "z[0] = (1.0 if N else 2.0)", "t = 'abc'", "t = None", "t = b'x'",
    "parpy.label('R')\n{ind}for q in range(N):\n{ind}    z[0] += 1.0\n{ind}    z[1] += 1.0",
    "s = 0.0\n{ind}parpy.label('R')\n{ind}for q in range(N):\n{ind}    s = x[q, 0] + s",
    "s = 0.0\n{ind}parpy.label('R')\n{ind}for q in range(N):\n{ind}    s = s - x[q, 0]",
    "s = 0.0\n{ind}parpy.label('R')\n{ind}for q in range(N):\n{ind}    if N > 0:\n{ind}        s += 1.0",
    "for q in range(N):\n{ind}    t = 1.0\n{ind}z[0] = q + t", "x[0, 0] = x[0, 0]",
    "with open('f') as fh:\n{ind}    z[0] = 1.0", "with parpy.gpu:\n{ind}    z[0] = 1.0",
    "z[0] = parpy.operators.exp(k[0])", "z[0] = parpy.operators.sqrt(1.0, 2.0)",
    "w[0] = k[0] ** -1", "z[0] = x[0.5, 0]", "z[0] = x[k[0] > 0, 0]", "y[:, :] = z[:]",
    "z[0] = helper_fn(x[0, 0])", "helper_stmt(z, N)", "helper_stmt(z)", "t = helper_stmt(z, N)",
    "for q in range(N):\n{ind}    parpy.label('N')", "z[0] = parpy.operators.inf",
    "z[0] = -parpy.operators.inf", "z[0] = x[0, 0] // 0.0", "w[0] = k[0] // 0", "w[0] = k[0] % 0",
]  # fmt: skip

# Token substitutions that usually make a program ill-typed or ill-formed.
SUBS = [
    ("range(N)", "range(M)"), ("range(N)", "range(x)"), ("range(M)", "range(0, M, 0)"),
    (" + ", " // "), (" + ", " & "), (" - ", " @ "), ("0.5", "5"), ("1.0", "1"), ("2.0", "2"),
    ("x[", "k["), ("y[", "x["), ("z[", "w["), ("w[", "z["), ("k[", "x["), ("u[", "z["),
    ("parpy.label('N')", "parpy.label('Q')"), ("parpy.label('M')", "parpy.label('N')"),
    ("parpy.label('R')", "parpy.label('M')"), ("parpy.label('N')", "parpy.label(1)"),
    (":]", "]"), ("[:, :]", "[:]"), (", :]", ", 0:]"), ("axis=1", "axis=5"), ("% N", "% 0"),
    ("float64(", "float16("), ("float32(", "uint8("), ("int32(", "uint32("), ("abs(", "exp("),
    ("parpy.operators.min(", "min("), ("parpy.operators.sum(", "parpy.operators.prod("),
    ("parpy.operators.max(", "parpy.operators.max(1.0, "), (" if ", " if 1 if "), ("a", "aa"),
    ("d[\"s\"]", "d[\"zz\"]"), ("d[\"n\"]", "d"), ("not ", "~"), (" and ", " & "),
    (" < ", " is "), ("+=", "@="), ("-=", "**="), ("**", "<<"),
]  # fmt: skip


def mutate(rng, src, N, M):
    lines = src.splitlines()
    for _ in range(rng.choice([1, 1, 1, 2])):
        if rng.random() < 0.55:
            # Insert after line pos - 1 with its indentation (one deeper after a block header).
            pos = rng.randint(1, len(lines))
            prev = lines[pos - 1]
            ind = prev[: len(prev) - len(prev.lstrip())]
            if prev.rstrip().endswith(":"):
                ind += "    "
            bad = rng.choice(BAD_STMTS).format(
                ind=ind, Nb=N + rng.randint(0, 3), Mb=M, Mb1=M + 1, Nb1=N + 1
            )
            lines.insert(pos, ind + bad)
        else:
            old, new = rng.choice(SUBS)
            cand = [n for n in range(1, len(lines)) if old in lines[n]]
            if cand:
                n = rng.choice(cand)
                lines[n] = lines[n].replace(old, new, 1)
    return "\n".join(lines) + "\n"


ARGS_SETS = [
    ("lambda: [np.ones(({N}, {M})), np.zeros(({N}, {M})), np.zeros({N}), np.zeros({M}), "
     "np.arange({N}), np.zeros({N}, np.int64), {{'s': 0.5, 'n': 2}}, 1.5, {N}, {M}]"),
    # Other element types and kinds: float32 arrays, int32, a float N, a missing dict field.
    ("lambda: [np.ones(({N}, {M}), np.float32), np.zeros(({N}, {M}), np.float32), "
     "np.zeros({N}, np.float32), np.zeros({M}), np.arange({N}, dtype=np.int32), "
     "np.zeros({N}, np.int64), {{'s': 0.5, 'n': 2}}, 1.5, {N}, {M}]"),
    ("lambda: [np.ones(({N}, {M})), np.zeros(({N}, {M})), np.zeros({N}), np.zeros({M}), "
     "np.arange({N}), np.zeros({N}, np.int64), {{'s': 0.5}}, 2, {N}.5, {M}]"),
]


def mutant_module(rng, first, count):
    parts = [
        "import numpy as np\nimport parpy\n\n",
        "@parpy.jit\ndef helper_fn(v: parpy.types.F64) -> parpy.types.F64:\n    return v * 2.0\n\n",
        ("@parpy.jit\ndef helper_stmt(q, N):\n    parpy.label('N')\n    for i in range(N):\n"
         "        q[i] = 1.0\n\n"),
        "FUNS = []\n\n",
    ]
    for n in range(first, first + count):
        N, M = rng.randint(1, 9), rng.randint(1, 7)
        g = Gen(rng, N, M)
        src = g.program(f"f{n}", rng.randint(1, 4))
        if rng.random() < 0.55:
            for _ in range(5):  # substitutions can break Python syntax: try another
                bad = mutate(rng, src, N, M)
                try:
                    with warnings.catch_warnings():
                        warnings.simplefilter("ignore")  # e.g. "is" with a literal
                        compile(bad, "<mutant>", "exec")
                except SyntaxError:
                    continue
                src = bad
                break
        args = ARGS_SETS[0] if rng.random() < 0.85 else rng.choice(ARGS_SETS[1:])
        parts.append(
            f"def _make{n}():\n    @parpy.jit\n" + textwrap.indent(src, "    ")
            + f"    return f{n}\n\nFUNS.append((_make{n}, {args.format(N=N, M=M)}))\n\n"
        )  # fmt: skip
    return "".join(parts)




# ===== Programs of a seed ========================================================================

CPU, CUDA = "cpu", "cuda"
HEADER = "import numpy as np\nimport parpy\n\n"
# Parallel options of the Cuda programs: threads of the 'N' loop, of the 'M' and 'R' loops, and
# threads per block (the ones Part C of tests/python/test_fuzz.py generates code for).
_CUDA_SHAPES = [(4, 8, 1024), (8, 2048, 512), (2, 64, 32), (16, 256, 128), (8, 32, 32)]


def opts_spec(rng, backend=CPU):
    """Random parallel options of a program, as a plain dict (printable, JSON-able)."""
    if backend == CPU:
        return {"N": rng.choice([2, 4, 16]), "M": rng.choice([2, 8, 32]),
                "R": rng.choice([2, 4, 64])}  # fmt: skip
    n, m, tpb = rng.choice(_CUDA_SHAPES)
    return {"N": n, "M": m, "R": m, "tpb": tpb, "clusters": rng.random() < 0.15,
            "graphs": rng.random() < 0.25}  # fmt: skip


def make_opts(spec, backend=CPU):
    """The CompileOptions of an `opts_spec` dict."""
    tpb = spec.get("tpb")

    def threads(n):
        t = parpy.threads(n)
        return t.tpb(tpb) if tpb else t

    opts = parpy.par({"N": parpy.threads(spec["N"]), "M": threads(spec["M"]),
                      "R": threads(spec["R"]).reduce()})  # fmt: skip
    if backend == CPU:
        opts.backend = parpy.CompileBackend.Cpu
    else:
        opts.backend = parpy.CompileBackend.Cuda
        opts.use_cuda_thread_block_clusters = spec["clusters"]
        opts.use_cuda_graphs = spec["graphs"]
    return opts


@dataclass
class Program:
    """Program `index` of `seed`: the source of one function, its inputs and plain-Python result."""

    seed: int
    index: int
    backend: str
    name: str
    src: str  # "def <name>(x, y, z, u, k, w, d, a, N, M): ..."
    inputs: list
    ref: list  # the inputs after the undecorated function ran on copies of them
    spec: dict  # parallel options (opts_spec)
    skipped: int = 0  # candidates before this one whose plain-Python run raised or gave NaN
    rejected: int = 0  # candidates before this one that the Cuda backend rejected (user errors)
    N: int = 0
    M: int = 0
    layouts: dict = field(default_factory=dict)  # argument name -> LAYOUTS key, where not contiguous

    @property
    def filename(self):
        return f"<parpy-fuzz {self.backend} seed {self.seed} program {self.index}>"

    def module(self, jit=True):
        return HEADER + ("@parpy.jit\n" if jit else "") + self.src

    def reproducer(self):
        """The program's source, with the command that runs it again (same inputs and options)."""
        return (
            f"# Reproduce: python tools/fuzz.py --backend {self.backend} --seed {self.seed} "
            f"--only {self.index}\n" + HEADER + "\n@parpy.jit\n" + self.src + "\n\n"
            f"# N = {self.N}, M = {self.M}; parallel options: {self.spec}\n"
            + (f"# arrays passed as non-contiguous views: {self.layouts}\n" if self.layouts else "")
        )


def copy_inputs(inputs):
    return [v.copy() if isinstance(v, (np.ndarray, dict)) else v for v in inputs]


# Non-contiguous views an array argument may be passed as (docs/language.md, Non-contiguous
# arrays: the call runs on a contiguous copy, written back after): each holds the same values as
# the contiguous array, inside a larger array whose other elements hold a sentinel that the call
# must leave alone. name -> (dimensions it applies to, function (array, sentinel) -> (view, base)).
def _stepped(v, fill):
    base = np.full(v.shape[:-1] + (2 * v.shape[-1] + 1,), fill, dtype=v.dtype)
    view = base[..., 1::2]
    view[...] = v
    return view, base


def _column(v, fill):
    base = np.full((v.shape[0], 3), fill, dtype=v.dtype)
    base[:, 1] = v
    return base[:, 1], base


def _reversed(v, fill):
    base = np.full((2 * v.shape[0],) + v.shape[1:], fill, dtype=v.dtype)
    view = base[2 * v.shape[0] - 1::-2]
    view[...] = v
    return view, base


LAYOUTS = {
    "fortran": ((2,), lambda v, fill: (np.asfortranarray(v), None)),
    "transposed": ((2,), lambda v, fill: (np.ascontiguousarray(v.T).T, None)),
    "stepped": ((1, 2), _stepped),
    "column": ((1,), _column),
    "reversed": ((1, 2), _reversed),
}
LAYOUT_CHANCE = 0.3  # of a program passing some of its arrays as views
SENTINEL = {np.dtype(np.float64): -7.25e300, np.dtype(np.int64): -(2**62) + 3}


def choose_layouts(seed, index, attempt, inputs):
    """Which array arguments of the candidate go as which views (from their own random stream, so
    that the programs of a seed are those it generated before layouts existed)."""
    rng = random.Random(f"parpy-fuzz-layout/{seed}/{index}/{attempt}")
    if rng.random() >= LAYOUT_CHANCE:
        return {}
    out = {}
    for name, v in zip("xyzukw", inputs[:6]):
        options = [k for k, (dims, _) in LAYOUTS.items() if v.ndim in dims]
        if rng.random() < 0.6:
            out[name] = rng.choice(options)
    if rng.random() < 0.2:  # x and y as the even and odd columns of one matrix (they interleave)
        out["x"] = out["y"] = "interleaved"
    return out


def as_layouts(args, layouts):
    """`args` (fresh copies) with the arrays named in `layouts` replaced by such views, and the
    (base, view) pairs whose sentinel elements must stay."""
    args = list(args)
    bases = []
    if layouts.get("x") == "interleaved":
        x, y = args[0], args[1]
        both = np.empty((x.shape[0], 2 * x.shape[1]), dtype=x.dtype)
        both[:, 0::2], both[:, 1::2] = x, y
        args[0], args[1] = both[:, 0::2], both[:, 1::2]
    for pos, name in enumerate("xyzukw"):
        if name in layouts and layouts[name] != "interleaved":
            v = args[pos]
            view, base = LAYOUTS[layouts[name]][1](v, SENTINEL[v.dtype])
            np.testing.assert_array_equal(view, v)
            args[pos] = view
            if base is not None:
                bases.append((name, base, layouts[name], v.shape))
    return args, bases


def sentinels_changed(bases):
    """A description of the first base array whose elements outside its view changed, or None."""
    for name, base, kind, shape in bases:
        _, inside = LAYOUTS[kind][1](np.ones(shape, dtype=bool), False)  # True where the view is
        if np.any(base[~inside] != SENTINEL[base.dtype]):
            return f"argument {name}: elements outside the {kind} view it was passed as were written"
    return None


def reference(f, inputs):
    """Runs plain Python on copies; None when it fails or produces non-finite outputs."""
    ref = copy_inputs(inputs)
    try:
        with np.errstate(all="raise"):
            f(*ref)
    except (FloatingPointError, OverflowError, ZeroDivisionError, ValueError):
        return None
    if not all(np.all(np.isfinite(v)) for v in ref[1:6]):
        return None
    return ref


def differences(got, ref):
    """A description of the first output array that differs from the reference, or None."""
    for name, g, e in zip("xyzukw", got[:6], ref[:6]):
        try:
            if g.dtype == np.int64:
                np.testing.assert_array_equal(g, e)
            else:
                # Sums are reassociated by OpenMP/SIMD: rtol 1e-9 plus a tiny atol for cancellation.
                np.testing.assert_allclose(g, e, rtol=1e-9, atol=1e-12)
        except AssertionError as err:
            return f"output {name} differs:{err}"
    return None


def _load(text, name, filename):
    """Executes module `text` as if it came from `filename` (its lines are kept in linecache, as
    IPython does, so that parpy.jit finds the source) and returns its function `name`."""
    linecache.cache[filename] = (len(text), None, text.splitlines(True), filename)
    namespace = {"__name__": "parpy_fuzz_program"}
    exec(compile(text, filename, "exec"), namespace)  # noqa: S102 - generated by Gen
    return namespace[name]


def candidate(seed, index, attempt, backend=CPU):
    """Candidate `attempt` for program `index` of `seed` (its reference is not computed yet)."""
    rng = random.Random(f"parpy-fuzz/{seed}/{index}/{attempt}")
    nrng = np.random.default_rng([seed, index, attempt])
    N, M = rng.randint(1, 12), rng.randint(1, 9)
    name = f"g{index}"
    src = Gen(rng, N, M).program(name, rng.randint(1, 6))
    if backend == CUDA:
        # Array accesses outside parallel loops are host code, which the Cuda backend rejects.
        head, body = src.split("\n", 1)
        src = head + "\n    with parpy.gpu:\n" + textwrap.indent(body, "    ")
    inputs = make_inputs(nrng, N, M)
    return Program(seed, index, backend, name, src, inputs, None, opts_spec(rng, backend), attempt, 0, N, M,
                   choose_layouts(seed, index, attempt, inputs))  # fmt: skip


def rejection(p):
    """The user error with which the compiler rejects `p`, or None. The Cuda backend rejects some
    valid programs (parallel loops of different depths side by side in one kernel, barriers across
    thread blocks it cannot place: docs/gpu.md); such programs are replaced, like those whose
    plain-Python run fails. An internal error is not a rejection: the program is kept and fails."""
    try:
        generated_code(p)
    except (RuntimeError, TypeError, NameError) as e:
        return None if str(e).startswith("Internal error") else str(e).split("\n")[0]
    return None


def generated_code(p):
    """The code parpy generates for `p` (parpy.print_compiled)."""
    try:
        f = _load(p.module(), p.name, p.filename)
        return parpy.print_compiled(f, copy_inputs(p.inputs), make_opts(p.spec, p.backend))
    finally:
        linecache.cache.pop(p.filename, None)


def generate(seed, index, backend=CPU, before_compiler=None):
    """Program `index` of `seed`: the first candidate whose plain-Python run succeeds (and, on
    Cuda, that the compiler accepts). `before_compiler(attempt)` is called before the compiler
    first sees a candidate."""
    skipped = rejected = 0
    for attempt in range(1000):
        p = candidate(seed, index, attempt, backend)
        try:
            p.ref = reference(_load(p.module(jit=False), p.name, p.filename), p.inputs)
        finally:
            linecache.cache.pop(p.filename, None)
        if p.ref is None:
            skipped += 1
            continue
        if before_compiler is not None:
            before_compiler(attempt)
        if backend == CUDA and rejection(p) is not None:
            rejected += 1
            continue
        p.skipped, p.rejected = skipped, rejected
        return p
    raise RuntimeError(f"no valid program for seed {seed}, index {index}")


def execute(p, codegen_only=False, inject=None):
    """Compiles and runs `p` through the public API and compares it with plain Python.

    Returns (status, message, built): status "ok", "mismatch", "internal" (an exception whose
    message starts with "Internal error") or "error" (any other exception: the program is valid);
    built: libraries built for it (0 when found in the disk cache)."""
    try:
        if inject == "internal":
            raise RuntimeError("Internal error: injected by the fuzzer's test")
        f = _load(p.module(), p.name, p.filename)
        opts = make_opts(p.spec, p.backend)
        got, bases = as_layouts(copy_inputs(p.inputs), p.layouts)
        if codegen_only:
            parpy.print_compiled(f, got, opts)
            return "ok", "", 0
        before = parpy._native.stats()["builds"]
        f(*got, opts=opts)
        built = parpy._native.stats()["builds"] - before
    except Exception as e:  # noqa: BLE001 - every exception of a valid program is a finding
        status = "internal" if str(e).startswith("Internal error") else "error"
        return status, "".join(traceback.format_exception(e))[-6000:], 0
    finally:
        linecache.cache.pop(p.filename, None)
    if inject == "mismatch":
        got[1].flat[0] += 1.0
    problem = differences(got, p.ref) or sentinels_changed(bases)
    if not problem:
        try:
            problem = second_call(p, f, opts)
        except Exception as e:  # noqa: BLE001 - as above
            status = "internal" if str(e).startswith("Internal error") else "error"
            return status, "".join(traceback.format_exception(e))[-6000:], built
    return ("mismatch", problem, built) if problem else ("ok", "", built)


def second_values(p):
    """New values of the program's float arguments `a` and `d["s"]` for a second call."""
    rng = random.Random(f"parpy-fuzz-second/{p.seed}/{p.index}")
    a = p.inputs[7] + rng.randint(1, 8) / 8.0 * rng.choice([-1, 1])
    s = p.inputs[6]["s"] + rng.randint(1, 8) / 4.0 * rng.choice([-1, 1])
    return a, s


def second_call(p, f, opts):
    """Calls the compiled `f` again with new values of its float arguments (Python floats are
    passed when the code runs, never compiled in: docs/language.md) and compares with plain Python
    run with them. A description of what went wrong, or None (also when plain Python fails with
    them: nothing to compare)."""
    a, s = second_values(p)
    inputs = copy_inputs(p.inputs)
    inputs[6]["s"], inputs[7] = s, a
    try:
        ref = reference(_load(p.module(jit=False), p.name, p.filename), inputs)
    finally:
        linecache.cache.pop(p.filename, None)
    if ref is None:
        return None
    got, bases = as_layouts(copy_inputs(inputs), p.layouts)
    before = parpy._native.stats()["builds"]
    f(*got, opts=opts)
    if parpy._native.stats()["builds"] != before:
        return f"a second call with new float arguments (a={a}, d['s']={s}) built the program again"
    problem = differences(got, ref) or sentinels_changed(bases)
    return f"a second call with a={a}, d['s']={s}: {problem}" if problem else None


# ===== Worker processes ==========================================================================


def _worker(args):
    """Runs the programs whose indices arrive on stdin. Writes a line {"i", "attempt"} before the
    compiler sees a candidate (so a crash is attributed to its source), then one result line."""
    import faulthandler

    proto = os.fdopen(args.result_fd, "w", buffering=1)  # stdout and stderr go to a log
    faulthandler.enable()  # a crash leaves the Python stack in the log
    inject = dict(json.loads(args.inject)) if args.inject else {}
    done = 0
    for line in sys.stdin:
        i = int(line)

        def before_compiler(attempt, i=i):
            proto.write(json.dumps({"i": i, "attempt": attempt}) + "\n")

        p = generate(args.seed, i, args.backend, before_compiler)
        what = inject.get(str(i))
        if what == "crash":
            os.kill(os.getpid(), signal.SIGSEGV)
        if what == "hang":
            time.sleep(3600)
        status, msg, built = execute(p, args.codegen_only, what)
        proto.write(json.dumps({"i": i, "status": status, "msg": msg, "built": built,
                                "skipped": p.skipped, "rejected": p.rejected}) + "\n")  # fmt: skip
        done += 1
        if done % 200 == 0:
            parpy.clear_cache()  # the libraries of finished programs, on disk and in memory


FAILURES = ("mismatch", "crash", "internal", "error", "timeout")


@dataclass
class Summary:
    backend: str
    seed: int
    jobs: int
    programs: int = 0
    built: int = 0
    ok: int = 0
    skipped: int = 0
    rejected: int = 0
    counts: dict = field(default_factory=lambda: dict.fromkeys(FAILURES, 0))
    seconds: float = 0.0
    stopped_early: str = ""  # why the run stopped before all programs ran
    failures: list = field(default_factory=list)  # (status, program index, message, file)

    @property
    def failed(self):
        return sum(self.counts.values())

    def line(self):
        c = self.counts
        stopped = f", stopped by {self.stopped_early}" if self.stopped_early else ""
        return (f"fuzz: programs={self.programs} built={self.built} ok={self.ok} "
                f"skipped={self.skipped} rejected={self.rejected} mismatches={c['mismatch']} "
                f"crashes={c['crash']} internal={c['internal']} errors={c['error']} "
                f"timeouts={c['timeout']} time={self.seconds:.1f}s (backend {self.backend}, "
                f"seed {self.seed}, jobs {self.jobs}{stopped})")  # fmt: skip


class _Lines:
    """The lines a worker writes to its result pipe."""

    def __init__(self, fd):
        self.fd, self.buffer = fd, b""

    def read(self, deadline):
        """The next line; "" at end of file, None at `deadline` (time.monotonic(); None: never)."""
        while b"\n" not in self.buffer:
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                return None
            ready, _, _ = select.select([self.fd], [], [], left)
            if not ready:
                return None
            chunk = os.read(self.fd, 1 << 16)
            if not chunk:
                return ""
            self.buffer += chunk
        line, self.buffer = self.buffer.split(b"\n", 1)
        return line.decode()


def _tail(path, n=4000):
    try:
        with open(path, errors="replace") as f:
            return f.read()[-n:]
    except OSError:
        return ""


class _Run:
    def __init__(self, programs, backend, jobs, seed, first, time_limit, fail_dir, codegen_only,
                 program_timeout, recycle, omp_threads, inject, progress):
        self.s = Summary(backend, seed, jobs)
        self.backend, self.seed, self.codegen_only = backend, seed, codegen_only
        self.next, self.end = first, first + programs
        self.time_limit, self.program_timeout, self.recycle = time_limit, program_timeout, recycle
        self.fail_dir, self.inject, self.progress = fail_dir, inject, progress
        self.lock = threading.Lock()
        self.t0 = time.monotonic()
        self.stop = False
        self.tmp = tempfile.mkdtemp(prefix="parpy-fuzz-")
        self.env = dict(os.environ)
        here = os.path.dirname(os.path.dirname(os.path.abspath(parpy.__file__)))
        self.env["PYTHONPATH"] = here + os.pathsep + self.env.get("PYTHONPATH", "")
        if omp_threads and "OMP_NUM_THREADS" not in self.env:
            self.env["OMP_NUM_THREADS"] = str(omp_threads)
        self.procs = {}

    def take(self):
        with self.lock:
            if self.stop or self.next >= self.end:
                return None
            if self.time_limit is not None and time.monotonic() - self.t0 > self.time_limit:
                self.s.stopped_early = "the time limit"
                return None
            self.next += 1
            return self.next - 1

    def spawn(self, job, n):
        log = os.path.join(self.tmp, f"worker{job}-{n}.log")
        env = dict(self.env, PARPY_CACHE_DIR=os.path.join(self.tmp, f"cache{job}"))
        argv = [sys.executable, os.path.abspath(__file__), "--worker", "--backend", self.backend,
                "--seed", str(self.seed)]  # fmt: skip
        if self.codegen_only:
            argv.append("--codegen-only")
        if self.inject:
            argv += ["--inject", json.dumps(sorted(self.inject.items()))]
        results, theirs = os.pipe()
        argv += ["--result-fd", str(theirs)]
        try:
            with open(log, "w") as out:
                proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=out, stderr=out, env=env,
                                        pass_fds=(theirs,), start_new_session=True)  # fmt: skip
        except BaseException:
            os.close(results)
            raise
        finally:
            os.close(theirs)
        proc.results = _Lines(results)
        self.procs[job] = proc
        return proc, log

    def kill(self, job):
        proc = self.procs.pop(job, None)
        if proc is None:
            return
        if proc.poll() is None:
            try:
                os.killpg(proc.pid, signal.SIGKILL)  # the worker and its compilers
            except ProcessLookupError:
                pass
        proc.wait()
        proc.stdin.close()
        os.close(proc.results.fd)

    def job(self, job):
        proc, log, spawned, done = None, None, 0, 0
        try:
            while (i := self.take()) is not None:
                if proc is None:
                    proc, log = self.spawn(job, spawned)
                    spawned, done = spawned + 1, 0
                proc.stdin.write(f"{i}\n".encode())
                proc.stdin.flush()
                limit = self.program_timeout
                deadline = time.monotonic() + limit if limit else None
                attempt = None
                while (line := proc.results.read(deadline)) and "status" not in json.loads(line):
                    attempt = json.loads(line)["attempt"]
                if line:
                    self.record(dict(json.loads(line), attempt=attempt))
                    done += 1
                    if done >= self.recycle:
                        self.close(job)
                        proc = None
                    continue
                if self.stop:
                    break  # interrupted: the worker was stopped, not the program
                if line is None:
                    status = "timeout"
                    msg = f"no result after {self.program_timeout} s: the worker was killed"
                    self.kill(job)
                else:
                    code = proc.wait()
                    self.kill(job)
                    status = "crash"
                    msg = f"the worker died ({_describe_exit(code)}) running this program"
                self.record({"i": i, "status": status, "built": 0, "skipped": 0, "rejected": 0,
                             "attempt": attempt,
                             "msg": msg + "\n--- worker log (end) ---\n" + _tail(log)})  # fmt: skip
                proc = None
        except Exception:  # noqa: BLE001 - a driver bug must not hang the run
            with self.lock:
                self.stop = True
            raise
        finally:
            self.close(job)

    def close(self, job):
        proc = self.procs.get(job)
        if proc is not None and proc.poll() is None:
            try:
                proc.stdin.close()
                proc.wait(timeout=30)
            except (OSError, subprocess.TimeoutExpired):
                pass
        self.kill(job)

    def record(self, r):
        with self.lock:
            s = self.s
            s.programs += 1
            s.built += r["built"]
            s.skipped += r["skipped"]
            s.rejected += r["rejected"]
            if r["status"] == "ok":
                s.ok += 1
                return
            s.counts[r["status"]] += 1
        path = self.write_failure(r)
        with self.lock:
            s.failures.append((r["status"], r["i"], r["msg"], path))
        print(f"fuzz: {r['status']} in program {r['i']} (seed {self.seed})"
              + (f": {path}" if path else ""), file=sys.stderr)  # fmt: skip

    def write_failure(self, r):
        if not self.fail_dir:
            return None
        os.makedirs(self.fail_dir, exist_ok=True)
        name = f"{r['status']}-{self.backend}-seed{self.seed}-{r['i']}.py"
        path = os.path.join(self.fail_dir, name)
        # The candidate the worker last gave the compiler (generating it again here could crash).
        attempt = r["attempt"]
        p = candidate(self.seed, r["i"], attempt or 0, self.backend)
        if attempt is None:
            r["msg"] += "\n(the worker died before compiling: the source below may be another's)"
        msg = textwrap.indent(r["msg"].rstrip(), "# ", lambda _: True)
        with open(path, "w") as f:
            f.write(f"# parpy fuzz: {r['status']}\n{msg}\n#\n{p.reproducer()}")
        return path

    def report_progress(self):
        while True:
            with self.lock:
                if self.stop:
                    return
                s = self.s
                rate = s.programs / max(time.monotonic() - self.t0, 1e-9)
                line = (f"fuzz: {s.programs} programs, {s.failed} failures, "
                        f"{rate:.1f} programs/s")  # fmt: skip
            print(line, file=sys.stderr, flush=True)
            for _ in range(int(self.progress * 10)):
                time.sleep(0.1)
                if self.stop:
                    return

    def run(self, jobs):
        threads = [threading.Thread(target=self.job, args=(j,), daemon=True) for j in range(jobs)]
        if self.progress:
            threading.Thread(target=self.report_progress, daemon=True).start()
        try:
            for t in threads:
                t.start()
            for t in threads:
                while t.is_alive():
                    t.join(0.5)
        except KeyboardInterrupt:
            with self.lock:
                self.stop = True
                self.s.stopped_early = "an interrupt"
            for proc in list(self.procs.values()):  # each job thread then closes its own
                try:
                    os.killpg(proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            for t in threads:
                t.join(30)
        finally:
            with self.lock:
                self.stop = True
            self.s.seconds = time.monotonic() - self.t0
            shutil.rmtree(self.tmp, ignore_errors=True)
        return self.s


def _describe_exit(code):
    if code < 0:
        try:
            return f"signal {signal.Signals(-code).name}"
        except ValueError:
            return f"signal {-code}"
    return f"exit status {code}"


def run(programs, backend=CPU, jobs=2, seed=0, first=0, time_limit=None, fail_dir=None,
        codegen_only=False, program_timeout=600, recycle=1000, omp_threads=2, inject=None,
        progress=None):
    """Runs programs first .. first + programs - 1 of `seed` in `jobs` worker processes and returns
    their Summary. `inject` ({index: "crash" | "hang" | "mismatch"}) fakes failures, to test the
    fuzzer itself."""
    r = _Run(programs, backend, jobs, seed, first, time_limit, fail_dir, codegen_only,
             program_timeout, recycle, omp_threads, {str(k): v for k, v in (inject or {}).items()},
             progress)  # fmt: skip
    return r.run(jobs)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    ap.add_argument("--programs", type=int, default=1000, help="number of programs (default 1000)")
    ap.add_argument("--backend", choices=[CPU, CUDA], default=CPU)
    ap.add_argument("--jobs", type=int, default=os.cpu_count() or 1,
                    help="worker processes (default: one per core)")
    ap.add_argument("--seed", type=int, default=0, help="programs are generated from (seed, index)")
    ap.add_argument("--first", type=int, default=0, help="index of the first program (default 0)")
    ap.add_argument("--time-limit", type=float, default=None,
                    help="seconds after which no new program is started")
    ap.add_argument("--fail-dir", default="fuzz-failures",
                    help="directory for the failing programs (default fuzz-failures)")
    ap.add_argument("--codegen-only", action="store_true",
                    help="stop at parpy.print_compiled (no build; Cuda needs no GPU)")
    ap.add_argument("--program-timeout", type=float, default=600,
                    help="seconds one program may take before its worker is killed (default 600)")
    ap.add_argument("--omp-threads", type=int, default=2,
                    help="OMP_NUM_THREADS of the workers unless already set (default 2)")
    ap.add_argument("--progress", type=float, default=60,
                    help="seconds between progress lines on stderr (0: none; default 60)")
    ap.add_argument("--only", type=int, default=None,
                    help="run program ONLY in this process and print its source and outcome")
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--inject", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--result-fd", type=int, default=None, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker:
        return _worker(args)
    if args.only is not None:
        p = generate(args.seed, args.only, args.backend)
        print(p.reproducer())
        status, msg, _ = execute(p, args.codegen_only)
        print(status + (f":\n{msg}" if msg else ""))
        return 0 if status == "ok" else 1
    def interrupt(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupt)  # stops the run like Ctrl-C, with its summary
    s = run(args.programs, args.backend, args.jobs, args.seed, args.first, args.time_limit,
            args.fail_dir, args.codegen_only, args.program_timeout, omp_threads=args.omp_threads,
            progress=args.progress or None)  # fmt: skip
    print(s.line(), flush=True)
    return 1 if s.failed else 0


if __name__ == "__main__":
    sys.exit(main())
