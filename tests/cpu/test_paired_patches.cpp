// Tests of the paired-patch data layer (data/paired_patches.hpp): the phantom patches equal the study's
// former construction from the primitives, A/B pairs share centres, B is the LUT of A where that is true
// (no resize) and resize(LUT(window)) where the patch is resized, the BatchSource (order, augmentation =
// one of the 8 dihedral transforms, partial last batch, ids) and, on the real mini-MIAS, the per-class
// counts implied by the records and the skipping rules.
#include <boost/test/unit_test.hpp>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstring>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "mammocl/data/mini_mias.hpp"
#include "mammocl/data/paired_patches.hpp"
#include "shared_data.hpp"
#include "temp_dir.hpp"
#include "test_helpers.hpp"

using namespace mammocl;
using namespace mammocl::data;

namespace {

/// The study's default sampler (examples/lut_invariance_study.cpp): window 128, side 32, 4 per ROI, 3 per image.
patch_options study_sampler(std::uint64_t seed = 1) {
  patch_options so;
  so.patch_size = 128;
  so.output_size = 32;
  so.per_roi = 4;
  so.per_image = 3;
  so.seed = seed;
  return so;
}

/// What the study's former `make_patches` built, from the primitives: for each phantom i, the LUT window on
/// the phantom's breast, domain B, and both versions sampled with stream i.
struct reference_store {
  std::vector<float> a, b;
  std::vector<int> label;
  std::vector<std::int64_t> image;
  std::vector<std::array<std::int64_t, 2>> centre_a, centre_b;
  std::vector<lut_domain_params> lut;
};

reference_store reference_phantom(const phantom_options& po, int count, const patch_options& so) {
  reference_store s;
  for (int i = 0; i < count; ++i) {
    phantom_case pc = generate_phantom(po, static_cast<std::uint64_t>(i));
    pc.img.meta.min_value = 0.0;
    pc.img.meta.max_value = 1.0;
    const lut_domain_params p = estimate_lut_params(pc.img, pc.breast);
    s.lut.push_back(p);
    const image img_b = apply_lut_domain(pc.img, p);
    const auto pa = sample_patches(pc.img, pc.record, pc.lesion_masks, pc.breast, so, static_cast<std::uint64_t>(i));
    const auto pb = sample_patches(img_b, pc.record, pc.lesion_masks, pc.breast, so, static_cast<std::uint64_t>(i));
    BOOST_REQUIRE_EQUAL(pa.size(), pb.size());
    for (std::size_t j = 0; j < pa.size(); ++j) {
      s.a.insert(s.a.end(), pa[j].pixels.pixels.begin(), pa[j].pixels.pixels.end());
      s.b.insert(s.b.end(), pb[j].pixels.pixels.begin(), pb[j].pixels.pixels.end());
      s.label.push_back(pa[j].label);
      s.image.push_back(i);
      s.centre_a.push_back({pa[j].center_row, pa[j].center_col});
      s.centre_b.push_back({pb[j].center_row, pb[j].center_col});
    }
  }
  return s;
}

bool same_bits(const std::vector<float>& x, const std::vector<float>& y) {
  return x.size() == y.size() && (x.empty() || std::memcmp(x.data(), y.data(), x.size() * sizeof(float)) == 0);
}

/// The 8 dihedral transforms of a side x side patch, as (flip_h, flip_v, quarter turns) applied the way the
/// study's former patch_source did: dst(y, x) = src(sy, sx), (sy, sx) = rot^k(y, x), then the flips.
std::vector<float> dihedral(const float* src, int side, bool fh, bool fv, int rot) {
  std::vector<float> dst(static_cast<std::size_t>(side * side));
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
      dst[static_cast<std::size_t>(y * side + x)] = src[sy * side + sx];
    }
  return dst;
}

