#pragma once
/// Paired A/B patches of a dataset for the LUT-invariance study (METHOD.md §2.1-2.3), and a BatchSource
/// over them.
///
/// Domain A of an image is the image normalised to [0, 1] (`image::normalized`); domain B is the same image
/// through the per-image sigmoid VOI LUT: `estimate_lut_params` on the breast mask (centre = median,
/// width = p99 - p1 of the breast pixels), then `apply_lut_domain`. Both versions are sampled by
/// `sample_patches` with the same options and the same random stream; the sampler's acceptance tests read
/// only the masks, so patch k of A and patch k of B have the same centre, the same label and the same
/// window. That is checked for every patch (numeric_error otherwise).
///
/// The LUT is applied to the whole image before the window is cut and resized, so for a resized patch
/// B is resize(LUT(window)), which is not LUT(resize(window)); and the sampler's zero padding outside the
/// image stays 0 in both domains (not LUT(0)). Without resizing, every pixel of the window that lies inside
/// the image satisfies B = LUT(A) bit for bit.
///
///   data::paired_patch_options o;
///   o.sampler.patch_size = 128; o.sampler.output_size = 32; o.sampler.per_roi = 4; o.sampler.per_image = 3;
///   const auto ds = data::open_dataset("shared/data/mini-mias");           // data/open_dataset.hpp
///   data::paired_patches pp = data::make_paired_patches(ds.records, o);
///   auto plan = data::make_domain_plan(pp.source_items(), {});             // data/domains.hpp
///   data::paired_patch_source train(pp, plan.train, 32, true, 1);
///
/// docs/data-paired-patches.md has the conventions, the skipping rules, the errors and measured numbers.
#include <algorithm>
#include <array>
#include <cstdint>
#include <exception>
#include <filesystem>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "mammocl/core/error.hpp"
#include "mammocl/core/rng.hpp"
#include "mammocl/data/annotation.hpp"
#include "mammocl/data/batch.hpp"
#include "mammocl/data/csv.hpp"
#include "mammocl/data/domains.hpp"
#include "mammocl/data/image.hpp"
#include "mammocl/data/image_io.hpp"
#include "mammocl/data/mask_ops.hpp"
#include "mammocl/data/patches.hpp"
#include "mammocl/data/phantom.hpp"
#include "mammocl/data/resize.hpp"
#include "mammocl/data/segmentation.hpp"
#include "mammocl/data/voi_lut.hpp"

namespace mammocl::data {

/// Every patch of a dataset in both domains: A = the normalised image ([0,1]), B = the same image through
/// the per-image sigmoid VOI LUT (estimate_lut_params on the breast mask, apply_lut_domain). Patch k of A
/// and patch k of B have the same centre (the sampler's acceptance depends only on the masks).
struct paired_patches {
  int side = 0;                                   ///< square patch side after resizing (patch_options::output_size)
  std::vector<float> a, b;                        ///< side*side floats per patch, row-major, values in [0,1]
  std::vector<int> label;                         ///< patch_class index 0..4
  std::vector<std::int64_t> image;                ///< per patch: index into `images`
  std::vector<std::array<std::int64_t, 2>> center;  ///< per patch: centre (row, col) in its source image (both domains)
  std::vector<std::string> images;                ///< per image: its name (record.image_path, or "phantom-<i>")
  std::vector<std::string> patients;              ///< per image: patient id
  std::map<std::string, lut_domain_params> lut;   ///< per image name: the domain-B window
  dataset_report report;                          ///< images left out and why (data/csv.hpp's dataset_report)

