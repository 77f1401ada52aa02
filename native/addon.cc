// N-API glue: cpuid dispatch, thread pool, weight packing, and the synchronous entry points.
// Compiled for baseline x86-64 (no -m flags) so the module loads on any CPU; the vector kernels
// live in per-ISA translation units and are only called when cpuid says they can run.
#include <node_api.h>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>
#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#endif

#include "common.h"

namespace q8 {

// ---------------------------------------------------------------- cpuid
enum Isa { kScalar = 0, kAvx2 = 1, kAvxVnni = 2, kAvx512Vnni = 3 };
static const char* kIsaNames[] = {"scalar", "avx2", "avxvnni", "avx512vnni"};

static Isa detect() {
#if defined(__x86_64__) || defined(__i386__)
  unsigned a, b, c, d;
  if (!__get_cpuid(1, &a, &b, &c, &d)) return kScalar;
  bool fma = c & (1u << 12), osxsave = c & (1u << 27);
  if (!osxsave) return kScalar;
  unsigned xlo, xhi;
  __asm__ volatile("xgetbv" : "=a"(xlo), "=d"(xhi) : "c"(0));
  bool ymm_os = (xlo & 0x6) == 0x6, zmm_os = (xlo & 0xe6) == 0xe6;
  if (__get_cpuid_max(0, nullptr) < 7) return kScalar;
  __cpuid_count(7, 0, a, b, c, d);
  bool avx2 = b & (1u << 5), f = b & (1u << 16), bw = b & (1u << 30), vl = b & (1u << 31);
  bool vnni512 = c & (1u << 11);
  unsigned a1, b1, c1, d1;
  __cpuid_count(7, 1, a1, b1, c1, d1);
  bool avxvnni = a1 & (1u << 4);
  if (!(ymm_os && avx2 && fma)) return kScalar;
  if (zmm_os && f && bw && vl && vnni512) return kAvx512Vnni;
  if (avxvnni) return kAvxVnni;
  return kAvx2;
#else
  return kScalar;
#endif
}

static Isa g_best = detect();
static std::atomic<int> g_isa{(int)g_best};

static const Kernels& K() {
  switch (g_isa.load()) {
    case kAvx512Vnni: return kern_avx512vnni;
    case kAvxVnni: return kern_avxvnni;
    case kAvx2: return kern_avx2;
    default: return kern_scalar;
  }
}

// Forcing an ISA above what the CPU has silently keeps the best available one.
static int set_isa(const std::string& name) {
  for (int i = 0; i < 4; i++)
    if (name == kIsaNames[i]) { g_isa = i <= (int)g_best ? i : (int)g_best; return 1; }
  return 0;
}

// ---------------------------------------------------------------- scratch + pool
void* Scratch::get(size_t bytes) {
  if (bytes > n) {
    std::free(p);
    n = (bytes + 4095) & ~size_t(4095);
    p = std::aligned_alloc(64, n);
  }
  return p;
}
Scratch::~Scratch() { std::free(p); }

constexpr int kSlots = 5;

// A parallel region hands out task indices through each thread's home range, `next` = (region
// << 32) | index: a worker claims an index only while the region is still the one it joined, so a
// worker that wakes late never runs a stale task, and the caller waits only for tasks actually
// started, never for a worker to wake. Between regions a worker spins for kSpinUs before it
// sleeps: a model's kernels follow each other within microseconds, and waking a sleeping thread
// on a VM costs tens of microseconds (it made 2 threads slower than 1 on MobileNetV2).
constexpr int kSpinUs = 200;

static inline void cpu_relax() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#endif
}

struct Pool {
  std::vector<std::thread> workers;
  std::vector<std::unique_ptr<Scratch>> scratch;  // [thread][slot]; stable addresses across resizes
  int nthreads = 1;
  std::mutex m;  // only for sleeping and waking workers
  std::condition_variable cv;
  std::atomic<uint32_t> region{0};
  std::atomic<bool> stop{false};
  std::atomic<int> sleepers{0};
  std::atomic<TaskFn> fn{nullptr};
  std::atomic<void*> ctx{nullptr};
  // Each thread's home range of task indices: next = (region << 32) | index, up to end.
  struct alignas(64) Range { std::atomic<uint64_t> next{0}; std::atomic<int> end{0}; };
  std::unique_ptr<Range[]> ranges;
  std::atomic<int> completed{0};
  std::mutex call;  // one parallel region at a time (JS main thread and workers share the pool)

  // Claims and runs tasks of region r until none is left (or a newer region started): first its
  // own home range in order, then what is left of the others'. The fields f/c may belong to a
  // newer region when r is stale; the claims then fail on the region tag.
  void run_tasks(uint32_t r, TaskFn f, void* c, int th) {
    for (int k = 0; k < nthreads; k++) {
      Range& g = ranges[(th + k) % nthreads];
      uint64_t v = g.next.load();
      for (;;) {
        if ((uint32_t)(v >> 32) != r) return;
        if ((int)(uint32_t)v >= g.end.load()) break;
        if (!g.next.compare_exchange_weak(v, v + 1)) continue;
        f(c, (int)(uint32_t)v, th);
        completed.fetch_add(1);
        v = g.next.load();
      }
    }
  }
  void worker(int th) {
    uint32_t seen = region.load();
    for (;;) {
      auto t0 = std::chrono::steady_clock::now();
      for (int spin = 0; region.load() == seen && !stop.load(std::memory_order_relaxed); spin++) {
        cpu_relax();
        if ((spin & 63) == 63 && std::chrono::steady_clock::now() - t0 > std::chrono::microseconds(kSpinUs)) {
          std::unique_lock<std::mutex> lk(m);
          sleepers.fetch_add(1);
          cv.wait(lk, [&] { return stop.load() || region.load() != seen; });
          sleepers.fetch_sub(1);
          break;
        }
      }
      if (stop.load()) return;
      seen = region.load();
      run_tasks(seen, fn.load(), ctx.load(), th);
    }
  }
  void start(int n) {
    nthreads = std::max(1, std::min(n, kMaxThreads));
    ranges.reset(new Range[nthreads]);
    while (scratch.size() < (size_t)nthreads * kSlots) scratch.emplace_back(new Scratch());
    stop = false;
    for (int i = 1; i < nthreads; i++) workers.emplace_back([this, i] { worker(i); });
  }
  void finish() {
    { std::lock_guard<std::mutex> lk(m); stop = true; }
    cv.notify_all();
    for (auto& t : workers) t.join();
    workers.clear();
  }
};

static Pool& pool() {
  static Pool* p = [] {
    auto* q = new Pool();  // never destroyed: worker threads may outlive module unload order
    unsigned hc = std::thread::hardware_concurrency();
    q->start(hc ? (int)hc : 1);
    return q;
  }();
  return *p;
}

int pool_threads() { return pool().nthreads; }
Scratch& scratch(int thread, int which) { return *pool().scratch[(size_t)thread * kSlots + which]; }

