"""Grammar-based fuzzing of the compiler on the language of docs/language.md.

Part A puts >= 10,000 generated programs, valid and invalid, through decoration and Cpu code
generation (`print_compiled`, no C++ build) in one subprocess, so a crash of the native core is seen
as a non-zero exit. Every outcome must be success or a user error (RuntimeError, TypeError,
NameError) whose message does not start with "Internal error".

Part C puts >= 2,500 generated programs through Cuda code generation (no GPU needed), with
clusters, graphs and multi-block thread counts among the options, under the same rule, and compiles
a sample of the generated CUDA with nvcc: every GPU pass (fusion, kernel splitting, 128-bit
variants, rows in registers) must either produce code that compiles or report a user error.

Part B builds and runs >= 200 programs that are valid and deterministic by construction and compares
every output element with the undecorated Python function (`f.__wrapped__`) run on copies of the
same inputs.

The generator tracks, per scope, the locals (type, integer magnitude bound, and the parallel depth
they were defined at) and the active parallel loop variables, so that in Part B:
* a parallel loop writes, and reads back, output elements only at its own loop variable (row of a
  parallel 'N' loop, column of a parallel 'M' loop); inputs are read anywhere;
* a local is assigned only inside the parallel loop body that defined it (private);
* the only cross-iteration accumulation is a reduce() loop or a slice reduction;
* divisors are `abs(e) + 1` / `abs(e) + 1.0`; integers are kept small (bounds are tracked and stores
  are wrapped in `% 1009` when a bound would grow too large), so int64 never overflows;
* float32/int32 conversions only see values that are exact in float32 (inputs are multiples of
  1/64), because in plain Python `parpy.operators.float32` is `float()` and does not round;
* a slice statement's right-hand side never reads its target array (numpy evaluates the whole
  right-hand side first, the compiled loop element by element).
Programs whose plain-Python run raises (float overflow in `**`/`exp`) or produces NaN are skipped
(counted) and replaced, since NaN propagation through min/max differs between numpy and C.
"""

import importlib.util
import os
import random
import shutil
import subprocess
import sys
import textwrap
import threading
import time
import warnings

import numpy as np
import parpy
import pytest

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
        k = rng.choice(kinds)
        getattr(self, "s_" + k)(ind)

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
            self.emit(ind, f"u[{self.index('M', 1)}] = {P}{red}(x[:, {self.index('M', 1)}])")
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


def make_opts(rng):
    opts = parpy.par({
        "N": parpy.threads(rng.choice([2, 4, 16])),
        "M": parpy.threads(rng.choice([2, 8, 32])),
        "R": parpy.threads(rng.choice([2, 4, 64])).reduce(),
    })  # fmt: skip
    opts.backend = parpy.CompileBackend.Cpu
    return opts


# ===== Part A: >= 10,000 programs through decoration and code generation ========================

