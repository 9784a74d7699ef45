// The Supervised Contrastive loss on the GPU in double: the row passes of losses::supcon::compute (the
// log-sum-exp per anchor, the anchor losses and dℓ/ds), the symmetrisation H = G + Gᵀ and the gradient
// through the L2 normalisation. The two products (S = Z_I Zᵀ/τ and dZ = H Z/(|I|τ)) are cuBLAS DGEMMs
// issued by the backend.
#include <cmath>

#include "common.cuh"

namespace mammocl::cuda_kernels {
namespace {

using detail::block_size;
constexpr double norm_eps = 1e-12;  // losses::supcon::norm_eps (torch.nn.functional.normalize's eps)

// One warp per row a = v*nb + b.
__global__ void prepare_kernel(const float* f, idx fbs, idx nb, idx nv, idx d, bool normalize, double* z, double* norm,
                               unsigned int* bad) {
  const idx warps = static_cast<idx>(gridDim.x) * (blockDim.x / 32);
  const int lane = threadIdx.x & 31;
  for (idx a = blockIdx.x * static_cast<idx>(blockDim.x / 32) + (threadIdx.x >> 5); a < nb * nv; a += warps) {
    const idx v = a / nb, b = a - v * nb;
    const float* src = f + b * fbs + v * d;
    double s2 = 0;
    unsigned int nonfinite = 0;
    for (idx k = lane; k < d; k += 32) {
      const double x = static_cast<double>(src[k]);
      nonfinite += isfinite(x) ? 0u : 1u;
      s2 += x * x;
    }
    s2 = detail::warp_sum(s2);
    nonfinite = detail::warp_sum(nonfinite);
    const double r = sqrt(s2);
    const double inv = normalize ? 1.0 / (r > norm_eps ? r : norm_eps) : 1.0;
    double* row = z + a * d;
    for (idx k = lane; k < d; k += 32) row[k] = normalize ? static_cast<double>(src[k]) * inv : static_cast<double>(src[k]);
    if (lane == 0) {
      norm[a] = r;
      bad[a] = nonfinite;
    }
  }
}

__device__ inline double block_max(double v, double* shared) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = (blockDim.x + 31) >> 5;
  for (int o = 16; o > 0; o >>= 1) v = fmax(v, __shfl_xor_sync(0xffffffffu, v, o));
  __syncthreads();
  if (lane == 0) shared[warp] = v;
  __syncthreads();
  double r = -INFINITY;
  for (int w = 0; w < warps; ++w) r = fmax(r, shared[w]);
  return r;  // every thread gets it
}

// Broadcast of thread 0's block_sum result to the whole block.
__device__ inline double block_sum_all(double v, double* shared, double* slot) {
  v = detail::block_sum(v, shared);
  if (threadIdx.x == 0) *slot = v;
  __syncthreads();
  const double r = *slot;
  __syncthreads();
  return r;
}

// One block per anchor row i.
__global__ void rows_kernel(double* g, idx na, idx n, idx nb, const double* mask, double scale, double* ell) {
  __shared__ double sh[block_size / 32];
  __shared__ double slot;
  for (idx i = blockIdx.x; i < na; i += gridDim.x) {
    double* gi = g + i * n;
    const double* mrow = mask + (i % nb) * nb;
    double mx = -INFINITY, npos = 0, pos_sum = 0;
    for (idx j = threadIdx.x; j < n; j += blockDim.x) {
      mx = fmax(mx, gi[j]);
      if (j != i) {
        const double mij = mrow[j % nb];
        npos += mij;
        pos_sum += mij * gi[j];
      }
    }
    mx = block_max(mx, sh);
    npos = block_sum_all(npos, sh, &slot);
    pos_sum = block_sum_all(pos_sum, sh, &slot);
    double den = 0;
    for (idx j = threadIdx.x; j < n; j += blockDim.x) {
      const double e = j == i ? 0.0 : exp(gi[j] - mx);
      gi[j] = e;
      den += e;
    }
    den = block_sum_all(den, sh, &slot);
    const double lse = mx + log(den);
    const double nd = npos < 1e-6 ? 1.0 : npos;
    if (threadIdx.x == 0) ell[i] = -scale * (pos_sum - npos * lse) / nd;
    const double w = npos / nd;
    for (idx j = threadIdx.x; j < n; j += blockDim.x)
      gi[j] = j == i ? 0.0 : scale * (w * gi[j] / den - mrow[j % nb] / nd);
    __syncthreads();
  }
}

__global__ void symmetrize_kernel(const double* g, idx na, idx n, double* h) {
  for (idx e = blockIdx.x * static_cast<idx>(blockDim.x) + threadIdx.x; e < n * n;
       e += static_cast<idx>(gridDim.x) * blockDim.x) {
    const idx i = e / n, j = e - i * n;
    h[e] = (i < na ? g[i * n + j] : 0.0) + (j < na ? g[j * n + i] : 0.0);
  }
}

// One warp per row a.
__global__ void gradient_kernel(const double* dz, const double* z, const double* norm, idx nb, idx nv, idx d,
                                bool normalize, float* grad, idx gbs) {
  const idx warps = static_cast<idx>(gridDim.x) * (blockDim.x / 32);
  const int lane = threadIdx.x & 31;
  for (idx a = blockIdx.x * static_cast<idx>(blockDim.x / 32) + (threadIdx.x >> 5); a < nb * nv; a += warps) {
    const idx v = a / nb, b = a - v * nb;
    const double* da = dz + a * d;
    float* dst = grad + b * gbs + v * d;
    if (!normalize) {
      for (idx k = lane; k < d; k += 32) dst[k] = static_cast<float>(da[k]);
      continue;
    }
    const double* za = z + a * d;
    const double r = norm[a];
    if (r > norm_eps) {
      double zg = 0;
      for (idx k = lane; k < d; k += 32) zg += za[k] * da[k];
      zg = detail::warp_sum(zg);
      for (idx k = lane; k < d; k += 32) dst[k] = static_cast<float>((da[k] - za[k] * zg) / r);
    } else {
      for (idx k = lane; k < d; k += 32) dst[k] = static_cast<float>(da[k] / norm_eps);
    }
  }
}

unsigned int warp_blocks(idx rows) { return detail::blocks_for(rows, block_size / 32, 65535); }

}  // namespace