/// The study's former patch_source::get_batch, kept here as the reference the library class must match.
batch reference_batch(const paired_patches& s, const std::vector<domain_item>& set, int bs, bool training,
                      std::uint64_t seed, const batch_request& r) {
  std::vector<std::int64_t> order(set.size());
  for (std::size_t i = 0; i < order.size(); ++i) order[i] = static_cast<std::int64_t>(i);
  if (training) {
    rng sh(seed * 0x9E3779B97F4A7C15ULL + static_cast<std::uint64_t>(r.stage) * 1000003ULL + static_cast<std::uint64_t>(r.epoch));
    for (std::size_t i = order.size(); i > 1; --i) std::swap(order[i - 1], order[sh.below(i)]);
  }
  const auto size = static_cast<std::int64_t>(set.size());
  const std::int64_t from = r.index * bs, n = std::min<std::int64_t>(bs, size - from);
  const int side = s.side;
  const std::size_t px = s.pixels();
  batch b;
  b.samples = n;
  b.views = r.views;
  b.height = b.width = side;
  b.images.resize(px * static_cast<std::size_t>(n * r.views));
  for (std::int64_t j = 0; j < n; ++j) {
    const std::int64_t sample = order[static_cast<std::size_t>(from + j)];
    const domain_item& it = set[static_cast<std::size_t>(sample)];
    const float* src = s.get(it.item, it.dom);
    b.labels.push_back(it.label);
    b.domains.push_back(static_cast<int>(it.dom));
    b.ids.push_back(it.pair);
    for (int v = 0; v < r.views; ++v) {
      float* dst = b.images.data() + px * static_cast<std::size_t>(v * n + j);
      if (!training) {
        std::copy(src, src + px, dst);
        continue;
      }
      rng g(seed ^ (static_cast<std::uint64_t>(r.stage) << 56) ^ (static_cast<std::uint64_t>(r.epoch) << 40) ^
            (static_cast<std::uint64_t>(sample) << 8) ^ static_cast<std::uint64_t>(v));
      const bool fh = g.below(2) == 1, fv = g.below(2) == 1;
      const int rot = static_cast<int>(g.below(4));
      const auto t = dihedral(src, side, fh, fv, rot);
      std::copy(t.begin(), t.end(), dst);
    }
  }
  return b;
}

/// Shared phantom store of the tests below (4 phantoms, the study's sampler).
const paired_patches& phantom_store() {
  static const paired_patches s = make_phantom_paired_patches(phantom_options{}, 4, study_sampler());
  return s;
}

}  // namespace

BOOST_AUTO_TEST_SUITE(paired_patches_phantom)

BOOST_AUTO_TEST_CASE(equals_the_former_construction_bit_for_bit) {
  const phantom_options po{};
  const auto so = study_sampler();
  std::vector<std::size_t> progress;
  const paired_patches s = make_phantom_paired_patches(po, 4, so, [&](std::size_t done, std::size_t total) {
    BOOST_TEST(total == 4u);
    progress.push_back(done);
  });
  const reference_store ref = reference_phantom(po, 4, so);
  BOOST_TEST(progress == (std::vector<std::size_t>{1, 2, 3, 4}), boost::test_tools::per_element());
  BOOST_TEST(s.side == 32);
  BOOST_TEST(s.pixels() == 1024u);
  BOOST_REQUIRE_EQUAL(s.size(), ref.label.size());
  BOOST_TEST(s.size() > 12u);  // at least the background patches of 4 images
  BOOST_TEST(same_bits(s.a, ref.a));
  BOOST_TEST(same_bits(s.b, ref.b));
  BOOST_TEST(s.label == ref.label, boost::test_tools::per_element());
  BOOST_TEST(s.image == ref.image, boost::test_tools::per_element());
  BOOST_TEST(s.images == (std::vector<std::string>{"phantom-0", "phantom-1", "phantom-2", "phantom-3"}),
             boost::test_tools::per_element());
  BOOST_TEST(s.patients == s.images, boost::test_tools::per_element());
  BOOST_REQUIRE_EQUAL(s.lut.size(), 4u);
  for (int i = 0; i < 4; ++i) BOOST_TEST((s.lut.at("phantom-" + std::to_string(i)) == ref.lut[static_cast<std::size_t>(i)]));
  BOOST_TEST(s.report.skipped.empty());
  // A and B of each reference pair were cut at the same centre, the one the store records.
  BOOST_TEST((ref.centre_a == ref.centre_b));
  BOOST_TEST((s.center == ref.centre_a));
  // Every pixel is in [0, 1]; B differs from A (the LUT is not the identity).
  BOOST_TEST(std::all_of(s.a.begin(), s.a.end(), [](float v) { return v >= 0.0f && v <= 1.0f; }));
  BOOST_TEST(std::all_of(s.b.begin(), s.b.end(), [](float v) { return v >= 0.0f && v <= 1.0f; }));
  BOOST_TEST(!same_bits(s.a, s.b));
  // Accessors.
  BOOST_TEST(s.get(1, domain::A) == s.a.data() + 1024);
  BOOST_TEST(s.get(1, domain::B) == s.b.data() + 1024);
  const auto items = s.source_items();
  BOOST_REQUIRE_EQUAL(items.size(), s.size());
  for (std::size_t k = 0; k < items.size(); ++k) {
    BOOST_TEST(items[k].index == static_cast<std::int64_t>(k));
    BOOST_TEST(items[k].label == s.label[k]);
    BOOST_TEST(items[k].patient_id == "phantom-" + std::to_string(s.image[k]));
    BOOST_TEST(s.patient_of(static_cast<std::int64_t>(k)) == items[k].patient_id);
  }
  const auto n = s.class_counts();
  std::int64_t total = 0;
  for (auto c : n) total += c;
  BOOST_TEST(total == static_cast<std::int64_t>(s.size()));
  test::expect_error<shape_error>([&] { (void)s.get(static_cast<std::int64_t>(s.size()), domain::A); },
                                  "paired_patches::get: patch " + std::to_string(s.size()) + " outside [0, " +
                                      std::to_string(s.size()) + ")");
  test::expect_error<config_error>([&] { (void)make_phantom_paired_patches(po, -1, so); },
                                   "make_phantom_paired_patches: count -1 must be >= 0");
}

