// Reductions: sum, dot, finiteness, per-channel and per-column sums, global average pooling. Sums run in
// double (as on the CPU) in a fixed order for a given launch shape, so results repeat run to run.
#include "common.cuh"

namespace mammocl::cuda_kernels {
namespace {

using detail::block_size;

// First stage of sum/dot: one double per block; the second stage adds them in block order.
constexpr int reduce_blocks = 1024;

__global__ void sum_stage1(const float* x, idx n, idx k, idx bs, double* partial) {
  __shared__ double sh[block_size / 32];
  const idx total = n * k;
  double s = 0;
  for (idx e = blockIdx.x * static_cast<idx>(blockDim.x) + threadIdx.x; e < total;
       e += static_cast<idx>(gridDim.x) * blockDim.x) {
    const idx i = e / k;
    s += static_cast<double>(x[i * bs + (e - i * k)]);
  }
  s = detail::block_sum(s, sh);
  if (threadIdx.x == 0) partial[blockIdx.x] = s;
}

__global__ void dot_stage1(const float* x, const float* y, idx count, double* partial) {
  __shared__ double sh[block_size / 32];
  double s = 0;
  for (idx e = blockIdx.x * static_cast<idx>(blockDim.x) + threadIdx.x; e < count;
       e += static_cast<idx>(gridDim.x) * blockDim.x)
    s += static_cast<double>(x[e]) * static_cast<double>(y[e]);
  s = detail::block_sum(s, sh);
  if (threadIdx.x == 0) partial[blockIdx.x] = s;
}

__global__ void sum_stage2(const double* partial, int count, double* result) {
  __shared__ double sh[block_size / 32];
  double s = 0;
  for (int b = threadIdx.x; b < count; b += blockDim.x) s += partial[b];
  s = detail::block_sum(s, sh);
  if (threadIdx.x == 0) *result = s;
}

__global__ void non_finite_kernel(const float* x, idx n, idx k, idx bs, unsigned int* bad) {
  const idx total = n * k;
  unsigned int local = 0;
  for (idx e = blockIdx.x * static_cast<idx>(blockDim.x) + threadIdx.x; e < total;
       e += static_cast<idx>(gridDim.x) * blockDim.x) {
    const idx i = e / k;
    local += isfinite(x[i * bs + (e - i * k)]) ? 0u : 1u;
  }
  if (__any_sync(0xffffffffu, local != 0) && (threadIdx.x & 31) == 0) atomicAdd(bad, 1u);
}

// One block per channel; planes walked in item order, each plane by the whole block.
__global__ void channel_sum_kernel(const float* dy, idx n, idx c, idx hw, idx bs, float* out, float beta) {
  __shared__ double sh[block_size / 32];
  for (idx ch = blockIdx.x; ch < c; ch += gridDim.x) {
    double s = 0;
    for (idx i = 0; i < n; ++i) {
      const float* p = dy + i * bs + ch * hw;
      for (idx j = threadIdx.x; j < hw; j += blockDim.x) s += static_cast<double>(p[j]);
    }
    s = detail::block_sum(s, sh);
    if (threadIdx.x == 0) out[ch] = static_cast<float>(s) + (beta == 0.0f ? 0.0f : beta * out[ch]);
  }
}

// One thread per column; consecutive threads read consecutive columns of a row (coalesced).
__global__ void sum_rows_kernel(const float* a, idx n, idx f, idx bs, float* out, float beta) {
  for (idx j = blockIdx.x * static_cast<idx>(blockDim.x) + threadIdx.x; j < f;
       j += static_cast<idx>(gridDim.x) * blockDim.x) {
    double s = 0;
    for (idx i = 0; i < n; ++i) s += static_cast<double>(a[i * bs + j]);
    out[j] = static_cast<float>(s) + (beta == 0.0f ? 0.0f : beta * out[j]);
  }
}

// One warp per (item, channel) plane.
__global__ void gap_forward_kernel(const float* x, idx n, idx c, idx hw, idx bs, float* y, bool relu) {
  const idx warps = static_cast<idx>(gridDim.x) * (blockDim.x / 32);
  const int lane = threadIdx.x & 31;
  for (idx q = blockIdx.x * static_cast<idx>(blockDim.x / 32) + (threadIdx.x >> 5); q < n * c; q += warps) {
    const idx i = q / c, ch = q - i * c;
    const float* p = x + i * bs + ch * hw;
    double s = 0;
    for (idx j = lane; j < hw; j += 32) {
      const float v = p[j];
      s += static_cast<double>(relu ? (v > 0.0f ? v : 0.0f) : v);
    }
    s = detail::warp_sum(s);
    if (lane == 0) y[q] = static_cast<float>(s / static_cast<double>(hw));
  }
}

__global__ void gap_backward_kernel(const float* x, idx xbs, const float* dy, float* dx, idx dxbs, idx n, idx c, idx hw,
                                    bool relu, float beta) {
  for (idx q = blockIdx.y; q < n * c; q += gridDim.y) {
    const idx i = q / c, ch = q - i * c;
    const float v = dy[q] / static_cast<float>(hw);
    const float* px = x + i * xbs + ch * hw;
    float* o = dx + i * dxbs + ch * hw;
    for (idx j = blockIdx.x * static_cast<idx>(blockDim.x) + threadIdx.x; j < hw;
         j += static_cast<idx>(gridDim.x) * blockDim.x) {
      const float d = (!relu || px[j] > 0.0f) ? v : 0.0f;
      o[j] = beta == 0.0f ? d : d + beta * o[j];
    }
  }
}

}  // namespace

std::size_t reduce_scratch_bytes() { return sizeof(double) * reduce_blocks; }

void sum(const float* x, idx n, idx k, idx bs, void* scratch, double* result, cudaStream_t stream) {
  auto* partial = static_cast<double*>(scratch);
  const unsigned int blocks = detail::blocks_for(n * k, block_size * 4, reduce_blocks);
  sum_stage1<<<blocks, block_size, 0, stream>>>(x, n, k, bs, partial);
  MAMMOCL_KERNEL_CHECK("sum_stage1", "n ", n, ", k ", k, ", stride ", bs, ", blocks ", blocks);
  sum_stage2<<<1, block_size, 0, stream>>>(partial, static_cast<int>(blocks), result);
  MAMMOCL_KERNEL_CHECK("sum_stage2", "partials ", blocks);
}

void dot(const float* x, const float* y, idx count, void* scratch, double* result, cudaStream_t stream) {
  auto* partial = static_cast<double*>(scratch);
  const unsigned int blocks = detail::blocks_for(count, block_size * 4, reduce_blocks);
  dot_stage1<<<blocks, block_size, 0, stream>>>(x, y, count, partial);
  MAMMOCL_KERNEL_CHECK("dot_stage1", "count ", count, ", blocks ", blocks);
  sum_stage2<<<1, block_size, 0, stream>>>(partial, static_cast<int>(blocks), result);
  MAMMOCL_KERNEL_CHECK("sum_stage2", "partials ", blocks);
}

void count_non_finite(const float* x, idx n, idx k, idx bs, unsigned int* bad_count, cudaStream_t stream) {
  if (n <= 0 || k <= 0) return;
  non_finite_kernel<<<detail::blocks_for(n * k, block_size * 4, reduce_blocks), block_size, 0, stream>>>(x, n, k, bs,
                                                                                                        bad_count);
  MAMMOCL_KERNEL_CHECK("count_non_finite", "n ", n, ", k ", k, ", stride ", bs);
}

void channel_sum(const float* dy, idx n, idx c, idx hw, idx bs, float* out, float beta, cudaStream_t stream) {
  if (c <= 0) return;
  channel_sum_kernel<<<detail::blocks_for(c, 1, 65535), block_size, 0, stream>>>(dy, n, c, hw, bs, out, beta);
  MAMMOCL_KERNEL_CHECK("channel_sum", "n ", n, ", c ", c, ", hw ", hw, ", stride ", bs);
}

void sum_rows(const float* a, idx n, idx f, idx bs, float* out, float beta, cudaStream_t stream) {
  if (f <= 0) return;
  sum_rows_kernel<<<detail::blocks_for(f), block_size, 0, stream>>>(a, n, f, bs, out, beta);
  MAMMOCL_KERNEL_CHECK("sum_rows", "n ", n, ", f ", f, ", stride ", bs);
}

void global_avg_pool_forward(const float* x, idx n, idx c, idx hw, idx bs, float* y, bool relu, cudaStream_t stream) {
  if (n <= 0 || c <= 0) return;
  gap_forward_kernel<<<detail::blocks_for(n * c, block_size / 32), block_size, 0, stream>>>(x, n, c, hw, bs, y, relu);
  MAMMOCL_KERNEL_CHECK("global_avg_pool_forward", "n ", n, ", c ", c, ", hw ", hw, ", stride ", bs);
}

void global_avg_pool_backward(const float* x, idx xbs, const float* dy, float* dx, idx dxbs, idx n, idx c, idx hw,
                              bool relu, float beta, cudaStream_t stream) {
  if (n <= 0 || c <= 0 || hw <= 0) return;
  gap_backward_kernel<<<dim3(detail::blocks_for(hw, block_size, 64), detail::rows_for(n * c)), block_size, 0, stream>>>(
      x, xbs, dy, dx, dxbs, n, c, hw, relu, beta);
  MAMMOCL_KERNEL_CHECK("global_avg_pool_backward", "n ", n, ", c ", c, ", hw ", hw);
}

}  // namespace mammocl::cuda_kernels