void parallel_for(int n, TaskFn fn, void* ctx) {
  Pool& p = pool();
  if (n <= 0) return;
  if (p.nthreads == 1 || n == 1) {
    for (int t = 0; t < n; t++) fn(ctx, t, 0);
    return;
  }
  // All seq_cst. Closing every range first makes every claim fail while the fields change, so a
  // worker that read a mix of old and new fields cannot run anything; then the region opens. Thread
  // j's home range is tasks [j n/T, (j+1) n/T): a kernel's tasks run in the same places on the same
  // thread from one node to the next (a conv's pixel panels, say), so a thread mostly reads what it
  // wrote into its own cache; threads work n/T apart (no shared output lines); a thread done early
  // takes what is left of the others' ranges.
  uint32_t r = p.region.load() + 1;
  const int T = p.nthreads;
  for (int j = 0; j < T; j++) p.ranges[j].next.store((uint64_t)r << 32 | 0xffffffffu);
  p.fn.store(fn);
  p.ctx.store(ctx);
  p.completed.store(0);
  for (int j = 0; j < T; j++) {
    p.ranges[j].end.store((int)((int64_t)(j + 1) * n / T));
    p.ranges[j].next.store((uint64_t)r << 32 | (uint32_t)((int64_t)j * n / T));
  }
  p.region.store(r);  // wakes spinning workers; ordered against `sleepers` below
  if (p.sleepers.load() > 0) {
    { std::lock_guard<std::mutex> lk(p.m); }
    p.cv.notify_all();
  }
  p.run_tasks(r, fn, ctx, 0);
  // Every task is claimed; wait for the ones other threads are still running.
  for (int spin = 0; p.completed.load() < n; spin++) {
    cpu_relax();
    if (spin > 4096) std::this_thread::yield();
  }
}

static void set_threads(int n) {
  Pool& p = pool();
  std::lock_guard<std::mutex> g(p.call);
  if (n < 1) n = 1;
  if (n > kMaxThreads) n = kMaxThreads;
  if (n == p.nthreads) return;
  p.finish();
  p.start(n);
}

// ---------------------------------------------------------------- packing
static int combined_block(int K, int wb, int ab) {
  if (wb && ab) return std::min(wb, ab);
  if (wb) return wb;
  if (ab) return ab;
  return K;
}

static PackQ8Gemm* pack_q8_gemm(const int8_t* W, const float* S, int N, int K, int wblock, int ablock) {
  auto* P = new PackQ8Gemm();
  P->N = N; P->K = K; P->K4 = (K + 3) / 4; P->npanel = (N + kNR - 1) / kNR;
  P->wblock = wblock; P->ablock = ablock; P->cblock = combined_block(K, wblock, ablock);
  P->ncb = (K + P->cblock - 1) / P->cblock;
  P->nwb = wblock ? (K + wblock - 1) / wblock : 1;
  P->w.assign((size_t)P->npanel * P->K4 * kNR * 4, 0);
  P->init.assign((size_t)P->npanel * P->ncb * kNR, 0);
  P->zinit.assign(P->init.size(), 0);
  P->wscale.assign((size_t)P->npanel * P->nwb * kNR, 0.f);
  for (int n = 0; n < N; n++) {
    int pn = n / kNR, col = n % kNR;
    for (int k = 0; k < K; k++) {
      int8_t v = W[(size_t)n * K + k];
      P->w[(((size_t)pn * P->K4 + k / 4) * kNR + col) * 4 + k % 4] = v;
      P->init[((size_t)pn * P->ncb + k / P->cblock) * kNR + col] -= 128 * v;
    }
    for (int b = 0; b < P->nwb; b++) P->wscale[((size_t)pn * P->nwb + b) * kNR + col] = S[(size_t)n * P->nwb + b];
  }
  return P;
}

static PackQ8Conv* pack_q8_conv(const int8_t* W, const float* S, int M, int Kg, int group, int wblock, int ablock, int khw, bool tap) {
  auto* P = new PackQ8Conv();
  P->M = M; P->Kg = Kg; P->K4 = (Kg + 3) / 4; P->group = group; P->Mg = M / group;
  P->nblk = (P->Mg + kCB - 1) / kCB;
  P->wblock = wblock; P->ablock = ablock; P->cblock = combined_block(Kg, wblock, ablock);
  P->ncb = (Kg + P->cblock - 1) / P->cblock;
  P->khw = khw > 0 && Kg % khw == 0 ? khw : 1;
  // Tap-major K pads each tap's channels to a multiple of 4: for 3 input channels (a stem conv)
  // that is a quarter of zero bytes in every dot, and the plain order measured 5-16% faster.
  const int cgt = khw > 0 ? Kg / khw : Kg;
  P->tapmajor = P->ncb == 1 && khw > 0 && Kg % khw == 0 && (cgt % 4 == 0 || cgt >= 8);
  int Cg = Kg / P->khw;
  P->Cg4 = (Cg + 3) / 4 * 4;
  P->acttap = tap;
  if (tap) {  // one combined block (and activation window) per tap, in packed K units
    P->tapmajor = true;
    P->cblock = P->ablock = P->Cg4;
    P->ncb = P->khw;
  }
  if (P->tapmajor) P->K4 = P->khw * P->Cg4 / 4;
  // k -> position in the packed K order
  auto kpos = [&](int k) { return P->tapmajor ? (k % P->khw) * P->Cg4 + k / P->khw : k; };
  P->nwb = wblock ? (Kg + wblock - 1) / wblock : 1;
  size_t nb = (size_t)group * P->nblk;
  P->w.assign(nb * P->K4 * kCB * 4, 0);
  P->init.assign(nb * P->ncb * kCB, 0);
  P->zinit.assign(P->init.size(), 0);
  P->wscale.assign(nb * P->nwb * kCB, 0.f);
  P->wraw.assign(W, W + (size_t)M * Kg);
  P->wsraw.assign(S, S + (size_t)M * P->nwb);
  for (int n = 0; n < M; n++) {
    int g = n / P->Mg, nn = n % P->Mg, blk = nn / kCB, i = nn % kCB;
    size_t bi = (size_t)g * P->nblk + blk;
    for (int k = 0; k < Kg; k++) {
      int8_t v = W[(size_t)n * Kg + k];
      int kp = kpos(k);
      P->w[((bi * P->K4 + kp / 4) * kCB + i) * 4 + kp % 4] = v;
      P->init[(bi * P->ncb + (tap ? k % P->khw : k / P->cblock)) * kCB + i] -= 128 * v;
    }
    for (int b = 0; b < P->nwb; b++) P->wscale[(bi * P->nwb + b) * kCB + i] = S[(size_t)n * P->nwb + b];
  }
  return P;
}

// Fills P with the panel layout of the N x K right-hand side whose element (n, k) is src[n*sn + k*sk].
static void fill_f32_gemm(PackF32Gemm& P, const float* src, int N, int K, size_t sn, size_t sk) {
  P.N = N; P.K = K; P.npanel = (N + kNR - 1) / kNR;
  P.w.assign((size_t)P.npanel * K * kNR, 0.f);
  for (int n = 0; n < N; n++)
    for (int k = 0; k < K; k++) P.w[((size_t)(n / kNR) * K + k) * kNR + n % kNR] = src[n * sn + k * sk];
}

// W [N, K] (out = A·Wᵀ).
static PackF32Gemm* pack_f32_gemm(const float* W, int N, int K) {
  auto* P = new PackF32Gemm();
  fill_f32_gemm(*P, W, N, K, (size_t)K, 1);
  return P;
}

