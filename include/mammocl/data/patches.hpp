#pragma once
/// Patch sampling as Shen et al. do it for CBIS-DDSM (lishen/end2end-all-conv,
/// `ddsm_train/sample_patches_combined.py`; METHOD.md §2.2):
///  1. optionally resize the image (and every mask) to `target_height`, keeping the aspect ratio;
///  2. optionally crop image and masks to the bounding box of the breast mask;
///  3. pad by patch_size / 2 on every side with zeros (Shen's add_img_margins), so that centres near the
///     edge have a full window; the padding is virtual here (reads outside the image give 0);
///  4. per ROI: centres drawn uniformly in the bounding box of the ROI's largest (8-connected) component;
///     a centre is accepted when overlap / ROI-area > cutoff OR overlap / patch-area > cutoff, starting
///     at `pos_cutoff` (0.75); after 1000 rejected draws in a row the cut-off drops by 0.05 (and stays
///     lowered for the rest of that ROI); `per_roi` (30) patches per ROI, labelled by the ROI's class;
///  5. per image: up to `per_image` (30) background patches (label 0), centres uniform over the image
///     and inside the breast, accepted when for every ROI both ratios are <= `neg_cutoff` (0.35);
///  6. optionally resize each patch to `output_size`.
/// The window of a patch of side s centred at (r, c) is rows [r - s/2, r - s/2 + s) (s/2 rounded down),
/// and the same for columns; ROI-area counts every pixel of the ROI mask, as Shen's code does.
/// Each ROI and the background use their own rng stream derived from (seed, stream, ROI index), so the
/// patches of one image do not depend on the other images sampled before it.
#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "mammocl/core/error.hpp"
#include "mammocl/core/rng.hpp"
#include "mammocl/data/annotation.hpp"
#include "mammocl/data/image.hpp"
#include "mammocl/data/mask_ops.hpp"
#include "mammocl/data/resize.hpp"

