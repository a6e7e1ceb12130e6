// Unit tests of HostProgram (gpu/host_program.h) on hand-built GPU programs: the C++ meaning of
// host expressions the front end does not produce on its own (narrow and mixed types), loops in
// both printed forms, slots and parameters beyond the stack buffers, a launcher's failure,
// constructs it must refuse, and runs from several threads. Programs made by the compiler are
// tested from Python (tests/python/test_host_program.py).
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

#include "gpu/host_program.h"
#include "ir/intrinsics.h"
#include "ir/ir.h"

namespace parpy {
namespace {

Span sp() { return {}; }
Type sc(ElemSize e) { return Type::scalar(e); }
Expr v(const std::string& n, ElemSize e) { return var(n, sp(), sc(e)); }
Expr arr(const std::string& n) { return var(n, sp(), Type::tensor(ElemSize::F32, {8})); }
Expr il(int64_t x, ElemSize e = ElemSize::I64) { return int_lit(x, sp(), false, e); }
Expr fl(double x, ElemSize e = ElemSize::F64) { return float_lit(x, sp(), false, e); }
Expr bin(BinOp op, Expr a, Expr b, ElemSize t) { return binop(op, std::move(a), std::move(b), sp(), sc(t)); }
Expr cvt(Expr a, ElemSize t) { return convert(std::move(a), sc(t)); }
Stmt def(const std::string& n, Expr rhs) {
  auto s = copy(assign(var(n, sp(), rhs->ty), rhs, sp()));
  s->defines = true;
  return s;
}
Stmt set(const std::string& n, Expr rhs, ElemSize t) { return assign(v(n, t), std::move(rhs), sp()); }

// A kernel "k<i>" whose parameters are the given names and types.
Kernel kernel(const std::string& name, std::vector<AbiParam> params) {
  Kernel k;
  k.name = name;
  k.params = std::move(params);
  k.grid_blocks = 3;
  k.block_threads = 64;
  return k;
}

struct Launch {
  size_t kernel;
  bool vector;
  std::vector<std::string> bytes;
};

class Recorder : public HostLauncher {
 public:
  explicit Recorder(const GpuProgram& p) : p_(p) {}
  std::vector<Launch> launches;
  int32_t fail_at = -1;  // the launch that fails (status 7)
  int32_t launch(const HostLaunch& l) override {
    if (static_cast<int32_t>(launches.size()) == fail_at) return 7;
    Launch r{l.kernel, l.vector, {}};
    const Kernel& k = p_.kernels[l.kernel];
    EXPECT_EQ(l.grid_blocks, k.grid_blocks);
    EXPECT_EQ(l.block_threads, k.block_threads);
    for (size_t i = 0; i < k.params.size(); ++i) {
      size_t n = k.params[i].type.is_scalar() ? static_cast<size_t>(elem_bytes(k.params[i].type.elem)) : 8;
      r.bytes.emplace_back(static_cast<const char*>(l.params[i]), n);
    }
    launches.push_back(std::move(r));
    return 0;
  }

