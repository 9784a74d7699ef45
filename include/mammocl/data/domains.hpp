#pragma once
/// Domain datasets (METHOD.md §2.3): patient-level splits and the training-set variants built from two
/// versions of every image, domain A (no VOI LUT) and domain B (the sigmoid VOI LUT of §2.1), plus a JSON
/// manifest that records every split and domain assignment with the seed and the options.
///
/// Everything here works on lists of *source items* (an index into the caller's dataset, a class label and
/// a patient id) and returns lists of `domain_item`s (item, label, domain, pair id). No pixel is touched:
/// the LUT is applied later by whoever materialises an entry (see loader.hpp), so this header depends on
/// neither the image readers nor data/voi_lut.hpp.
///
///   auto plan = data::make_domain_plan(items, {.variant = data::train_variant::mixed, .seed = 12345});
///   data::write_manifest("runs/mixed/domains.json", plan);
///   auto again = data::read_manifest("runs/mixed/domains.json");   // again == plan
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <span>
#include <sstream>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "mammocl/core/error.hpp"
#include "mammocl/core/rng.hpp"

namespace mammocl::data {

/// The two domains: A = the image without the sigmoid VOI LUT, B = the same image with it.
enum class domain : int { A = 0, B = 1 };

/// "A" or "B", the spelling used in manifests.
[[nodiscard]] constexpr std::string_view domain_name(domain d) noexcept { return d == domain::A ? "A" : "B"; }

/// One stored image (or patch) of the caller's dataset.
struct source_item {
  std::int64_t index = 0;   ///< the caller's identifier of the item (unique within a list)
  int label = 0;            ///< class label (patch_class index, or 0/1 for whole images)
  std::string patient_id;   ///< all items of one patient stay in one split
  friend bool operator==(const source_item&, const source_item&) = default;
};

/// One entry of a training, validation or test set: a source item shown in one domain.
struct domain_item {
  std::int64_t item = 0;        ///< source_item::index
  int label = 0;                ///< its class label
  domain dom = domain::A;       ///< which version of the image
  std::int64_t pair = -1;       ///< entries with the same pair id are versions of the same source image
                                ///< (its position in the list the set was built from): the bootstrap cluster
  friend bool operator==(const domain_item&, const domain_item&) = default;
};

/// How a patient's item labels become the one label the split is stratified on.
enum class patient_stratum {
  any_malignant,  ///< 1 when any item has label 2 or 4 (malignant calcification / mass, patch_class order)
  max_label       ///< the largest item label (for 0/1 whole-image cancer labels: "any cancer")
};

/// Fractions of patients per split (they must sum to 1) and the stratum rule.
/// Defaults: 10 % validation as Shen's `sample_patches_combined.py` (METHOD.md §2.2), 20 % test as the
/// INbreast 80/20 default of METHOD.md §5.5, stratified on "patient has any malignant".
struct split_options {
  double train = 0.7;
  double validation = 0.1;
  double test = 0.2;
  patient_stratum stratum = patient_stratum::any_malignant;
  friend bool operator==(const split_options&, const split_options&) = default;
};

/// The source item indices of each split, in the order of the input list.
struct patient_split {
  std::vector<std::int64_t> train, validation, test;
  friend bool operator==(const patient_split&, const patient_split&) = default;
};

/// The training-set variants of METHOD.md §2.3.
enum class train_variant { augmented, mixed, mixed_downsampled };

/// Options of `make_domain_plan`: the split, the training variant, the down-sampling ratio (used by
/// mixed_downsampled only) and the one seed every random choice derives from (Shen's random_state 12345).
struct domain_plan_options {
  split_options split{};
  train_variant variant = train_variant::mixed;
  double ratio = 1.0;
  std::uint64_t seed = 12345;
  friend bool operator==(const domain_plan_options&, const domain_plan_options&) = default;
};

/// Everything an experiment needs to know about its data: the source items, their patient split and the
/// three sets. Validation and test hold both versions of every image (model selection on validation AUC of
/// both domains, METHOD.md §5.3; test as §2.3).
struct domain_plan {
  domain_plan_options options;
  std::vector<source_item> items;
  patient_split split;
  std::vector<domain_item> train, validation, test;
  friend bool operator==(const domain_plan&, const domain_plan&) = default;
};

namespace detail {

/// A 64-bit seed for an independent stream: (seed, purpose tag, key) through splitmix64's finaliser.
[[nodiscard]] constexpr std::uint64_t domains_seed(std::uint64_t seed, std::uint64_t tag, std::uint64_t key) noexcept {
  auto fmix = [](std::uint64_t z) {
    z += 0x9e3779b97f4a7c15ULL;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
  };
  return fmix(fmix(fmix(seed) ^ tag) ^ key);
}
inline constexpr std::uint64_t tag_split = 0x73706c6974ULL, tag_mixed = 0x6d69786564ULL, tag_down = 0x646f776eULL;

/// Fisher-Yates with rng::below, so a seed gives the same order on every platform.
template <class T>
void domains_shuffle(std::vector<T>& v, rng& r) {
  for (std::size_t i = v.size(); i > 1; --i) std::swap(v[i - 1], v[static_cast<std::size_t>(r.below(i))]);
}

inline void check_unique_items(std::span<const source_item> items, const char* fn) {
  std::set<std::int64_t> seen;
  for (std::size_t k = 0; k < items.size(); ++k) {
    MAMMOCL_CHECK(items[k].label >= 0, config_error, fn, ": item ", items[k].index, " (position ", k,
                  ") has negative label ", items[k].label);
    MAMMOCL_CHECK(seen.insert(items[k].index).second, config_error, fn, ": item index ", items[k].index,
                  " appears twice (second time at position ", k, ")");
  }
}

inline void check_split_options(const split_options& o, const char* fn) {
  for (auto [name, v] : {std::pair{"train", o.train}, {"validation", o.validation}, {"test", o.test}})
    MAMMOCL_CHECK(std::isfinite(v) && v >= 0.0 && v <= 1.0, config_error, fn, ": ", name, " fraction ", v,
                  " is not in [0, 1]");
  const double sum = o.train + o.validation + o.test;
  MAMMOCL_CHECK(std::abs(sum - 1.0) <= 1e-9, config_error, fn, ": train + validation + test fractions = ", sum,
                ", expected 1");
}

inline void check_ratio(double r, const char* fn) {
  MAMMOCL_CHECK(std::isfinite(r) && r > 0.0 && r <= 1.0, config_error, fn, ": ratio ", r, " is not in (0, 1]");
}

}  // namespace detail

/// The stratum of one patient from the labels of its items.
[[nodiscard]] inline int patient_stratum_of(std::span<const int> labels, patient_stratum rule) noexcept {
  int s = 0;
  for (int l : labels) s = rule == patient_stratum::any_malignant ? std::max(s, int(l == 2 || l == 4)) : std::max(s, l);
  return s;
}

/// Splits items by patient: every patient's items go to exactly one split. Patients are grouped by stratum
/// (`opt.stratum`); within a stratum they are sorted by id, shuffled with a stream derived from (seed,
/// stratum), and the first round(n·test) go to test, the next round(n·validation) to validation (capped
/// by what is left), the rest to train. The result depends on the item set, not on the input order.
/// Errors (config_error): fractions outside [0, 1] or not summing to 1, an empty patient id, a negative
/// label, a repeated item index.
[[nodiscard]] inline patient_split split_by_patient(std::span<const source_item> items, const split_options& opt,
                                                    std::uint64_t seed) {
  detail::check_split_options(opt, "split_by_patient");
  detail::check_unique_items(items, "split_by_patient");
  std::map<std::string, std::vector<int>> labels_of;
  for (const auto& it : items) {
    MAMMOCL_CHECK(!it.patient_id.empty(), config_error, "split_by_patient: item ", it.index, " has no patient id");
    labels_of[it.patient_id].push_back(it.label);
  }
  std::map<int, std::vector<std::string>> by_stratum;  // patients sorted by id within a stratum
  for (const auto& [pid, labels] : labels_of) by_stratum[patient_stratum_of(labels, opt.stratum)].push_back(pid);

  std::map<std::string, int> where;  // 0 train, 1 validation, 2 test
  for (auto& [stratum, patients] : by_stratum) {
    rng r(detail::domains_seed(seed, detail::tag_split, static_cast<std::uint64_t>(stratum)));
    detail::domains_shuffle(patients, r);
    const auto n = static_cast<long long>(patients.size());
    const long long n_test = std::min(n, std::llround(static_cast<double>(n) * opt.test));
    const long long n_val = std::min(n - n_test, std::llround(static_cast<double>(n) * opt.validation));
    for (long long k = 0; k < n; ++k) where[patients[static_cast<std::size_t>(k)]] = k < n_test ? 2 : k < n_test + n_val ? 1 : 0;
  }
  patient_split out;
  for (const auto& it : items) {
    const int w = where.at(it.patient_id);
    (w == 0 ? out.train : w == 1 ? out.validation : out.test).push_back(it.index);
  }
  return out;
}

/// The items whose index is listed in `ids`, in the order of `ids`. Throws config_error for an index that
/// is not among the items.
[[nodiscard]] inline std::vector<source_item> select_items(std::span<const source_item> items,
                                                           std::span<const std::int64_t> ids) {
  std::map<std::int64_t, std::size_t> pos;
  for (std::size_t k = 0; k < items.size(); ++k) pos.emplace(items[k].index, k);
  std::vector<source_item> out;
  out.reserve(ids.size());
  for (auto id : ids) {
    const auto f = pos.find(id);
    MAMMOCL_CHECK(f != pos.end(), config_error, "select_items: item ", id, " is not in the item list");
    out.push_back(items[f->second]);
  }
  return out;
}

/// Both versions of every item: (s, A), (s, B) for each s in order, so 2|S| entries; the pair id of both is
/// s's position in `s`. This is the *augmented* training variant and also the test (and validation) set.
[[nodiscard]] inline std::vector<domain_item> augmented(std::span<const source_item> s) {
  detail::check_unique_items(s, "augmented");
  std::vector<domain_item> out;
  out.reserve(2 * s.size());
  for (std::size_t k = 0; k < s.size(); ++k) {
    out.push_back({s[k].index, s[k].label, domain::A, static_cast<std::int64_t>(k)});
    out.push_back({s[k].index, s[k].label, domain::B, static_cast<std::int64_t>(k)});
  }
  return out;
}

/// The test set of METHOD.md §2.3: both versions of every test image, paired (same as `augmented`).
[[nodiscard]] inline std::vector<domain_item> test_set(std::span<const source_item> s) { return augmented(s); }

/// The *mixed* variant: one version of each item, |S| entries in the order of `s`. Within each class the
/// items are shuffled with a stream derived from (seed, class) and the first half get domain B: exactly n/2
/// for an even class count n; for an odd n, ⌊n/2⌋ or ⌈n/2⌉, decided by one fair coin per class drawn from the
/// same stream after the shuffle (so the expected share of B stays exactly 1/2). Pair id = position in `s`.
[[nodiscard]] inline std::vector<domain_item> mixed(std::span<const source_item> s, std::uint64_t seed) {
  detail::check_unique_items(s, "mixed");
  std::map<int, std::vector<std::size_t>> by_class;
  for (std::size_t k = 0; k < s.size(); ++k) by_class[s[k].label].push_back(k);
  std::vector<domain> dom(s.size(), domain::A);
  for (auto& [label, pos] : by_class) {
    rng r(detail::domains_seed(seed, detail::tag_mixed, static_cast<std::uint64_t>(label)));
    detail::domains_shuffle(pos, r);
    std::size_t n_b = pos.size() / 2;
    if (pos.size() % 2 == 1) n_b += static_cast<std::size_t>(r.below(2));
    for (std::size_t k = 0; k < n_b; ++k) dom[pos[k]] = domain::B;
  }
  std::vector<domain_item> out;
  out.reserve(s.size());
  for (std::size_t k = 0; k < s.size(); ++k) out.push_back({s[k].index, s[k].label, dom[k], static_cast<std::int64_t>(k)});
  return out;
}

/// The *mixed down-sampled* variant: a subset of `mixed_set` of fraction r, stratified by class x domain.
/// Each (class, domain) cell of n entries is shuffled with a stream derived from (seed, class, domain),
/// independent of r, and its first round(r·n) entries are kept; so for one seed the subsets are nested
/// (r = 0.6 within r = 0.7 within ... within r = 1, the mixed set itself). Entries keep the order of
/// `mixed_set`. Errors: r not in (0, 1] (config_error).
[[nodiscard]] inline std::vector<domain_item> mixed_downsampled(std::span<const domain_item> mixed_set, double r,
                                                                std::uint64_t seed) {
  detail::check_ratio(r, "mixed_downsampled");
  std::map<std::pair<int, int>, std::vector<std::size_t>> cells;
  for (std::size_t k = 0; k < mixed_set.size(); ++k)
    cells[{mixed_set[k].label, static_cast<int>(mixed_set[k].dom)}].push_back(k);
  std::vector<char> keep(mixed_set.size(), 0);
  for (auto& [cell, pos] : cells) {
    rng g(detail::domains_seed(seed, detail::tag_down,
                               static_cast<std::uint64_t>(cell.first) * 2 + static_cast<std::uint64_t>(cell.second)));
    detail::domains_shuffle(pos, g);
    const auto n_keep = static_cast<std::size_t>(std::llround(r * static_cast<double>(pos.size())));
    for (std::size_t k = 0; k < n_keep; ++k) keep[pos[k]] = 1;
  }
  std::vector<domain_item> out;
  for (std::size_t k = 0; k < mixed_set.size(); ++k)
    if (keep[k]) out.push_back(mixed_set[k]);
  return out;
}

/// `mixed_downsampled(mixed(s, seed), r, seed)`.
[[nodiscard]] inline std::vector<domain_item> mixed_downsampled(std::span<const source_item> s, double r,
                                                                std::uint64_t seed) {
  detail::check_ratio(r, "mixed_downsampled");
  const auto m = mixed(s, seed);
  return mixed_downsampled(std::span<const domain_item>(m), r, seed);
}

/// Splits `items` by patient and builds the three sets: train as `opt.variant` (ratio used by
/// mixed_downsampled), validation and test with both versions of every image. Errors as the functions
/// it calls.
[[nodiscard]] inline domain_plan make_domain_plan(std::span<const source_item> items, const domain_plan_options& opt) {
  detail::check_ratio(opt.ratio, "make_domain_plan");
  domain_plan p;
  p.options = opt;
  p.items.assign(items.begin(), items.end());
  p.split = split_by_patient(items, opt.split, opt.seed);
  const auto tr = select_items(items, p.split.train);
  switch (opt.variant) {
    case train_variant::augmented: p.train = augmented(tr); break;
    case train_variant::mixed: p.train = mixed(tr, opt.seed); break;
    case train_variant::mixed_downsampled: p.train = mixed_downsampled(tr, opt.ratio, opt.seed); break;
  }
  p.validation = augmented(select_items(items, p.split.validation));
  p.test = test_set(select_items(items, p.split.test));
  return p;
}

// ------------------------------------------------------------------------------------------------
// Manifest
// ------------------------------------------------------------------------------------------------

/// The `format` value of a domain manifest, and the version this header writes and reads.
inline constexpr std::string_view manifest_format = "mammocl.domain_manifest";
inline constexpr int manifest_version = 1;

[[nodiscard]] constexpr std::string_view variant_name(train_variant v) noexcept {
  return v == train_variant::augmented ? "augmented" : v == train_variant::mixed ? "mixed" : "mixed_downsampled";
}
[[nodiscard]] constexpr std::string_view stratum_name(patient_stratum s) noexcept {
  return s == patient_stratum::any_malignant ? "any_malignant" : "max_label";
}

namespace detail {

/// Writes `content` to `path` through a temporary in the same directory (fsync'ed, then renamed), so a
/// reader never sees a half-written manifest. io_error names `path` and the reason.
inline void domains_write_atomic(const std::filesystem::path& path, const std::string& content) {
  const auto dir = path.has_parent_path() ? path.parent_path() : std::filesystem::path(".");
  const auto tmp = dir / ("." + path.filename().string() + ".tmp-" + std::to_string(::getpid()));
  const auto fail = [&](const std::string& why) {
    std::error_code ec;
    std::filesystem::remove(tmp, ec);
    MAMMOCL_THROW(io_error, "cannot write domain manifest '", path.string(), "': ", why);
  };
  std::FILE* f = std::fopen(tmp.c_str(), "wb");
  if (f == nullptr) fail("cannot create '" + tmp.string() + "': " + std::strerror(errno));
  const bool ok = std::fwrite(content.data(), 1, content.size(), f) == content.size() && std::fflush(f) == 0 &&
                  ::fsync(::fileno(f)) == 0;
  const int err = errno;
  if (std::fclose(f) != 0 || !ok) fail(std::string("writing the temporary file failed: ") + std::strerror(err));
  std::error_code ec;
  std::filesystem::rename(tmp, path, ec);
  if (ec) fail("renaming the temporary file failed: " + ec.message());
}

/// Typed access to a manifest's fields; every error names the file and the field path.
struct manifest_reader {
  std::string file;