BOOST_AUTO_TEST_CASE(unresized_b_is_the_lut_of_a_inside_the_image_and_zero_padding_outside) {
  phantom_options po;
  patch_options so = study_sampler(7);
  so.patch_size = 48;
  so.output_size = 0;  // no resize: the window itself
  const paired_patches s = make_phantom_paired_patches(po, 2, so);
  BOOST_TEST(s.side == 48);
  BOOST_REQUIRE(s.size() > 0u);
  // Locate each patch's window independently: the sampler crops to the breast's bounding box, so a pixel
  // reads the image when it lies in that box and is 0 (padding) otherwise.
  std::size_t inside = 0, outside = 0;
  std::size_t k = 0;
  for (int i = 0; i < 2; ++i) {
    phantom_case pc = generate_phantom(po, static_cast<std::uint64_t>(i));
    const box bb = *bounding_box(pc.breast);
    const auto raw = sample_patches(pc.img, pc.record, pc.lesion_masks, pc.breast, so, static_cast<std::uint64_t>(i));
    const lut_domain_params p = s.lut.at("phantom-" + std::to_string(i));
    for (const auto& q : raw) {
      const float* pa = s.get(static_cast<std::int64_t>(k), domain::A);
      const float* pb = s.get(static_cast<std::int64_t>(k), domain::B);
      for (std::int64_t y = 0; y < 48; ++y)
        for (std::int64_t x = 0; x < 48; ++x) {
          const std::int64_t r = q.center_row - 24 + y, c = q.center_col - 24 + x;
          const float va = pa[y * 48 + x], vb = pb[y * 48 + x];
          if (r >= bb.top && r < bb.bottom && c >= bb.left && c < bb.right) {
            ++inside;
            if (va != pc.img(r, c)) BOOST_FAIL("A pixel differs from the image at " << r << "," << c);
            const auto want = static_cast<float>(voi_sigmoid(va, p.center, p.width, 0.0, 1.0));
            if (vb != want) BOOST_FAIL("B pixel " << vb << " is not LUT(A) = " << want);
          } else {
            ++outside;
            if (va != 0.0f || vb != 0.0f) BOOST_FAIL("padding is not 0 in both domains");
          }
        }
      ++k;
    }
  }
  BOOST_TEST(k == s.size());
  BOOST_TEST(inside > 0u);
  BOOST_TEST_MESSAGE("pixels inside the image " << inside << ", padding " << outside);
}

