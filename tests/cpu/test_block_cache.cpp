// The CPU backend's cache of large host buffers (backend/cpu/block_cache.hpp): reuse, the size rule,
// the bound, release, and use through cpu_backend::allocate.
#include <boost/test/unit_test.hpp>

#include <cstdint>
#include <thread>
#include <vector>

#include "mammocl/backend/cpu/cpu_backend.hpp"

using mammocl::detail::block_cache;

BOOST_AUTO_TEST_SUITE(block_cache_tests)

BOOST_AUTO_TEST_CASE(a_freed_buffer_serves_the_next_request_of_its_size) {
  block_cache c;
  const std::size_t mib = std::size_t{1} << 20;
  auto [p, size] = c.get(mib + 100);
  BOOST_TEST(size == mib + 4096);  // whole pages
  BOOST_TEST(reinterpret_cast<std::uintptr_t>(p) % 64 == 0);
  c.put(p, size);
  BOOST_TEST(c.cached_bytes() == size);
  auto [q, size2] = c.get(mib + 4000);  // the same rounded size
  BOOST_TEST(q == p);
  BOOST_TEST(size2 == size);
  BOOST_TEST(c.cached_bytes() == 0u);
  c.put(q, size2);
  c.release();
  BOOST_TEST(c.cached_bytes() == 0u);
}

BOOST_AUTO_TEST_CASE(a_larger_buffer_serves_only_up_to_five_quarters_of_the_request) {
  block_cache c;
  const std::size_t mib = std::size_t{1} << 20;
  auto [big, big_size] = c.get(mib + mib / 4);  // exactly 5/4 MiB
  auto [huge, huge_size] = c.get(2 * mib);
  c.put(big, big_size);
  c.put(huge, huge_size);
  auto [a, a_size] = c.get(mib);  // 5/4 MiB fits within 5/4 of 1 MiB: reused
  BOOST_TEST(a == big);
  BOOST_TEST(a_size == big_size);
  auto [b, b_size] = c.get(mib);  // only the 2 MiB buffer is left: too large, a new buffer
  BOOST_TEST(b != huge);
  BOOST_TEST(b_size == mib);
  BOOST_TEST(c.cached_bytes() == huge_size);
  c.put(a, a_size);
  c.put(b, b_size);
  c.release();
}

BOOST_AUTO_TEST_CASE(small_buffers_are_not_cached) {
  block_cache c;
  auto [p, size] = c.get(1000);
  BOOST_TEST(size == 1000u);
  c.put(p, size);
  BOOST_TEST(c.cached_bytes() == 0u);
}

BOOST_AUTO_TEST_CASE(the_limit_evicts_the_oldest_buffers) {
  block_cache c;
  const std::size_t mib = std::size_t{1} << 20;
  c.set_limit(3 * mib);
  auto [p1, s1] = c.get(mib);
  auto [p2, s2] = c.get(2 * mib);
  auto [p3, s3] = c.get(mib + mib / 2);
  c.put(p1, s1);  // cached: 1 MiB
  c.put(p2, s2);  // cached: 3 MiB
  c.put(p3, s3);  // 4.5 MiB > 3: p1 then p2 go
  BOOST_TEST(c.cached_bytes() == s3);
  auto [q, qs] = c.get(mib + mib / 2);
  BOOST_TEST(q == p3);
  c.put(q, qs);
  c.set_limit(0);  // caches nothing from now on and drops what it holds
  BOOST_TEST(c.cached_bytes() == 0u);
  auto [r, rs] = c.get(mib);
  c.put(r, rs);
  BOOST_TEST(c.cached_bytes() == 0u);
  BOOST_TEST(c.limit() == 0u);
}

BOOST_AUTO_TEST_CASE(concurrent_use_from_two_threads) {
  block_cache c;
  const auto work = [&](std::size_t base) {
    for (int i = 0; i < 2000; ++i) {
      const std::size_t bytes = base + static_cast<std::size_t>(i % 7) * 65536;
      auto [p, size] = c.get(bytes);
      static_cast<volatile char*>(p)[bytes - 1] = 1;  // the whole request is usable
      c.put(p, size);
    }
  };
  std::thread t1(work, std::size_t{300} << 10), t2(work, std::size_t{700} << 10);
  t1.join();
  t2.join();
  BOOST_TEST(c.cached_bytes() <= c.limit());
  c.release();
  BOOST_TEST(c.cached_bytes() == 0u);
}

BOOST_AUTO_TEST_CASE(tensors_of_the_backend_reuse_freed_buffers) {
  using mammocl::cpu_backend;
  using mammocl::shape;
  const float* first;
  {
    mammocl::tensor<cpu_backend> t(shape{4, 64, 32, 32});  // 1 MiB
    first = t.data();
  }
  mammocl::tensor<cpu_backend> u(shape{4, 64, 32, 32});
  BOOST_TEST(u.data() == first);
  cpu_backend::empty_cache();
  BOOST_TEST(block_cache::instance().cached_bytes() == 0u);
}

BOOST_AUTO_TEST_SUITE_END()
