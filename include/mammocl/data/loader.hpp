#pragma once
/// `data::loader`: batches for training from any dataset with `size()` and `get(i, rng&)` (or a callable),
/// as one host float buffer in NCHW (N, 1, H, W) plus labels, domains and item ids. Per-epoch seeded
/// shuffling, batch size, drop_last, a two-view mode for SupCon, and worker threads (std::jthread) that
/// prefetch up to `prefetch` batches while the model trains.
///
/// Determinism: the epoch's order comes from (seed, epoch) and item i's generator from (seed, epoch, i),
/// and batches are delivered in order, so the batches are bit-identical for any number of workers and any
/// timing. `get` is called concurrently from the workers: it must be safe to call from several threads.
///
///   data::loader ld(my_dataset, {.batch_size = 32, .two_views = true, .workers = 2, .seed = 7});
///   for (std::int64_t e = 0; e < epochs; ++e) {
///     ld.start_epoch(e);
///     while (auto b = ld.next()) step(b->data, b->n, b->labels);   // b->data: (n, 1, rows, cols)
///   }
#include <algorithm>
#include <array>
#include <atomic>
#include <concepts>
#include <condition_variable>
#include <cstdint>
#include <cstring>
#include <exception>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <stop_token>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "mammocl/core/error.hpp"
#include "mammocl/core/rng.hpp"
#include "mammocl/data/augment.hpp"
#include "mammocl/data/batch.hpp"
#include "mammocl/data/image.hpp"

namespace mammocl::data {

/// One item as a dataset returns it.
struct sample {
  image img;               ///< single channel
  int label = 0;           ///< class label
  int domain = 0;          ///< 0 = A (no LUT), 1 = B (sigmoid LUT); see domains.hpp
  std::int64_t id = -1;    ///< the item's identifier; < 0: the loader uses the dataset index
};

/// A dataset the loader can read: `size()` items, item i produced by `get(i, r)` with the item's generator.
template <class D>
concept loader_dataset = requires(const D& d, std::size_t i, rng& r) {
  { d.size() } -> std::convertible_to<std::size_t>;
  { d.get(i, r) } -> std::convertible_to<sample>;
};

/// Optional: a dataset that produces both SupCon views at once (e.g. decoding the image once).
template <class D>
concept two_view_dataset = loader_dataset<D> && requires(const D& d, std::size_t i, rng& r) {
  { d.get_views(i, r) } -> std::convertible_to<std::array<sample, 2>>;
};

/// A dataset from a size and a callable `sample(std::size_t i, rng& r)`.
template <class F>
  requires std::invocable<const F&, std::size_t, rng&>
struct function_dataset {
  std::size_t n = 0;
  F fn;
  [[nodiscard]] std::size_t size() const noexcept { return n; }
  [[nodiscard]] sample get(std::size_t i, rng& r) const { return fn(i, r); }
};
template <class F>
function_dataset(std::size_t, F) -> function_dataset<F>;

/// Entries of a domain set (data::domain_item or any type with .item, .label and .dom convertible to int).
template <class E>
concept domain_entry = requires(const E& e) {
  { e.item } -> std::convertible_to<std::int64_t>;
  { e.label } -> std::convertible_to<int>;
  static_cast<int>(e.dom);
};

/// Materialises a domain set (domains.hpp): entry k loads its stored image with `load(item)`, applies the
/// domain transform `to_b(image)` for domain B (the sigmoid LUT of voi_lut.hpp, given by the caller), then
/// the augmentation. In two-view mode the image is loaded and transformed once and augmented twice.
template <domain_entry E, class Load, class ToB>
struct domain_dataset {
  std::span<const E> entries;
  Load load;              ///< image(std::int64_t item)
  ToB to_b;               ///< image(const image&): domain A -> domain B
  augment_pipeline augment;