namespace mammocl::data {

/// Options of `sample_patches` (defaults from Shen et al.'s sampling script, METHOD.md §2.2).
struct patch_options {
  int patch_size = 256;              ///< side of the window cut from the (rescaled) image
  int output_size = 0;               ///< side of the returned patches; 0 keeps patch_size
  std::int64_t target_height = 0;    ///< resize the image to this height first; 0 keeps the image as it is
  bool crop_to_breast = true;        ///< crop to the breast mask's bounding box before padding
  bool pad = true;                   ///< pad by patch_size / 2 (add_img_margins)
  int per_roi = 30;                  ///< lesion patches per ROI (nb_abn)
  int per_image = 30;                ///< background patches per image, at most (nb_bkg)
  double pos_cutoff = 0.75;          ///< initial lesion overlap cut-off
  double neg_cutoff = 0.35;          ///< background overlap cut-off
  double cutoff_step = 0.05;         ///< decrease of pos_cutoff after `max_tries` rejected draws in a row
  int max_tries = 1000;              ///< rejected draws in a row before the cut-off drops
  int max_background_tries = 0;      ///< draws before giving up on background patches; 0 = 1000 * per_image
  std::uint64_t seed = 12345;        ///< Shen uses RandomState(12345)
};

/// One sampled patch.
struct patch {
  image pixels;                      ///< size x size (output_size when set), values as in the source image
  int label = 0;                     ///< patch_class index: 0 normal, 1..4 lesions (annotation.hpp order)
  std::string source;                ///< the image it came from
  std::int64_t center_row = 0;       ///< centre in the coordinates of the image passed in (before rescale)
  std::int64_t center_col = 0;
  int roi = -1;                      ///< index of the ROI a lesion patch was drawn for; -1 for background
  double cutoff = 0;                 ///< cut-off it was accepted under (pos for lesions, neg for background)
  double roi_ratio = 0;              ///< overlap / ROI area (lesion patches: with its ROI; background: max over ROIs)
  double patch_ratio = 0;            ///< overlap / patch area (same convention)
};

namespace detail {

/// Integer in [lo, hi) (hi > lo).
inline std::int64_t draw_between(rng& r, std::int64_t lo, std::int64_t hi) {
  return lo + static_cast<std::int64_t>(r.below(static_cast<std::uint64_t>(hi - lo)));
}

inline std::uint64_t stream_seed(std::uint64_t seed, std::uint64_t stream, std::uint64_t part) {
  return seed * 0x9E3779B97F4A7C15ULL ^ (stream + 1) * 0xD1B54A32D192ED03ULL ^ (part + 1) * 0xC2B2AE3D27D4EB4FULL;
}

}  // namespace detail

/// Samples lesion and background patches from `img` (see the file comment). `rois[k]` is the mask of a
/// lesion of class `labels[k]` (same size as img); `breast` is the breast mask (same size), or a mask of
/// size 0 x 0 to treat the whole image as breast. `stream` separates the random streams of different
/// images sampled with the same options (use the image's index).
/// Errors: shape_error when a mask's size differs from the image's, or when the patch is larger than the
/// (padded) image; config_error for bad options, a label outside 1..4, or a ROI with no pixels (after the
/// rescale and crop) — each naming the source and the sizes.
[[nodiscard]] inline std::vector<patch> sample_patches(const image& img, const std::vector<mask>& rois,
                                                       const std::vector<patch_class>& labels, const mask& breast,
                                                       const patch_options& o, std::uint64_t stream = 0,
                                                       const std::string& source_name = "") {
  const std::string src = !source_name.empty() ? source_name : (img.meta.source.empty() ? "image" : img.meta.source);
  MAMMOCL_CHECK(o.patch_size >= 2, config_error, "sample_patches: patch_size ", o.patch_size, " for ", src,
                " must be at least 2");
  MAMMOCL_CHECK(o.output_size >= 0 && o.target_height >= 0 && o.per_roi >= 0 && o.per_image >= 0 &&
                    o.max_tries >= 1 && o.max_background_tries >= 0,
                config_error, "sample_patches: output_size, target_height, per_roi, per_image, max_background_tries must be >= 0 "
                "and max_tries >= 1 (", src, ")");
  MAMMOCL_CHECK(o.pos_cutoff > 0 && o.pos_cutoff <= 1 && o.neg_cutoff >= 0 && o.neg_cutoff < 1 && o.cutoff_step > 0,
                config_error, "sample_patches: cut-offs pos ", o.pos_cutoff, " (expected (0, 1]), neg ", o.neg_cutoff,
                " (expected [0, 1)) and step ", o.cutoff_step, " (expected > 0) for ", src);
  MAMMOCL_CHECK(rois.size() == labels.size(), config_error, "sample_patches: ", rois.size(), " ROI masks but ",
                labels.size(), " labels for ", src);
  MAMMOCL_CHECK(img.rows > 0 && img.cols > 0, shape_error, "sample_patches: the image ", src, " is empty (",
                img.rows, " x ", img.cols, ")");
  for (std::size_t k = 0; k < rois.size(); ++k) {
    MAMMOCL_CHECK(rois[k].rows == img.rows && rois[k].cols == img.cols, shape_error, "sample_patches: ROI ", k,
                  " mask of ", src, " is ", rois[k].rows, " x ", rois[k].cols, "; expected the image size ", img.rows,
                  " x ", img.cols);
    MAMMOCL_CHECK(labels[k] != patch_class::normal, config_error, "sample_patches: ROI ", k, " of ", src,
                  " has the label 0 (normal); a ROI must be a lesion class 1..4");
  }
  const bool has_breast = breast.rows != 0 || breast.cols != 0;
  MAMMOCL_CHECK(!has_breast || (breast.rows == img.rows && breast.cols == img.cols), shape_error,
                "sample_patches: breast mask of ", src, " is ", breast.rows, " x ", breast.cols,
                "; expected the image size ", img.rows, " x ", img.cols, " (or 0 x 0 for none)");

  // 1. Rescale.
  image work = img;
  std::vector<mask> work_rois = rois;
  mask work_breast = breast;
  double scale_r = 1, scale_c = 1;
  if (o.target_height > 0 && o.target_height != img.rows) {
    const auto cols = std::max<std::int64_t>(
        1, static_cast<std::int64_t>(std::llround(static_cast<double>(img.cols) * o.target_height / img.rows)));
    work = resize(img, o.target_height, cols);
    for (auto& m : work_rois) m = resize(m, o.target_height, cols);
    if (has_breast) work_breast = resize(breast, o.target_height, cols);
    scale_r = static_cast<double>(o.target_height) / img.rows;
    scale_c = static_cast<double>(cols) / img.cols;
  }
  // 2. Crop to the breast.
  std::int64_t off_r = 0, off_c = 0;
  if (has_breast && o.crop_to_breast) {
    const auto bb = bounding_box(work_breast);
    MAMMOCL_CHECK(bb.has_value(), config_error, "sample_patches: the breast mask of ", src, " (", work.rows, " x ",
                  work.cols, ") has no pixels");
    work = crop(work, *bb);
    for (auto& m : work_rois) m = crop(m, *bb);
    work_breast = crop(work_breast, *bb);
    off_r = bb->top, off_c = bb->left;
  }
  // 3. Padding (virtual): the padded image is (rows + 2 pad) x (cols + 2 pad).
  const std::int64_t s = o.patch_size, half = s / 2, pad = o.pad ? half : 0;
  const std::int64_t prow = work.rows + 2 * pad, pcol = work.cols + 2 * pad;
  MAMMOCL_CHECK(s <= prow && s <= pcol, shape_error, "sample_patches: patch size ", s, " is larger than the ", prow,
                " x ", pcol, " image ", src, " (", work.rows, " x ", work.cols, " padded by ", pad, ")");

  std::vector<mask_integral> integ;
  integ.reserve(work_rois.size());
  for (std::size_t k = 0; k < work_rois.size(); ++k) {
    integ.emplace_back(work_rois[k]);
    MAMMOCL_CHECK(integ.back().total() > 0, config_error, "sample_patches: ROI ", k, " (", class_name(labels[k]),
                  ") of ", src, " has no pixels in the ", work.rows, " x ", work.cols, " image it is sampled from");
  }
  const double patch_area = static_cast<double>(s * s);
  auto ratios = [&](std::size_t k, std::int64_t cr, std::int64_t cc) {
    // Unpadded coordinates of the window; the padding holds no ROI pixels.
    const double inter = static_cast<double>(integ[k].count(cr - half, cc - half, s, s));
    return std::array<double, 2>{inter / static_cast<double>(integ[k].total()), inter / patch_area};
  };
  auto cut = [&](std::int64_t cr, std::int64_t cc) {
    image p(s, s);
    p.meta = work.meta;
    for (std::int64_t r = 0; r < s; ++r) {
      const std::int64_t sr = cr - half + r;
      if (sr < 0 || sr >= work.rows) continue;
      for (std::int64_t c = 0; c < s; ++c) {
        const std::int64_t sc = cc - half + c;
        if (sc >= 0 && sc < work.cols) p(r, c) = work(sr, sc);
      }
    }
    if (o.output_size > 0 && o.output_size != s) p = resize(p, o.output_size, o.output_size);
    return p;
  };
  auto to_input = [&](std::int64_t v, double scale, std::int64_t off) {
    return static_cast<std::int64_t>(std::llround((static_cast<double>(v + off) + 0.5) / scale - 0.5));
  };

  std::vector<patch> out;
  // 4. Lesion patches. Centres are in unpadded coordinates; the padded image's bbox is the same box shifted.
  for (std::size_t k = 0; k < work_rois.size(); ++k) {
    rng r(detail::stream_seed(o.seed, stream, k));
    const box bb = *largest_component_box(work_rois[k]);
    double cutoff = o.pos_cutoff;
    int tries = 0;
    for (int got = 0; got < o.per_roi;) {
      const std::int64_t cr = detail::draw_between(r, bb.top, bb.bottom);
      const std::int64_t cc = detail::draw_between(r, bb.left, bb.right);
      const auto q = ratios(k, cr, cc);
      if (q[0] > cutoff || q[1] > cutoff) {
        patch p;
        p.pixels = cut(cr, cc);
        p.label = static_cast<int>(labels[k]);
        p.source = src;
        p.center_row = to_input(cr, scale_r, off_r);
        p.center_col = to_input(cc, scale_c, off_c);
        p.roi = static_cast<int>(k);
        p.cutoff = cutoff;
        p.roi_ratio = q[0];
        p.patch_ratio = q[1];
        out.push_back(std::move(p));
        ++got;
        tries = 0;
      } else if (++tries >= o.max_tries) {
        cutoff -= o.cutoff_step;
        tries = 0;
        MAMMOCL_CHECK(cutoff > 0, config_error, "sample_patches: the overlap cut-off of ROI ", k, " (",
                      class_name(labels[k]), ") of ", src, " fell to ", cutoff, " with no ", s, " x ", s,
                      " window accepted; check the ROI mask");
      }
    }
  }
  // 5. Background patches: centres inside the breast (the whole image without a breast mask).
  rng r(detail::stream_seed(o.seed, stream, ~std::uint64_t{0}));
  const long long budget = o.max_background_tries > 0 ? o.max_background_tries : 1000LL * o.per_image;
  int got = 0;
  for (long long t = 0; t < budget && got < o.per_image; ++t) {
    const std::int64_t cr = detail::draw_between(r, 0, work.rows);
    const std::int64_t cc = detail::draw_between(r, 0, work.cols);
    if (has_breast && !work_breast(cr, cc)) continue;
    double worst_roi = 0, worst_patch = 0;
    bool ok = true;
    for (std::size_t k = 0; k < work_rois.size() && ok; ++k) {
      const auto q = ratios(k, cr, cc);
      ok = q[0] <= o.neg_cutoff && q[1] <= o.neg_cutoff;
      worst_roi = std::max(worst_roi, q[0]);
      worst_patch = std::max(worst_patch, q[1]);
    }
    if (!ok) continue;
    patch p;
    p.pixels = cut(cr, cc);
    p.label = static_cast<int>(patch_class::normal);
    p.source = src;
    p.center_row = to_input(cr, scale_r, off_r);
    p.center_col = to_input(cc, scale_c, off_c);
    p.cutoff = o.neg_cutoff;
    p.roi_ratio = worst_roi;
    p.patch_ratio = worst_patch;
    out.push_back(std::move(p));
    ++got;
  }
  return out;
}

/// Same, with the ROI classes taken from `record.rois` (in the order of `roi_masks`) and the source named
/// by `record.image_path`.
[[nodiscard]] inline std::vector<patch> sample_patches(const image& img, const case_record& record,
                                                       const std::vector<mask>& roi_masks, const mask& breast,
                                                       const patch_options& o, std::uint64_t stream = 0) {
  MAMMOCL_CHECK(record.rois.size() == roi_masks.size(), config_error, "sample_patches: ", record.image_path, " has ",
                record.rois.size(), " ROIs but ", roi_masks.size(), " ROI masks");
  std::vector<patch_class> labels;
  for (const auto& r : record.rois) labels.push_back(r.label());
  return sample_patches(img, roi_masks, labels, breast, o, stream, record.image_path);
}

}  // namespace mammocl::data