 private:
  const GpuProgram& p_;
};

template <class T>
T as(const std::string& b) {
  EXPECT_EQ(b.size(), sizeof(T));
  T x;
  std::memcpy(&x, b.data(), sizeof x);
  return x;
}

GpuProgram program(std::vector<AbiParam> params, std::vector<Kernel> kernels, Block host) {
  GpuProgram p;
  p.name = "h";
  p.params = std::move(params);
  p.kernels = std::move(kernels);
  p.host = std::move(host);
  return p;
}

TEST(HostProgram, NarrowAndMixedTypesAsCpp) {
  using E = ElemSize;
  // c = (int8)(n * 37); d = c + c (int8: computed in int, narrowed); u = (uint32)n - 5u (wraps);
  // lt = -1 < (uint64)1 (compared as uint64: false); q = parpy_floordiv<int64>(-7, n);
  // m = parpy_mod<int64>(-7, n); dv = parpy_div<int64>(-7, n) (truncates); big = 3000000000 (a long
  // literal) + n; h = (__half)(a * 3.0); f = (float)a / 3.0f; sh = (int16)(n << 14)
  Block host = {
      def("c", cvt(bin(BinOp::Mul, v("n", E::I64), il(37), E::I64), E::I8)),
      def("d", bin(BinOp::Add, v("c", E::I8), v("c", E::I8), E::I8)),
      def("u", bin(BinOp::Sub, cvt(v("n", E::I64), E::U32), il(5, E::U32), E::U32)),
      def("lt", bin(BinOp::Lt, il(-1), il(1, E::U64), E::Bool)),
      def("q", bin(BinOp::FloorDiv, il(-7), v("n", E::I64), E::I64)),
      def("m", bin(BinOp::Mod, il(-7), v("n", E::I64), E::I64)),
      def("dv", bin(BinOp::Div, il(-7), v("n", E::I64), E::I64)),
      def("big", bin(BinOp::Add, il(3000000000), v("n", E::I64), E::I64)),
      def("h", cvt(bin(BinOp::Mul, v("a", E::F64), fl(3.0), E::F64), E::F16)),
      def("f", bin(BinOp::Div, cvt(v("a", E::F64), E::F32), fl(3.0, E::F32), E::F32)),
      def("sh", cvt(bin(BinOp::Shl, v("n", E::I64), il(14), E::I64), E::I16)),
      launch_stmt("h_k0",
                  {v("c", E::I8), v("d", E::I8), v("u", E::U32), v("lt", E::Bool), v("q", E::I64), v("m", E::I64),
                   v("dv", E::I64), v("big", E::I64), v("h", E::F16), v("f", E::F32), v("sh", E::I16)},
                  sp()),
  };
  GpuProgram p = program({{"n", sc(E::I64)}, {"a", sc(E::F64)}},
                         {kernel("h_k0", {{"c", sc(E::I8)}, {"d", sc(E::I8)}, {"u", sc(E::U32)}, {"lt", sc(E::Bool)},
                                          {"q", sc(E::I64)}, {"m", sc(E::I64)}, {"dv", sc(E::I64)}, {"big", sc(E::I64)},
                                          {"h", sc(E::F16)}, {"f", sc(E::F32)}, {"sh", sc(E::I16)}})},
                         host);
  HostProgram hp(p);
  for (int64_t n : {1, 2, 3, 4, 7}) {
    double a = 0.1 * static_cast<double>(n) + 1e-3;
    void* args[] = {&n, &a};
    Recorder rec(p);
    ASSERT_EQ(hp.run(args, nullptr, rec), 0);
    ASSERT_EQ(rec.launches.size(), 1u);
    const auto& b = rec.launches[0].bytes;
    int8_t c = static_cast<int8_t>(n * 37);
    EXPECT_EQ(as<int8_t>(b[0]), c);
    EXPECT_EQ(as<int8_t>(b[1]), static_cast<int8_t>(c + c));
    EXPECT_EQ(as<uint32_t>(b[2]), static_cast<uint32_t>(n) - 5u);
    EXPECT_EQ(as<bool>(b[3]), false);
    int64_t q = -7 / n - ((-7 % n != 0) ? 1 : 0);
    EXPECT_EQ(as<int64_t>(b[4]), q);
    EXPECT_EQ(as<int64_t>(b[5]), -7 - q * n);
    EXPECT_EQ(as<int64_t>(b[6]), -7 / n);
    EXPECT_EQ(as<int64_t>(b[7]), 3000000000 + n);
    _Float16 h = static_cast<_Float16>(a * 3.0);  // correctly rounded from double, as __double2half
    EXPECT_EQ(as<uint16_t>(b[8]), [&] {
      uint16_t bits;
      std::memcpy(&bits, &h, 2);
      return bits;
    }());
    EXPECT_EQ(as<float>(b[9]), static_cast<float>(a) / 3.0f);
    EXPECT_EQ(as<int16_t>(b[10]), static_cast<int16_t>(n << 14));
  }
}

uint16_t bits(_Float16 h) {
  uint16_t b;
  std::memcpy(&b, &h, 2);
  return b;
}
// __float2half: rounded to nearest even, every NaN the canonical 0x7fff.
uint16_t to_half(float f) { return std::isnan(f) ? 0x7fff : bits(static_cast<_Float16>(f)); }

// __half on the host as cuda_fp16.hpp computes it: each operation in float, rounded to half;
// conversions from integers through float, to integers truncating and saturating.
TEST(HostProgram, HalfArithmetic) {
  using E = ElemSize;
  auto h = [](const char* n) { return v(n, E::F16); };
  Block host = {
      def("p", bin(BinOp::Add, h("a"), h("b"), E::F16)),
      def("q", bin(BinOp::Div, h("a"), h("b"), E::F16)),
      def("r", unop(UnOp::Neg, h("a"), sp(), sc(E::F16))),
      def("m", bin(BinOp::Max, h("a"), h("b"), E::F16)),
      def("fd", bin(BinOp::FloorDiv, h("a"), h("b"), E::F16)),
      def("lt", bin(BinOp::Lt, h("a"), h("b"), E::Bool)),
      def("fromint", cvt(v("n", E::I64), E::F16)),
      def("toint", cvt(bin(BinOp::Mul, h("a"), h("b"), E::F16), E::I8)),
      launch_stmt("h_k0", {h("p"), h("q"), h("r"), h("m"), h("fd"), v("lt", E::Bool), h("fromint"), v("toint", E::I8)}, sp()),
  };
  GpuProgram p = program({{"a", sc(E::F16)}, {"b", sc(E::F16)}, {"n", sc(E::I64)}},
                         {kernel("h_k0", {{"p", sc(E::F16)}, {"q", sc(E::F16)}, {"r", sc(E::F16)}, {"m", sc(E::F16)},
                                          {"fd", sc(E::F16)}, {"lt", sc(E::Bool)}, {"fromint", sc(E::F16)},
                                          {"toint", sc(E::I8)}})},
                         host);
  HostProgram hp(p);
  for (auto [x, y, n] : std::vector<std::tuple<float, float, int64_t>>{
           {1.5f, 0.1f, 2049}, {-3.25f, 7.0f, -70000}, {100.0f, -0.3f, 65519}, {0.0f, -0.0f, 1}}) {
    _Float16 a = static_cast<_Float16>(x), b = static_cast<_Float16>(y);
    void* args[] = {&a, &b, &n};
    Recorder rec(p);
    ASSERT_EQ(hp.run(args, nullptr, rec), 0);
    const auto& out = rec.launches.at(0).bytes;
    float fa = static_cast<float>(a), fb = static_cast<float>(b);
    EXPECT_EQ(as<uint16_t>(out[0]), to_half(fa + fb));
    EXPECT_EQ(as<uint16_t>(out[1]), to_half(fa / fb));
    EXPECT_EQ(as<uint16_t>(out[2]), to_half(-fa));
    EXPECT_EQ(as<uint16_t>(out[3]), bits(fa < fb ? b : a));
    EXPECT_EQ(as<uint16_t>(out[4]), to_half(fb == 0 ? fa / fb : std::floor(fa / fb)));
    EXPECT_EQ(as<bool>(out[5]), fa < fb);
    EXPECT_EQ(as<uint16_t>(out[6]), to_half(static_cast<float>(n)));
    float prod = static_cast<float>(static_cast<_Float16>(fa * fb));
    EXPECT_EQ(as<int8_t>(out[7]), prod > 127 ? 127 : prod < -128 ? -128 : static_cast<int8_t>(prod));
  }
}

// for t in range(lo, n, 3) { if t % 2 == 0: launch k0(t) else: launch k1(x, t * 2) }, printed as a
// counted loop (a step other than 1 and a bound known only at run time); a while loop that counts
// s down from 3; and a plain loop whose bound the body changes (the printed loop reads it each test).
TEST(HostProgram, LoopsBranchesAndScopes) {
  using E = ElemSize;
  auto loop = for_loop("t", v("lo", E::I64), v("n", E::I64), 3,
                       {if_stmt(bin(BinOp::Eq, bin(BinOp::Mod, v("t", E::I64), il(2), E::I64), il(0), E::Bool),
                                {launch_stmt("h_k0", {v("t", E::I64)}, sp())},
                                {def("w", bin(BinOp::Mul, v("t", E::I64), il(2), E::I64)),
                                 launch_stmt("h_k1", {arr("x"), v("w", E::I64)}, sp())},
                                sp())},
                       sp());
  auto countdown = while_loop(bin(BinOp::Gt, v("s", E::I64), il(0), E::Bool),
                              {launch_stmt("h_k0", {v("s", E::I64)}, sp()),
                               set("s", bin(BinOp::Sub, v("s", E::I64), il(1), E::I64), E::I64)},
                              sp());
  // for i in range(0, m): m = m - 1; launch k0(i): runs while i < m, m read at every test.
  auto shrinking = for_loop("i", il(0), v("m", E::I64), 1,
                            {set("m", bin(BinOp::Sub, v("m", E::I64), il(1), E::I64), E::I64),
                             launch_stmt("h_k0", {v("i", E::I64)}, sp())},
                            sp());
  Block host = {def("s", il(3)), loop, countdown, def("m", il(6)), shrinking};
  GpuProgram p = program({{"x", Type::tensor(E::F32, {8})}, {"lo", sc(E::I64)}, {"n", sc(E::I64)}},
                         {kernel("h_k0", {{"t", sc(E::I64)}}), kernel("h_k1", {{"x", Type::tensor(E::F32, {8})}, {"w", sc(E::I64)}})},
                         host);
  HostProgram hp(p);
  for (auto [lo, n] : std::vector<std::pair<int64_t, int64_t>>{{0, 10}, {-5, 7}, {4, 4}, {INT64_MAX - 7, INT64_MAX}}) {
    alignas(16) float x[8];
    float* xp = x;
    void* args[] = {&xp, &lo, &n};
    Recorder rec(p);
    ASSERT_EQ(hp.run(args, nullptr, rec), 0);
    std::vector<std::pair<size_t, int64_t>> want;
    for (__int128 w = lo; w < n; w += 3) {  // Python's range, without overflow
      auto t = static_cast<int64_t>(w);
      if (t % 2 == 0)
        want.push_back({0, t});
      else
        want.push_back({1, static_cast<int64_t>(static_cast<uint64_t>(t) * 2)});
    }
    for (int64_t s = 3; s > 0; --s) want.push_back({0, s});
    for (int64_t i = 0, m = 6; i < m; ++i) {
      --m;
      want.push_back({0, i});
    }
    ASSERT_EQ(rec.launches.size(), want.size()) << lo << " " << n;
    for (size_t i = 0; i < want.size(); ++i) {
      EXPECT_EQ(rec.launches[i].kernel, want[i].first);
      const auto& b = rec.launches[i].bytes;
      if (want[i].first == 1) EXPECT_EQ(as<float*>(b[0]), xp);
      EXPECT_EQ(as<int64_t>(b.back()), want[i].second);
    }
  }
}

// 80 locals and a kernel of 40 parameters: slots and parameters beyond the stack buffers.
TEST(HostProgram, ManySlotsAndParameters) {
  using E = ElemSize;
  Block host;
  for (int i = 0; i < 80; ++i)
    host.push_back(def("l" + std::to_string(i), bin(BinOp::Add, v("n", E::I64), il(i), E::I64)));
  std::vector<Expr> args;
  std::vector<AbiParam> params;
  for (int i = 0; i < 40; ++i) {
    args.push_back(v("l" + std::to_string(i * 2), E::I64));
    params.push_back({"l" + std::to_string(i * 2), sc(E::I64)});
  }
  host.push_back(launch_stmt("h_k0", args, sp()));
  GpuProgram p = program({{"n", sc(E::I64)}}, {kernel("h_k0", params)}, host);
  HostProgram hp(p);
  EXPECT_GT(hp.slots(), HostProgram::kStackSlots);
  int64_t n = 1000;
  void* argv[] = {&n};
  Recorder rec(p);
  ASSERT_EQ(hp.run(argv, nullptr, rec), 0);
  ASSERT_EQ(rec.launches.size(), 1u);
  for (int i = 0; i < 40; ++i) EXPECT_EQ(as<int64_t>(rec.launches[0].bytes[i]), 1000 + 2 * i);
}

// A launch that fails stops the host code, and run() returns its status.
TEST(HostProgram, LauncherFailureStops) {
  using E = ElemSize;
  Block host = {for_loop("t", il(0), il(10), 1, {launch_stmt("h_k0", {v("t", E::I64)}, sp())}, sp())};
  GpuProgram p = program({}, {kernel("h_k0", {{"t", sc(E::I64)}})}, host);
  HostProgram hp(p);
  Recorder rec(p);
  rec.fail_at = 4;
  EXPECT_EQ(hp.run(nullptr, nullptr, rec), 7);
  EXPECT_EQ(rec.launches.size(), 4u);
}

// The 128-bit variant runs when every array of Kernel::alignment is aligned; scratch buffers
// are passed by their address.
TEST(HostProgram, VectorVariantAndScratch) {
  using E = ElemSize;
  Kernel k = kernel("h_k0", {{"x", Type::tensor(E::F32, {8})}, {"y", Type::tensor(E::F32, {8})}, {"$part", Type::pointer(E::F32)}});
  k.vector_body = {call_stmt(intrinsic(Intrinsic::SyncThreads, {}, sp()), sp())};
  k.alignment = {{"x", 16}, {"y", 16}};
  GpuProgram p = program({{"x", Type::tensor(E::F32, {8})}, {"y", Type::tensor(E::F32, {8})}}, {k},
                         {launch_stmt("h_k0", {arr("x"), arr("y"), var("$part", sp(), Type::pointer(E::F32))}, sp())});
  p.scratch.push_back({"$part", E::F32, 4, false});
  HostProgram hp(p);
  alignas(16) float buf[16];
  uint64_t scratch[] = {0x100000000};
  for (int ox : {0, 1, 4})
    for (int oy : {0, 2, 8}) {
      float *x = buf + ox, *y = buf + oy;
      void* args[] = {&x, &y};
      Recorder rec(p);
      ASSERT_EQ(hp.run(args, scratch, rec), 0);
      ASSERT_EQ(rec.launches.size(), 1u);
      EXPECT_EQ(rec.launches[0].vector, ox % 4 == 0 && oy % 4 == 0);
      EXPECT_EQ(as<float*>(rec.launches[0].bytes[0]), x);
      EXPECT_EQ(as<float*>(rec.launches[0].bytes[1]), y);
      EXPECT_EQ(as<uint64_t>(rec.launches[0].bytes[2]), scratch[0]);
    }
}

// A parameter the host code assigns is a local of the printed function: the caller's value is
// not changed, and the launch sees the new one.
TEST(HostProgram, AssignedParameter) {
  using E = ElemSize;
  Block host = {set("n", bin(BinOp::Mul, v("n", E::I64), il(3), E::I64), E::I64),
                launch_stmt("h_k0", {v("n", E::I64)}, sp())};
  GpuProgram p = program({{"n", sc(E::I64)}}, {kernel("h_k0", {{"n", sc(E::I64)}})}, host);
  HostProgram hp(p);
  int64_t n = 14;
  void* args[] = {&n};
  Recorder rec(p);
  ASSERT_EQ(hp.run(args, nullptr, rec), 0);
  EXPECT_EQ(n, 14);
  EXPECT_EQ(as<int64_t>(rec.launches.at(0).bytes[0]), 42);
}

TEST(HostProgram, RefusesWhatItCannotRun) {
  using E = ElemSize;
  auto refuses = [](Block host, const std::string& what) {
    GpuProgram p = program({{"x", Type::tensor(E::F32, {8})}, {"n", sc(E::I64)}}, {kernel("h_k0", {{"t", sc(E::I64)}})},
                           std::move(host));
    try {
      HostProgram hp(p);
      ADD_FAILURE() << "accepted " << what;
    } catch (const std::runtime_error& e) {
      EXPECT_NE(std::string(e.what()).find(what), std::string::npos) << e.what();
    }
  };
  refuses({def("a", access("x", il(0), E::F32, sp()))}, "x[0]");
  refuses({def("a", with_type(call("ext", {v("n", E::I64)}, sp()), sc(E::I64)))}, "a call of ext");
  refuses({def("a", intrinsic(Intrinsic::Trips, {il(0), v("n", E::I64), il(2)}, sp(), sc(E::I64)))}, "intrinsic");
  refuses({return_stmt(v("n", E::I64), sp())}, "statement");
  refuses({launch_stmt("nope", {}, sp())}, "unknown kernel nope");
  refuses({launch_stmt("h_k0", {}, sp())}, "0 arguments for 1 parameters");
  refuses({launch_stmt("h_k0", {v("undefined", E::I64)}, sp())}, "undefined");
  refuses({def("a", cvt(cvt(v("n", E::I64), E::F16), E::Bool))}, "conversion from __half to bool");
  refuses({def("a", bin(BinOp::Add, cvt(v("n", E::I64), E::F16), fl(1.0, E::F32), E::F32))}, "__half and float");
  refuses({def("a", unop(UnOp::Exp, cvt(v("n", E::I64), E::F16), sp(), sc(E::F16)))}, "parpy_exp of __half");
}

// run() keeps its state on the stack: threads run one program at once.
TEST(HostProgram, ConcurrentRuns) {
  using E = ElemSize;
  Block host = {for_loop("t", il(0), v("n", E::I64), 1,
                         {launch_stmt("h_k0", {bin(BinOp::Mul, v("t", E::I64), v("n", E::I64), E::I64)}, sp())}, sp())};
  GpuProgram p = program({{"n", sc(E::I64)}}, {kernel("h_k0", {{"t", sc(E::I64)}})}, host);
  HostProgram hp(p);
  std::vector<std::thread> threads;
  std::vector<int> ok(8, 0);
  for (int w = 0; w < 8; ++w)
    threads.emplace_back([&, w] {
      for (int rep = 0; rep < 200; ++rep) {
        int64_t n = 10 + w;
        void* args[] = {&n};
        Recorder rec(p);
        if (hp.run(args, nullptr, rec) != 0 || rec.launches.size() != static_cast<size_t>(n)) return;
        for (int64_t t = 0; t < n; ++t)
          if (as<int64_t>(rec.launches[t].bytes[0]) != t * n) return;
      }
      ok[w] = 1;
    });
  for (auto& t : threads) t.join();
  for (int w = 0; w < 8; ++w) EXPECT_EQ(ok[w], 1) << w;
}

}  // namespace
}  // namespace parpy
