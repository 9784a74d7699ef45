#pragma once
/// Annotations shared by the dataset readers (mini-MIAS, CBIS-DDSM, INbreast, phantom) and the patch
/// sampler: lesion type and pathology, the 5 patch classes in MammoCL's fixed order (METHOD.md §2.2),
/// and a region of interest given as a circle, a polygon or a mask file.
#include <array>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "mammocl/core/error.hpp"

namespace mammocl::data {

enum class lesion_type { calcification, mass };
enum class pathology { benign, malignant };

/// The 5 classes, in the fixed order every part of MammoCL uses.
enum class patch_class : int {
  normal = 0,
  benign_calcification = 1,
  malignant_calcification = 2,
  benign_mass = 3,
  malignant_mass = 4
};

[[nodiscard]] constexpr patch_class class_of(lesion_type t, pathology p) noexcept {
  if (t == lesion_type::calcification)
    return p == pathology::malignant ? patch_class::malignant_calcification : patch_class::benign_calcification;
  return p == pathology::malignant ? patch_class::malignant_mass : patch_class::benign_mass;
}

[[nodiscard]] constexpr std::string_view class_name(patch_class c) noexcept {
  switch (c) {
    case patch_class::normal: return "normal";
    case patch_class::benign_calcification: return "benign calcification";
    case patch_class::malignant_calcification: return "malignant calcification";
    case patch_class::benign_mass: return "benign mass";
    case patch_class::malignant_mass: return "malignant mass";
  }
  return "?";
}

/// A region of interest in image coordinates (row, column; row 0 at the top, in pixels of the image the
/// record points to). Exactly one of circle, polygon or mask_path describes its extent; a lesion with no
/// location (mini-MIAS rows without coordinates) has none of them and `located()` is false.
struct roi {
  lesion_type type = lesion_type::mass;
  pathology path = pathology::benign;
  std::optional<std::array<double, 2>> center;          ///< circle centre (row, col)
  double radius = 0.0;                                  ///< circle radius in pixels
  std::vector<std::array<double, 2>> polygon;           ///< outline (row, col), closed implicitly
  std::string mask_path;                                ///< a binary mask image (CBIS-DDSM ROI masks)
  std::string description;                              ///< the source's own words (class code, BI-RADS ...)

  [[nodiscard]] patch_class label() const noexcept { return class_of(type, path); }
  [[nodiscard]] bool located() const noexcept { return center.has_value() || !polygon.empty() || !mask_path.empty(); }
};

/// One image of a dataset with its annotations.
struct case_record {
  std::string image_path;       ///< file of the image (PGM, PNG or DICOM)
  std::string patient_id;       ///< patient: all images of one patient stay in one split
  std::string laterality;       ///< "L", "R" or ""
  std::string view;             ///< "CC", "MLO" or ""
  std::string density;          ///< breast density / background tissue as the source spells it
  std::vector<roi> rois;        ///< lesions; empty for a normal image
  std::optional<int> image_label;  ///< whole-image label where the dataset defines one (0 no cancer, 1 cancer)

  /// Whole-image cancer label: any malignant ROI (METHOD.md §2.2), unless the dataset gave one.
  [[nodiscard]] int cancer() const noexcept {
    if (image_label) return *image_label;
    for (const auto& r : rois)
      if (r.path == pathology::malignant) return 1;
    return 0;
  }
};

}  // namespace mammocl::data