  /// Number of patches.
  [[nodiscard]] std::size_t size() const noexcept { return label.size(); }
  /// Floats per patch: side * side.
  [[nodiscard]] std::size_t pixels() const noexcept {
    return static_cast<std::size_t>(side) * static_cast<std::size_t>(side);
  }
  /// The side*side pixels of patch k in domain d (shape_error for k outside [0, size())).
  [[nodiscard]] const float* get(std::int64_t k, domain d) const {
    MAMMOCL_EXPECTS(k >= 0 && static_cast<std::size_t>(k) < size(), "paired_patches::get: patch ", k,
                    " outside [0, ", size(), ")");
    return (d == domain::A ? a : b).data() + pixels() * static_cast<std::size_t>(k);
  }
  /// patients[image[k]] (shape_error for k outside [0, size())).
  [[nodiscard]] std::string patient_of(std::int64_t k) const {
    MAMMOCL_EXPECTS(k >= 0 && static_cast<std::size_t>(k) < size(), "paired_patches::patient_of: patch ", k,
                    " outside [0, ", size(), ")");
    return patients[static_cast<std::size_t>(image[static_cast<std::size_t>(k)])];
  }
  /// {k, label[k], patient_of(k)} for every patch, in patch order: the input of make_domain_plan.
  [[nodiscard]] std::vector<source_item> source_items() const {
    std::vector<source_item> out;
    out.reserve(size());
    for (std::size_t k = 0; k < size(); ++k)
      out.push_back({static_cast<std::int64_t>(k), label[k], patients[static_cast<std::size_t>(image[k])]});
    return out;
  }
  /// Patches per class (index = patch_class).
  [[nodiscard]] std::array<std::int64_t, 5> class_counts() const {
    std::array<std::int64_t, 5> n{};
    for (int l : label) ++n[static_cast<std::size_t>(l)];
    return n;
  }
};

/// How images become paired patches.
struct paired_patch_options {
  patch_options sampler;                 ///< data/patches.hpp (patch_size = window, output_size = side, per_roi, per_image, seed, target_height)
  segmentation_options segmentation;     ///< data/segmentation.hpp (breast mask of dataset images; the phantom has its own)
};

/// Reads one image file of a record (PGM/PNG through read_image by default; data/open_dataset_dicom.hpp
/// provides one that also reads DICOM).
using image_reader = std::function<image(const std::filesystem::path&)>;

/// read_image from data/image_io.hpp (PGM and PNG; a DICOM file is an io_error saying how to read it).
[[nodiscard]] inline image_reader default_image_reader() {
  return [](const std::filesystem::path& p) { return read_image(p); };
}

/// Progress callback: (images done, images total).
using progress_fn = std::function<void(std::size_t, std::size_t)>;

namespace detail {

/// Samples both versions of one image with the same stream, checks that the centres and labels agree and
/// appends the pairs to `out` as image `image_index`.
inline void append_pairs(paired_patches& out, const image& img_a, const image& img_b, const case_record& rec,
                         const std::vector<mask>& rois, const mask& breast, const patch_options& o,
                         std::uint64_t stream, std::int64_t image_index) {
  const auto pa = sample_patches(img_a, rec, rois, breast, o, stream);
  const auto pb = sample_patches(img_b, rec, rois, breast, o, stream);
  MAMMOCL_CHECK(pa.size() == pb.size(), numeric_error, "make_paired_patches: ", rec.image_path, ": ", pa.size(),
                " patches in domain A but ", pb.size(), " in domain B (the sampler must not look at pixels)");
  for (std::size_t j = 0; j < pa.size(); ++j) {
    MAMMOCL_CHECK(pa[j].center_row == pb[j].center_row && pa[j].center_col == pb[j].center_col &&
                      pa[j].label == pb[j].label,
                  numeric_error, "make_paired_patches: ", rec.image_path, ": patch ", j, " is centred at (",
                  pa[j].center_row, ", ", pa[j].center_col, ") in domain A but at (", pb[j].center_row, ", ",
                  pb[j].center_col, ") in domain B");
    out.a.insert(out.a.end(), pa[j].pixels.pixels.begin(), pa[j].pixels.pixels.end());
    out.b.insert(out.b.end(), pb[j].pixels.pixels.begin(), pb[j].pixels.pixels.end());
    out.label.push_back(pa[j].label);
    out.image.push_back(image_index);
    out.center.push_back({pa[j].center_row, pa[j].center_col});
  }
}

inline int patch_side(const patch_options& o) { return o.output_size > 0 ? o.output_size : o.patch_size; }

/// Rethrows the current mammocl error with `prefix` in front of its sentence, keeping its type.
[[noreturn]] inline void rethrow_with(const std::string& prefix) {
  try {
    throw;
  } catch (const shape_error& e) {
    throw shape_error(prefix + e.message(), e.file(), e.line());
  } catch (const config_error& e) {
    throw config_error(prefix + e.message(), e.file(), e.line());
  } catch (const io_error& e) {
    throw io_error(prefix + e.message(), e.file(), e.line());
  } catch (const numeric_error& e) {
    throw numeric_error(prefix + e.message(), e.file(), e.line());
  }
}

/// The mask of an ROI given by a mask file: pixels whose value is > 0 (CBIS-DDSM masks hold 0 and 255),
/// resized (mask rule of data/resize.hpp) when the file's size differs from the image's.
inline mask read_roi_mask(const image_reader& read, const std::string& path, std::int64_t rows, std::int64_t cols,
                          dataset_report& report, const std::string& image_name) {
  const image m = read(path);
  mask out(m.rows, m.cols);
  for (std::size_t i = 0; i < m.pixels.size(); ++i) out.values[i] = m.pixels[i] > 0.0f ? 1 : 0;
  if (m.rows != rows || m.cols != cols) {
    report.warnings.push_back(image_name + ": ROI mask " + path + " is " + std::to_string(m.rows) + " x " +
                              std::to_string(m.cols) + ", the image " + std::to_string(rows) + " x " +
                              std::to_string(cols) + "; resized to the image");
    out = resize(out, rows, cols);
  }
  return out;
}

/// True when some pixel of `m` lies inside the box of `b`.
inline bool any_in_box(const mask& m, const breast_region& b) {
  for (std::int64_t r = b.top; r < b.bottom; ++r)
    for (std::int64_t c = b.left; c < b.right; ++c)
      if (m(r, c)) return true;
  return false;
}

}  // namespace detail

/// Paired patches of a reader's records. For each record: read, normalise to [0,1] (image::normalized),
/// segment the breast, rasterize the located ROIs (data/mask_ops.hpp rasterize; an ROI given by a mask file
/// is read with `read`, pixels > 0), estimate the LUT window on the breast, make domain B, sample with the
/// same stream (the record's index) on both versions, check equal centres.
/// Left out and reported in `report.skipped` (the image is not in `images`): a record with an ROI that has
/// no location (located() == false); an image whose segmentation finds no breast; an image whose breast is
/// flat (p1 == p99); an ROI with no pixel inside the image, or (with crop_to_breast) none inside the
/// breast's bounding box. Any other failure is an error of the same type naming the image:
/// "make_paired_patches: record <i> (<image_path>): <the error's sentence>".
[[nodiscard]] inline paired_patches make_paired_patches(const std::vector<case_record>& records,
                                                        const paired_patch_options& opt,
                                                        const image_reader& read = default_image_reader(),
                                                        const progress_fn& progress = {}) {
  MAMMOCL_CHECK(static_cast<bool>(read), config_error, "make_paired_patches: the image reader is empty");
  paired_patches out;
  out.side = detail::patch_side(opt.sampler);
  for (std::size_t i = 0; i < records.size(); ++i) {
    const case_record& rec = records[i];
    const std::string& name = rec.image_path;
    auto skip = [&](const std::string& why) { out.report.skip(name, why); };
    try {
      std::string unlocated;
      for (std::size_t k = 0; k < rec.rois.size(); ++k)
        if (!rec.rois[k].located())
          unlocated += (unlocated.empty() ? "" : ", ") + std::to_string(k) + " (" + rec.rois[k].description + ")";
      if (!unlocated.empty()) {
        skip("ROI " + unlocated + " has no location, so no patch can be labelled near it");
      } else {
        const image a = read(name).normalized();
        breast_region br;
        bool segmented = true;
        try {
          br = segment_breast(a, opt.segmentation);
        } catch (const numeric_error& e) {
          skip("breast segmentation failed: " + e.message());
          segmented = false;
        }
        if (segmented && br.region.count() == 0) {
          skip("breast segmentation gave an empty mask");
          segmented = false;
        }
        if (segmented) {
          std::vector<mask> rois;
          std::string bad;
          for (std::size_t k = 0; k < rec.rois.size() && bad.empty(); ++k) {
            const roi& r = rec.rois[k];
            rois.push_back(r.mask_path.empty()
                               ? rasterize(r, a.rows, a.cols)
                               : detail::read_roi_mask(read, r.mask_path, a.rows, a.cols, out.report, name));
            if (rois.back().count() == 0)
              bad = "ROI " + std::to_string(k) + " (" + r.description + ") has no pixel inside the " +
                    std::to_string(a.rows) + " x " + std::to_string(a.cols) + " image";
            else if (opt.sampler.crop_to_breast && !detail::any_in_box(rois.back(), br))
              bad = "ROI " + std::to_string(k) + " (" + r.description + ") lies outside the breast's bounding box";
          }
          std::optional<lut_domain_params> p;
          if (bad.empty()) {
            try {
              p = estimate_lut_params(a, br.region);
            } catch (const numeric_error& e) {
              bad = e.message();
            }
          }
          if (!bad.empty()) {
            skip(bad);
          } else {
            const image b = apply_lut_domain(a, *p);
            const auto idx = static_cast<std::int64_t>(out.images.size());
            detail::append_pairs(out, a, b, rec, rois, br.region, opt.sampler, static_cast<std::uint64_t>(i), idx);
            out.images.push_back(name);
            out.patients.push_back(rec.patient_id.empty() ? name : rec.patient_id);
            out.lut[name] = *p;
          }
        }
      }
    } catch (const error&) {
      detail::rethrow_with("make_paired_patches: record " + std::to_string(i) + " (" + name + "): ");
    }
    if (progress) progress(i + 1, records.size());
  }
  return out;
}

/// Paired patches of `count` phantom mammograms (data/phantom.hpp, indices 0..count-1, one patient each,
/// named "phantom-<i>"); the same construction as above with the phantom's own lesion and breast masks
/// (no segmentation), sampled with stream i. config_error for count < 0.
[[nodiscard]] inline paired_patches make_phantom_paired_patches(const phantom_options& phantom, int count,
                                                                const patch_options& sampler,
                                                                const progress_fn& progress = {}) {
  MAMMOCL_CHECK(count >= 0, config_error, "make_phantom_paired_patches: count ", count, " must be >= 0");
  paired_patches out;
  out.side = detail::patch_side(sampler);
  for (int i = 0; i < count; ++i) {
    phantom_case pc = generate_phantom(phantom, static_cast<std::uint64_t>(i));
    // The phantom is drawn in [0, 1] already; normalized() would be the identity.
    pc.img.meta.min_value = 0.0;
    pc.img.meta.max_value = 1.0;
    const std::string name = "phantom-" + std::to_string(i);
    const lut_domain_params p = estimate_lut_params(pc.img, pc.breast);
    const image b = apply_lut_domain(pc.img, p);
    detail::append_pairs(out, pc.img, b, pc.record, pc.lesion_masks, pc.breast, sampler, static_cast<std::uint64_t>(i),
                         static_cast<std::int64_t>(i));
    out.images.push_back(name);
    out.patients.push_back(name);
    out.lut[name] = p;
    if (progress) progress(static_cast<std::size_t>(i + 1), static_cast<std::size_t>(count));
  }
  return out;
}

/// A BatchSource (data/batch.hpp) over a set of domain items (data/domains.hpp) of a paired_patches.
/// training = true: shuffled per (stage, epoch) from `seed`, full batches only, each view independently
/// flipped (h, v) and rotated by k*90 degrees (the class does not depend on the orientation); false: fixed
/// order, no augmentation, last batch partial. Sample ids (batch::ids) are the domain_item::pair ids, labels
/// the items' labels, domains the items' domains. get_batch is a pure function of the request.
/// The source keeps a pointer to `s`, which must outlive it.
class paired_patch_source {
 public:
  /// config_error for batch < 1 or an item outside the store.
  paired_patch_source(const paired_patches& s, std::vector<domain_item> set, int batch, bool training,
                      std::uint64_t seed)
      : s_(&s), set_(std::move(set)), batch_(batch), training_(training), seed_(seed) {
    MAMMOCL_CHECK(batch_ >= 1, config_error, "paired_patch_source: batch size ", batch_, " must be >= 1");
    for (std::size_t i = 0; i < set_.size(); ++i)
      MAMMOCL_CHECK(set_[i].item >= 0 && static_cast<std::size_t>(set_[i].item) < s.size(), config_error,
                    "paired_patch_source: entry ", i, " names patch ", set_[i].item, " but the store holds ", s.size());
  }

