// The DICOM SIGMOID VOI LUT on device tensors, in double, with data::voi_sigmoid_unchecked's formula.
#include <cmath>

#include "common.cuh"

namespace mammocl::cuda_kernels {
namespace {

__global__ void voi_sigmoid_kernel(const float* x, idx xbs, float* y, idx ybs, idx n, idx k, double c, double w,
                                   double ymin, double ymax) {
  for (idx i = blockIdx.y; i < n; i += gridDim.y)
    for (idx j = blockIdx.x * static_cast<idx>(blockDim.x) + threadIdx.x; j < k;
         j += static_cast<idx>(gridDim.x) * blockDim.x) {
      const double v = static_cast<double>(x[i * xbs + j]);
      y[i * ybs + j] = static_cast<float>((ymax - ymin) / (1.0 + exp(-4.0 * (v - c) / w)) + ymin);
    }
}

}  // namespace

void voi_sigmoid(const float* x, idx xbs, float* y, idx ybs, idx n, idx k, double c, double w, double ymin,
                 double ymax, cudaStream_t stream) {
  if (n <= 0 || k <= 0) return;
  voi_sigmoid_kernel<<<dim3(detail::blocks_for(k, detail::block_size, 4096), detail::rows_for(n)), detail::block_size,
                       0, stream>>>(x, xbs, y, ybs, n, k, c, w, ymin, ymax);
  MAMMOCL_KERNEL_CHECK("voi_sigmoid", "n ", n, ", k ", k, ", center ", c, ", width ", w);
}

}  // namespace mammocl::cuda_kernels