static PackF32Conv* pack_f32_conv(const float* W, int M, int Kg, int group, int khw) {
  auto* P = new PackF32Conv();
  P->M = M; P->Kg = Kg; P->group = group; P->Mg = M / group; P->nblk = (P->Mg + kCB - 1) / kCB;
  P->tapmajor = khw > 0 && Kg % khw == 0;
  P->khw = P->tapmajor ? khw : 1;
  int Cg = Kg / P->khw;
  P->w.assign((size_t)group * P->nblk * Kg * kCB, 0.f);
  P->wraw.assign(W, W + (size_t)M * Kg);
  for (int n = 0; n < M; n++) {
    int g = n / P->Mg, nn = n % P->Mg;
    size_t bi = (size_t)g * P->nblk + nn / kCB;
    for (int k = 0; k < Kg; k++) {
      int kp = P->tapmajor ? (k % P->khw) * Cg + k / P->khw : k;
      P->w[(bi * Kg + kp) * kCB + nn % kCB] = W[(size_t)n * Kg + k];
    }
  }
  return P;
}

// ---------------------------------------------------------------- N-API helpers
enum Kind { kQ8Gemm = 1, kQ8Conv, kF32Gemm, kF32Conv };
// Bytes of packed weights alive, for info(); V8 is told the same as external memory, so its heap
// limits and GC see them.
static std::atomic<int64_t> g_packed_bytes{0};
static void adjust_packed(napi_env env, int64_t delta) {
  int64_t dummy;
  napi_adjust_external_memory(env, delta, &dummy);
  g_packed_bytes += delta;
}
struct Handle {
  uint32_t magic = 0x71386b6e;
  Kind kind;
  void* p;
  size_t bytes;
};

struct Err {};

static void throw_err(napi_env env, const std::string& msg) { napi_throw_error(env, "Q8_NATIVE", msg.c_str()); }

#define CHECK(env, cond, msg) do { if (!(cond)) { throw_err(env, msg); throw Err(); } } while (0)

struct Args {
  napi_env env;
  size_t argc = 16;
  napi_value argv[16];
  Args(napi_env e, napi_callback_info info, size_t need, const char* fn) : env(e) {
    napi_get_cb_info(e, info, &argc, argv, nullptr, nullptr);
    CHECK(e, argc >= need, std::string(fn) + ": expected " + std::to_string(need) + " arguments");
  }
  double num(size_t i) {
    double v;
    CHECK(env, napi_get_value_double(env, argv[i], &v) == napi_ok, "argument " + std::to_string(i) + " should be a number");
    return v;
  }
  int i32(size_t i) {
    double v = num(i);
    CHECK(env, std::isfinite(v) && v == std::floor(v) && std::fabs(v) < 2147483647.0, "argument " + std::to_string(i) + " should be an integer");
    return (int)v;
  }
  bool is_null(size_t i) {
    napi_valuetype t;
    napi_typeof(env, argv[i], &t);
    return t == napi_null || t == napi_undefined;
  }
  // The typed array at i: its element type, element count and data.
  void typed(size_t i, const char* what, napi_typedarray_type& t, size_t& n, void*& data) {
    bool ok = false;
    napi_is_typedarray(env, argv[i], &ok);
    CHECK(env, ok, std::string(what) + " should be a typed array");
    napi_value ab;
    size_t off;
    napi_get_typedarray_info(env, argv[i], &t, &n, &data, &ab, &off);
  }
  // Element count of the typed array at i (the element-wise entries size their work by `out`).
  size_t len(size_t i, const char* what) {
    napi_typedarray_type t;
    size_t n;
    void* data;
    typed(i, what, t, n, data);
    return n;
  }
  template <class T> T* arr(size_t i, napi_typedarray_type want, size_t min_len, const char* what) {
    napi_typedarray_type t;
    size_t len;
    void* data;
    typed(i, what, t, len, data);
    CHECK(env, t == want, std::string(what) + " has the wrong element type");
    CHECK(env, len >= min_len, std::string(what) + " is too short: need " + std::to_string(min_len) + ", got " + std::to_string(len));
    return (T*)data;
  }
  template <class T> T* handle(size_t i, Kind kind) {
    void* p = nullptr;
    napi_valuetype t;
    napi_typeof(env, argv[i], &t);
    CHECK(env, t == napi_external, "packed weights handle expected");
    napi_get_value_external(env, argv[i], &p);
    auto* h = (Handle*)p;
    CHECK(env, h && h->magic == 0x71386b6e && h->kind == kind, "packed weights handle of the wrong kind");
    held = h;
    return (T*)h->p;
  }
  Handle* held = nullptr;  // the last handle() looked up
  // The packed weights behind the last handle() grew by `bytes` (a copy built on first use).
  void grew(size_t bytes) {
    if (!held || !bytes) return;
    adjust_packed(env, (int64_t)bytes);
    held->bytes += bytes;
  }
};

static size_t packed_bytes(const PackF32Gemm& P) { return P.w.size() * 4; }
static size_t packed_bytes(const PackQ8Gemm& P) { return P.w.size() + P.init.size() * 8 + P.wscale.size() * 4; }

template <class T> static void finalize(napi_env env, void* data, void*) {
  auto* h = (Handle*)data;
  adjust_packed(env, -(int64_t)h->bytes);
  delete (T*)h->p;
  delete h;
}

template <class T> static napi_value wrap(napi_env env, T* p, Kind kind, size_t bytes) {
  auto* h = new Handle{0x71386b6e, kind, p, bytes};
  napi_value v;
  napi_create_external(env, h, finalize<T>, nullptr, &v);
  adjust_packed(env, (int64_t)bytes);
  return v;
}

static Epi epi(Args& a, size_t ibias, size_t iact, int n) {
  Epi e;
  e.bias = a.is_null(ibias) ? nullptr : a.arr<float>(ibias, napi_float32_array, (size_t)n, "bias");
  int act = a.i32(iact);
  double lo = a.num(iact + 1), hi = a.num(iact + 2);
  e.lo = -INFINITY; e.hi = INFINITY;
  if (act == 1) e.lo = 0.f;
  else if (act == 2) { e.lo = (float)lo; e.hi = (float)hi; }
  else CHECK(a.env, act == 0, "act should be 0 (none), 1 (Relu) or 2 (Clip)");
  return e;
}

static napi_value undef(napi_env env) { napi_value v; napi_get_undefined(env, &v); return v; }

#define ENTRY(name) static napi_value name(napi_env env, napi_callback_info info) { try {
#define END } catch (Err&) { return nullptr; } }

// info() -> { isa, best, compiler, threads }
ENTRY(Info)
  napi_value o, v;
  napi_create_object(env, &o);
  napi_create_string_utf8(env, K().name, NAPI_AUTO_LENGTH, &v); napi_set_named_property(env, o, "isa", v);
  napi_create_string_utf8(env, kIsaNames[g_best], NAPI_AUTO_LENGTH, &v); napi_set_named_property(env, o, "best", v);
#if defined(__clang__)
  std::string comp = std::string("clang ") + __clang_version__;
#elif defined(__GNUC__)
  std::string comp = std::string("gcc ") + __VERSION__;
#else
  std::string comp = "unknown";
