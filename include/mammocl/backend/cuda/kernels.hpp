#pragma once
/// Host launchers of MammoCL's CUDA kernels (kernels/*.cu, compiled by nvcc into mammocl_cuda_kernels):
/// everything the CUDA backend needs beyond cuDNN and cuBLAS. Plain C++: raw device pointers, sizes,
/// strides and a stream, so that host code compiled by g++ or clang calls them without nvcc.
///
/// Conventions. A "batch" argument set (p, n, k, bs) is n items of k contiguous floats whose starts lie bs
/// elements apart (bs >= k); NCHW tensors are (n, c, hw, bs) with plane ch of item i at p + i*bs + ch*hw.
/// Every launcher enqueues on `stream` and returns at once; each checks its launch and throws
/// mammocl::device_error naming the kernel and its sizes. A `beta` argument accumulates: out = new +
/// beta*out, with beta == 0 meaning "out is not read" (it may hold NaN), as in the CPU backend.
/// Reductions accumulate in double where the CPU backend does, in a fixed order for a given GPU
/// (deterministic run to run).
#include <cstddef>
#include <cstdint>

#include <cuda_runtime_api.h>

namespace mammocl::cuda_kernels {

using idx = std::int64_t;

// ---------------------------------------------------------------- elementwise.cu

/// p[i*bs + j] = v.
void fill(float* p, idx n, idx k, idx bs, float v, cudaStream_t stream);
/// y = a*x + (b == 0 ? 0 : b*y) over batches (x, y may be strided; same n and k).
void axpby(idx n, idx k, float a, const float* x, idx xbs, float b, float* y, idx ybs, cudaStream_t stream);
/// y = max(x, 0) (x > 0 ? x : 0, so NaN maps to 0 as on the CPU).
void relu_forward(const float* x, idx xbs, float* y, idx ybs, idx n, idx k, cudaStream_t stream);
/// dx = dy*[y > 0] + beta*dx.
void relu_backward(const float* y, idx ybs, const float* dy, idx dybs, float* dx, idx dxbs, idx n, idx k,
                   float beta, cudaStream_t stream);
/// y(i, ch, :) += bias[ch] for NCHW y.
void add_channel_bias(float* y, idx n, idx c, idx hw, idx bs, const float* bias, cudaStream_t stream);
/// y(i, :) += b for (n, f) y.
void add_row_broadcast(float* y, idx n, idx f, idx bs, const float* b, cudaStream_t stream);

// ---------------------------------------------------------------- reduce.cu

/// Bytes of device scratch that sum / dot need.
std::size_t reduce_scratch_bytes();
/// *result = Σ x (double), through `scratch` (reduce_scratch_bytes()).
void sum(const float* x, idx n, idx k, idx bs, void* scratch, double* result, cudaStream_t stream);
/// *result = Σ x*y (double) over `count` contiguous elements.
void dot(const float* x, const float* y, idx count, void* scratch, double* result, cudaStream_t stream);
/// *bad_count = 0 when every element is finite, > 0 otherwise (must be zeroed before the call).
void count_non_finite(const float* x, idx n, idx k, idx bs, unsigned int* bad_count, cudaStream_t stream);
/// out[ch] = (float)Σ_{i, j} dy(i, ch, j) + (beta == 0 ? 0 : beta*out[ch]); sums in double.
void channel_sum(const float* dy, idx n, idx c, idx hw, idx bs, float* out, float beta, cudaStream_t stream);
/// out[j] = (float)Σ_i a(i, j) + (beta == 0 ? 0 : beta*out[j]); sums in double.
void sum_rows(const float* a, idx n, idx f, idx bs, float* out, float beta, cudaStream_t stream);
/// y[i*c + ch] = mean over the plane (i, ch) of x (of max(x, 0) when relu), summed in double.
void global_avg_pool_forward(const float* x, idx n, idx c, idx hw, idx bs, float* y, bool relu, cudaStream_t stream);
/// dx = dy[i*c + ch]/hw (masked by [x > 0] when relu) + beta*dx.
void global_avg_pool_backward(const float* x, idx xbs, const float* dy, float* dx, idx dxbs, idx n, idx c, idx hw,
                              bool relu, float beta, cudaStream_t stream);

// ---------------------------------------------------------------- rows.cu

/// Row-wise log-softmax of (n, k) x: out = x - (max + log Σ exp(x - max)), the sum in double; with
/// `exponentiate`, out = exp(that) (softmax).
void log_softmax_rows(const float* x, idx xbs, float* out, idx obs, idx n, idx k, bool exponentiate,
                      cudaStream_t stream);

// ---------------------------------------------------------------- pooling.cu

/// Pooling geometry on (n*c) planes of h x w (input) and ho x wo (output); window k, stride, pad.
struct pool_dims {
  idx n, c, h, w, ho, wo, k, stride, pad;
};
/// Max pooling, padding as -inf, first maximum of a window wins (a NaN wins over numbers).
void max_pool_forward(const float* x, idx xbs, float* y, idx ybs, const pool_dims& d, cudaStream_t stream);
/// dx = Σ over the windows whose first maximum is this element of dy, + beta*dx (no atomics).
void max_pool_backward(const float* x, idx xbs, const float* dy, idx dybs, float* dx, idx dxbs, const pool_dims& d,
                       float beta, cudaStream_t stream);
/// Average pooling with PyTorch's count_include_pad divisor (window clipped to the padded extent).
void avg_pool_forward(const float* x, idx xbs, float* y, idx ybs, const pool_dims& d, cudaStream_t stream);
/// dx = Σ over covering windows of dy/area + beta*dx (no atomics).
void avg_pool_backward(const float* dy, idx dybs, float* dx, idx dxbs, const pool_dims& d, float beta,
                       cudaStream_t stream);

// ---------------------------------------------------------------- batch_norm.cu

/// NCHW batch of (n, c, hw) elements per tensor, each with its own batch stride.
struct bn_dims {
  idx n, c, hw;
};
/// Bytes of device scratch the training-mode launchers need for these sizes on the current device.
std::size_t bn_scratch_bytes(const bn_dims& d);
/// Training forward: per-channel mean and biased variance (one pass, shifted, double), saved mean and
/// 1/sqrt(var + eps), running statistics (unbiased variance, momentum as the exponential factor) when
/// running_mean is not null, then y = x*a + b (a, b from the saved statistics), ReLU when relu.
void bn_forward_train(const float* x, idx xbs, float* y, idx ybs, const bn_dims& d, const float* gamma,
                      const float* beta, float* save_mean, float* save_invstd, float* running_mean,
                      float* running_var, double momentum, double eps, bool relu, void* scratch,
                      cudaStream_t stream);
/// y = x*a + b (ReLU when relu) with a = gamma*inv, b = beta - mean*gamma*inv (in double, rounded to
/// float); inv = stat when stat_is_var is false (saved invstd), 1/sqrt(stat + eps) when it is true (running var).
void bn_forward_apply(const float* x, idx xbs, float* y, idx ybs, const bn_dims& d, const float* gamma,
                      const float* beta, const float* mean, const float* stat, bool stat_is_var, double eps, bool relu,
                      cudaStream_t stream);
/// Training backward (batch_norm_backward of the CPU backend, ReLU mask recomputed from x when relu).
void bn_backward(const float* x, idx xbs, const float* dy, idx dybs, float* dx, idx dxbs, const bn_dims& d,
                 const float* gamma, const float* beta, const float* save_mean, const float* save_invstd, bool relu,
                 float dx_beta, float* dgamma, float* dbeta, float param_beta, void* scratch, cudaStream_t stream);
/// Inference-mode backward (batch_norm_backward_eval of the CPU backend).
void bn_backward_eval(const float* x, idx xbs, const float* dy, idx dybs, float* dx, idx dxbs, const bn_dims& d,
                      const float* gamma, const float* beta, const float* running_mean, const float* running_var,
                      double eps, bool relu, float dx_beta, float* dgamma, float* dbeta, float param_beta,
                      void* scratch, cudaStream_t stream);

// ---------------------------------------------------------------- optim.cu

/// One SGD step over `count` elements (cpu_backend::sgd_step's formula); buf may be null.
void sgd_step(float* p, const float* g, float* buf, idx count, float lr, float momentum, float dampening,
              float weight_decay, bool nesterov, bool first, cudaStream_t stream);
/// One Adam/AdamW step (cpu_backend::adam_step's formula); step_size = lr/bc1 and bc2_sqrt = sqrt(bc2)
/// are computed on the host as the CPU backend does.
void adam_step(float* p, const float* g, float* m, float* v, idx count, float lr, float beta1, float beta2, float eps,
               float weight_decay, bool decoupled, float step_size, float bc2_sqrt, cudaStream_t stream);

// ---------------------------------------------------------------- supcon.cu

/// z (N x D, view-major a = v*nb + b, double) from features (nb items, stride fbs; view v at offset v*d):
/// norm[a] = ‖row‖; z = row / max(‖row‖, 1e-12) when normalize, the row otherwise; bad[a] = the number of
/// non-finite components of the row.
void supcon_prepare(const float* features, idx fbs, idx nb, idx nv, idx d, bool normalize, double* z, double* norm,
                    unsigned int* bad, cudaStream_t stream);
/// Row pass over g (na x n, holding s_ij = z_i.z_j/tau on entry): ell[i] = the anchor loss, and g becomes
/// dℓ_i/ds_ij (scaled by tau/tau_b, 0 on the diagonal). mask: nb x nb sample-level 0/1 (device).
void supcon_rows(double* g, idx na, idx n, idx nb, const double* mask, double scale, double* ell, cudaStream_t stream);
/// h (n x n) = G + Gᵀ with G = g (na x n) padded with zero rows.
void supcon_symmetrize(const double* g, idx na, idx n, double* h, cudaStream_t stream);
/// grad (nb items, stride gbs, view v at v*d) from dz (N x D): through the normalisation when normalize.
void supcon_gradient(const double* dz, const double* z, const double* norm, idx nb, idx nv, idx d, bool normalize,
                     float* grad, idx gbs, cudaStream_t stream);

// ---------------------------------------------------------------- voi_lut.cu

/// y = (ymax - ymin)/(1 + exp(-4(x - c)/w)) + ymin, in double, elementwise (data::voi_sigmoid_unchecked).
void voi_sigmoid(const float* x, idx xbs, float* y, idx ybs, idx n, idx k, double c, double w, double ymin,
                 double ymax, cudaStream_t stream);

}  // namespace mammocl::cuda_kernels
