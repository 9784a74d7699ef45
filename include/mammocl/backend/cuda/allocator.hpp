#pragma once
/// The CUDA backend's caching allocator: device blocks obtained with cudaMalloc are kept when their tensor
/// dies and handed to the next request of a similar size, so a training step that repeats the same shapes
/// calls cudaMalloc only in its first iteration and never cudaFree (which would synchronise the device).
///
/// Reuse is immediate, in host order. That is safe because all of MammoCL's device work on one device is
/// ordered: the context's stream is a blocking stream, which orders with the legacy default stream used by
/// the context-free ops, and a block's next user enqueues after its last one. With two contexts used from
/// two threads at once, synchronise a context before dropping tensors the other one may still read.
#include <cuda_runtime_api.h>

#include <cstddef>
#include <map>
#include <memory>
#include <mutex>
#include <utility>

#include "mammocl/backend/cuda/check.hpp"

namespace mammocl {

/// Device memory held by the CUDA backend's caching allocator, in bytes.
struct cuda_memory_stats {
  std::size_t in_use = 0;       ///< held by live tensors and workspaces (rounded block sizes)
  std::size_t peak_in_use = 0;  ///< the maximum of in_use since start or the last reset_peak_memory_stats()
  std::size_t reserved = 0;     ///< obtained from cudaMalloc: in use plus cached for reuse
};

namespace cuda_detail {

/// Process-wide caching allocator (one per process, all devices; blocks remember their device).
class caching_allocator {
 public:
  /// The instance. It is never destroyed: tensors released during static destruction, after the CUDA
  /// runtime may have shut down, only return their block to the (then unused) cache.
  static caching_allocator& instance() {
    static caching_allocator* a = new caching_allocator;
    return *a;
  }

  /// A block of at least `bytes` on the current device, owned by the returned pointer.
  std::shared_ptr<void> allocate(std::size_t bytes) {
    if (bytes == 0) return {};
    const std::size_t size = round(bytes);
    int device = 0;
    MAMMOCL_CUDA_CHECK(cudaGetDevice(&device), "cudaGetDevice()");
    void* p = nullptr;
    {
      std::lock_guard<std::mutex> lock(mu_);
      // The smallest cached block that fits and wastes at most a quarter of the request.
      auto it = free_.lower_bound({device, size});
      if (it != free_.end() && it->first.first == device && it->first.second <= size + size / 4) {
        p = it->second;
        const std::size_t got = it->first.second;
        free_.erase(it);
        return own(p, got, device);
      }
    }
    cudaError_t s = cudaMalloc(&p, size);
    if (s == cudaErrorMemoryAllocation) {
      (void)cudaGetLastError();
      release_cached(device);  // give the cache back to the driver and try once more
      s = cudaMalloc(&p, size);
    }
    if (s != cudaSuccess) {
      const cuda_memory_stats st = stats();
      fail_cuda(s,
                detail::concat("cudaMalloc(", size, " B on device ", device, "; the backend holds ", st.in_use,
                               " B in use and ", st.reserved, " B reserved)"),
                __FILE__, __LINE__);
    }
    std::lock_guard<std::mutex> lock(mu_);
    reserved_ += size;
    return own(p, size, device);
  }

  [[nodiscard]] cuda_memory_stats stats() {
    std::lock_guard<std::mutex> lock(mu_);
    return {in_use_, peak_, reserved_};
  }
  void reset_peak() {
    std::lock_guard<std::mutex> lock(mu_);
    peak_ = in_use_;
  }
  /// Returns every cached (unused) block of every device to the driver.
  void empty_cache() {
    int current = 0;
    MAMMOCL_CUDA_CHECK(cudaGetDevice(&current), "cudaGetDevice()");
    std::map<int, bool> devices;
    {
      std::lock_guard<std::mutex> lock(mu_);
      for (const auto& kv : free_) devices[kv.first.first] = true;
    }
    for (const auto& kv : devices) release_cached(kv.first);
    MAMMOCL_CUDA_CHECK(cudaSetDevice(current), "cudaSetDevice(", current, ")");
  }

 private:
  caching_allocator() = default;

  // 512 B granules below 1 MiB, 2 MiB granules above: repeated shapes map to one size.
  static std::size_t round(std::size_t b) {
    const std::size_t g = b < (std::size_t{1} << 20) ? 512 : (std::size_t{2} << 20);
    return (b + g - 1) / g * g;
  }

  // Called with mu_ held.
  std::shared_ptr<void> own(void* p, std::size_t size, int device) {
    in_use_ += size;
    if (in_use_ > peak_) peak_ = in_use_;
    return std::shared_ptr<void>(p, [size, device](void* q) { instance().give_back(q, size, device); });
  }

  void give_back(void* p, std::size_t size, int device) noexcept {
    std::lock_guard<std::mutex> lock(mu_);
    in_use_ -= size;
    free_.emplace(std::pair<int, std::size_t>{device, size}, p);
  }

  void release_cached(int device) {
    std::multimap<std::pair<int, std::size_t>, void*> mine;
    {
      std::lock_guard<std::mutex> lock(mu_);
      for (auto it = free_.begin(); it != free_.end();) {
        if (it->first.first == device) {
          mine.insert(*it);
          reserved_ -= it->first.second;
          it = free_.erase(it);
        } else {
          ++it;
        }
      }
    }
    if (mine.empty()) return;
    MAMMOCL_CUDA_CHECK(cudaSetDevice(device), "cudaSetDevice(", device, ")");
    for (const auto& kv : mine)  // cudaFree waits for the device, so no kernel still uses the block
      MAMMOCL_CUDA_CHECK(cudaFree(kv.second), "cudaFree(", kv.first.second, " B on device ", device, ")");
  }

  std::mutex mu_;
  std::multimap<std::pair<int, std::size_t>, void*> free_;  // (device, size) -> cached block
  std::size_t in_use_ = 0, peak_ = 0, reserved_ = 0;
};

}  // namespace cuda_detail
}  // namespace mammocl
