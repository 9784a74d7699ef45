// The prefetching loader (include/mammocl/data/loader.hpp): every item once per epoch, bit-identical batches
// for 0/1/2/4 workers whatever the timing, view-major two-view batches, drop_last, worker exceptions reaching
// the consumer with the item index, restart and destruction in the middle of an epoch, domain_dataset.
#include <boost/test/unit_test.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <set>
#include <thread>
#include <vector>

#include "mammocl/data/augment.hpp"
#include "mammocl/data/loader.hpp"
#include "mammocl/data/synthetic.hpp"
#include "test_helpers.hpp"

namespace {

using namespace mammocl;
using namespace mammocl::data;

// Item i: a 6x6 image whose pixels are i + uniform draws from the item's generator; label i % 5.
struct numbered_dataset {
  std::size_t n = 23;
  bool jitter = false;  // sleep a little, differently per item, to shuffle the workers' timing
  [[nodiscard]] std::size_t size() const { return n; }
  [[nodiscard]] sample get(std::size_t i, rng& r) const {
    if (jitter) std::this_thread::sleep_for(std::chrono::microseconds(50 * ((i * 7) % 5)));
    image im(6, 6);
    for (auto& v : im.pixels) v = static_cast<float>(static_cast<double>(i) + r.uniform());
    return {std::move(im), static_cast<int>(i % 5), static_cast<int>(i % 2), -1};
  }
};

// Synthetic 32x32 patches through the default augmentation pipeline.
struct patch_dataset {
  synthetic_patches gen{synthetic_patches_options{.size = 32, .seed = 3}};
  augment_pipeline aug{};
  [[nodiscard]] std::size_t size() const { return 40; }
  [[nodiscard]] sample get(std::size_t i, rng& r) const {
    image im(32, 32);
    const int label = gen.generate(static_cast<std::int64_t>(i), im.pixels.data());
    std::this_thread::sleep_for(std::chrono::microseconds(30 * (i % 4)));
    return {aug(im, r), label, static_cast<int>(i % 2), static_cast<std::int64_t>(1000 + i)};
  }
};

std::vector<loader_batch> run_epochs(loader<patch_dataset>& ld, int epochs) {
  std::vector<loader_batch> out;
  for (int e = 0; e < epochs; ++e) {
    ld.start_epoch(e);
    while (auto b = ld.next()) out.push_back(std::move(*b));
  }
  return out;
}

}  // namespace

BOOST_AUTO_TEST_SUITE(loader_tests)

BOOST_AUTO_TEST_CASE(every_item_exactly_once_per_epoch) {
  loader ld(numbered_dataset{}, {.batch_size = 5, .workers = 2, .seed = 9});
  BOOST_TEST(ld.batches_per_epoch() == 5u);
  std::vector<std::vector<std::size_t>> orders;
  for (int e = 0; e < 3; ++e) {
    ld.start_epoch(e);
    std::vector<std::size_t> seen;
    std::int64_t k = 0;
    while (auto b = ld.next()) {
      BOOST_TEST(b->index == k++);
      BOOST_TEST(b->epoch == e);
      BOOST_TEST(b->items == (k == 5 ? 3 : 5));
      BOOST_TEST((b->rows == 6 && b->cols == 6 && b->views == 1 && b->n == b->items));
      BOOST_TEST(b->data.size() == static_cast<std::size_t>(b->n * 36));
      for (std::int64_t j = 0; j < b->items; ++j) {
        const auto i = b->indices[static_cast<std::size_t>(j)];
        seen.push_back(i);
        BOOST_TEST(b->ids[static_cast<std::size_t>(j)] == static_cast<std::int64_t>(i));  // id < 0: the index
        BOOST_TEST(b->labels[static_cast<std::size_t>(j)] == static_cast<int>(i % 5));
        BOOST_TEST(b->domains[static_cast<std::size_t>(j)] == static_cast<int>(i % 2));
        const float v = b->data[static_cast<std::size_t>(j * 36)];  // the image sits at its position
        BOOST_TEST((v >= static_cast<float>(i) && v < static_cast<float>(i + 1)));
      }
    }
    BOOST_TEST(!ld.next().has_value());  // stays at the end
    BOOST_TEST((seen == ld.order(e)));
    auto sorted = seen;
    std::sort(sorted.begin(), sorted.end());
    for (std::size_t i = 0; i < sorted.size(); ++i) BOOST_TEST(sorted[i] == i);
    BOOST_TEST(sorted.size() == 23u);
    orders.push_back(seen);
  }
  BOOST_TEST((orders[0] != orders[1]));  // reshuffled each epoch
  loader same(numbered_dataset{}, {.batch_size = 5, .workers = 0, .seed = 9});
  BOOST_TEST((same.order(1) == orders[1]));
  loader other(numbered_dataset{}, {.batch_size = 5, .workers = 0, .seed = 10});
  BOOST_TEST((other.order(1) != orders[1]));
  loader plain(numbered_dataset{}, {.batch_size = 5, .shuffle = false, .workers = 0});
  BOOST_TEST((plain.order(4) == std::vector<std::size_t>{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22}));
}

