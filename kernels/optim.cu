// Optimiser updates, elementwise, with the CPU backend's formulas (PyTorch semantics) in float.
#include <cmath>

#include "common.cuh"

namespace mammocl::cuda_kernels {
namespace {

__global__ void sgd_kernel(float* p, const float* g, float* buf, idx count, float lr, float momentum, float dampening,
                           float weight_decay, bool nesterov, bool first) {
  for (idx i = blockIdx.x * static_cast<idx>(blockDim.x) + threadIdx.x; i < count;
       i += static_cast<idx>(gridDim.x) * blockDim.x) {
    float d = g[i] + weight_decay * p[i];
    if (buf && momentum != 0.0f) {
      buf[i] = first ? d : momentum * buf[i] + (1.0f - dampening) * d;
      d = nesterov ? d + momentum * buf[i] : buf[i];
    }
    p[i] -= lr * d;
  }
}

__global__ void adam_kernel(float* p, const float* g, float* m, float* v, idx count, float lr, float beta1,
                            float beta2, float eps, float weight_decay, bool decoupled, float step_size,
                            float bc2_sqrt) {
  for (idx i = blockIdx.x * static_cast<idx>(blockDim.x) + threadIdx.x; i < count;
       i += static_cast<idx>(gridDim.x) * blockDim.x) {
    float gi = g[i];
    float pi = p[i];
    if (decoupled) pi *= (1.0f - lr * weight_decay);
    else gi += weight_decay * pi;
    const float mi = beta1 * m[i] + (1.0f - beta1) * gi;
    const float vi = beta2 * v[i] + (1.0f - beta2) * gi * gi;
    m[i] = mi;
    v[i] = vi;
    const float denom = sqrtf(vi) / bc2_sqrt + eps;
    p[i] = pi - step_size * mi / denom;
  }
}

}  // namespace

void sgd_step(float* p, const float* g, float* buf, idx count, float lr, float momentum, float dampening,
              float weight_decay, bool nesterov, bool first, cudaStream_t stream) {
  if (count <= 0) return;
  sgd_kernel<<<detail::blocks_for(count, detail::block_size * 4), detail::block_size, 0, stream>>>(
      p, g, buf, count, lr, momentum, dampening, weight_decay, nesterov, first);
  MAMMOCL_KERNEL_CHECK("sgd_step", "count ", count, ", momentum ", momentum, ", nesterov ", nesterov);
}

void adam_step(float* p, const float* g, float* m, float* v, idx count, float lr, float beta1, float beta2, float eps,
               float weight_decay, bool decoupled, float step_size, float bc2_sqrt, cudaStream_t stream) {
  if (count <= 0) return;
  adam_kernel<<<detail::blocks_for(count, detail::block_size * 4), detail::block_size, 0, stream>>>(
      p, g, m, v, count, lr, beta1, beta2, eps, weight_decay, decoupled, step_size, bc2_sqrt);
  MAMMOCL_KERNEL_CHECK("adam_step", "count ", count, ", decoupled ", decoupled);
}

}  // namespace mammocl::cuda_kernels