#endif
  napi_create_string_utf8(env, comp.c_str(), NAPI_AUTO_LENGTH, &v); napi_set_named_property(env, o, "compiler", v);
  napi_create_int32(env, pool().nthreads, &v); napi_set_named_property(env, o, "threads", v);
  napi_create_double(env, (double)g_packed_bytes.load(), &v); napi_set_named_property(env, o, "packedBytes", v);
  napi_get_boolean(env, true, &v); napi_set_named_property(env, o, "residual", v);  // convF32/convQ8 take argument 8
  return o;
END

ENTRY(SetThreads)
  Args a(env, info, 1, "setThreads");
  set_threads(a.i32(0));
  return undef(env);
END

// setIsa(name) -> the ISA now in use (capped at what the CPU supports)
ENTRY(SetIsa)
  Args a(env, info, 1, "setIsa");
  char buf[32];
  size_t len;
  CHECK(env, napi_get_value_string_utf8(env, a.argv[0], buf, sizeof buf, &len) == napi_ok, "setIsa: name should be a string");
  CHECK(env, set_isa(buf), std::string("setIsa: unknown ISA '") + buf + "' (avx512vnni|avxvnni|avx2|scalar)");
  napi_value v;
  napi_create_string_utf8(env, K().name, NAPI_AUTO_LENGTH, &v);
  return v;
END

// packF32(W Float32Array [N*K], N, K) -> handle
ENTRY(PackF32)
  Args a(env, info, 3, "packF32");
  int N = a.i32(1), Kd = a.i32(2);
  CHECK(env, N > 0 && Kd > 0, "packF32: N and K should be positive");
  auto* W = a.arr<float>(0, napi_float32_array, (size_t)N * Kd, "W");
  auto* P = pack_f32_gemm(W, N, Kd);
  return wrap(env, P, kF32Gemm, packed_bytes(*P));
END

// gemmF32(A, M, K, packed, bias|null, act, clipMin, clipMax, out)
ENTRY(GemmF32)
  Args a(env, info, 9, "gemmF32");
  int M = a.i32(1), Kd = a.i32(2);
  auto* P = a.handle<PackF32Gemm>(3, kF32Gemm);
  CHECK(env, Kd == P->K && M >= 0, "gemmF32: K does not match the packed weights");
  auto* A = a.arr<float>(0, napi_float32_array, (size_t)M * Kd, "A");
  Epi e = epi(a, 4, 5, P->N);
  auto* out = a.arr<float>(8, napi_float32_array, (size_t)M * P->N, "out");
  std::lock_guard<std::mutex> g(pool().call);
  K().gemm_f32(*P, A, M, e, out);
  return undef(env);
END

// matmulF32(A, B, batches, M, K, N, bShared, out): out[i] = A[i] · B[i] for i < batches, A [M, K],
// B [K, N] (one B for every batch when bShared), out [M, N]: a MatMul whose right side is only known
// at run time (attention's Q·Kᵀ and P·V). Each B is packed into a reused buffer, then the GEMM runs.
ENTRY(MatmulF32)
  Args a(env, info, 8, "matmulF32");
  int batches = a.i32(2), M = a.i32(3), Kd = a.i32(4), N = a.i32(5), shared = a.i32(6);
  CHECK(env, batches >= 1 && M >= 1 && Kd >= 1 && N >= 1 && (shared == 0 || shared == 1), "matmulF32: bad sizes");
  auto* A = a.arr<float>(0, napi_float32_array, (size_t)batches * M * Kd, "A");
  auto* B = a.arr<float>(1, napi_float32_array, (size_t)(shared ? 1 : batches) * Kd * N, "B");
  auto* out = a.arr<float>(7, napi_float32_array, (size_t)batches * M * N, "out");
  std::lock_guard<std::mutex> g(pool().call);
  static PackF32Gemm P;  // guarded by pool().call
  Epi e{nullptr, -INFINITY, INFINITY};
  for (int i = 0; i < batches; i++) {
    if (i == 0 || !shared) fill_f32_gemm(P, B + (size_t)(shared ? 0 : i) * Kd * N, N, Kd, 1, (size_t)N);
    K().gemm_f32(P, A + (size_t)i * M * Kd, M, e, out + (size_t)i * M * N);
  }
  return undef(env);
END

// packI8(Wq Int8Array [N*K], Wscale Float32Array [N*nwb], N, K, weightBlock, actBlock) -> handle
ENTRY(PackI8)
  Args a(env, info, 6, "packI8");
  int N = a.i32(2), Kd = a.i32(3), wb = a.i32(4), ab = a.i32(5);
  CHECK(env, N > 0 && Kd > 0, "packI8: N and K should be positive");
  CHECK(env, wb >= 0 && ab >= 0 && wb % 4 == 0 && ab % 4 == 0, "packI8: blocks should be 0 or multiples of 4");
  CHECK(env, !(wb && ab) || (wb % ab == 0 || ab % wb == 0), "packI8: weight and activation blocks should nest");
  int nwb = wb ? (Kd + wb - 1) / wb : 1;
  auto* W = a.arr<int8_t>(0, napi_int8_array, (size_t)N * Kd, "Wq");
  auto* S = a.arr<float>(1, napi_float32_array, (size_t)N * nwb, "Wscale");
  auto* P = pack_q8_gemm(W, S, N, Kd, wb, ab);
  return wrap(env, P, kQ8Gemm, packed_bytes(*P));
END

// gemmQ8(A, M, K, packed, actBlock, bias|null, act, clipMin, clipMax, out)
ENTRY(GemmQ8)
  Args a(env, info, 10, "gemmQ8");
  int M = a.i32(1), Kd = a.i32(2), ab = a.i32(4);
  auto* P = a.handle<PackQ8Gemm>(3, kQ8Gemm);
  CHECK(env, Kd == P->K && M >= 0, "gemmQ8: K does not match the packed weights");
  CHECK(env, ab == P->ablock, "gemmQ8: actBlock differs from the one the weights were packed for");
  auto* A = a.arr<float>(0, napi_float32_array, (size_t)M * Kd, "A");
  Epi e = epi(a, 5, 6, P->N);
  auto* out = a.arr<float>(9, napi_float32_array, (size_t)M * P->N, "out");
  std::lock_guard<std::mutex> g(pool().call);
  K().gemm_q8(*P, A, M, e, out);
  return undef(env);
END

// packConvF32(W Float32Array [M*Kg], M, Kg, group, khw?) -> handle (khw = kh*kw: tap-major K)
ENTRY(PackConvF32)
  Args a(env, info, 4, "packConvF32");
  int M = a.i32(1), Kg = a.i32(2), group = a.i32(3);
  int khw = a.argc > 4 && !a.is_null(4) ? a.i32(4) : 0;
  CHECK(env, M > 0 && Kg > 0 && group > 0 && M % group == 0, "packConvF32: bad M/Kg/group");
  auto* W = a.arr<float>(0, napi_float32_array, (size_t)M * Kg, "W");
  auto* P = pack_f32_conv(W, M, Kg, group, khw);
  return wrap(env, P, kF32Conv, (P->w.size() + P->wraw.size()) * 4);
END