# Invalid statements inserted at a random position (with the indentation of that position).
_BAD_STMTS = [
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
_SUBS = [
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


def _mutate(rng, src, N, M):
    lines = src.splitlines()
    for _ in range(rng.choice([1, 1, 1, 2])):
        if rng.random() < 0.55:
            # Insert after line pos - 1 with its indentation (one deeper after a block header).
            pos = rng.randint(1, len(lines))
            prev = lines[pos - 1]
            ind = prev[: len(prev) - len(prev.lstrip())]
            if prev.rstrip().endswith(":"):
                ind += "    "
            bad = rng.choice(_BAD_STMTS).format(
                ind=ind, Nb=N + rng.randint(0, 3), Mb=M, Mb1=M + 1, Nb1=N + 1
            )
            lines.insert(pos, ind + bad)
        else:
            old, new = rng.choice(_SUBS)
            cand = [n for n in range(1, len(lines)) if old in lines[n]]
            if cand:
                n = rng.choice(cand)
                lines[n] = lines[n].replace(old, new, 1)
    return "\n".join(lines) + "\n"


_DRIVER_A = r"""
import importlib.util, os, sys
import numpy as np
import parpy

outcomes = {"ok": 0, "RuntimeError": 0, "TypeError": 0, "NameError": 0, "IndexError": 0}
opts = parpy.par({"N": parpy.threads(4), "M": parpy.threads(8), "R": parpy.threads(4).reduce()})
opts.backend = parpy.CompileBackend.Cpu
for path in sys.argv[1:]:
    spec = importlib.util.spec_from_file_location(os.path.basename(path)[:-3], path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod
    spec.loader.exec_module(mod)
    for n, (make, args) in enumerate(mod.FUNS):
        try:
            f = make()
            parpy.print_compiled(f, args(), opts)
            outcomes["ok"] += 1
        except (RuntimeError, TypeError, NameError, IndexError) as e:
            msg = str(e)
            if msg.startswith("Internal error"):
                print("INTERNAL", path, n, msg)
                sys.exit(3)
            outcomes[type(e).__name__] += 1
            if os.environ.get("FUZZ_VERBOSE"):
                print(type(e).__name__, msg.split("\n")[0])
print(outcomes)
"""

_ARGS_SETS = [
    ("lambda: [np.ones(({N}, {M})), np.zeros(({N}, {M})), np.zeros({N}), np.zeros({M}), "
     "np.arange({N}), np.zeros({N}, np.int64), {{'s': 0.5, 'n': 2}}, 1.5, {N}, {M}]"),
    # Other element types and kinds: float32 arrays, int32, a float N, a missing dict field.
    ("lambda: [np.ones(({N}, {M}), np.float32), np.zeros(({N}, {M}), np.float32), "
     "np.zeros({N}, np.float32), np.zeros({M}), np.arange({N}, dtype=np.int32), "
     "np.zeros({N}, np.int64), {{'s': 0.5, 'n': 2}}, 1.5, {N}, {M}]"),
    ("lambda: [np.ones(({N}, {M})), np.zeros(({N}, {M})), np.zeros({N}), np.zeros({M}), "
     "np.arange({N}), np.zeros({N}, np.int64), {{'s': 0.5}}, 2, {N}.5, {M}]"),
]


def _module_a(rng, first, count):
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
                bad = _mutate(rng, src, N, M)
                try:
                    with warnings.catch_warnings():
                        warnings.simplefilter("ignore")  # e.g. "is" with a literal
                        compile(bad, "<mutant>", "exec")
                except SyntaxError:
                    continue
                src = bad
                break
        args = _ARGS_SETS[0] if rng.random() < 0.85 else rng.choice(_ARGS_SETS[1:])
        parts.append(
            f"def _make{n}():\n    @parpy.jit\n" + textwrap.indent(src, "    ")
            + f"    return f{n}\n\nFUNS.append((_make{n}, {args.format(N=N, M=M)}))\n\n"
        )  # fmt: skip
    return "".join(parts)


def _env():
    env = dict(os.environ)
    env["PYTHONPATH"] = (
        os.path.dirname(os.path.dirname(parpy.__file__)) + os.pathsep + env.get("PYTHONPATH", "")
    )
    return env


def test_fuzz_decoration_and_codegen(tmp_path):
    rng = random.Random(20250101 + int(os.environ.get("PARPY_FUZZ_SEED", "0")))
    per_file, nfiles = 500, 21
    paths = []
    for m in range(nfiles):
        src = _module_a(rng, m * per_file, per_file)
        p = tmp_path / f"fuzz_a{m}.py"
        p.write_text(src)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            compile(src, str(p), "exec")  # the generator only produces valid Python
        paths.append(str(p))
    t0 = time.time()
    r = subprocess.run(
        [sys.executable, "-W", "ignore::SyntaxWarning", "-c", _DRIVER_A, *paths],
        capture_output=True, text=True, timeout=600, env=_env(), check=False,
    )  # fmt: skip
    assert r.returncode == 0, f"exit {r.returncode}\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}"
    counts = eval(r.stdout.strip().splitlines()[-1])
    total = sum(counts.values())
    print(f"part A: {total} programs in {time.time() - t0:.1f}s: {counts}")
    assert total == per_file * nfiles >= 10_000
    errors = total - counts["ok"]
    assert counts["ok"] >= total // 5 and errors >= total // 5, counts
    assert counts["TypeError"] > 0 and counts["NameError"] > 0, counts


# ===== Part B: >= 200 valid programs built, run and compared with plain Python ==================


def _gen_valid(rng, idx):
    N, M = rng.randint(1, 12), rng.randint(1, 9)
    g = Gen(rng, N, M)
    src = g.program(f"g{idx}", rng.randint(1, 6))
    return src, N, M


def _copy(inputs):
    return [v.copy() if isinstance(v, (np.ndarray, dict)) else v for v in inputs]


def _reference(f, inputs):
    """Runs plain Python on copies; None when it fails or produces non-finite outputs."""
    ref = _copy(inputs)
    try:
        with np.errstate(all="raise"):
            f(*ref)
    except (FloatingPointError, OverflowError, ZeroDivisionError, ValueError):
        return None
    if not all(np.all(np.isfinite(v)) for v in ref[1:6]):
        return None
    return ref


def _valid_program(rng, nrng, idx):
    """Generates programs until one runs in plain Python; returns (source, inputs, skipped)."""
    skipped = 0
    while True:
        src, N, M = _gen_valid(rng, idx)
        inputs = make_inputs(nrng, N, M)
        glb = {"parpy": parpy, "np": np}
        exec(compile(src, f"<fuzz g{idx}>", "exec"), glb)  # noqa: S102 - our generated code
        if _reference(glb[f"g{idx}"], inputs) is None:
            skipped += 1
            continue
        return src, inputs, skipped


def _compare(src, got, ref):
    for name, g, e in zip("xyzukw", got[:6], ref[:6]):
        try:
            if g.dtype == np.int64:
                np.testing.assert_array_equal(g, e)
            else:
                # Sums are reassociated by OpenMP/SIMD: rtol 1e-9 plus a tiny atol for cancellation.
                np.testing.assert_allclose(g, e, rtol=1e-9, atol=1e-12)
        except AssertionError as err:
            raise AssertionError(f"output {name} differs for program:\n{src}\n{err}") from None


def _import(path):
    spec = importlib.util.spec_from_file_location(os.path.basename(path)[:-3], path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.mark.parametrize("part", range(4))
def test_fuzz_build_and_run(part, tmp_path):
    seed = int(os.environ.get("PARPY_FUZZ_SEED", "0"))  # to explore: a different base seed
    rng = random.Random(7000 + part + 100 * seed)
    nrng = np.random.default_rng(9000 + part + 100 * seed)
    count = 75
    progs = []
    skipped = 0
    for n in range(count):
        src, inputs, s = _valid_program(rng, nrng, part * 1000 + n)
        skipped += s
        progs.append((part * 1000 + n, src, inputs, make_opts(rng)))
    path = tmp_path / f"fuzz_b{part}.py"
    path.write_text("import numpy as np\nimport parpy\n\n\n" + "".join(
        f"@parpy.jit\n{src}\n\n" for _, src, _, _ in progs))
    mod = _import(str(path))
    failures = []

    def worker(items):
        for idx, src, inputs, opts in items:
            f = getattr(mod, f"g{idx}")
            try:
                ref = _reference(f.__wrapped__, inputs)
                assert ref is not None
                got = _copy(inputs)
                f(*got, opts=opts)
                _compare(src, got, ref)
            except Exception as e:  # noqa: BLE001 - reported with the source below
                failures.append(f"{type(e).__name__}: {e}\n--- source ---\n{src}")

    t0 = time.time()
    threads = [threading.Thread(target=worker, args=(progs[k::2],)) for k in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    print(f"part B[{part}]: {count} programs built and run in {time.time() - t0:.1f}s, "
          f"{skipped} skipped")
    assert not failures, f"{len(failures)} failures; first:\n{failures[0]}"


# ===== Part C: Cuda code generation of generated programs (no GPU needed) ========================

_DRIVER_C = r"""
import importlib.util, os, sys
import numpy as np
import parpy

out_dir = sys.argv[1]
outcomes = {"ok": 0, "RuntimeError": 0, "TypeError": 0, "NameError": 0, "IndexError": 0}
variants = []
for n_thr, m_thr, tpb, clusters, graphs in [(4, 8, 1024, False, False), (8, 2048, 512, False, False),
                                            (8, 2048, 512, True, True), (2, 64, 32, False, True)]:
    o = parpy.par({"N": parpy.threads(n_thr), "M": parpy.threads(m_thr).tpb(tpb),
                   "R": parpy.threads(m_thr).tpb(tpb).reduce()})
    o.backend = parpy.CompileBackend.Cuda
    o.use_cuda_thread_block_clusters = clusters
    o.use_cuda_graphs = graphs
    variants.append(o)
saved = 0
k = 0
for path in sys.argv[2:]:
    spec = importlib.util.spec_from_file_location(os.path.basename(path)[:-3], path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod
    spec.loader.exec_module(mod)
    for n, (make, args) in enumerate(mod.FUNS):
        k += 1
        try:
            f = make()
            code = parpy.print_compiled(f, args(), variants[k % len(variants)])
            outcomes["ok"] += 1
            if saved < 48 and outcomes["ok"] % 4 == 0:
                with open(os.path.join(out_dir, f"k{saved}.cu"), "w") as fh:
                    fh.write(code)
                saved += 1
        except (RuntimeError, TypeError, NameError, IndexError) as e:
            msg = str(e)
            if msg.startswith("Internal error"):
                print("INTERNAL", path, n, msg)
                sys.exit(3)
            outcomes[type(e).__name__] += 1
print(outcomes)
"""


def test_fuzz_cuda_codegen(tmp_path):
    rng = random.Random(31337 + int(os.environ.get("PARPY_FUZZ_SEED", "0")))
    per_file, nfiles, nvalid = 500, 5, 500
    paths = []
    for m in range(nfiles):
        p = tmp_path / f"fuzz_c{m}.py"
        p.write_text(_module_a(rng, m * per_file, per_file))
        paths.append(str(p))
    # Valid programs too, their bodies in a gpu block: most mutants touch arrays in host code,
    # which the Cuda backend rejects.
    parts = ["import numpy as np\nimport parpy\n\nFUNS = []\n\n"]
    for n in range(nvalid):
        src, N, M = _gen_valid(rng, 50_000 + n)
        head, body = src.split("\n", 1)
        src = head + "\n    with parpy.gpu:\n" + textwrap.indent(body, "    ")
        parts.append(f"def _make{n}():\n    @parpy.jit\n" + textwrap.indent(src, "    ")
                     + f"    return g{50_000 + n}\n\nFUNS.append((_make{n}, {_ARGS_SETS[0].format(N=N, M=M)}))\n\n")
    p = tmp_path / "fuzz_cvalid.py"
    p.write_text("".join(parts))
    paths.append(str(p))
    out = tmp_path / "cu"
    out.mkdir()
    r = subprocess.run(
        [sys.executable, "-W", "ignore::SyntaxWarning", "-c", _DRIVER_C, str(out), *paths],
        capture_output=True, text=True, timeout=600, env=_env(), check=False,
    )  # fmt: skip
    assert r.returncode == 0, f"exit {r.returncode}\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}"
    counts = eval(r.stdout.strip().splitlines()[-1])
    print(f"part C: {sum(counts.values())} programs: {counts}")
    assert sum(counts.values()) == per_file * nfiles + nvalid and counts["ok"] >= 200, counts
    if shutil.which("nvcc") is None:
        return
    failures = []

    def build(paths):
        for src in paths:
            c = subprocess.run(["nvcc", "-c", "-std=c++17", "-arch=sm_90", "-I" + parpy.get_include(), str(src),
                                "-o", str(src) + ".o"], capture_output=True, text=True, check=False)
            if c.returncode != 0:
                failures.append(src.read_text() + "\n" + c.stderr[-2000:])

    files = sorted(out.glob("*.cu"))
    assert len(files) >= 40
    threads = [threading.Thread(target=build, args=(files[k::2],)) for k in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not failures, f"{len(failures)} of {len(files)} do not compile; first:\n{failures[0]}"
