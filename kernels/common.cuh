#pragma once
// Shared helpers of the kernel library: launch geometry, block reductions in double, the device's SM count.
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>

#include "mammocl/backend/cuda/check.hpp"
#include "mammocl/backend/cuda/kernels.hpp"

namespace mammocl::cuda_kernels::detail {

inline constexpr int block_size = 256;

/// Blocks for `count` work items of `per_block` each, capped: grid-stride loops cover the rest.
inline unsigned int blocks_for(idx count, idx per_block = block_size, idx cap = 65535LL * 8) {
  const idx b = (count + per_block - 1) / per_block;
  return static_cast<unsigned int>(std::clamp<idx>(b, 1, cap));
}

/// Rows of a 2-D grid (one per batch item, looped beyond the cap of gridDim.y).
inline unsigned int rows_for(idx n) { return static_cast<unsigned int>(std::clamp<idx>(n, 1, 65535)); }

/// Streaming multiprocessors of the current device (cached per device; used to size reductions).
inline int sm_count() {
  static thread_local int cached_device = -1, cached = 0;
  int dev = 0;
  MAMMOCL_CUDA_CHECK(cudaGetDevice(&dev), "cudaGetDevice()");
  if (dev != cached_device) {
    MAMMOCL_CUDA_CHECK(cudaDeviceGetAttribute(&cached, cudaDevAttrMultiProcessorCount, dev),
                       "cudaDeviceGetAttribute(cudaDevAttrMultiProcessorCount, device ", dev, ")");
    cached_device = dev;
  }
  return cached;
}

/// True when p is 16-byte aligned (float4 loads and stores).
inline bool aligned16(const void* p) { return (reinterpret_cast<std::uintptr_t>(p) & 15u) == 0; }

/// Sum of v over the warp (every lane gets it), in a fixed order.
template <class T>
__device__ inline T warp_sum(T v) {
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}

/// Sum of v over the block (valid in thread 0), fixed order. `shared` holds blockDim.x/32 values.
template <class T>
__device__ inline T block_sum(T v, T* shared) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = (blockDim.x + 31) >> 5;
  v = warp_sum(v);
  __syncthreads();  // `shared` may still be read by a previous call
  if (lane == 0) shared[warp] = v;
  __syncthreads();
  T r = T(0);
  if (warp == 0) {
    r = lane < warps ? shared[lane] : T(0);
    r = warp_sum(r);
  }
  return r;
}

}  // namespace mammocl::cuda_kernels::detail