// packConvI8(Wq Int8Array [M*Kg], Wscale, M, Kg, group, weightBlock, actBlock, khw?, actTap?) -> handle
// khw = kh*kw lets the addon reorder K tap-major when the windows allow it; actTap = 1: one
// activation window per tap (needs khw, group 1, weightBlock = actBlock = 0).
ENTRY(PackConvI8)
  Args a(env, info, 7, "packConvI8");
  int M = a.i32(2), Kg = a.i32(3), group = a.i32(4), wb = a.i32(5), ab = a.i32(6);
  int khw = a.argc > 7 && !a.is_null(7) ? a.i32(7) : 0;
  bool tap = a.argc > 8 && !a.is_null(8) && a.i32(8) != 0;
  CHECK(env, !tap || (khw > 0 && Kg % khw == 0 && group == 1 && wb == 0 && ab == 0),
        "packConvI8: tap windows need khw, group 1 and channel windows");
  CHECK(env, M > 0 && Kg > 0 && group > 0 && M % group == 0, "packConvI8: bad M/Kg/group");
  CHECK(env, wb >= 0 && ab >= 0 && wb % 4 == 0 && ab % 4 == 0, "packConvI8: blocks should be 0 or multiples of 4");
  CHECK(env, !(wb && ab) || (wb % ab == 0 || ab % wb == 0), "packConvI8: weight and activation blocks should nest");
  int nwb = wb ? (Kg + wb - 1) / wb : 1;
  auto* W = a.arr<int8_t>(0, napi_int8_array, (size_t)M * Kg, "Wq");
  auto* S = a.arr<float>(1, napi_float32_array, (size_t)M * nwb, "Wscale");
  auto* P = pack_q8_conv(W, S, M, Kg, group, wb, ab, khw, tap);
  return wrap(env, P, kQ8Conv, P->w.size() * 2 + P->init.size() * 8 + P->wscale.size() * 4);
END

// geometry Int32Array: [batch, C, H, W, kh, kw, sh, sw, dh, dw, pt, pl, OH, OW]
static ConvGeom geom(Args& a, size_t i, int& batch, int Kg, int group, int M) {
  auto* g = a.arr<int32_t>(i, napi_int32_array, 14, "geometry");
  ConvGeom G;
  batch = g[0]; G.C = g[1]; G.H = g[2]; G.W = g[3]; G.kh = g[4]; G.kw = g[5]; G.sh = g[6]; G.sw = g[7];
  G.dh = g[8]; G.dw = g[9]; G.pt = g[10]; G.pl = g[11]; G.OH = g[12]; G.OW = g[13];
  CHECK(a.env, batch >= 0 && G.C > 0 && G.H > 0 && G.W > 0 && G.kh > 0 && G.kw > 0 && G.sh > 0 && G.sw > 0 &&
        G.dh > 0 && G.dw > 0 && G.OH > 0 && G.OW > 0, "conv: bad geometry");
  CHECK(a.env, G.C % group == 0 && (G.C / group) * G.kh * G.kw == Kg, "conv: C/group*kh*kw does not match the packed weights");
  (void)0;
  (void)M;
  return G;
}

// A small output map (few pixels, many channels: ResNet's 14x14 and 7x7 stages) wastes much of the
// pixel-vector conv kernels: 49 pixels fill 4 vectors of 16. There the conv runs as a GEMM whose rows
// are output pixels and whose columns are channels: the input goes pixel-major (NHWC), each row of
// A is the patch assembled tap by tap (one C-value copy per tap, zeros for padding), the GEMM adds
// bias and activation per channel, and the [pixel][channel] result is transposed into NCHW. The int8
// GEMM quantizes each row as one window: the patch window, as the conv kernel would (the sum's order
// differs, not its terms). Measured against the conv kernels on ResNet50/VGG16 layers: fp32 is
// faster for 7x7 maps (18% at 1 thread, 40-55% at 2), about even on 10x10 and 14x14 at 1 thread
// but up to 21% slower at 2, and 5-9% (1 thread) to 14-25% (2 threads) slower on 28x28 since the
// fp32 conv kernel runs K in one chunk; int8 (whose conv kernel fuses im2col and quantization)
// is faster only for 3x3 convs on 7x7 (12-21%), 28-39% slower on 28x28. Hence the bounds.
static bool conv_rows_ok(int group, int Kg, const ConvGeom& G, int batch, bool int8) {
  const long ohw = (long)G.OH * G.OW, khw = (long)G.kh * G.kw;
  bool shape = int8 ? khw > 1 && ohw <= 64 : (khw == 1 ? ohw <= 64 : ohw <= 100);
  return shape && group == 1 && Kg == G.C * khw && (long)batch * ohw * Kg <= (16l << 20);  // A under 64 MB
}

// dst[j][i] = src[i][j] for i < R, j < Cc (leading dimensions sl, dl), in cache-sized tiles.
template <class E>
static void transpose_tiles(const E* src, size_t sl, int R, int Cc, E* dst, size_t dl) {
  constexpr int T = 32;
  for (int i0 = 0; i0 < R; i0 += T)
    for (int j0 = 0; j0 < Cc; j0 += T) {
      int i1 = std::min(R, i0 + T), j1 = std::min(Cc, j0 + T);
      for (int j = j0; j < j1; j++)
        for (int i = i0; i < i1; i++) dst[(size_t)j * dl + i] = src[(size_t)i * sl + j];
    }
}

// fn(0) .. fn(n-1) over the pool, or on this thread when the work (bytes moved) is small.
template <class Fn> static void par_for(int n, double work, Fn fn) {
  if (work < 2e5 || n == 1) {
    for (int t = 0; t < n; t++) fn(t);
    return;
  }
  parallel_for(n, [](void* c, int t, int) { (*(Fn*)c)(t); }, &fn);
}

// Patch rows (tap-major: k = tap*C + c) of every output pixel into A, or null when the NHWC input is
// already that matrix (1x1, stride 1, no padding); gemm(A, rows, Y) then Y [pixel][M] into NCHW out.
template <class Gemm>
static void conv_rows(const ConvGeom& G, int batch, int M, const float* X, float* out, Gemm gemm) {
  const int C = G.C, HW = G.H * G.W, OHW = G.OH * G.OW, Kg = C * G.kh * G.kw;
  // Grow-only buffers (never zero-filled: every element is written before it is read).
  struct Buf {
    std::unique_ptr<float[]> p;
    size_t n = 0;
    float* get(size_t k) { if (k > n) { p.reset(new float[k]); n = k; } return p.get(); }
  };
  static Buf bx, ba, by;  // guarded by pool().call
  const size_t rows = (size_t)batch * OHW;
  const bool direct = Kg == C && G.sh == 1 && G.sw == 1 && G.pt == 0 && G.pl == 0 && G.OH == G.H && G.OW == G.W;
  float* xtp = bx.get((size_t)batch * HW * C);
  float* Ap = direct ? xtp : ba.get(rows * Kg);
  float* Yp = by.get(rows * M);
  // The copies around the GEMM go over the threads too (serial, they took a third of a 7x7
  // layer's time at 2 threads): channel tiles, then output rows, then channel tiles.
  constexpr int kTile = 32;
  const int ctiles = (C + kTile - 1) / kTile, mtiles = (M + kTile - 1) / kTile;
  par_for(batch * ctiles, (double)batch * HW * C * 8, [&](int t) {
    int b = t / ctiles, c0 = (t % ctiles) * kTile, nc = std::min(kTile, C - c0);
    transpose_tiles(X + ((size_t)b * C + c0) * HW, HW, nc, HW, xtp + (size_t)b * HW * C + c0, C);
  });
  if (!direct) par_for(batch * G.OH, (double)rows * Kg * 8, [&](int t) {
    int b = t / G.OH, oy = t % G.OH;
    for (int ox = 0; ox < G.OW; ox++) {
      float* row = Ap + ((size_t)b * OHW + (size_t)oy * G.OW + ox) * Kg;
      for (int ky = 0; ky < G.kh; ky++)
        for (int kx = 0; kx < G.kw; kx++) {
          float* dst = row + (size_t)(ky * G.kw + kx) * C;
          int iy = oy * G.sh - G.pt + ky * G.dh, ix = ox * G.sw - G.pl + kx * G.dw;
          if (iy < 0 || iy >= G.H || ix < 0 || ix >= G.W) std::memset(dst, 0, sizeof(float) * C);
          else std::memcpy(dst, xtp + ((size_t)b * HW + (size_t)iy * G.W + ix) * C, sizeof(float) * C);
        }
    }
  });
  gemm(Ap, (int)rows, Yp);
  par_for(batch * mtiles, (double)rows * M * 8, [&](int t) {
    int b = t / mtiles, m0 = (t % mtiles) * kTile, nm = std::min(kTile, M - m0);
    transpose_tiles(Yp + (size_t)b * OHW * M + m0, M, OHW, nm, out + ((size_t)b * M + m0) * OHW, OHW);
  });
}