void supcon_prepare(const float* features, idx fbs, idx nb, idx nv, idx d, bool normalize, double* z, double* norm,
                    unsigned int* bad, cudaStream_t stream) {
  prepare_kernel<<<warp_blocks(nb * nv), block_size, 0, stream>>>(features, fbs, nb, nv, d, normalize, z, norm, bad);
  MAMMOCL_KERNEL_CHECK("supcon_prepare", "B ", nb, ", V ", nv, ", D ", d, ", normalize ", normalize);
}

void supcon_rows(double* g, idx na, idx n, idx nb, const double* mask, double scale, double* ell, cudaStream_t stream) {
  rows_kernel<<<detail::blocks_for(na, 1, 65535), block_size, 0, stream>>>(g, na, n, nb, mask, scale, ell);
  MAMMOCL_KERNEL_CHECK("supcon_rows", "anchors ", na, ", N ", n, ", B ", nb);
}

void supcon_symmetrize(const double* g, idx na, idx n, double* h, cudaStream_t stream) {
  symmetrize_kernel<<<detail::blocks_for(n * n), block_size, 0, stream>>>(g, na, n, h);
  MAMMOCL_KERNEL_CHECK("supcon_symmetrize", "anchors ", na, ", N ", n);
}

void supcon_gradient(const double* dz, const double* z, const double* norm, idx nb, idx nv, idx d, bool normalize,
                     float* grad, idx gbs, cudaStream_t stream) {
  gradient_kernel<<<warp_blocks(nb * nv), block_size, 0, stream>>>(dz, z, norm, nb, nv, d, normalize, grad, gbs);
  MAMMOCL_KERNEL_CHECK("supcon_gradient", "B ", nb, ", V ", nv, ", D ", d, ", normalize ", normalize);
}

}  // namespace mammocl::cuda_kernels
