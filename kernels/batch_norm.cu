// Batch normalisation over (N, H, W) per channel, with the CPU backend's semantics: biased variance for
// normalising, unbiased for the running variance, momentum as the exponential factor, saved mean and
// 1/sqrt(var + eps), the output computed from the saved (rounded) statistics so that recomputation is bit
// for bit the training output, and a fused ReLU whose mask backward recomputes from x.
//
// Layout: plane (i, ch) of a tensor starts at p + i*bs + ch*hw; x, y, dy, dx each have their own batch
// stride (views of a dense block's concatenation buffer). A channel's n*hw elements are split into
// `splits` chunks, one block each (grid splits x C); the per-block double sums go to scratch and a
// per-channel pass adds them in chunk order, so the statistics are deterministic for a given GPU.
// Elements move four at a time (float4) when hw, the strides and the pointers allow it.
#include <cmath>

#include "common.cuh"

namespace mammocl::cuda_kernels {
namespace {

using detail::block_size;

template <int V>
struct pack {
  float v[V];
  __device__ static pack load(const float* p) {
    pack r;
    if constexpr (V == 4) {
      const float4 q = *reinterpret_cast<const float4*>(p);
      r.v[0] = q.x; r.v[1] = q.y; r.v[2] = q.z; r.v[3] = q.w;
    } else {
      r.v[0] = *p;
    }
    return r;
  }
  __device__ void store(float* p) const {
    if constexpr (V == 4) *reinterpret_cast<float4*>(p) = make_float4(v[0], v[1], v[2], v[3]);
    else *p = v[0];
  }
};

// Sizes of one launch: hw_v = hw/V units per plane, m_v = n*hw_v units per channel.
struct geom {
  idx hw;
  unsigned int hw_v, m_v;
  __device__ idx offset(unsigned int e, idx bs, int V) const {
    const unsigned int i = e / hw_v, j = e - i * hw_v;
    return static_cast<idx>(i) * bs + static_cast<idx>(j) * V;
  }
};

// ---- forward statistics: Σ(x - K), Σ(x - K)² per chunk, K = the channel's first element (shifted sums
// keep the one-pass variance accurate).
template <int V>
__global__ void stats_kernel(const float* x, idx xbs, geom g, unsigned int chunk, double2* partials) {
  __shared__ double sh[block_size / 32];
  const idx ch = blockIdx.y;
  const float* base = x + ch * g.hw;
  const double k0 = static_cast<double>(base[0]);
  const unsigned int e0 = blockIdx.x * chunk;
  const unsigned int e1 = e0 + chunk < g.m_v ? e0 + chunk : g.m_v;
  double a = 0, b = 0;
  for (unsigned int e = e0 + threadIdx.x; e < e1; e += blockDim.x) {
    const pack<V> v = pack<V>::load(base + g.offset(e, xbs, V));
#pragma unroll
    for (int t = 0; t < V; ++t) {
      const double d = static_cast<double>(v.v[t]) - k0;
      a += d;
      b += d * d;
    }
  }
  a = detail::block_sum(a, sh);
  b = detail::block_sum(b, sh);
  if (threadIdx.x == 0) partials[ch * gridDim.x + blockIdx.x] = make_double2(a, b);
}

__global__ void finalize_train_kernel(const double2* partials, int splits, idx c, idx m, const float* x, idx hw,
                                      double momentum, double eps, float* save_mean, float* save_invstd,
                                      float* running_mean, float* running_var) {
  const idx ch = blockIdx.x * static_cast<idx>(blockDim.x) + threadIdx.x;
  if (ch >= c) return;
  double a = 0, b = 0;
  for (int s = 0; s < splits; ++s) {
    const double2 p = partials[ch * splits + s];
    a += p.x;
    b += p.y;
  }
  const double md = static_cast<double>(m);
  const double mean = static_cast<double>(x[ch * hw]) + a / md;
  const double var = fmax(0.0, b - a * a / md) / md;
  const double inv = 1.0 / sqrt(var + eps);
  save_mean[ch] = static_cast<float>(mean);
  save_invstd[ch] = static_cast<float>(inv);
  if (running_mean) {
    running_mean[ch] = static_cast<float>((1.0 - momentum) * running_mean[ch] + momentum * mean);
    running_var[ch] =
        static_cast<float>((1.0 - momentum) * running_var[ch] + momentum * var * md / static_cast<double>(m - 1));
  }
}

// ---- y = x*a + b (ReLU): a, b per channel from (mean, invstd) or (running mean, running var).
template <int V>
__global__ void apply_kernel(const float* x, idx xbs, float* y, idx ybs, geom g, const float* gamma,
                             const float* beta, const float* mean, const float* stat, bool stat_is_var, double eps,
                             bool relu) {
  const idx ch = blockIdx.y;
  const double inv = stat_is_var ? 1.0 / sqrt(static_cast<double>(stat[ch]) + eps) : static_cast<double>(stat[ch]);
  const double mu = mean[ch], ga = gamma[ch];
  const float a = static_cast<float>(ga * inv);
  const float b = static_cast<float>(static_cast<double>(beta[ch]) - mu * ga * inv);
  const float* xb = x + ch * g.hw;
  float* yb = y + ch * g.hw;
  for (unsigned int e = blockIdx.x * blockDim.x + threadIdx.x; e < g.m_v; e += gridDim.x * blockDim.x) {
    pack<V> v = pack<V>::load(xb + g.offset(e, xbs, V));
#pragma unroll
    for (int t = 0; t < V; ++t) {
      const float r = v.v[t] * a + b;
      v.v[t] = relu ? (r > 0.0f ? r : 0.0f) : r;
    }
    v.store(yb + g.offset(e, ybs, V));
  }
}

// ---- backward: Σdz and Σdz·x̂ per chunk (dz = dy masked by the recomputed ReLU); the inference-mode
// variant also writes dx, which needs no statistics of dy.
template <int V, bool Relu, bool Eval>
__global__ void backward_reduce_kernel(const float* x, idx xbs, const float* dy, idx dybs, float* dx, idx dxbs, geom g,
                                       unsigned int chunk, const float* gamma, const float* beta, const float* mean_p,
                                       const float* stat_p, double eps, float dx_beta, double2* partials) {
  __shared__ double sh[block_size / 32];
  const idx ch = blockIdx.y;
  const float mean = mean_p[ch];
  const float inv = Eval ? static_cast<float>(1.0 / sqrt(static_cast<double>(stat_p[ch]) + eps)) : stat_p[ch];
  const float ga = gamma[ch], be = beta[ch];
  const float* xb = x + ch * g.hw;
  const float* db = dy + ch * g.hw;
  float* ob = Eval ? dx + ch * g.hw : nullptr;
  const unsigned int e0 = blockIdx.x * chunk;
  const unsigned int e1 = e0 + chunk < g.m_v ? e0 + chunk : g.m_v;
  double a = 0, b = 0;
  for (unsigned int e = e0 + threadIdx.x; e < e1; e += blockDim.x) {
    const pack<V> xv = pack<V>::load(xb + g.offset(e, xbs, V));
    const pack<V> dv = pack<V>::load(db + g.offset(e, dybs, V));
    pack<V> out;
    if constexpr (Eval) {
      if (dx_beta != 0.0f) out = pack<V>::load(ob + g.offset(e, dxbs, V));
    }
#pragma unroll
    for (int t = 0; t < V; ++t) {
      const float xh = (xv.v[t] - mean) * inv;
      const float dz = (!Relu || xh * ga + be > 0.0f) ? dv.v[t] : 0.0f;
      a += static_cast<double>(dz);
      if constexpr (Eval) {
        b += static_cast<double>(dz) * static_cast<double>(xh);
        const float r = dz * ga * inv;
        out.v[t] = dx_beta == 0.0f ? r : r + dx_beta * out.v[t];
      } else {
        b += static_cast<double>(dz * xh);
      }
    }
    if constexpr (Eval) out.store(ob + g.offset(e, dxbs, V));
  }
  a = detail::block_sum(a, sh);
  b = detail::block_sum(b, sh);
  if (threadIdx.x == 0) partials[ch * gridDim.x + blockIdx.x] = make_double2(a, b);
}

__global__ void finalize_backward_kernel(const double2* partials, int splits, idx c, idx m, float* dgamma,
                                         float* dbeta, float param_beta, float2* consts) {
  const idx ch = blockIdx.x * static_cast<idx>(blockDim.x) + threadIdx.x;
  if (ch >= c) return;
  double sdz = 0, sdzx = 0;
  for (int s = 0; s < splits; ++s) {
    const double2 p = partials[ch * splits + s];
    sdz += p.x;
    sdzx += p.y;
  }
  dgamma[ch] = static_cast<float>(sdzx) + (param_beta == 0.0f ? 0.0f : param_beta * dgamma[ch]);
  dbeta[ch] = static_cast<float>(sdz) + (param_beta == 0.0f ? 0.0f : param_beta * dbeta[ch]);
  if (consts)
    consts[ch] = make_float2(static_cast<float>(sdz / static_cast<double>(m)), static_cast<float>(sdzx / static_cast<double>(m)));
}

// dx = γ·invstd·(dz − Σdz/M − x̂·Σdz·x̂/M) + dx_beta·dx.
template <int V, bool Relu>
__global__ void backward_apply_kernel(const float* x, idx xbs, const float* dy, idx dybs, float* dx, idx dxbs, geom g,
                                      const float* gamma, const float* beta, const float* save_mean,
                                      const float* save_invstd, const float2* consts, float dx_beta) {
  const idx ch = blockIdx.y;
  const float mean = save_mean[ch], inv = save_invstd[ch], ga = gamma[ch], be = beta[ch];
  const float k = ga * inv;
  const float2 cs = consts[ch];
  const float* xb = x + ch * g.hw;
  const float* db = dy + ch * g.hw;
  float* ob = dx + ch * g.hw;
  for (unsigned int e = blockIdx.x * blockDim.x + threadIdx.x; e < g.m_v; e += gridDim.x * blockDim.x) {
    const pack<V> xv = pack<V>::load(xb + g.offset(e, xbs, V));
    const pack<V> dv = pack<V>::load(db + g.offset(e, dybs, V));
    pack<V> out;
    if (dx_beta != 0.0f) out = pack<V>::load(ob + g.offset(e, dxbs, V));
#pragma unroll
    for (int t = 0; t < V; ++t) {
      const float xh = (xv.v[t] - mean) * inv;
      const float dz = (!Relu || xh * ga + be > 0.0f) ? dv.v[t] : 0.0f;
      const float prev = dx_beta == 0.0f ? 0.0f : dx_beta * out.v[t];
      out.v[t] = k * (dz - cs.x - xh * cs.y) + prev;
    }
    out.store(ob + g.offset(e, dxbs, V));
  }
}

// ---- launch helpers

int vec_width(const bn_dims& d, std::initializer_list<std::pair<const void*, idx>> tensors) {
  if (d.hw % 4 != 0) return 1;
  for (const auto& [p, bs] : tensors)
    if (!detail::aligned16(p) || bs % 4 != 0) return 1;
  return 4;
}

geom make_geom(const bn_dims& d, int v, const char* op) {
  const idx m_v = d.n * (d.hw / v);
  MAMMOCL_EXPECTS(d.c <= 65535, op, ": ", d.c, " channels exceed the CUDA backend's limit of 65535");
  MAMMOCL_EXPECTS(m_v < (idx{1} << 31) && d.hw < (idx{1} << 31), op, ": ", d.n * d.hw,
                  " values per channel exceed the CUDA backend's limit of 2^31");
  return geom{d.hw, static_cast<unsigned int>(d.hw / v), static_cast<unsigned int>(m_v)};
}

int splits_for(const bn_dims& d) {
  const idx m = d.n * d.hw;
  const idx target = (4 * static_cast<idx>(detail::sm_count()) + d.c - 1) / d.c;
  const idx by_work = std::max<idx>(1, m / (block_size * 16));
  return static_cast<int>(std::clamp<idx>(std::min(target, by_work), 1, 1024));
}

// Blocks along x of an elementwise pass over one channel: enough to fill the GPU with C channels.
unsigned int apply_blocks(const geom& g, idx c) {
  const idx want = (8 * static_cast<idx>(detail::sm_count()) + c - 1) / c;
  const idx need = (static_cast<idx>(g.m_v) + block_size * 4 - 1) / (block_size * 4);
  return static_cast<unsigned int>(std::clamp<idx>(std::min(want, need), 1, 65535));
}

std::size_t partial_bytes(const bn_dims& d) {
  return sizeof(double2) * static_cast<std::size_t>(d.c) * static_cast<std::size_t>(splits_for(d));
}

}  // namespace

std::size_t bn_scratch_bytes(const bn_dims& d) {
  const std::size_t p = (partial_bytes(d) + 255) / 256 * 256;
  return p + sizeof(float2) * static_cast<std::size_t>(d.c);
}

void bn_forward_apply(const float* x, idx xbs, float* y, idx ybs, const bn_dims& d, const float* gamma,
                      const float* beta, const float* mean, const float* stat, bool stat_is_var, double eps, bool relu,
                      cudaStream_t stream) {
  if (d.n * d.c * d.hw <= 0) return;
  const int v = vec_width(d, {{x, xbs}, {y, ybs}});
  const geom g = make_geom(d, v, "batch_norm");
  const dim3 grid(apply_blocks(g, d.c), static_cast<unsigned int>(d.c));
  if (v == 4)
    apply_kernel<4><<<grid, block_size, 0, stream>>>(x, xbs, y, ybs, g, gamma, beta, mean, stat, stat_is_var, eps, relu);
  else
    apply_kernel<1><<<grid, block_size, 0, stream>>>(x, xbs, y, ybs, g, gamma, beta, mean, stat, stat_is_var, eps, relu);
  MAMMOCL_KERNEL_CHECK("bn_apply", "n ", d.n, ", c ", d.c, ", hw ", d.hw, ", x stride ", xbs, ", y stride ", ybs,
                       ", vector ", v);
}

void bn_forward_train(const float* x, idx xbs, float* y, idx ybs, const bn_dims& d, const float* gamma,
                      const float* beta, float* save_mean, float* save_invstd, float* running_mean,
                      float* running_var, double momentum, double eps, bool relu, void* scratch,
                      cudaStream_t stream) {
  if (d.n * d.c * d.hw <= 0) return;
  const int splits = splits_for(d);
  auto* partials = static_cast<double2*>(scratch);
  {
    const int v = vec_width(d, {{x, xbs}});
    const geom g = make_geom(d, v, "batch_norm");
    const unsigned int chunk = (g.m_v + splits - 1) / splits;
    const dim3 grid(static_cast<unsigned int>(splits), static_cast<unsigned int>(d.c));
    if (v == 4) stats_kernel<4><<<grid, block_size, 0, stream>>>(x, xbs, g, chunk, partials);
    else stats_kernel<1><<<grid, block_size, 0, stream>>>(x, xbs, g, chunk, partials);
    MAMMOCL_KERNEL_CHECK("bn_stats", "n ", d.n, ", c ", d.c, ", hw ", d.hw, ", x stride ", xbs, ", splits ", splits,
                         ", vector ", v);
  }
  finalize_train_kernel<<<detail::blocks_for(d.c), block_size, 0, stream>>>(
      partials, splits, d.c, d.n * d.hw, x, d.hw, momentum, eps, save_mean, save_invstd, running_mean, running_var);
  MAMMOCL_KERNEL_CHECK("bn_finalize_train", "c ", d.c, ", splits ", splits);
  bn_forward_apply(x, xbs, y, ybs, d, gamma, beta, save_mean, save_invstd, false, 0.0, relu, stream);
}

void bn_backward(const float* x, idx xbs, const float* dy, idx dybs, float* dx, idx dxbs, const bn_dims& d,
                 const float* gamma, const float* beta, const float* save_mean, const float* save_invstd, bool relu,
                 float dx_beta, float* dgamma, float* dbeta, float param_beta, void* scratch, cudaStream_t stream) {
  if (d.c <= 0) return;
  const int splits = splits_for(d);
  auto* partials = static_cast<double2*>(scratch);
  auto* consts = reinterpret_cast<float2*>(static_cast<char*>(scratch) + (partial_bytes(d) + 255) / 256 * 256);
  const int v = vec_width(d, {{x, xbs}, {dy, dybs}, {dx, dxbs}});
  const geom g = make_geom(d, v, "batch_norm_backward");
  if (d.n * d.hw > 0) {
    const unsigned int chunk = (g.m_v + splits - 1) / splits;
    const dim3 grid(static_cast<unsigned int>(splits), static_cast<unsigned int>(d.c));
#define MAMMOCL_BN_REDUCE(V, R)                                                                                    \
  backward_reduce_kernel<V, R, false><<<grid, block_size, 0, stream>>>(x, xbs, dy, dybs, dx, dxbs, g, chunk, gamma, \
                                                                      beta, save_mean, save_invstd, 0.0, 0.0f, partials)
    if (v == 4) { if (relu) MAMMOCL_BN_REDUCE(4, true); else MAMMOCL_BN_REDUCE(4, false); }
    else { if (relu) MAMMOCL_BN_REDUCE(1, true); else MAMMOCL_BN_REDUCE(1, false); }
#undef MAMMOCL_BN_REDUCE
    MAMMOCL_KERNEL_CHECK("bn_backward_reduce", "n ", d.n, ", c ", d.c, ", hw ", d.hw, ", splits ", splits, ", relu ",
                         relu, ", vector ", v);
  } else {
    MAMMOCL_CUDA_CHECK(cudaMemsetAsync(partials, 0, partial_bytes(d), stream), "cudaMemsetAsync(", partial_bytes(d), " B)");
  }
  finalize_backward_kernel<<<detail::blocks_for(d.c), block_size, 0, stream>>>(partials, splits, d.c, d.n * d.hw,
                                                                               dgamma, dbeta, param_beta, consts);
  MAMMOCL_KERNEL_CHECK("bn_finalize_backward", "c ", d.c, ", splits ", splits);
  if (d.n * d.hw <= 0) return;
  const dim3 grid(apply_blocks(g, d.c), static_cast<unsigned int>(d.c));
#define MAMMOCL_BN_APPLY(V, R)                                                                                   \
  backward_apply_kernel<V, R><<<grid, block_size, 0, stream>>>(x, xbs, dy, dybs, dx, dxbs, g, gamma, beta,        \
                                                              save_mean, save_invstd, consts, dx_beta)
  if (v == 4) { if (relu) MAMMOCL_BN_APPLY(4, true); else MAMMOCL_BN_APPLY(4, false); }
  else { if (relu) MAMMOCL_BN_APPLY(1, true); else MAMMOCL_BN_APPLY(1, false); }
#undef MAMMOCL_BN_APPLY
  MAMMOCL_KERNEL_CHECK("bn_backward_apply", "n ", d.n, ", c ", d.c, ", hw ", d.hw, ", dx beta ", dx_beta, ", vector ", v);
}

void bn_backward_eval(const float* x, idx xbs, const float* dy, idx dybs, float* dx, idx dxbs, const bn_dims& d,
                      const float* gamma, const float* beta, const float* running_mean, const float* running_var,
                      double eps, bool relu, float dx_beta, float* dgamma, float* dbeta, float param_beta,
                      void* scratch, cudaStream_t stream) {
  if (d.c <= 0) return;
  const int splits = splits_for(d);
  auto* partials = static_cast<double2*>(scratch);
  const int v = vec_width(d, {{x, xbs}, {dy, dybs}, {dx, dxbs}});
  const geom g = make_geom(d, v, "batch_norm_backward_eval");
  if (d.n * d.hw > 0) {
    const unsigned int chunk = (g.m_v + splits - 1) / splits;
    const dim3 grid(static_cast<unsigned int>(splits), static_cast<unsigned int>(d.c));
#define MAMMOCL_BN_REDUCE(V, R)                                                                                    \
  backward_reduce_kernel<V, R, true><<<grid, block_size, 0, stream>>>(x, xbs, dy, dybs, dx, dxbs, g, chunk, gamma,  \
                                                                     beta, running_mean, running_var, eps, dx_beta, \
                                                                     partials)
    if (v == 4) { if (relu) MAMMOCL_BN_REDUCE(4, true); else MAMMOCL_BN_REDUCE(4, false); }
    else { if (relu) MAMMOCL_BN_REDUCE(1, true); else MAMMOCL_BN_REDUCE(1, false); }
#undef MAMMOCL_BN_REDUCE
    MAMMOCL_KERNEL_CHECK("bn_backward_eval_reduce", "n ", d.n, ", c ", d.c, ", hw ", d.hw, ", splits ", splits,
                         ", relu ", relu, ", vector ", v);
  } else {
    MAMMOCL_CUDA_CHECK(cudaMemsetAsync(partials, 0, partial_bytes(d), stream), "cudaMemsetAsync(", partial_bytes(d), " B)");
  }
  finalize_backward_kernel<<<detail::blocks_for(d.c), block_size, 0, stream>>>(partials, splits, d.c, d.n * d.hw,
                                                                               dgamma, dbeta, param_beta, nullptr);
  MAMMOCL_KERNEL_CHECK("bn_finalize_backward_eval", "c ", d.c, ", splits ", splits);
}

}  // namespace mammocl::cuda_kernels