// The weights reordered tap-major (k' = tap*C + c) from the ONNX order (k = c*khw + tap).
template <class T>
static std::vector<T> tap_major(const T* w, int M, int C, int khw) {
  std::vector<T> wt((size_t)M * C * khw);
  for (int n = 0; n < M; n++)
    for (int c = 0; c < C; c++)
      for (int t = 0; t < khw; t++) wt[((size_t)n * khw + t) * C + c] = w[((size_t)n * C + c) * khw + t];
  return wt;
}

// Returns the bytes of the weight copy it built (on the first call), for the handle's accounting.
static size_t conv_f32_rows(PackF32Conv& P, const ConvGeom& G, int batch, const float* X, const Epi& e, float* out) {
  size_t built = 0;
  if (!P.rows) {
    P.rows.reset(pack_f32_gemm(tap_major(P.wraw.data(), P.M, G.C, G.kh * G.kw).data(), P.M, P.Kg));
    built = packed_bytes(*P.rows);
  }
  conv_rows(G, batch, P.M, X, out, [&](const float* A, int rows, float* Y) { K().gemm_f32(*P.rows, A, rows, e, Y); });
  return built;
}

static bool conv_q8_rows_ok(const PackQ8Conv& P, const ConvGeom& G, int batch) {
  return !P.acttap && P.ablock == 0 && P.wblock == 0 && conv_rows_ok(P.group, P.Kg, G, batch, true);
}

static size_t conv_q8_rows(PackQ8Conv& P, const ConvGeom& G, int batch, const float* X, const Epi& e, float* out) {
  size_t built = 0;
  if (!P.rows) {
    P.rows.reset(pack_q8_gemm(tap_major(P.wraw.data(), P.M, G.C, G.kh * G.kw).data(), P.wsraw.data(), P.M, P.Kg, 0, 0));
    built = packed_bytes(*P.rows);
  }
  conv_rows(G, batch, P.M, X, out, [&](const float* A, int rows, float* Y) { K().gemm_q8(*P.rows, A, rows, e, Y); });
  return built;
}

// The arguments the conv entries share: packed weights at 2, geometry at 1, X at 0, out at `iout`.
template <class T> struct ConvIO { T* P; ConvGeom G; int batch; const float* X; float* out; size_t nout; };
template <class T> static ConvIO<T> conv_io(Args& a, Kind kind, const char* name, size_t iout) {
  ConvIO<T> c;
  c.P = a.handle<T>(2, kind);
  c.G = geom(a, 1, c.batch, c.P->Kg, c.P->group, c.P->M);
  const ConvGeom& G = c.G;
  CHECK(a.env, !c.P->tapmajor || c.P->khw == G.kh * G.kw, std::string(name) + ": kernel size differs from the packed weights'");
  c.X = a.arr<float>(0, napi_float32_array, (size_t)c.batch * G.C * G.H * G.W, "X");
  c.nout = (size_t)c.batch * c.P->M * G.OH * G.OW;
  c.out = a.arr<float>(iout, napi_float32_array, c.nout, "out");
  return c;
}

// The conv entries' epilogue: bias at 3, activation at 4..6, and an optional residual at 8 (the
// output's shape, read in the store): out itself (in place) or apart from it.
template <class T> static Epi conv_epi(Args& a, const ConvIO<T>& c) {
  Epi e = epi(a, 3, 4, c.P->M);
  if (a.argc > 8 && !a.is_null(8)) {
    e.res = a.arr<float>(8, napi_float32_array, c.nout, "residual");
    e.out0 = c.out;
    CHECK(a.env, e.res == c.out || e.res + c.nout <= c.out || c.out + c.nout <= e.res, "residual: overlaps out");
  }
  return e;
}

// convF32(X, geometry, packed, bias|null, act, clipMin, clipMax, out, residual?)
ENTRY(ConvF32)
  Args a(env, info, 8, "convF32");
  auto c = conv_io<PackF32Conv>(a, kF32Conv, "convF32", 7);
  Epi e = conv_epi(a, c);
  std::lock_guard<std::mutex> g(pool().call);
  if (conv_rows_ok(c.P->group, c.P->Kg, c.G, c.batch, false))
    with_residual(e, c.out, c.nout, [&](const Epi& p) { a.grew(conv_f32_rows(*c.P, c.G, c.batch, c.X, p, c.out)); });
  else K().conv_f32(*c.P, c.G, c.batch, c.X, e, c.out);
  return undef(env);
END

// convQ8Phase(X, geometry, packed, phase, out): benchmark only (bench/gemm.ts) — the panel conv
// kernel's pack phase alone (1) or its GEMM phase alone on stale panels (2; out is garbage), for a
// conv that takes that kernel (not depthwise, tap windows or pixel rows).
ENTRY(ConvQ8Phase)
  Args a(env, info, 5, "convQ8Phase");
  auto c = conv_io<PackQ8Conv>(a, kQ8Conv, "convQ8Phase", 4);
  const PackQ8Conv& P = *c.P;
  CHECK(env, !P.acttap && !(P.Mg == 1 && c.G.C == P.group) && !conv_q8_rows_ok(P, c.G, c.batch), "convQ8Phase: this conv does not run the panel kernel");
  Epi e{nullptr, -INFINITY, INFINITY, a.i32(3)};
  CHECK(env, e.phase == 1 || e.phase == 2, "convQ8Phase: phase is 1 (pack) or 2 (GEMM)");
  std::lock_guard<std::mutex> g(pool().call);
  K().conv_q8(P, c.G, c.batch, c.X, e, c.out);
  return undef(env);
END

// convQ8(X, geometry, packed, bias|null, act, clipMin, clipMax, out, residual?)
ENTRY(ConvQ8)
  Args a(env, info, 8, "convQ8");
  auto c = conv_io<PackQ8Conv>(a, kQ8Conv, "convQ8", 7);
  Epi e = conv_epi(a, c);
  std::lock_guard<std::mutex> g(pool().call);
  if (conv_q8_rows_ok(*c.P, c.G, c.batch))
    with_residual(e, c.out, c.nout, [&](const Epi& p) { a.grew(conv_q8_rows(*c.P, c.G, c.batch, c.X, p, c.out)); });
  else K().conv_q8(*c.P, c.G, c.batch, c.X, e, c.out);
  return undef(env);