  [[noreturn]] void fail(const std::string& field, const std::string& what) const {
    MAMMOCL_THROW(io_error, "domain manifest '", file, "': field '", field, "': ", what);
  }
  const nlohmann::json& member(const nlohmann::json& obj, const std::string& parent, const char* key) const {
    const std::string field = parent.empty() ? key : parent + "." + key;
    if (!obj.is_object()) fail(parent.empty() ? "(top level)" : parent, "expected an object");
    const auto f = obj.find(key);
    if (f == obj.end()) fail(field, "missing");
    return *f;
  }
  static std::string sub(const std::string& parent, const char* key) { return parent.empty() ? key : parent + "." + key; }
  std::int64_t integer(const nlohmann::json& v, const std::string& field) const {
    if (!v.is_number_integer()) fail(field, "expected an integer, found " + v.dump());
    if (v.is_number_unsigned() && v.get<std::uint64_t>() > static_cast<std::uint64_t>(INT64_MAX))
      fail(field, "integer " + v.dump() + " is out of range");
    return v.get<std::int64_t>();
  }
  int label(const nlohmann::json& v, const std::string& field) const {
    const auto l = integer(v, field);
    if (l < 0 || l > 1000000) fail(field, "expected a class label >= 0, found " + v.dump());
    return static_cast<int>(l);
  }
  double number(const nlohmann::json& v, const std::string& field) const {
    if (!v.is_number()) fail(field, "expected a number, found " + v.dump());
    return v.get<double>();
  }
  std::string string(const nlohmann::json& v, const std::string& field) const {
    if (!v.is_string()) fail(field, "expected a string, found " + v.dump());
    return v.get<std::string>();
  }
  const nlohmann::json& array(const nlohmann::json& v, const std::string& field) const {
    if (!v.is_array()) fail(field, "expected an array, found " + std::string(v.type_name()));
    return v;
  }
};

inline nlohmann::json to_json(const std::vector<domain_item>& set) {
  auto a = nlohmann::json::array();
  for (const auto& e : set)
    a.push_back({{"item", e.item}, {"label", e.label}, {"domain", std::string(domain_name(e.dom))}, {"pair", e.pair}});
  return a;
}

}  // namespace detail

/// The manifest as JSON (see docs/data-domains-loader.md for the layout).
[[nodiscard]] inline nlohmann::json manifest_json(const domain_plan& p) {
  nlohmann::json j;
  j["format"] = std::string(manifest_format);
  j["version"] = manifest_version;
  j["seed"] = p.options.seed;
  j["options"] = {{"train_fraction", p.options.split.train},
                  {"validation_fraction", p.options.split.validation},
                  {"test_fraction", p.options.split.test},
                  {"stratum", std::string(stratum_name(p.options.split.stratum))},
                  {"variant", std::string(variant_name(p.options.variant))},
                  {"ratio", p.options.ratio}};
  auto items = nlohmann::json::array();
  for (const auto& it : p.items) items.push_back({{"index", it.index}, {"label", it.label}, {"patient", it.patient_id}});
  j["items"] = std::move(items);
  j["split"] = {{"train", p.split.train}, {"validation", p.split.validation}, {"test", p.split.test}};
  j["sets"] = {{"train", detail::to_json(p.train)},
               {"validation", detail::to_json(p.validation)},
               {"test", detail::to_json(p.test)}};
  return j;
}

/// Writes the manifest of `p` to `path` atomically (temporary file in the same directory, then rename).
/// Throws io_error naming the file when it cannot be written.
inline void write_manifest(const std::filesystem::path& path, const domain_plan& p) {
  detail::domains_write_atomic(path, manifest_json(p).dump(1) + "\n");
}

/// Reads a manifest back exactly as `write_manifest` wrote it (the result compares equal to the plan).
/// Besides the syntax it checks the content: each split index names a listed item, no patient is in two
/// splits, each set entry names an item of its split with that item's label. Every error is an io_error
/// that names the file and the field (e.g. `field 'sets.train[3].domain': expected "A" or "B", found "C"`).
[[nodiscard]] inline domain_plan read_manifest(const std::filesystem::path& path) {
  const detail::manifest_reader rd{path.string()};
  std::ifstream in(path, std::ios::binary);
  MAMMOCL_CHECK(in.good(), io_error, "cannot open domain manifest '", path.string(), "'");
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(in);
  } catch (const nlohmann::json::exception& e) {  // parse_error, and out_of_range for numbers like 1e309
    MAMMOCL_THROW(io_error, "domain manifest '", path.string(), "': not valid JSON: ", e.what());
  }
  if (!j.is_object()) rd.fail("(top level)", "expected an object");
  if (rd.string(rd.member(j, "", "format"), "format") != manifest_format)
    rd.fail("format", "expected \"" + std::string(manifest_format) + "\", found " + j["format"].dump());
  if (const auto v = rd.integer(rd.member(j, "", "version"), "version"); v != manifest_version)
    rd.fail("version", "expected " + std::to_string(manifest_version) + ", found " + std::to_string(v));