BOOST_AUTO_TEST_CASE(identical_batches_for_0_1_2_4_workers) {
  std::vector<std::vector<loader_batch>> runs;
  for (int w : {0, 1, 2, 4}) {
    loader ld(patch_dataset{}, {.batch_size = 6, .two_views = true, .workers = w, .prefetch = 3, .seed = 77});
    runs.push_back(run_epochs(ld, 2));
  }
  const auto& ref = runs[0];
  BOOST_TEST(ref.size() == 14u);  // 2 epochs x ceil(40 / 6)
  for (std::size_t r = 1; r < runs.size(); ++r) {
    BOOST_TEST(runs[r].size() == ref.size());
    for (std::size_t k = 0; k < ref.size(); ++k) {
      BOOST_TEST((runs[r][k].data == ref[k].data), "run " << r << " batch " << k);
      BOOST_TEST((runs[r][k].labels == ref[k].labels));
      BOOST_TEST((runs[r][k].ids == ref[k].ids));
      BOOST_TEST((runs[r][k].indices == ref[k].indices));
    }
  }
  // And the same seed with a slow, jittery dataset and one more worker than batches in flight.
  loader a(numbered_dataset{.jitter = true}, {.batch_size = 4, .workers = 4, .prefetch = 2, .seed = 5});
  loader b(numbered_dataset{.jitter = false}, {.batch_size = 4, .workers = 0, .seed = 5});
  a.start_epoch(3);
  b.start_epoch(3);
  while (auto x = a.next()) {
    auto y = b.next();
    BOOST_TEST((x->data == y->data));
  }
}

BOOST_AUTO_TEST_CASE(two_view_batches_are_view_major) {
  loader ld(numbered_dataset{.n = 10}, {.batch_size = 4, .two_views = true, .workers = 2, .seed = 1});
  ld.start_epoch(0);
  int batches = 0;
  while (auto b = ld.next()) {
    ++batches;
    const auto B = b->items;
    BOOST_TEST(b->views == 2);
    BOOST_TEST(b->n == 2 * B);
    BOOST_TEST(b->labels.size() == static_cast<std::size_t>(2 * B));
    for (std::int64_t j = 0; j < B; ++j) {
      const auto i = b->indices[static_cast<std::size_t>(j)];
      for (std::int64_t pos : {j, j + B}) {  // first views, then second views, in the same item order
        BOOST_TEST(b->ids[static_cast<std::size_t>(pos)] == static_cast<std::int64_t>(i));
        BOOST_TEST(b->labels[static_cast<std::size_t>(pos)] == static_cast<int>(i % 5));
        const float v = b->data[static_cast<std::size_t>(pos * 36)];
        BOOST_TEST((v >= static_cast<float>(i) && v < static_cast<float>(i + 1)));
      }
      // Independent views: different draws from the item's generator.
      BOOST_TEST(b->data[static_cast<std::size_t>(j * 36)] != b->data[static_cast<std::size_t>((j + B) * 36)]);
      // The second view continues the first view's stream: view 0 = first 36 draws, view 1 = next 36.
      rng r(data::detail::loader_seed(1, 0, i));
      for (int k = 0; k < 36; ++k) (void)r.uniform();
      BOOST_TEST(b->data[static_cast<std::size_t>((j + B) * 36)] == static_cast<float>(static_cast<double>(i) + r.uniform()));
    }
  }
  BOOST_TEST(batches == 3);
}

BOOST_AUTO_TEST_CASE(drop_last_drops_the_incomplete_batch) {
  for (int w : {0, 2}) {
    loader ld(numbered_dataset{}, {.batch_size = 5, .drop_last = true, .workers = w});
    BOOST_TEST(ld.batches_per_epoch() == 4u);
    ld.start_epoch(0);
    std::set<std::size_t> seen;
    int n = 0;
    while (auto b = ld.next()) {
      ++n;
      BOOST_TEST(b->items == 5);
      seen.insert(b->indices.begin(), b->indices.end());
    }
    BOOST_TEST(n == 4);
    BOOST_TEST(seen.size() == 20u);
  }
  loader exact(numbered_dataset{.n = 20}, {.batch_size = 5, .drop_last = true, .workers = 1});
  BOOST_TEST(exact.batches_per_epoch() == 4u);
}