END

// maxPoolF32(X, geometry, out): geometry as conv's with C = channels (dh = dw = 1); X, out NCHW.
ENTRY(MaxPoolF32)
  Args a(env, info, 3, "maxPoolF32");
  auto* g = a.arr<int32_t>(1, napi_int32_array, 14, "geometry");
  ConvGeom G;
  int batch = g[0]; G.C = g[1]; G.H = g[2]; G.W = g[3]; G.kh = g[4]; G.kw = g[5]; G.sh = g[6]; G.sw = g[7];
  G.dh = g[8]; G.dw = g[9]; G.pt = g[10]; G.pl = g[11]; G.OH = g[12]; G.OW = g[13];
  CHECK(env, batch >= 0 && G.C > 0 && G.H > 0 && G.W > 0 && G.kh > 0 && G.kw > 0 && G.sh > 0 && G.sw > 0 &&
        G.dh == 1 && G.dw == 1 && G.pt >= 0 && G.pl >= 0 && G.OH > 0 && G.OW > 0, "maxPoolF32: bad geometry");
  int planes = batch * G.C;
  auto* X = a.arr<float>(0, napi_float32_array, (size_t)planes * G.H * G.W, "X");
  auto* out = a.arr<float>(2, napi_float32_array, (size_t)planes * G.OH * G.OW, "out");
  std::lock_guard<std::mutex> lk(pool().call);
  K().maxpool_f32(G, planes, X, out);
  return undef(env);
END

// binaryF32(A, B, op, act, offsA, stepA, offsB, stepB, inner, out): a broadcasting Add/Sub/Mul/Div
// over a BroadcastPlan (src/ops/util/broadcast.ts): out.length = offsA.length * inner.
ENTRY(BinaryF32)
  Args a(env, info, 10, "binaryF32");
  int op = a.i32(2), act = a.i32(3), sa = a.i32(5), sb = a.i32(7), inner = a.i32(8);
  CHECK(env, op >= 0 && op <= 3, "binaryF32: op should be 0..3 (Add, Sub, Mul, Div)");
  CHECK(env, act == 0 || (act == 1 && op == 0), "binaryF32: act 1 (Relu) only with Add");
  CHECK(env, (sa == 0 || sa == 1) && (sb == 0 || sb == 1) && inner >= 1, "binaryF32: bad steps or run length");
  size_t outer = a.len(4, "offsA");
  CHECK(env, outer == a.len(6, "offsB") && outer <= (size_t)INT32_MAX, "binaryF32: offset tables differ in length");
  auto* offa = a.arr<int32_t>(4, napi_int32_array, outer, "offsA");
  auto* offb = a.arr<int32_t>(6, napi_int32_array, outer, "offsB");
  size_t na = a.len(0, "A"), nb = a.len(1, "B");
  auto* A = a.arr<float>(0, napi_float32_array, na, "A");
  auto* B = a.arr<float>(1, napi_float32_array, nb, "B");
  auto* out = a.arr<float>(9, napi_float32_array, outer * inner, "out");
  // Every run must stay inside its operand.
  for (size_t o = 0; o < outer; o++) {
    CHECK(env, offa[o] >= 0 && (size_t)offa[o] + (size_t)(inner - 1) * sa < na, "binaryF32: run outside A");
    CHECK(env, offb[o] >= 0 && (size_t)offb[o] + (size_t)(inner - 1) * sb < nb, "binaryF32: run outside B");
  }
  std::lock_guard<std::mutex> lk(pool().call);
  K().binary_f32(op, act, A, offa, sa, B, offb, sb, (int)outer, inner, out);
  return undef(env);
END

// softmaxF32(X, cols, out): Softmax over each row of `cols` values (X.length = out.length = rows*cols).
ENTRY(SoftmaxF32)
  Args a(env, info, 3, "softmaxF32");
  int cols = a.i32(1);
  size_t n = a.len(2, "out");
  CHECK(env, cols >= 1 && n % cols == 0 && n / cols <= (size_t)INT32_MAX, "softmaxF32: bad row length");
  auto* X = a.arr<float>(0, napi_float32_array, n, "X");
  auto* out = a.arr<float>(2, napi_float32_array, n, "out");
  std::lock_guard<std::mutex> lk(pool().call);
  K().softmax_f32(X, (int)(n / cols), cols, out);
  return undef(env);
END

// reluF32(X, out) and erfF32(X, out): ONNX Relu / Erf over out.length values.
static napi_value unary_f32(napi_env env, napi_callback_info info, const char* name,
                            void (*Kernels::*fn)(const float*, size_t, float*)) {
  Args a(env, info, 2, name);
  size_t n = a.len(1, "out");
  auto* X = a.arr<float>(0, napi_float32_array, n, "X");
  auto* out = a.arr<float>(1, napi_float32_array, n, "out");
  std::lock_guard<std::mutex> lk(pool().call);
  (K().*fn)(X, n, out);
  return undef(env);
}

ENTRY(ReluF32)
  return unary_f32(env, info, "reluF32", &Kernels::relu_f32);
END

ENTRY(ErfF32)
  return unary_f32(env, info, "erfF32", &Kernels::erf_f32);
END

// geluF32(X, div, add, mul, out): q8.Gelu, ((x * (erf(x / div) + add)) * mul) in float32 steps.
ENTRY(GeluF32)
  Args a(env, info, 5, "geluF32");
  size_t n = a.len(4, "out");
  auto* X = a.arr<float>(0, napi_float32_array, n, "X");
  const float div = (float)a.num(1), add = (float)a.num(2), mul = (float)a.num(3);
  auto* out = a.arr<float>(4, napi_float32_array, n, "out");
  std::lock_guard<std::mutex> lk(pool().call);
  K().gelu_f32(X, n, div, add, mul, out);
  return undef(env);
END

// firstNaNF32(X) -> index of the first NaN in X, or -1. Blocks of 256 are tested without
// branches (the compiler vectorizes the unordered compares); the block that has one is scanned.
// run() checks every float input this way: 150,528 values of a 224x224 image took 93 us in JS.
ENTRY(FirstNaNF32)
  Args a(env, info, 1, "firstNaNF32");
  const size_t n = a.len(0, "X");
  const float* x = a.arr<float>(0, napi_float32_array, n, "X");
  double at = -1;
  for (size_t b = 0; b < n && at < 0; b += 256) {
    const size_t e = std::min(n, b + 256);
    int bad = 0;
    for (size_t i = b; i < e; i++) bad |= x[i] != x[i];
    if (bad)
      for (size_t i = b; i < e; i++)
        if (x[i] != x[i]) { at = (double)i; break; }
  }
  napi_value v;
  napi_create_double(env, at, &v);
  return v;
END