BOOST_AUTO_TEST_CASE(resized_b_is_the_resized_lut_window_not_the_lut_of_resized_a) {
  const paired_patches& s = phantom_store();
  const phantom_options po{};
  const auto so = study_sampler();
  std::size_t k = 0, checked = 0;
  double max_gap = 0;  // |B - LUT(A)| of the resized patches
  for (int i = 0; i < 4; ++i) {
    phantom_case pc = generate_phantom(po, static_cast<std::uint64_t>(i));
    const box bb = *bounding_box(pc.breast);
    const lut_domain_params p = s.lut.at("phantom-" + std::to_string(i));
    const image full_b = apply_lut_domain(pc.img, p);
    const auto raw = sample_patches(pc.img, pc.record, pc.lesion_masks, pc.breast, so, static_cast<std::uint64_t>(i));
    for (const auto& q : raw) {
      const float* pa = s.get(static_cast<std::int64_t>(k), domain::A);
      const float* pb = s.get(static_cast<std::int64_t>(k), domain::B);
      for (std::size_t j = 0; j < s.pixels(); ++j)
        max_gap = std::max(max_gap, std::abs(pb[j] - voi_sigmoid(pa[j], p.center, p.width, 0.0, 1.0)));
      // The 128 x 128 window of B (zero outside the breast box), area-averaged 4:1 to 32 x 32.
      image w(128, 128);
      for (std::int64_t y = 0; y < 128; ++y)
        for (std::int64_t x = 0; x < 128; ++x) {
          const std::int64_t r = q.center_row - 64 + y, c = q.center_col - 64 + x;
          if (r >= bb.top && r < bb.bottom && c >= bb.left && c < bb.right) w(y, x) = full_b(r, c);
        }
      const image want = resize(w, 32, 32);
      BOOST_TEST(std::memcmp(want.pixels.data(), pb, s.pixels() * sizeof(float)) == 0, "patch " << k);
      ++checked;
      ++k;
    }
  }
  BOOST_TEST(k == s.size());
  BOOST_TEST(checked > 0u);
  // The sigmoid is not linear, so LUT(mean) != mean(LUT): the resized B is not LUT(resized A).
  BOOST_TEST(max_gap > 1e-3);
  BOOST_TEST_MESSAGE("max |B - LUT(A)| over resized phantom patches: " << max_gap);
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(paired_patch_source_tests)

namespace {
/// Every patch of the store in both domains, pair id = patch index.
std::vector<domain_item> both_domains(const paired_patches& s) {
  std::vector<domain_item> v;
  for (std::size_t k = 0; k < s.size(); ++k)
    for (domain d : {domain::A, domain::B})
      v.push_back({static_cast<std::int64_t>(k), s.label[k], d, static_cast<std::int64_t>(k)});
  return v;
}
}  // namespace

BOOST_AUTO_TEST_CASE(evaluation_order_is_fixed_with_a_partial_last_batch) {
  const paired_patches& s = phantom_store();
  auto set = both_domains(s);
  set.resize(std::min<std::size_t>(set.size(), 23));
  BOOST_REQUIRE_EQUAL(set.size(), 23u);
  const paired_patch_source src(s, set, 5, false, 3);
  BOOST_TEST(src.size() == 23);
  BOOST_TEST(src.batches_per_epoch() == 5);
  BOOST_TEST((src.items() == set));
  std::size_t pos = 0;
  for (std::int64_t i = 0; i < 5; ++i) {
    const batch b = src.get_batch({0, 2, i, 1});  // the epoch does not matter for evaluation
    b.validate();
    BOOST_TEST(b.samples == (i < 4 ? 5 : 3));
    BOOST_TEST(b.height == 32);
    BOOST_TEST(b.width == 32);
    for (index_t j = 0; j < b.samples; ++j, ++pos) {
      const auto& it = set[pos];
      BOOST_TEST(b.labels[static_cast<std::size_t>(j)] == it.label);
      BOOST_TEST(b.domains[static_cast<std::size_t>(j)] == static_cast<int>(it.dom));
      BOOST_TEST(b.ids[static_cast<std::size_t>(j)] == it.pair);
      BOOST_TEST(std::memcmp(b.images.data() + 1024 * static_cast<std::size_t>(j), s.get(it.item, it.dom),
                             1024 * sizeof(float)) == 0);
    }
    const batch ref = reference_batch(s, set, 5, false, 3, {0, 2, i, 1});
    BOOST_TEST(same_bits(b.images, ref.images));
  }
  BOOST_TEST(pos == 23u);
  test::expect_error<shape_error>([&] { (void)src.get_batch({0, 0, 5, 1}); }, "paired_patch_source: batch 5 outside [0, 5)");
  test::expect_error<config_error>([&] { paired_patch_source(s, set, 0, false, 1); },
                                   "paired_patch_source: batch size 0 must be >= 1");
  auto bad = set;
  bad[3].item = static_cast<std::int64_t>(s.size());
  test::expect_error<config_error>([&] { paired_patch_source(s, bad, 4, false, 1); },
                                   "paired_patch_source: entry 3 names patch " + std::to_string(s.size()) +
                                       " but the store holds " + std::to_string(s.size()));
}

BOOST_AUTO_TEST_CASE(training_batches_are_deterministic_shuffled_full_and_dihedral_views) {
  const paired_patches& s = phantom_store();
  const auto set = both_domains(s);
  const int bs = 8;
  const paired_patch_source src(s, set, bs, true, 11);
  BOOST_TEST(src.batches_per_epoch() == static_cast<std::int64_t>(set.size()) / bs);
  std::set<std::int64_t> seen_positions;
  std::array<int, 8> used{};  // how often each of the 8 transforms appeared
  std::vector<std::int64_t> epoch0_ids, epoch1_ids;
  for (int epoch = 0; epoch < 2; ++epoch)
    for (std::int64_t i = 0; i < src.batches_per_epoch(); ++i) {
      const batch b = src.get_batch({1, epoch, i, 2});
      b.validate();
      BOOST_TEST(b.samples == bs);  // full batches only
      BOOST_TEST(b.views == 2);
      // A pure function of the request, equal to the former study code's batch.
      const batch again = src.get_batch({1, epoch, i, 2});
      BOOST_TEST(same_bits(b.images, again.images));
      BOOST_TEST(b.ids == again.ids, boost::test_tools::per_element());
      const batch ref = reference_batch(s, set, bs, true, 11, {1, epoch, i, 2});
      BOOST_TEST(same_bits(b.images, ref.images));
      BOOST_TEST(b.ids == ref.ids, boost::test_tools::per_element());
      const auto ord = src.order(1, epoch);
      for (index_t j = 0; j < b.samples; ++j) {
        const auto pos = ord[static_cast<std::size_t>(i * bs + j)];
        const domain_item& it = set[static_cast<std::size_t>(pos)];
        if (epoch == 0) seen_positions.insert(pos);
        (epoch == 0 ? epoch0_ids : epoch1_ids).push_back(it.pair);
        BOOST_TEST(b.ids[static_cast<std::size_t>(j)] == it.pair);
        BOOST_TEST(b.labels[static_cast<std::size_t>(j)] == it.label);
        BOOST_TEST(b.domains[static_cast<std::size_t>(j)] == static_cast<int>(it.dom));
        // Each view is exactly one of the 8 flips/rotations of the stored patch.
        for (index_t v = 0; v < 2; ++v) {
          const float* view = b.images.data() + 1024 * static_cast<std::size_t>(v * b.samples + j);
          int matches = 0, which = -1;
          for (int t = 0; t < 8; ++t) {
            const auto d = dihedral(s.get(it.item, it.dom), 32, t & 1, (t >> 1) & 1, t >> 2 ? 1 : 0);
            if (std::memcmp(d.data(), view, 1024 * sizeof(float)) == 0) ++matches, which = t;
          }
          BOOST_TEST(matches >= 1, "sample " << j << " view " << v << " is not a flip/rotation of its patch");
          if (which >= 0) ++used[static_cast<std::size_t>(which)];
        }
      }
    }
  // Full batches: exactly batches * bs distinct samples per epoch, and the shuffle changes with the epoch.
  BOOST_TEST(seen_positions.size() == static_cast<std::size_t>(src.batches_per_epoch() * bs));
  BOOST_TEST(epoch0_ids != epoch1_ids);
  for (int t = 0; t < 8; ++t) BOOST_TEST(used[static_cast<std::size_t>(t)] > 0, "transform " << t << " never used");
  // Another seed shuffles differently.
  const paired_patch_source other(s, set, bs, true, 12);
  BOOST_TEST(other.order(1, 0) != src.order(1, 0));
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(paired_patches_records)

namespace {
/// Writes a 64 x 48 8-bit PGM: `inside` in the rectangle rows [16, 48) x cols [8, 40), `outside` elsewhere,
/// plus `ramp` * (r + c) inside (0 = a flat breast).
std::string write_block(const test::temp_dir& t, const std::string& name, float inside, float outside, float ramp) {
  image img(64, 48, outside);
  for (std::int64_t r = 16; r < 48; ++r)
    for (std::int64_t c = 8; c < 40; ++c) img(r, c) = inside + ramp * static_cast<float>((r + c) % 7);
  const auto p = t / name;
  write_image(p, img);
  return p.string();
}

roi circle(double row, double col, double radius, pathology p = pathology::benign) {
  roi o;
  o.type = lesion_type::mass;
  o.path = p;
  o.center = std::array<double, 2>{row, col};
  o.radius = radius;
  o.description = "test circle";
  return o;
}
}  // namespace

BOOST_AUTO_TEST_CASE(skipping_rules_and_errors) {
  test::temp_dir t("paired-records");
  paired_patch_options o;
  o.sampler.patch_size = 8;
  o.sampler.per_roi = 2;
  o.sampler.per_image = 2;
  const std::string good = write_block(t, "good.pgm", 150, 10, 10);
  std::vector<case_record> recs(6);
  recs[0].image_path = good;  // kept: one located mass
  recs[0].patient_id = "p0";
  recs[0].rois = {circle(30, 20, 4, pathology::malignant)};
  recs[1].image_path = good;  // an ROI without location: skipped
  recs[1].patient_id = "p1";
  recs[1].rois = {circle(30, 20, 4), roi{}};
  recs[1].rois[1].description = "CALC B";
  recs[2].image_path = write_block(t, "blank.pgm", 90, 90, 0);  // one value: no foreground
  recs[3].image_path = write_block(t, "flat.pgm", 200, 0, 0);   // a flat breast: p1 == p99
  recs[4].image_path = good;  // ROI entirely outside the image
  recs[4].rois = {circle(500, 500, 3)};
  recs[5].image_path = good;  // ROI inside the image but outside the breast's box
  recs[5].rois = {circle(4, 4, 2)};
  std::vector<std::size_t> done;
  const paired_patches s = make_paired_patches(recs, o, default_image_reader(),
                                               [&](std::size_t d, std::size_t n) { done.push_back(d * 100 + n); });
  BOOST_TEST(done == (std::vector<std::size_t>{106, 206, 306, 406, 506, 606}), boost::test_tools::per_element());
  BOOST_TEST(s.images == std::vector<std::string>{good}, boost::test_tools::per_element());
  BOOST_TEST(s.patients == std::vector<std::string>{"p0"}, boost::test_tools::per_element());
  BOOST_TEST(s.side == 8);
  const auto n = s.class_counts();
  BOOST_TEST(n[static_cast<int>(patch_class::malignant_mass)] == 2);
  BOOST_TEST(n[0] == 2);
  BOOST_REQUIRE_EQUAL(s.report.skipped.size(), 5u);
  const auto& k = s.report.skipped;
  BOOST_TEST(k[0].item == good);
  BOOST_TEST(k[0].reason == "ROI 1 (CALC B) has no location, so no patch can be labelled near it");
  BOOST_TEST(k[1].item == recs[2].image_path);
  BOOST_TEST(k[1].reason.find("breast segmentation failed: segment_breast") == 0u, k[1].reason);
  BOOST_TEST(k[2].item == recs[3].image_path);
  BOOST_TEST(k[2].reason == "estimate_lut_params: the breast region of image " + recs[3].image_path +
                                " is flat (p1 = p99 = 0.784314); the sigmoid LUT needs a width > 0",
             k[2].reason);
  BOOST_TEST(k[3].reason == "ROI 0 (test circle) has no pixel inside the 64 x 48 image");
  BOOST_TEST(k[4].reason == "ROI 0 (test circle) lies outside the breast's bounding box");
  // The LUT window of the kept image equals estimate_lut_params on the same segmentation.
  const image a = read_image(good).normalized();
  BOOST_TEST((s.lut.at(good) == estimate_lut_params(a, segment_breast(a).region)));

  // Other failures are errors naming the record.
  std::vector<case_record> missing(1);
  missing[0].image_path = (t / "none.pgm").string();
  test::expect_error<io_error>([&] { (void)make_paired_patches(missing, o); },
                               "make_paired_patches: record 0 (" + (t / "none.pgm").string() + "): ");
  patch_options bad = o.sampler;
  bad.patch_size = 1;
  test::expect_error<config_error>([&] { (void)make_paired_patches(recs, {bad, {}}); },
                                   "make_paired_patches: record 0 (" + good + "): sample_patches: patch_size 1 for " +
                                       good + " must be at least 2");
  test::expect_error<config_error>([&] { (void)make_paired_patches(recs, o, image_reader{}); },
                                   "make_paired_patches: the image reader is empty");
}

BOOST_AUTO_TEST_CASE(mini_mias_subset_counts_labels_patients_and_skips) {
  const auto data = test::shared_data("mini-mias/Info.txt");
  if (!data) return;
  const auto all = read_mini_mias(*data / "mini-mias" / "Info.txt").records;
  // Chosen by content: the first 6 images whose ROIs are all located, the first 2 normals, and every image
  // with an ROI that has no location.
  std::vector<case_record> sub;
  int located = 0, normals = 0, unlocated = 0;
  for (const auto& r : all) {
    const bool any_unlocated = std::any_of(r.rois.begin(), r.rois.end(), [](const roi& x) { return !x.located(); });
    if (any_unlocated) {
      sub.push_back(r);
      ++unlocated;
    } else if (r.rois.empty() ? normals++ < 2 : located++ < 6) {
      sub.push_back(r);
    }
  }
  BOOST_REQUIRE_EQUAL(normals >= 2 && located >= 6, true);
  BOOST_REQUIRE(unlocated >= 1);  // the data README: rows without coordinates exist
  paired_patch_options o;
  o.sampler = study_sampler();
  const paired_patches s = make_paired_patches(sub, o);
  BOOST_TEST(s.side == 32);
  // Skipped: exactly the images with an unlocated ROI (the located ones all lie in their breast here, which
  // the check below confirms by counting).
  std::set<std::string> skipped;
  for (const auto& e : s.report.skipped) {
    skipped.insert(e.item);
    BOOST_TEST(e.reason.find("has no location, so no patch can be labelled near it") != std::string::npos, e.reason);
  }
  BOOST_TEST(skipped.size() == static_cast<std::size_t>(unlocated));
  BOOST_REQUIRE_EQUAL(s.images.size() + skipped.size(), sub.size());
  // Expected counts from the records: per_roi patches per ROI of each class, <= per_image background each.
  std::array<std::int64_t, 5> want{};
  std::map<std::string, const case_record*> by_name;
  for (const auto& r : sub) {
    if (skipped.count(r.image_path)) continue;
    by_name[r.image_path] = &r;
    for (const auto& x : r.rois) want[static_cast<std::size_t>(x.label())] += 4;
  }
  const auto got = s.class_counts();
  for (int c = 1; c < 5; ++c) BOOST_TEST(got[static_cast<std::size_t>(c)] == want[static_cast<std::size_t>(c)], "class " << c);
  std::vector<int> background(s.images.size(), 0);
  for (std::size_t k = 0; k < s.size(); ++k) {
    const auto img = static_cast<std::size_t>(s.image[k]);
    const case_record& r = *by_name.at(s.images[img]);
    const auto [cr, cc] = s.center[k];
    if (s.label[k] == 0) {
      ++background[img];
      // Shen's rule: the window overlaps no ROI by more than 35 % of the ROI or of the window.
      for (const auto& x : r.rois) {
        const mask m = rasterize(x, 1024, 1024);
        const double inter = static_cast<double>(overlap(m, cr - 64, cc - 64, 128, 128));
        BOOST_TEST(inter <= 0.35 * static_cast<double>(m.count()) + 1e-9);
      }
      continue;
    }
    // A lesion patch has the class of one of its image's ROIs and is centred within that circle's box.
    bool near = false;
    for (const auto& x : r.rois)
      if (static_cast<int>(x.label()) == s.label[k] && std::abs(cr - (*x.center)[0]) <= x.radius + 1 &&
          std::abs(cc - (*x.center)[1]) <= x.radius + 1)
        near = true;
    BOOST_TEST(near, "patch " << k << " of " << s.images[img] << " at " << cr << "," << cc);
  }
  for (std::size_t i = 0; i < s.images.size(); ++i) {
    BOOST_TEST(background[i] <= 3);
    BOOST_TEST(background[i] >= 1);
    BOOST_TEST(s.patients[i] == by_name.at(s.images[i])->patient_id);
    BOOST_TEST(s.lut.count(s.images[i]) == 1u);
  }
  BOOST_TEST(std::all_of(s.b.begin(), s.b.end(), [](float v) { return v >= 0.0f && v <= 1.0f; }));
}

BOOST_AUTO_TEST_SUITE_END()