  /// Number of items.
  [[nodiscard]] std::int64_t size() const noexcept { return static_cast<std::int64_t>(set_.size()); }
  /// Training: size / batch (full batches only); evaluation: ceil(size / batch).
  [[nodiscard]] std::int64_t batches_per_epoch() const noexcept {
    return training_ ? size() / batch_ : (size() + batch_ - 1) / batch_;
  }
  /// The items, in evaluation order.
  [[nodiscard]] const std::vector<domain_item>& items() const noexcept { return set_; }

  /// The position in items() of each sample of batch `index` of (stage, epoch): the shuffled order in
  /// training, the items' order otherwise.
  [[nodiscard]] std::vector<std::int64_t> order(int stage, int epoch) const {
    std::vector<std::int64_t> o(set_.size());
    for (std::size_t i = 0; i < o.size(); ++i) o[i] = static_cast<std::int64_t>(i);
    if (training_) {
      rng sh(seed_ * 0x9E3779B97F4A7C15ULL + static_cast<std::uint64_t>(stage) * 1000003ULL +
             static_cast<std::uint64_t>(epoch));
      for (std::size_t i = o.size(); i > 1; --i) std::swap(o[i - 1], o[sh.below(i)]);
    }
    return o;
  }

  /// The batch of the request (shape_error for an index outside [0, batches_per_epoch())).
  [[nodiscard]] batch get_batch(const batch_request& r) const {
    MAMMOCL_EXPECTS(r.index >= 0 && r.index < batches_per_epoch(), "paired_patch_source: batch ", r.index,
                    " outside [0, ", batches_per_epoch(), ")");
    MAMMOCL_EXPECTS(r.views >= 1, "paired_patch_source: views ", r.views, " must be >= 1");
    const std::vector<std::int64_t> ord = order(r.stage, r.epoch);
    const std::int64_t from = r.index * batch_, n = std::min<std::int64_t>(batch_, size() - from);
    const int side = s_->side;
    const std::size_t px = s_->pixels();
    batch b;
    b.samples = n;
    b.views = r.views;
    b.height = b.width = side;
    b.images.resize(px * static_cast<std::size_t>(n * r.views));
    for (std::int64_t j = 0; j < n; ++j) {
      const std::int64_t sample = ord[static_cast<std::size_t>(from + j)];
      const domain_item& it = set_[static_cast<std::size_t>(sample)];
      const float* src = s_->get(it.item, it.dom);
      b.labels.push_back(it.label);
      b.domains.push_back(static_cast<int>(it.dom));
      b.ids.push_back(it.pair);
      for (int v = 0; v < r.views; ++v) {
        float* dst = b.images.data() + px * static_cast<std::size_t>(v * n + j);
        if (!training_) {
          std::copy(src, src + px, dst);
          continue;
        }
        // One stream per (stage, epoch, sample, view): views and epochs are augmented independently.
        rng g(seed_ ^ (static_cast<std::uint64_t>(r.stage) << 56) ^ (static_cast<std::uint64_t>(r.epoch) << 40) ^
              (static_cast<std::uint64_t>(sample) << 8) ^ static_cast<std::uint64_t>(v));
        const bool fh = g.below(2) == 1, fv = g.below(2) == 1;
        const int rot = static_cast<int>(g.below(4));
        for (int y = 0; y < side; ++y)
          for (int x = 0; x < side; ++x) {
            int sy = y, sx = x;
            for (int t = 0; t < rot; ++t) {
              const int ny = sx, nx = side - 1 - sy;
              sy = ny;
              sx = nx;
            }
            if (fh) sx = side - 1 - sx;
            if (fv) sy = side - 1 - sy;
            dst[y * side + x] = src[sy * side + sx];
          }
      }
    }
    return b;
  }

 private:
  const paired_patches* s_;
  std::vector<domain_item> set_;
  int batch_;
  bool training_;
  std::uint64_t seed_;
};
static_assert(BatchSource<paired_patch_source>);

}  // namespace mammocl::data
