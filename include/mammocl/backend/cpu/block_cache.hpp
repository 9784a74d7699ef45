#pragma once
/// A process-wide cache of large host buffers for the CPU backend.
///
/// A training step allocates its activations and gradients anew and frees them again: hundreds of buffers
/// of the same few hundred sizes, step after step. The system allocator hands large buffers back to the
/// kernel (munmap) and gets fresh ones (mmap) whose pages the kernel must fault in and zero on first touch:
/// about 137,000 page faults (530 MiB of zeroed pages) per DenseNet-121 step at batch 8 @224, measured before
/// this cache. Here buffers of at least `min_bytes` are kept on free and handed out again for a request of
/// the same rounded size, so the second step onwards touches only pages it already owns.
///
/// Bounded: cached (free) bytes never exceed `limit()` (default 4 GiB; `set_limit`), the oldest cached buffers
/// of other sizes go first; `release()` gives every cached buffer back to the system. Thread-safe.
#include <cstddef>
#include <iterator>
#include <list>
#include <map>
#include <mutex>
#include <new>
#include <utility>
#include <vector>

namespace mammocl::detail {

class block_cache {
 public:
  /// Buffers smaller than this go straight to the system allocator.
  static constexpr std::size_t min_bytes = std::size_t{256} << 10;
  static constexpr std::align_val_t alignment{64};

  block_cache() = default;
  block_cache(const block_cache&) = delete;
  block_cache& operator=(const block_cache&) = delete;
  ~block_cache() { release(); }

  /// The process's cache. Never destroyed, so buffers freed during static destruction still find it.
  static block_cache& instance() {
    static block_cache* c = new block_cache;
    return *c;
  }
  /// The size a request is served with: whole 4 KiB pages for cached sizes.
  static std::size_t rounded(std::size_t bytes) {
    return bytes < min_bytes ? bytes : (bytes + 4095) / 4096 * 4096;
  }
  /// A buffer of at least `bytes` (64-byte aligned) and its size, to be given back with put(p, size). A
  /// cached buffer serves a request when it is at most max_slack4 / 4 times as large (the smallest such one),
  /// so that buffers freed by one layer serve the next layer's slightly different sizes instead of idling.
  std::pair<void*, std::size_t> get(std::size_t bytes) {
    const std::size_t size = rounded(bytes);
    if (size >= min_bytes) {
      std::lock_guard<std::mutex> lock(mutex_);
      const auto it = free_.lower_bound(size);
      if (it != free_.end() && it->first <= size / 4 * max_slack4) {
        const std::size_t got = it->first;
        void* p = it->second.back().first;
        order_.erase(it->second.back().second);
        it->second.pop_back();
        if (it->second.empty()) free_.erase(it);
        cached_ -= got;
        return {p, got};
      }
    }
    return {::operator new(size, alignment), size};
  }
  /// Cached buffers up to this many quarters of the requested size serve a request.
  static constexpr std::size_t max_slack4 = 5;
  /// Takes back a buffer that get() returned, with the size it returned.
  void put(void* p, std::size_t size) noexcept {
    if (size < min_bytes || size > limit_) {
      ::operator delete(p, alignment);
      return;
    }
    std::vector<void*> evicted;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      try {
        while (cached_ + size > limit_ && !order_.empty()) evicted.push_back(evict_oldest());
        order_.push_back({p, size});
        free_[size].push_back({p, std::prev(order_.end())});
        cached_ += size;
        p = nullptr;
      } catch (...) {  // out of memory for the bookkeeping: free the buffer instead of caching it
      }
    }
    for (void* q : evicted) ::operator delete(q, alignment);
    if (p) ::operator delete(p, alignment);
  }
  /// Gives every cached buffer back to the system.
  void release() noexcept {
    std::vector<void*> all;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      for (auto& e : order_) all.push_back(e.first);
      order_.clear();
      free_.clear();
      cached_ = 0;
    }
    for (void* q : all) ::operator delete(q, alignment);
  }
  /// Bytes held in the cache (free buffers), and the most it may hold.
  [[nodiscard]] std::size_t cached_bytes() {
    std::lock_guard<std::mutex> lock(mutex_);
    return cached_;
  }
  [[nodiscard]] std::size_t limit() {
    std::lock_guard<std::mutex> lock(mutex_);
    return limit_;
  }
  /// Sets the most the cache may hold (0: cache nothing) and trims it to that at once.
  void set_limit(std::size_t bytes) noexcept {
    std::vector<void*> evicted;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      limit_ = bytes;
      while (cached_ > limit_ && !order_.empty()) evicted.push_back(evict_oldest());
    }
    for (void* q : evicted) ::operator delete(q, alignment);
  }

 private:
  using entry = std::pair<void*, std::size_t>;
  void* evict_oldest() {
    const entry e = order_.front();
    const auto bucket = free_.find(e.second);
    auto& v = bucket->second;
    for (auto it = v.begin(); it != v.end(); ++it)
      if (it->first == e.first) {
        v.erase(it);
        break;
      }
    if (v.empty()) free_.erase(bucket);
    order_.pop_front();
    cached_ -= e.second;
    return e.first;
  }
  std::mutex mutex_;
  std::list<entry> order_;  // cached buffers, oldest first
  std::map<std::size_t, std::vector<std::pair<void*, std::list<entry>::iterator>>> free_;
  std::size_t cached_ = 0;
  std::size_t limit_ = std::size_t{4} << 30;
};

}  // namespace mammocl::detail