  [[nodiscard]] std::size_t size() const noexcept { return entries.size(); }
  [[nodiscard]] image base(std::size_t i) const {
    const auto& e = entries[i];
    image img = load(static_cast<std::int64_t>(e.item));
    return static_cast<int>(e.dom) == 1 ? to_b(img) : img;
  }
  [[nodiscard]] sample get(std::size_t i, rng& r) const {
    const auto& e = entries[i];
    return {augment(base(i), r), static_cast<int>(e.label), static_cast<int>(e.dom), static_cast<std::int64_t>(e.item)};
  }
  [[nodiscard]] std::array<sample, 2> get_views(std::size_t i, rng& r) const {
    const auto& e = entries[i];
    auto v = two_views(base(i), augment, r);
    const int l = static_cast<int>(e.label), d = static_cast<int>(e.dom);
    const auto id = static_cast<std::int64_t>(e.item);
    return {sample{std::move(v[0]), l, d, id}, sample{std::move(v[1]), l, d, id}};
  }
};

/// Options of `loader`.
struct loader_options {
  std::size_t batch_size = 32;   ///< items per batch (2x images in two-view mode)
  bool shuffle = true;           ///< a new seeded permutation each epoch; false: index order
  bool drop_last = false;        ///< drop the last, incomplete batch
  bool two_views = false;        ///< SupCon: each item gives two views, batch ordered view-major
  int workers = 1;               ///< prefetching threads; 0 = build each batch in next()
  std::size_t prefetch = 4;      ///< most batches built ahead of the consumer (queue depth)
  std::uint64_t seed = 1;        ///< drives the order and every item's generator
};

/// One batch. Images are view-major in two-view mode: positions 0..B-1 hold the first views of the B items,
/// B..2B-1 their second views (HobbitLong's torch.cat([images[0], images[1]])); labels, domains and ids
/// have one entry per image in the same order.
struct loader_batch {
  std::int64_t epoch = 0, index = 0;  ///< which epoch, which batch of it
  std::int64_t items = 0;             ///< B
  std::int64_t views = 1;             ///< 1 or 2
  std::int64_t n = 0;                 ///< images = views x items
  std::int64_t rows = 0, cols = 0;    ///< image size; the buffer is (n, 1, rows, cols)
  std::vector<float> data;
  std::vector<int> labels, domains;
  std::vector<std::int64_t> ids;
  std::vector<std::size_t> indices;   ///< the B dataset indices, in batch order
};

/// Thrown by `loader::next` when producing an item failed (in a worker or inline): names the dataset
/// index, the epoch and the batch; the original exception is nested (std::rethrow_if_nested).
class loader_error : public error {
 public:
  loader_error(const std::string& what, std::size_t item, const char* file, int line) : error(what, file, line), item_(item) {}
  [[nodiscard]] std::size_t item() const noexcept { return item_; }

 private:
  std::size_t item_;
};

namespace detail {
[[nodiscard]] constexpr std::uint64_t loader_seed(std::uint64_t seed, std::uint64_t epoch, std::uint64_t key) noexcept {
  auto fmix = [](std::uint64_t z) {
    z += 0x9e3779b97f4a7c15ULL;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
  };
  return fmix(fmix(fmix(seed) ^ epoch) ^ key);
}
inline constexpr std::uint64_t loader_order_key = ~std::uint64_t{0};  // the order's stream; items use their index
}  // namespace detail

/// The loader (see the header comment). Not copyable or movable (its workers point at it).
template <loader_dataset D>
class loader {
 public:
  /// Starts the worker threads (idle until `start_epoch`). Errors (config_error): batch_size 0, workers < 0,
  /// prefetch 0 with workers.
  loader(D dataset, const loader_options& opt) : ds_(std::move(dataset)), opt_(opt) {
    MAMMOCL_CHECK(opt.batch_size > 0, config_error, "loader: batch_size is 0");
    MAMMOCL_CHECK(opt.workers >= 0, config_error, "loader: workers = ", opt.workers, " is negative");
    MAMMOCL_CHECK(opt.workers == 0 || opt.prefetch > 0, config_error, "loader: prefetch is 0 with ", opt.workers, " workers");
    threads_.reserve(static_cast<std::size_t>(opt.workers));
    for (int w = 0; w < opt.workers; ++w) threads_.emplace_back([this](std::stop_token st) { work(st); });
  }
  loader(const loader&) = delete;
  loader& operator=(const loader&) = delete;
  /// Stops and joins the workers, also in the middle of an epoch (a worker stops between two items).
  ~loader() {
    for (auto& t : threads_) t.request_stop();
    threads_.clear();  // joins
  }

