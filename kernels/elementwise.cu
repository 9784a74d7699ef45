// Elementwise kernels over batches of items that may lie further apart than one item (views of a dense
// block's concatenation buffer): fill, axpby, ReLU forward/backward, bias additions.
#include "common.cuh"

namespace mammocl::cuda_kernels {
namespace {

using detail::block_size;

// The 2-D launch shape of all batch kernels: blockIdx.y walks the items, x threads walk inside an item.
// Items are contiguous, so the x accesses are coalesced whatever the batch stride.
#define MAMMOCL_FOR_BATCH(i, j, n, k)                                              \
  for (idx i = blockIdx.y; i < (n); i += gridDim.y)                                 \
    for (idx j = blockIdx.x * static_cast<idx>(blockDim.x) + threadIdx.x; j < (k);  \
         j += static_cast<idx>(gridDim.x) * blockDim.x)

__global__ void fill_kernel(float* p, idx n, idx k, idx bs, float v) {
  MAMMOCL_FOR_BATCH(i, j, n, k) p[i * bs + j] = v;
}

__global__ void axpby_kernel(idx n, idx k, float a, const float* x, idx xbs, float b, float* y, idx ybs) {
  MAMMOCL_FOR_BATCH(i, j, n, k) {
    float* py = y + i * ybs + j;
    *py = a * x[i * xbs + j] + (b == 0.0f ? 0.0f : b * *py);
  }
}

// Four elements per thread when every item start is 16-byte aligned and k is a multiple of 4.
__global__ void relu_forward4_kernel(const float4* x, idx xbs4, float4* y, idx ybs4, idx n, idx k4) {
  MAMMOCL_FOR_BATCH(i, j, n, k4) {
    float4 v = x[i * xbs4 + j];
    v.x = v.x > 0.0f ? v.x : 0.0f;
    v.y = v.y > 0.0f ? v.y : 0.0f;
    v.z = v.z > 0.0f ? v.z : 0.0f;
    v.w = v.w > 0.0f ? v.w : 0.0f;
    y[i * ybs4 + j] = v;
  }
}
__global__ void relu_forward_kernel(const float* x, idx xbs, float* y, idx ybs, idx n, idx k) {
  MAMMOCL_FOR_BATCH(i, j, n, k) {
    const float v = x[i * xbs + j];
    y[i * ybs + j] = v > 0.0f ? v : 0.0f;
  }
}

__global__ void relu_backward_kernel(const float* y, idx ybs, const float* dy, idx dybs, float* dx, idx dxbs, idx n,
                                     idx k, float beta) {
  MAMMOCL_FOR_BATCH(i, j, n, k) {
    const float v = y[i * ybs + j] > 0.0f ? dy[i * dybs + j] : 0.0f;
    float* o = dx + i * dxbs + j;
    *o = beta == 0.0f ? v : v + beta * *o;
  }
}

__global__ void add_channel_bias_kernel(float* y, idx n, idx c, idx hw, idx bs, const float* bias) {
  // blockIdx.y walks (item, channel) planes.
  const idx planes = n * c;
  for (idx q = blockIdx.y; q < planes; q += gridDim.y) {
    const idx i = q / c, ch = q - i * c;
    const float b = bias[ch];
    float* p = y + i * bs + ch * hw;
    for (idx j = blockIdx.x * static_cast<idx>(blockDim.x) + threadIdx.x; j < hw;
         j += static_cast<idx>(gridDim.x) * blockDim.x)
      p[j] += b;
  }
}

__global__ void add_row_broadcast_kernel(float* y, idx n, idx f, idx bs, const float* b) {
  MAMMOCL_FOR_BATCH(i, j, n, f) y[i * bs + j] += b[j];
}

dim3 batch_grid(idx n, idx k) { return dim3(detail::blocks_for(k, block_size, 4096), detail::rows_for(n)); }

}  // namespace

void fill(float* p, idx n, idx k, idx bs, float v, cudaStream_t stream) {
  if (n <= 0 || k <= 0) return;
  fill_kernel<<<batch_grid(n, k), block_size, 0, stream>>>(p, n, k, bs, v);
  MAMMOCL_KERNEL_CHECK("fill", "n ", n, ", k ", k, ", stride ", bs);
}

void axpby(idx n, idx k, float a, const float* x, idx xbs, float b, float* y, idx ybs, cudaStream_t stream) {
  if (n <= 0 || k <= 0) return;
  axpby_kernel<<<batch_grid(n, k), block_size, 0, stream>>>(n, k, a, x, xbs, b, y, ybs);
  MAMMOCL_KERNEL_CHECK("axpby", "n ", n, ", k ", k, ", x stride ", xbs, ", y stride ", ybs);
}

void relu_forward(const float* x, idx xbs, float* y, idx ybs, idx n, idx k, cudaStream_t stream) {
  if (n <= 0 || k <= 0) return;
  if (k % 4 == 0 && xbs % 4 == 0 && ybs % 4 == 0 && detail::aligned16(x) && detail::aligned16(y)) {
    relu_forward4_kernel<<<batch_grid(n, k / 4), block_size, 0, stream>>>(
        reinterpret_cast<const float4*>(x), xbs / 4, reinterpret_cast<float4*>(y), ybs / 4, n, k / 4);
  } else {
    relu_forward_kernel<<<batch_grid(n, k), block_size, 0, stream>>>(x, xbs, y, ybs, n, k);
  }
  MAMMOCL_KERNEL_CHECK("relu_forward", "n ", n, ", k ", k, ", x stride ", xbs, ", y stride ", ybs);
}

void relu_backward(const float* y, idx ybs, const float* dy, idx dybs, float* dx, idx dxbs, idx n, idx k, float beta,
                   cudaStream_t stream) {
  if (n <= 0 || k <= 0) return;
  relu_backward_kernel<<<batch_grid(n, k), block_size, 0, stream>>>(y, ybs, dy, dybs, dx, dxbs, n, k, beta);
  MAMMOCL_KERNEL_CHECK("relu_backward", "n ", n, ", k ", k, ", beta ", beta);
}

void add_channel_bias(float* y, idx n, idx c, idx hw, idx bs, const float* bias, cudaStream_t stream) {
  if (n <= 0 || c <= 0 || hw <= 0) return;
  add_channel_bias_kernel<<<dim3(detail::blocks_for(hw, block_size, 1024), detail::rows_for(n * c)), block_size, 0,
                            stream>>>(y, n, c, hw, bs, bias);
  MAMMOCL_KERNEL_CHECK("add_channel_bias", "n ", n, ", c ", c, ", hw ", hw, ", stride ", bs);
}

void add_row_broadcast(float* y, idx n, idx f, idx bs, const float* b, cudaStream_t stream) {
  if (n <= 0 || f <= 0) return;
  add_row_broadcast_kernel<<<batch_grid(n, f), block_size, 0, stream>>>(y, n, f, bs, b);
  MAMMOCL_KERNEL_CHECK("add_row_broadcast", "n ", n, ", f ", f, ", stride ", bs);
}

}  // namespace mammocl::cuda_kernels