// globalAvgF32(X, size, out): out[p] = mean of X[p*size .. (p+1)*size) for each plane p, as the
// reference takes it (a float64 sum in order, divided, rounded to float32). Eight planes at a time
// keep eight independent add chains in flight; each plane's sum is still sequential.
ENTRY(GlobalAvgF32)
  Args a(env, info, 3, "globalAvgF32");
  const int64_t S = a.i32(1);
  size_t n = a.len(2, "out");
  CHECK(env, S >= 1, "globalAvgF32: size should be >= 1");
  const float* x = a.arr<float>(0, napi_float32_array, n * (size_t)S, "X");
  float* o = a.arr<float>(2, napi_float32_array, n, "out");
  size_t p = 0;
  for (; p + 8 <= n; p += 8) {
    double s[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    const float* b = x + p * S;
    for (int64_t i = 0; i < S; i++)
      for (int k = 0; k < 8; k++) s[k] += b[k * S + i];
    for (int k = 0; k < 8; k++) o[p + k] = (float)(s[k] / (double)S);
  }
  for (; p < n; p++) {
    double s = 0;
    for (int64_t i = 0; i < S; i++) s += x[p * S + i];
    o[p] = (float)(s / (double)S);
  }
  return undef(env);
END

// layerNormF32(X, gamma, beta, epsilon, out): q8.LayerNorm over the last axis (C = gamma.length).
ENTRY(LayerNormF32)
  Args a(env, info, 5, "layerNormF32");
  size_t C = a.len(1, "gamma"), n = a.len(4, "out");
  CHECK(env, C >= 1 && C <= (size_t)INT32_MAX && n % C == 0 && n / C <= (size_t)INT32_MAX, "layerNormF32: bad row length");
  auto* G = a.arr<float>(1, napi_float32_array, C, "gamma");
  auto* B = a.arr<float>(2, napi_float32_array, C, "beta");
  auto* X = a.arr<float>(0, napi_float32_array, n, "X");
  auto* out = a.arr<float>(4, napi_float32_array, n, "out");
  float eps = (float)a.num(3);
  std::lock_guard<std::mutex> lk(pool().call);
  K().layernorm_f32(X, (int)(n / C), (int)C, G, B, eps, out);
  return undef(env);
END

// transpose32(X, shape, strides, out): out (row-major over `shape`) gathers the 4-byte elements of X
// at sum(index[d] * strides[d]): a Transpose (any float32/int32 tensor, bits copied as they are)
// after the caller has dropped unit dims and merged the ones that stay adjacent.
static void transpose32(const uint32_t* x, int r, const int32_t* shape, const int32_t* st, uint32_t* out) {
  if (r == 0) { out[0] = x[0]; return; }
  const int n = shape[r - 1];
  const size_t s = (size_t)st[r - 1];
  // The last two output dims read (stride 1, stride s) of the input: a tiled 2-D transpose per
  // outer index; otherwise runs along the last dim (copies when its stride is 1).
  const bool tiles = r >= 2 && st[r - 2] == 1 && s != 1;
  const int inner = tiles ? 2 : 1, m = tiles ? shape[r - 2] : 1;
  size_t outer = 1;
  for (int d = 0; d < r - inner; d++) outer *= (size_t)shape[d];
  std::vector<int32_t> idx((size_t)r, 0);
  uint32_t* o = out;
  for (size_t k = 0; k < outer; k++) {
    size_t base = 0;
    for (int d = 0; d < r - inner; d++) base += (size_t)idx[d] * (size_t)st[d];
    const uint32_t* b = x + base;
    if (tiles) {
      transpose_tiles(b, s, n, m, o, (size_t)n);  // o[a][j] = b[a + j*s]
      o += (size_t)m * n;
    } else if (s == 1) {
      std::memcpy(o, b, sizeof(uint32_t) * n);
      o += n;
    } else {
      for (int j = 0; j < n; j++) o[j] = b[(size_t)j * s];
      o += n;
    }
    for (int d = r - inner - 1; d >= 0; d--) { if (++idx[d] < shape[d]) break; idx[d] = 0; }
  }
}

ENTRY(Transpose32)
  Args a(env, info, 4, "transpose32");
  size_t r = a.len(1, "shape");
  CHECK(env, r == a.len(2, "strides") && r <= 16, "transpose32: shape and strides differ in rank");
  auto* shape = a.arr<int32_t>(1, napi_int32_array, r, "shape");
  auto* st = a.arr<int32_t>(2, napi_int32_array, r, "strides");
  size_t total = 1, last = 0;
  for (size_t d = 0; d < r; d++) {
    CHECK(env, shape[d] >= 1 && st[d] >= 0, "transpose32: dims should be positive and strides non-negative");
    total *= (size_t)shape[d];
    last += (size_t)(shape[d] - 1) * (size_t)st[d];
  }
  auto* X = a.arr<float>(0, napi_float32_array, last + 1, "X");
  auto* out = a.arr<float>(3, napi_float32_array, total, "out");
  std::lock_guard<std::mutex> lk(pool().call);
  transpose32((const uint32_t*)X, (int)r, shape, st, (uint32_t*)out);
  return undef(env);
END

// peak(kind 'int8'|'f32', iters) -> { ops, seconds } of a register-only loop on the calling thread.
ENTRY(Peak)
  Args a(env, info, 2, "peak");
  char buf[16];
  size_t len;
  napi_get_value_string_utf8(env, a.argv[0], buf, sizeof buf, &len);
  long n = (long)a.num(1);
  auto fn = std::string(buf) == "int8" ? K().peak_i8 : K().peak_f32;
  CHECK(env, fn != nullptr, "peak: no vector kernels for this ISA");
  auto t0 = std::chrono::steady_clock::now();
  double ops = fn(n);
  double sec = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  napi_value o, v;
  napi_create_object(env, &o);
  napi_create_double(env, ops, &v); napi_set_named_property(env, o, "ops", v);
  napi_create_double(env, sec, &v); napi_set_named_property(env, o, "seconds", v);
  return o;
END

}  // namespace q8

// Context-aware init: loads in the main thread and in worker_threads alike; all state is
// process-wide (the pool) or owned by handles.
NAPI_MODULE_INIT() {
  using namespace q8;
  if (const char* s = std::getenv("Q8_NATIVE_ISA")) set_isa(s);
  struct { const char* name; napi_callback cb; } fns[] = {
      {"info", Info}, {"setThreads", SetThreads}, {"setIsa", SetIsa},
      {"packF32", PackF32}, {"gemmF32", GemmF32}, {"packI8", PackI8}, {"gemmQ8", GemmQ8},
      {"packConvF32", PackConvF32}, {"convF32", ConvF32}, {"packConvI8", PackConvI8}, {"convQ8", ConvQ8}, {"convQ8Phase", ConvQ8Phase}, {"peak", Peak},
      {"maxPoolF32", MaxPoolF32}, {"binaryF32", BinaryF32}, {"transpose32", Transpose32}, {"layerNormF32", LayerNormF32}, {"matmulF32", MatmulF32}, {"softmaxF32", SoftmaxF32}, {"reluF32", ReluF32}, {"erfF32", ErfF32}, {"globalAvgF32", GlobalAvgF32}, {"firstNaNF32", FirstNaNF32}, {"geluF32", GeluF32},
  };
  for (auto& f : fns) {
    napi_value v;
    napi_create_function(env, f.name, NAPI_AUTO_LENGTH, f.cb, nullptr, &v);
    napi_set_named_property(env, exports, f.name, v);
  }
  return exports;
}