  [[nodiscard]] const loader_options& options() const noexcept { return opt_; }
  [[nodiscard]] const D& dataset() const noexcept { return ds_; }
  [[nodiscard]] std::size_t size() const { return ds_.size(); }
  /// Batches per epoch: ceil(size / batch_size), or floor with drop_last.
  [[nodiscard]] std::size_t batches_per_epoch() const {
    const auto n = ds_.size(), b = opt_.batch_size;
    return opt_.drop_last ? n / b : (n + b - 1) / b;
  }
  /// The dataset indices of `epoch` in batch order (a permutation from (seed, epoch), or 0..size-1).
  [[nodiscard]] std::vector<std::size_t> order(std::int64_t epoch) const {
    std::vector<std::size_t> o(ds_.size());
    for (std::size_t k = 0; k < o.size(); ++k) o[k] = k;
    if (opt_.shuffle) {
      rng r(detail::loader_seed(opt_.seed, static_cast<std::uint64_t>(epoch), detail::loader_order_key));
      for (std::size_t i = o.size(); i > 1; --i) std::swap(o[i - 1], o[static_cast<std::size_t>(r.below(i))]);
    }
    return o;
  }

  /// Begins `epoch` (any number; epochs may repeat or be skipped): abandons what is left of the current
  /// one and lets the workers start on the new one.
  void start_epoch(std::int64_t epoch) {
    auto o = order(epoch);
    std::lock_guard lk(m_);
    ++generation_;
    epoch_ = epoch;
    order_ = std::move(o);
    n_batches_ = batches_per_epoch();
    next_task_ = consumed_ = 0;
    ready_.clear();
    active_ = true;
    work_cv_.notify_all();
  }

  /// The next batch of the current epoch, in order; nullopt at its end (or before any start_epoch). An item
  /// that failed throws loader_error (naming the item, with the original nested); that batch is skipped and
  /// the following call continues with the next one.
  [[nodiscard]] std::optional<loader_batch> next() {
    std::unique_lock lk(m_);
    if (!active_ || consumed_ >= n_batches_) {
      active_ = false;
      return std::nullopt;
    }
    const std::size_t k = consumed_;
    result res;
    if (threads_.empty()) {
      const auto gen = generation_.load();
      const auto ep = epoch_;
      lk.unlock();
      res = build(ep, k, gen, nullptr);
      lk.lock();
    } else {
      ready_cv_.wait(lk, [&] { return ready_.count(k) != 0; });
      res = std::move(ready_.at(k));
      ready_.erase(k);
    }
    ++consumed_;
    work_cv_.notify_all();  // a prefetch slot is free
    lk.unlock();
    if (res.error) {
      try {
        std::rethrow_exception(res.error);
      } catch (...) {
        std::string what = "?";
        try {
          throw;
        } catch (const std::exception& e) {
          what = e.what();
        } catch (...) {
        }
        std::throw_with_nested(loader_error(::mammocl::detail::concat("loader: item ", res.failed_item, " (epoch ", res.b.epoch,
                                                           ", batch ", k, ") failed: ", what),
                                            res.failed_item, __FILE__, __LINE__));
      }
    }
    return std::move(res.b);
  }

 private:
  struct result {
    loader_batch b;
    std::exception_ptr error;
    std::size_t failed_item = 0;
  };

