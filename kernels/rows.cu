// Row-wise log-softmax and softmax of (N, K) logits: one warp per row, the exponential sum in double.
#include <cmath>

#include "common.cuh"

namespace mammocl::cuda_kernels {
namespace {

__global__ void log_softmax_kernel(const float* x, idx xbs, float* out, idx obs, idx n, idx k, bool exponentiate) {
  const idx warps = static_cast<idx>(gridDim.x) * (blockDim.x / 32);
  const int lane = threadIdx.x & 31;
  for (idx i = blockIdx.x * static_cast<idx>(blockDim.x / 32) + (threadIdx.x >> 5); i < n; i += warps) {
    const float* p = x + i * xbs;
    float* o = out + i * obs;
    float mx = -INFINITY;
    for (idx j = lane; j < k; j += 32) mx = fmaxf(mx, p[j]);
    for (int s = 16; s > 0; s >>= 1) mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, s));
    double s = 0;
    for (idx j = lane; j < k; j += 32) s += exp(static_cast<double>(p[j] - mx));
    s = detail::warp_sum(s);
    const float lse = mx + static_cast<float>(log(s));
    for (idx j = lane; j < k; j += 32) {
      const float v = p[j] - lse;
      o[j] = exponentiate ? expf(v) : v;
    }
  }
}

}  // namespace

void log_softmax_rows(const float* x, idx xbs, float* out, idx obs, idx n, idx k, bool exponentiate,
                      cudaStream_t stream) {
  if (n <= 0 || k <= 0) return;
  log_softmax_kernel<<<detail::blocks_for(n, detail::block_size / 32), detail::block_size, 0, stream>>>(
      x, xbs, out, obs, n, k, exponentiate);
  MAMMOCL_KERNEL_CHECK(exponentiate ? "softmax_rows" : "log_softmax_rows", "n ", n, ", k ", k);
}

}  // namespace mammocl::cuda_kernels
