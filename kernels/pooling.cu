// Max and average pooling, forward and backward, with the CPU backend's exact rules: floor mode; max
// pooling treats padding as -inf and keeps the first maximum of a window (a NaN replaces it); average
// pooling divides by PyTorch's count_include_pad area. Backward gathers: one thread per input element adds
// the contributions of the windows that cover it in window order, so there are no atomics and the sums
// are the CPU's, in the CPU's order.
#include <cmath>

#include "common.cuh"

namespace mammocl::cuda_kernels {
namespace {

using detail::block_size;

__device__ inline idx argmax_window(const float* src, const pool_dims& d, idx oy, idx ox) {
  const idx y0 = oy * d.stride - d.pad, x0 = ox * d.stride - d.pad;
  const idx ya = y0 > 0 ? y0 : 0, xa = x0 > 0 ? x0 : 0;
  const idx yb = y0 + d.k < d.h ? y0 + d.k : d.h, xb = x0 + d.k < d.w ? x0 + d.k : d.w;
  idx best = -1;
  float bv = -INFINITY;
  for (idx iy = ya; iy < yb; ++iy)
    for (idx ix = xa; ix < xb; ++ix) {
      const float v = src[iy * d.w + ix];
      if (best < 0 || v > bv || isnan(v)) {
        bv = v;
        best = iy * d.w + ix;
      }
    }
  return best;
}

// The window of (oy, ox) clipped to the input, and 1/area with the area clipped to the padded extent.
__device__ inline float avg_window(const pool_dims& d, idx oy, idx ox, idx& y0, idx& y1, idx& x0, idx& x1) {
  y0 = oy * d.stride - d.pad;
  x0 = ox * d.stride - d.pad;
  y1 = y0 + d.k < d.h + d.pad ? y0 + d.k : d.h + d.pad;
  x1 = x0 + d.k < d.w + d.pad ? x0 + d.k : d.w + d.pad;
  const idx area = (y1 - y0) * (x1 - x0);
  y0 = y0 > 0 ? y0 : 0;
  x0 = x0 > 0 ? x0 : 0;
  y1 = y1 < d.h ? y1 : d.h;
  x1 = x1 < d.w ? x1 : d.w;
  return 1.0f / static_cast<float>(area);
}

// Output windows covering input row iy (or column): o in [lo, hi).
__device__ inline void covering(idx i, const pool_dims& d, idx out, idx& lo, idx& hi) {
  const idx t = i + d.pad - d.k + 1;  // o*stride >= t
  lo = t <= 0 ? 0 : (t + d.stride - 1) / d.stride;
  hi = (i + d.pad) / d.stride + 1;  // o*stride <= i + pad
  if (hi > out) hi = out;
}

#define MAMMOCL_FOR_PLANES(q, j, planes, count)                                        \
  for (idx q = blockIdx.y; q < (planes); q += gridDim.y)                                \
    for (idx j = blockIdx.x * static_cast<idx>(blockDim.x) + threadIdx.x; j < (count);  \
         j += static_cast<idx>(gridDim.x) * blockDim.x)

__global__ void max_fwd_kernel(const float* x, idx xbs, float* y, idx ybs, pool_dims d) {
  MAMMOCL_FOR_PLANES(q, j, d.n * d.c, d.ho * d.wo) {
    const idx i = q / d.c, ch = q - i * d.c;
    const float* src = x + i * xbs + ch * d.h * d.w;
    const idx oy = j / d.wo, ox = j - oy * d.wo;
    const idx b = argmax_window(src, d, oy, ox);
    y[i * ybs + ch * d.ho * d.wo + j] = b < 0 ? -INFINITY : src[b];  // an all-padding window
  }
}

__global__ void max_bwd_kernel(const float* x, idx xbs, const float* dy, idx dybs, float* dx, idx dxbs, pool_dims d,
                               float beta) {
  MAMMOCL_FOR_PLANES(q, j, d.n * d.c, d.h * d.w) {
    const idx i = q / d.c, ch = q - i * d.c;
    const float* src = x + i * xbs + ch * d.h * d.w;
    const float* g = dy + i * dybs + ch * d.ho * d.wo;
    float* o = dx + i * dxbs + ch * d.h * d.w + j;
    float acc = beta == 0.0f ? 0.0f : (beta == 1.0f ? *o : *o * beta);
    const idx iy = j / d.w, ix = j - iy * d.w;
    idx oy0, oy1, ox0, ox1;
    covering(iy, d, d.ho, oy0, oy1);
    covering(ix, d, d.wo, ox0, ox1);
    for (idx oy = oy0; oy < oy1; ++oy)
      for (idx ox = ox0; ox < ox1; ++ox)
        if (argmax_window(src, d, oy, ox) == j) acc += g[oy * d.wo + ox];
    *o = acc;
  }
}

__global__ void avg_fwd_kernel(const float* x, idx xbs, float* y, idx ybs, pool_dims d) {
  MAMMOCL_FOR_PLANES(q, j, d.n * d.c, d.ho * d.wo) {
    const idx i = q / d.c, ch = q - i * d.c;
    const float* src = x + i * xbs + ch * d.h * d.w;
    const idx oy = j / d.wo, ox = j - oy * d.wo;
    idx y0, y1, x0, x1;
    const float inv = avg_window(d, oy, ox, y0, y1, x0, x1);
    float s = 0.0f;
    for (idx iy = y0; iy < y1; ++iy)
      for (idx ix = x0; ix < x1; ++ix) s += src[iy * d.w + ix];
    y[i * ybs + ch * d.ho * d.wo + j] = s * inv;
  }
}

__global__ void avg_bwd_kernel(const float* dy, idx dybs, float* dx, idx dxbs, pool_dims d, float beta) {
  MAMMOCL_FOR_PLANES(q, j, d.n * d.c, d.h * d.w) {
    const idx i = q / d.c, ch = q - i * d.c;
    const float* g = dy + i * dybs + ch * d.ho * d.wo;
    float* o = dx + i * dxbs + ch * d.h * d.w + j;
    float acc = beta == 0.0f ? 0.0f : (beta == 1.0f ? *o : *o * beta);
    const idx iy = j / d.w, ix = j - iy * d.w;
    idx oy0, oy1, ox0, ox1;
    covering(iy, d, d.ho, oy0, oy1);
    covering(ix, d, d.wo, ox0, ox1);
    for (idx oy = oy0; oy < oy1; ++oy)
      for (idx ox = ox0; ox < ox1; ++ox) {
        idx y0, y1, x0, x1;
        const float inv = avg_window(d, oy, ox, y0, y1, x0, x1);
        if (iy >= y0 && iy < y1 && ix >= x0 && ix < x1) acc += g[oy * d.wo + ox] * inv;
      }
    *o = acc;
  }
}

dim3 plane_grid(idx planes, idx count) {
  return dim3(detail::blocks_for(count, block_size, 4096), detail::rows_for(planes));
}

}  // namespace

void max_pool_forward(const float* x, idx xbs, float* y, idx ybs, const pool_dims& d, cudaStream_t stream) {
  if (d.n * d.c <= 0 || d.ho * d.wo <= 0) return;
  max_fwd_kernel<<<plane_grid(d.n * d.c, d.ho * d.wo), block_size, 0, stream>>>(x, xbs, y, ybs, d);
  MAMMOCL_KERNEL_CHECK("max_pool_forward", "n ", d.n, ", c ", d.c, ", ", d.h, "x", d.w, " -> ", d.ho, "x", d.wo,
                       ", k ", d.k, ", stride ", d.stride, ", pad ", d.pad);
}

void max_pool_backward(const float* x, idx xbs, const float* dy, idx dybs, float* dx, idx dxbs, const pool_dims& d,
                       float beta, cudaStream_t stream) {
  if (d.n * d.c <= 0 || d.h * d.w <= 0) return;
  max_bwd_kernel<<<plane_grid(d.n * d.c, d.h * d.w), block_size, 0, stream>>>(x, xbs, dy, dybs, dx, dxbs, d, beta);
  MAMMOCL_KERNEL_CHECK("max_pool_backward", "n ", d.n, ", c ", d.c, ", ", d.h, "x", d.w, " <- ", d.ho, "x", d.wo,
                       ", k ", d.k, ", stride ", d.stride, ", pad ", d.pad);
}

void avg_pool_forward(const float* x, idx xbs, float* y, idx ybs, const pool_dims& d, cudaStream_t stream) {
  if (d.n * d.c <= 0 || d.ho * d.wo <= 0) return;
  avg_fwd_kernel<<<plane_grid(d.n * d.c, d.ho * d.wo), block_size, 0, stream>>>(x, xbs, y, ybs, d);
  MAMMOCL_KERNEL_CHECK("avg_pool_forward", "n ", d.n, ", c ", d.c, ", ", d.h, "x", d.w, " -> ", d.ho, "x", d.wo,
                       ", k ", d.k, ", stride ", d.stride, ", pad ", d.pad);
}

void avg_pool_backward(const float* dy, idx dybs, float* dx, idx dxbs, const pool_dims& d, float beta,
                       cudaStream_t stream) {
  if (d.n * d.c <= 0 || d.h * d.w <= 0) return;
  avg_bwd_kernel<<<plane_grid(d.n * d.c, d.h * d.w), block_size, 0, stream>>>(dy, dybs, dx, dxbs, d, beta);
  MAMMOCL_KERNEL_CHECK("avg_pool_backward", "n ", d.n, ", c ", d.c, ", ", d.h, "x", d.w, " <- ", d.ho, "x", d.wo,
                       ", k ", d.k, ", stride ", d.stride, ", pad ", d.pad);
}

}  // namespace mammocl::cuda_kernels