  domain_plan p;
  const auto& seed = rd.member(j, "", "seed");
  if (!seed.is_number_unsigned()) rd.fail("seed", "expected an unsigned integer, found " + seed.dump());
  p.options.seed = seed.get<std::uint64_t>();

  const auto& o = rd.member(j, "", "options");
  p.options.split.train = rd.number(rd.member(o, "options", "train_fraction"), "options.train_fraction");
  p.options.split.validation = rd.number(rd.member(o, "options", "validation_fraction"), "options.validation_fraction");
  p.options.split.test = rd.number(rd.member(o, "options", "test_fraction"), "options.test_fraction");
  try {
    detail::check_split_options(p.options.split, "fractions");
  } catch (const config_error& e) {
    rd.fail("options", e.message());
  }
  const auto stratum = rd.string(rd.member(o, "options", "stratum"), "options.stratum");
  if (stratum == stratum_name(patient_stratum::any_malignant)) p.options.split.stratum = patient_stratum::any_malignant;
  else if (stratum == stratum_name(patient_stratum::max_label)) p.options.split.stratum = patient_stratum::max_label;
  else rd.fail("options.stratum", "expected \"any_malignant\" or \"max_label\", found \"" + stratum + "\"");
  const auto variant = rd.string(rd.member(o, "options", "variant"), "options.variant");
  bool known = false;
  for (auto v : {train_variant::augmented, train_variant::mixed, train_variant::mixed_downsampled})
    if (variant == variant_name(v)) p.options.variant = v, known = true;
  if (!known) rd.fail("options.variant", "expected \"augmented\", \"mixed\" or \"mixed_downsampled\", found \"" + variant + "\"");
  p.options.ratio = rd.number(rd.member(o, "options", "ratio"), "options.ratio");
  if (!(p.options.ratio > 0.0 && p.options.ratio <= 1.0)) rd.fail("options.ratio", "expected a value in (0, 1], found " + o["ratio"].dump());