  bool has_task() const { return active_ && next_task_ < n_batches_ && next_task_ < consumed_ + opt_.prefetch; }

  void work(std::stop_token st) {
    std::unique_lock lk(m_);
    for (;;) {
      if (!work_cv_.wait(lk, st, [&] { return has_task(); })) return;  // stop requested
      const std::size_t k = next_task_++;
      const auto gen = generation_.load();
      const auto ep = epoch_;
      lk.unlock();
      result res = build(ep, k, gen, &st);
      lk.lock();
      if (gen == generation_ && !st.stop_requested()) {
        ready_.emplace(k, std::move(res));
        ready_cv_.notify_all();
      }
    }
  }

  // Builds batch k of `epoch` from order_ (read under the generation it was taken with: order_ is only
  // replaced by start_epoch, which bumps the generation, and a stale batch is discarded). Stops early when
  // the generation changes or a stop is requested.
  result build(std::int64_t epoch, std::size_t k, std::uint64_t gen, const std::stop_token* st) {
    result res;
    loader_batch& b = res.b;
    std::vector<std::size_t> idx;
    {
      std::lock_guard lk(m_);
      if (gen != generation_) return res;
      const auto lo = k * opt_.batch_size, hi = std::min(order_.size(), lo + opt_.batch_size);
      idx.assign(order_.begin() + static_cast<std::ptrdiff_t>(lo), order_.begin() + static_cast<std::ptrdiff_t>(hi));
    }
    const auto B = static_cast<std::int64_t>(idx.size());
    const std::int64_t V = opt_.two_views ? 2 : 1;
    b.epoch = epoch;
    b.index = static_cast<std::int64_t>(k);
    b.items = B;
    b.views = V;
    b.n = B * V;
    b.indices = idx;
    b.labels.resize(static_cast<std::size_t>(b.n));
    b.domains.resize(static_cast<std::size_t>(b.n));
    b.ids.resize(static_cast<std::size_t>(b.n));
    for (std::int64_t j = 0; j < B; ++j) {
      if ((st && st->stop_requested()) || generation_ != gen) return res;
      const std::size_t i = idx[static_cast<std::size_t>(j)];
      try {
        rng r(detail::loader_seed(opt_.seed, static_cast<std::uint64_t>(epoch), i));
        std::array<sample, 2> s;
        if (V == 1) {
          s[0] = ds_.get(i, r);
        } else if constexpr (two_view_dataset<D>) {
          s = ds_.get_views(i, r);
        } else {
          s[0] = ds_.get(i, r);
          s[1] = ds_.get(i, r);
        }
        for (std::int64_t v = 0; v < V; ++v) place(b, s[static_cast<std::size_t>(v)], v * B + j, i);
      } catch (...) {
        res.error = std::current_exception();
        res.failed_item = i;
        return res;
      }
    }
    return res;
  }

  static void place(loader_batch& b, const sample& s, std::int64_t pos, std::size_t i) {
    const auto& im = s.img;
    MAMMOCL_CHECK(im.rows > 0 && im.cols > 0 && im.pixels.size() == static_cast<std::size_t>(im.rows * im.cols),
                  shape_error, "loader: item ", i, " gave a ", im.rows, " x ", im.cols, " image with ", im.pixels.size(),
                  " pixels");
    if (b.data.empty()) {
      b.rows = im.rows;
      b.cols = im.cols;
      b.data.resize(static_cast<std::size_t>(b.n * b.rows * b.cols));
    }
    MAMMOCL_CHECK(im.rows == b.rows && im.cols == b.cols, shape_error, "loader: item ", i, " is ", im.rows, " x ", im.cols,
                  " but the batch's images are ", b.rows, " x ", b.cols);
    std::memcpy(b.data.data() + pos * b.rows * b.cols, im.pixels.data(), im.pixels.size() * sizeof(float));
    const auto p = static_cast<std::size_t>(pos);
    b.labels[p] = s.label;
    b.domains[p] = s.domain;
    b.ids[p] = s.id >= 0 ? s.id : static_cast<std::int64_t>(i);
  }

