#pragma once
/// `data::batch`: what a data source hands to the trainer, and the `BatchSource` concept the trainer is
/// written against. A batch lives on the host; the trainer copies it to the backend.
///
/// Layout: `images` holds `views * samples` single- or multi-channel images, NCHW, **view-major**: the
/// first `samples` images are view 0 of every sample, the next `samples` view 1, and so on (HobbitLong's
/// `torch.cat([images[0], images[1]], dim=0)`), so that batch-norm statistics are taken over all views
/// together. `labels`, `domains` and `ids` have one entry per sample (not per view).
///
/// A source must be deterministic: `get_batch(req)` is a pure function of the request (and the source's
/// own seed), whatever happened before. This is what lets a crashed training resume in the middle of an
/// epoch and end with exactly the weights of an uninterrupted run.
#include <concepts>
#include <cstdint>
#include <vector>

#include "mammocl/core/error.hpp"
#include "mammocl/core/shape.hpp"

namespace mammocl::data {

/// Which batch the trainer wants.
struct batch_request {
  int stage = 0;            ///< training stage (0-based); sources may ignore it
  int epoch = 0;            ///< epoch within the stage (0-based): selects the shuffle
  std::int64_t index = 0;   ///< batch within the epoch, in [0, batches_per_epoch())
  int views = 1;            ///< 1, or 2 for SupCon (two independently augmented views of each sample)
};

/// One batch on the host.
struct batch {
  std::vector<float> images;        ///< (views·samples, channels, height, width), view-major
  index_t samples = 0, views = 1, channels = 1, height = 0, width = 0;
  std::vector<int> labels;          ///< class of each sample, in [0, classes)
  std::vector<int> domains;         ///< 0 (A, without the LUT) or 1 (B, with it), per sample
  std::vector<std::int64_t> ids;    ///< source item of each sample (pairs of one image share an id)

  /// Shape of `images` as a tensor.
  [[nodiscard]] shape image_shape() const { return shape{samples * views, channels, height, width}; }

  /// Throws shape_error naming the field when the sizes disagree.
  void validate() const {
    MAMMOCL_EXPECTS(samples >= 1 && views >= 1 && channels >= 1 && height >= 1 && width >= 1, "batch: samples (",
                    samples, "), views (", views, "), channels (", channels, "), height (", height, ") and width (",
                    width, ") must all be >= 1");
    const auto expected = static_cast<std::size_t>(samples * views * channels * height * width);
    MAMMOCL_EXPECTS(images.size() == expected, "batch: images holds ", images.size(), " values, expected ", expected,
                    " for ", image_shape());
    MAMMOCL_EXPECTS(labels.size() == static_cast<std::size_t>(samples), "batch: ", labels.size(), " labels for ",
                    samples, " samples");
    MAMMOCL_EXPECTS(domains.empty() || domains.size() == static_cast<std::size_t>(samples), "batch: ", domains.size(),
                    " domains for ", samples, " samples");
  }
};

/// A deterministic source of training or evaluation batches.
template <class S>
concept BatchSource = requires(S& s, const S& cs, const batch_request& r) {
  { cs.batches_per_epoch() } -> std::convertible_to<std::int64_t>;
  { s.get_batch(r) } -> std::same_as<batch>;
};

}  // namespace mammocl::data