  std::map<std::int64_t, std::size_t> item_pos;
  const auto& items = rd.array(rd.member(j, "", "items"), "items");
  for (std::size_t k = 0; k < items.size(); ++k) {
    const std::string f = "items[" + std::to_string(k) + "]";
    source_item it;
    it.index = rd.integer(rd.member(items[k], f, "index"), f + ".index");
    it.label = rd.label(rd.member(items[k], f, "label"), f + ".label");
    it.patient_id = rd.string(rd.member(items[k], f, "patient"), f + ".patient");
    if (it.patient_id.empty()) rd.fail(f + ".patient", "empty patient id");
    if (!item_pos.emplace(it.index, k).second) rd.fail(f + ".index", "item " + std::to_string(it.index) + " appears twice");
    p.items.push_back(std::move(it));
  }

  const char* names[3] = {"train", "validation", "test"};
  std::vector<std::int64_t>* lists[3] = {&p.split.train, &p.split.validation, &p.split.test};
  std::vector<domain_item>* sets[3] = {&p.train, &p.validation, &p.test};
  std::map<std::string, int> patient_split_of;
  std::map<std::int64_t, int> item_split_of;
  const auto& split = rd.member(j, "", "split");
  for (int s = 0; s < 3; ++s) {
    const std::string f = std::string("split.") + names[s];
    const auto& a = rd.array(rd.member(split, "split", names[s]), f);
    for (std::size_t k = 0; k < a.size(); ++k) {
      const std::string fk = f + "[" + std::to_string(k) + "]";
      const auto id = rd.integer(a[k], fk);
      const auto pos = item_pos.find(id);
      if (pos == item_pos.end()) rd.fail(fk, "item " + std::to_string(id) + " is not in 'items'");
      if (!item_split_of.emplace(id, s).second) rd.fail(fk, "item " + std::to_string(id) + " is in two splits");
      const auto& pid = p.items[pos->second].patient_id;
      const auto [w, fresh] = patient_split_of.emplace(pid, s);
      if (!fresh && w->second != s)
        rd.fail(fk, "patient '" + pid + "' is in both " + names[w->second] + " and " + names[s]);
      lists[s]->push_back(id);
    }
  }
  const auto& jsets = rd.member(j, "", "sets");
  for (int s = 0; s < 3; ++s) {
    const std::string f = std::string("sets.") + names[s];
    const auto& a = rd.array(rd.member(jsets, "sets", names[s]), f);
    for (std::size_t k = 0; k < a.size(); ++k) {
      const std::string fk = f + "[" + std::to_string(k) + "]";
      domain_item e;
      e.item = rd.integer(rd.member(a[k], fk, "item"), fk + ".item");
      e.label = rd.label(rd.member(a[k], fk, "label"), fk + ".label");
      const auto d = rd.string(rd.member(a[k], fk, "domain"), fk + ".domain");
      if (d == "A") e.dom = domain::A;
      else if (d == "B") e.dom = domain::B;
      else rd.fail(fk + ".domain", "expected \"A\" or \"B\", found \"" + d + "\"");
      e.pair = rd.integer(rd.member(a[k], fk, "pair"), fk + ".pair");
      const auto w = item_split_of.find(e.item);
      if (w == item_split_of.end() || w->second != s)
        rd.fail(fk + ".item", "item " + std::to_string(e.item) + " is not in split." + names[s]);
      if (p.items[item_pos.at(e.item)].label != e.label)
        rd.fail(fk + ".label", "label " + std::to_string(e.label) + " differs from item " + std::to_string(e.item) +
                                   "'s label " + std::to_string(p.items[item_pos.at(e.item)].label));
      sets[s]->push_back(e);
    }
  }
  return p;
}

}  // namespace mammocl::data