  D ds_;
  loader_options opt_;
  std::mutex m_;
  std::condition_variable_any work_cv_;   // workers: a task is available (or stop)
  std::condition_variable ready_cv_;      // consumer: a batch is ready
  std::atomic<std::uint64_t> generation_{0};
  std::int64_t epoch_ = 0;
  std::vector<std::size_t> order_;
  std::size_t n_batches_ = 0, next_task_ = 0, consumed_ = 0;
  bool active_ = false;
  std::map<std::size_t, result> ready_;
  std::vector<std::jthread> threads_;  // last: destroyed (joined) first
};

/// The trainer's view of a loader (`data::BatchSource`, data/batch.hpp): `get_batch({stage, epoch, index,
/// views})` returns batch `index` of loader epoch `stage * 1000003 + epoch`, from a single-view or a
/// two-view loader over the same dataset and options (each created on first use, with its workers
/// prefetching while the model trains). The trainer asks for the batches of an epoch in order, which the
/// loaders deliver as they prefetch; any other request (a resume in the middle of an epoch) restarts that
/// epoch and skips to the batch, so the result is the same batch either way.
template <loader_dataset D>
class loader_source {
 public:
  /// `opt.two_views` is ignored: the request says how many views it wants.
  loader_source(D dataset, const loader_options& opt) : ds_(std::move(dataset)), opt_(opt) {}

  [[nodiscard]] std::int64_t batches_per_epoch() const {
    const auto n = ds_.size(), b = opt_.batch_size;
    return static_cast<std::int64_t>(opt_.drop_last ? n / b : (n + b - 1) / b);
  }

  [[nodiscard]] batch get_batch(const batch_request& r) {
    MAMMOCL_EXPECTS(r.views == 1 || r.views == 2, "loader_source: ", r.views, " views requested; 1 or 2 are supported");
    MAMMOCL_EXPECTS(r.index >= 0 && r.index < batches_per_epoch(), "loader_source: batch ", r.index, " outside [0, ",
                    batches_per_epoch(), ")");
    const int v = r.views - 1;
    if (!loaders_[v]) {
      loader_options o = opt_;
      o.two_views = r.views == 2;
      loaders_[v] = std::make_unique<loader<D>>(ds_, o);
    }
    loader<D>& ld = *loaders_[v];
    const std::int64_t epoch = static_cast<std::int64_t>(r.stage) * 1000003 + r.epoch;
    if (epoch != epoch_[v] || r.index != next_[v]) {
      ld.start_epoch(epoch);
      epoch_[v] = epoch;
      for (next_[v] = 0; next_[v] < r.index; ++next_[v]) (void)ld.next();
    }
    std::optional<loader_batch> lb = ld.next();
    ++next_[v];
    MAMMOCL_CHECK(lb.has_value(), config_error, "loader_source: the loader ended epoch ", epoch, " before batch ", r.index);
    batch b;
    b.samples = lb->items;
    b.views = lb->views;
    b.height = lb->rows;
    b.width = lb->cols;
    b.images = std::move(lb->data);
    const auto items = static_cast<std::size_t>(lb->items);
    b.labels.assign(lb->labels.begin(), lb->labels.begin() + static_cast<std::ptrdiff_t>(items));
    b.domains.assign(lb->domains.begin(), lb->domains.begin() + static_cast<std::ptrdiff_t>(items));
    b.ids.assign(lb->ids.begin(), lb->ids.begin() + static_cast<std::ptrdiff_t>(items));
    return b;
  }

 private:
  D ds_;
  loader_options opt_;
  std::unique_ptr<loader<D>> loaders_[2];
  std::int64_t epoch_[2] = {-1, -1};
  std::int64_t next_[2] = {0, 0};
};

}  // namespace mammocl::data