BOOST_AUTO_TEST_CASE(worker_exception_reaches_the_consumer_with_the_item) {
  const auto bad = [](std::size_t i, rng& r) -> sample {
    if (i == 13) MAMMOCL_THROW(io_error, "cannot read patch 13.png");
    image im(2, 2, static_cast<float>(r.uniform()));
    return {im, 0, 0, -1};
  };
  for (int w : {0, 1, 3}) {
    loader ld(function_dataset{20, bad}, {.batch_size = 4, .shuffle = false, .workers = w});
    ld.start_epoch(2);
    int good = 0, failures = 0;
    for (;;) {
      try {
        auto b = ld.next();
        if (!b) break;
        ++good;
      } catch (const loader_error& e) {
        ++failures;
        BOOST_TEST(e.item() == 13u);
        BOOST_TEST(e.message().find("loader: item 13 (epoch 2, batch 3) failed: cannot read patch 13.png") == 0u,
                   e.message());
        BOOST_CHECK_THROW(std::rethrow_if_nested(e), io_error);  // the original, nested
      }
    }
    BOOST_TEST(good == 4, "workers " << w);
    BOOST_TEST(failures == 1);
  }
  // A wrong image size is reported the same way.
  const auto ragged = [](std::size_t i, rng&) { return sample{image(i == 2 ? 3 : 2, 2), 0, 0, -1}; };
  loader ld(function_dataset{4, ragged}, {.batch_size = 4, .shuffle = false, .workers = 1});
  ld.start_epoch(0);
  test::expect_error<loader_error>([&] { (void)ld.next(); }, "loader: item 2 is 3 x 2 but the batch's images are 2 x 2");
}

BOOST_AUTO_TEST_CASE(restart_and_destruction_mid_epoch) {
  std::atomic<int> calls{0};
  const auto slow = [&calls](std::size_t i, rng&) {
    ++calls;
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
    return sample{image(4, 4, static_cast<float>(i)), 0, 0, -1};
  };
  {
    loader ld(function_dataset{400, slow}, {.batch_size = 8, .workers = 2, .prefetch = 2});
    ld.start_epoch(0);
    BOOST_TEST(ld.next().has_value());
    // Restart: the new epoch's batches come out in full, in its own order.
    ld.start_epoch(1);
    const auto o = ld.order(1);
    for (std::size_t k = 0; k < 3; ++k) {
      auto b = ld.next();
      BOOST_TEST((b && b->epoch == 1));
      BOOST_TEST((b->indices == std::vector<std::size_t>(o.begin() + static_cast<std::ptrdiff_t>(8 * k),
                                                         o.begin() + static_cast<std::ptrdiff_t>(8 * k + 8))));
    }
  }  // destroyed with 47 batches to go: joins without deadlock
  // Prefetching stays bounded: at most prefetch batches ahead plus one in progress per worker.
  BOOST_TEST(calls.load() <= 8 * (1 + 2 + 2) + 8 * (3 + 2 + 2));
  { loader idle(function_dataset{400, slow}, {.workers = 3}); }  // never started
  {
    loader never_read(function_dataset{400, slow}, {.batch_size = 8, .workers = 3});
    never_read.start_epoch(0);
  }
  BOOST_TEST(true);
}

BOOST_AUTO_TEST_CASE(domain_dataset_applies_the_domain_transform) {
  struct entry {
    std::int64_t item;
    int label;
    int dom;
  };
  const std::vector<entry> entries{{10, 1, 0}, {10, 1, 1}, {11, 3, 0}, {12, 4, 1}};
  std::atomic<int> loads{0};
  const auto load = [&loads](std::int64_t item) {
    ++loads;
    return image(3, 3, static_cast<float>(item) / 100.0f);
  };
  const auto invert = [](const image& im) {
    image out = im;
    for (auto& v : out.pixels) v = 1.0f - v;
    return out;
  };
  const augment_pipeline none({.hflip_p = 0, .vflip_p = 0, .rotate_p = 0, .random_crop = false, .gamma_p = 0, .contrast_p = 0});
  domain_dataset<entry, decltype(load), decltype(invert)> ds{entries, load, invert, none};
  loader ld(ds, {.batch_size = 4, .shuffle = false, .two_views = true, .workers = 1});
  ld.start_epoch(0);
  const auto b = ld.next();
  BOOST_TEST(loads.load() == 4);  // get_views: one load per item for both views
  BOOST_TEST((b->ids == std::vector<std::int64_t>{10, 10, 11, 12, 10, 10, 11, 12}));
  BOOST_TEST((b->domains == std::vector<int>{0, 1, 0, 1, 0, 1, 0, 1}));
  BOOST_TEST((b->labels == std::vector<int>{1, 1, 3, 4, 1, 1, 3, 4}));
  BOOST_TEST(b->data[0] == 0.10f);
  BOOST_TEST(b->data[9] == 1.0f - 0.10f);
  BOOST_TEST(b->data[27] == 1.0f - 0.12f);
}

BOOST_AUTO_TEST_CASE(option_errors) {
  test::expect_error<config_error>([] { loader ld(numbered_dataset{}, {.batch_size = 0}); }, "loader: batch_size is 0");
  test::expect_error<config_error>([] { loader ld(numbered_dataset{}, {.workers = -1}); }, "loader: workers = -1 is negative");
  test::expect_error<config_error>([] { loader ld(numbered_dataset{}, {.workers = 2, .prefetch = 0}); },
                                   "loader: prefetch is 0 with 2 workers");
}

BOOST_AUTO_TEST_SUITE_END()
