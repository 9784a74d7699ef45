// Patient splits, training-set variants (augmented, mixed, mixed down-sampled), paired test sets and the
// domain manifest (include/mammocl/data/domains.hpp). The split tests run on the real mini-MIAS annotation
// list (shared data), one item per image, patient = the left/right pair of the database's numbering.
#include <boost/test/unit_test.hpp>

#include <algorithm>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "mammocl/data/domains.hpp"
#include "shared_data.hpp"
#include "temp_dir.hpp"
#include "test_helpers.hpp"

namespace {

using namespace mammocl;
using namespace mammocl::data;

// One source item per mini-MIAS image: label = the highest patch_class over its rows (NORM -> 0,
// CALC -> 1/2, any other abnormality is a mass -> 3/4), patient = (n + 1) / 2 for image mdb<n>.
std::vector<source_item> mini_mias_items() {
  std::vector<source_item> items;
  const auto root = test::shared_data("mini-mias/Info.txt");
  if (!root) return items;
  std::ifstream in(*root / "mini-mias" / "Info.txt");
  std::string line;
  std::getline(in, line);  // header
  std::map<int, int> label_of;
  while (std::getline(in, line)) {
    std::istringstream ls(line);
    std::string ref, bg, cls, sev;
    if (!(ls >> ref >> bg >> cls)) continue;
    ls >> sev;
    const int n = std::stoi(ref.substr(3));
    int label = 0;
    if (cls != "NORM") label = cls == "CALC" ? (sev == "M" ? 2 : 1) : (sev == "M" ? 4 : 3);
    label_of[n] = std::max(label_of.count(n) ? label_of[n] : 0, label);
  }
  for (auto [n, label] : label_of) items.push_back({n, label, "P" + std::to_string((n + 1) / 2)});
  return items;
}

std::set<std::int64_t> as_set(const std::vector<std::int64_t>& v) { return {v.begin(), v.end()}; }

// Synthetic items with the given count per class, one patient per item.
std::vector<source_item> items_with_counts(const std::vector<int>& counts) {
  std::vector<source_item> s;
  std::int64_t id = 100;
  for (int round = 0; round < *std::max_element(counts.begin(), counts.end()); ++round)
    for (int c = 0; c < static_cast<int>(counts.size()); ++c)
      if (round < counts[c]) {
        std::string pid = "p";  // (not "p" + to_string: g++ 12 -Wrestrict false positive)
        pid += std::to_string(id);
        s.push_back({id++, c, pid});
      }
  return s;
}

}  // namespace

BOOST_AUTO_TEST_SUITE(domains)

BOOST_AUTO_TEST_CASE(split_by_patient_is_disjoint_complete_and_stratified) {
  const auto items = mini_mias_items();
  if (items.empty()) return;
  BOOST_TEST(items.size() == 244u);
  const split_options opt{};  // 0.7 / 0.1 / 0.2, any malignant
  const auto sp = split_by_patient(items, opt, 12345);
  BOOST_TEST(sp.train.size() + sp.validation.size() + sp.test.size() == items.size());

  std::map<std::int64_t, const source_item*> by_index;
  for (const auto& it : items) by_index[it.index] = &it;
  std::map<std::string, std::set<int>> splits_of_patient;
  std::set<std::int64_t> seen;
  const std::vector<std::int64_t>* lists[3] = {&sp.train, &sp.validation, &sp.test};
  for (int s = 0; s < 3; ++s)
    for (auto id : *lists[s]) {
      BOOST_TEST(seen.insert(id).second, "item " << id << " in two splits");
      splits_of_patient[by_index.at(id)->patient_id].insert(s);
    }
  BOOST_TEST(seen.size() == items.size());
  for (const auto& [pid, splits] : splits_of_patient) BOOST_TEST(splits.size() == 1u, "patient " << pid);

  // Stratification, recomputed here: per stratum, the patient counts are round(n * fraction).
  std::map<std::string, int> stratum;
  for (const auto& it : items) stratum[it.patient_id] = std::max(stratum[it.patient_id], int(it.label == 2 || it.label == 4));
  std::map<int, std::array<int, 3>> count;  // stratum -> patients per split
  for (const auto& [pid, splits] : splits_of_patient) ++count[stratum[pid]][*splits.begin()];
  BOOST_TEST(count.size() == 2u);
  for (const auto& [st, c] : count) {
    const int n = c[0] + c[1] + c[2];
    BOOST_TEST_MESSAGE("stratum " << st << ": " << n << " patients, train " << c[0] << " validation " << c[1]
                                  << " test " << c[2]);
    BOOST_TEST(c[2] == std::lround(n * 0.2));
    BOOST_TEST(c[1] == std::lround(n * 0.1));
  }
  BOOST_TEST(splits_of_patient.size() == 122u);
}

BOOST_AUTO_TEST_CASE(split_depends_on_seed_and_not_on_input_order) {
  const auto items = mini_mias_items();
  if (items.empty()) return;
  const auto a = split_by_patient(items, {}, 7);
  BOOST_TEST((a == split_by_patient(items, {}, 7)));
  const auto b = split_by_patient(items, {}, 8);
  BOOST_TEST((as_set(a.test) != as_set(b.test)));
  auto reversed = items;
  std::reverse(reversed.begin(), reversed.end());
  const auto r = split_by_patient(reversed, {}, 7);
  BOOST_TEST((as_set(r.train) == as_set(a.train)));
  BOOST_TEST((as_set(r.validation) == as_set(a.validation)));
  BOOST_TEST((as_set(r.test) == as_set(a.test)));
}

BOOST_AUTO_TEST_CASE(split_max_label_stratum) {
  // 0/1 labels, 10 patients with cancer and 30 without, 2 images each.
  std::vector<source_item> s;
  for (int p = 0; p < 40; ++p)
    for (int k = 0; k < 2; ++k) {
      std::string pid = "q";
      pid += std::to_string(p);
      s.push_back({p * 2 + k, p < 10 && k == 1 ? 1 : 0, pid});
    }
  const auto sp = split_by_patient(s, {.train = 0.6, .validation = 0.2, .test = 0.2, .stratum = patient_stratum::max_label}, 3);
  int cancer_test = 0, cancer_val = 0;
  for (auto id : sp.test) cancer_test += s[static_cast<std::size_t>(id)].label;
  for (auto id : sp.validation) cancer_val += s[static_cast<std::size_t>(id)].label;
  BOOST_TEST(cancer_test == 2);  // round(10 * 0.2) cancer patients, one cancer image each
  BOOST_TEST(cancer_val == 2);
  BOOST_TEST(sp.test.size() == 16u);  // (2 + 6) patients x 2 images
  BOOST_TEST(sp.validation.size() == 16u);
  BOOST_TEST(sp.train.size() == 48u);
}

BOOST_AUTO_TEST_CASE(split_errors) {
  const std::vector<source_item> ok{{1, 0, "a"}, {2, 1, "b"}};
  test::expect_error<config_error>([&] { (void)split_by_patient(ok, {.train = 0.7, .validation = 0.2, .test = 0.2}, 1); },
                                   "split_by_patient: train + validation + test fractions = 1.1, expected 1");
  test::expect_error<config_error>([&] { (void)split_by_patient(ok, {.train = 1.2, .validation = -0.2, .test = 0.0}, 1); },
                                   "split_by_patient: train fraction 1.2 is not in [0, 1]");
  const std::vector<source_item> dup{{1, 0, "a"}, {1, 1, "b"}};
  test::expect_error<config_error>([&] { (void)split_by_patient(dup, {}, 1); },
                                   "split_by_patient: item index 1 appears twice (second time at position 1)");
  const std::vector<source_item> nopid{{1, 0, "a"}, {2, 1, ""}};
  test::expect_error<config_error>([&] { (void)split_by_patient(nopid, {}, 1); }, "split_by_patient: item 2 has no patient id");
  const std::vector<source_item> neg{{1, -1, "a"}};
  test::expect_error<config_error>([&] { (void)split_by_patient(neg, {}, 1); },
                                   "split_by_patient: item 1 (position 0) has negative label -1");
}

BOOST_AUTO_TEST_CASE(augmented_and_test_sets_hold_both_versions_paired) {
  const auto s = items_with_counts({3, 2, 1});
  for (const auto& set : {augmented(s), test_set(s)}) {
    BOOST_TEST(set.size() == 2 * s.size());
    for (std::size_t k = 0; k < s.size(); ++k) {
      const auto& a = set[2 * k];
      const auto& b = set[2 * k + 1];
      BOOST_TEST(a.item == s[k].index);
      BOOST_TEST(b.item == s[k].index);
      BOOST_TEST(a.label == s[k].label);
      BOOST_TEST((a.dom == domain::A && b.dom == domain::B));
      BOOST_TEST(a.pair == static_cast<std::int64_t>(k));
      BOOST_TEST(b.pair == static_cast<std::int64_t>(k));
    }
  }
}

BOOST_AUTO_TEST_CASE(mixed_is_exactly_half_b_per_class) {
  const std::vector<int> counts{10, 7, 4, 1, 9};
  const auto s = items_with_counts(counts);
  std::set<std::size_t> odd_outcomes[5];
  for (std::uint64_t seed = 1; seed <= 20; ++seed) {
    const auto m = mixed(s, seed);
    BOOST_TEST(m.size() == s.size());
    std::array<int, 5> b{};
    for (std::size_t k = 0; k < m.size(); ++k) {
      BOOST_TEST(m[k].item == s[k].index);  // order of s, every item once
      BOOST_TEST(m[k].pair == static_cast<std::int64_t>(k));
      b[static_cast<std::size_t>(m[k].label)] += m[k].dom == domain::B;
    }
    for (int c = 0; c < 5; ++c) {
      if (counts[c] % 2 == 0) {
        BOOST_TEST(b[c] == counts[c] / 2, "class " << c << " seed " << seed);
      } else {
        BOOST_TEST((b[c] == counts[c] / 2 || b[c] == counts[c] / 2 + 1), "class " << c << " seed " << seed);
        odd_outcomes[c].insert(static_cast<std::size_t>(b[c]));
      }
    }
  }
  // The odd-count coin lands both ways over 20 seeds (probability of failure 2^-19 per class, fixed seeds).
  for (int c : {1, 3, 4}) BOOST_TEST(odd_outcomes[c].size() == 2u, "class " << c);
  BOOST_TEST((mixed(s, 5) == mixed(s, 5)));
  BOOST_TEST((mixed(s, 5) != mixed(s, 6)));
}

BOOST_AUTO_TEST_CASE(mixed_downsampled_is_stratified_and_nested) {
  const auto s = items_with_counts({40, 25, 13, 30, 21});
  const std::uint64_t seed = 99;
  const auto m = mixed(s, seed);
  std::map<std::pair<int, int>, int> cell_n;
  for (const auto& e : m) ++cell_n[{e.label, static_cast<int>(e.dom)}];

  std::vector<std::vector<domain_item>> subsets;
  for (double r : {0.6, 0.7, 0.8, 0.9, 1.0}) {
    const auto d = mixed_downsampled(s, r, seed);
    BOOST_TEST((d == mixed_downsampled(std::span<const domain_item>(m), r, seed)));
    std::map<std::pair<int, int>, int> cell_k;
    for (const auto& e : d) ++cell_k[{e.label, static_cast<int>(e.dom)}];
    for (const auto& [cell, n] : cell_n)
      BOOST_TEST(cell_k[cell] == std::lround(r * n), "r " << r << " class " << cell.first << " domain " << cell.second);
    // Entries keep the mixed order.
    std::size_t pos = 0;
    for (const auto& e : d) {
      while (pos < m.size() && !(m[pos] == e)) ++pos;
      BOOST_TEST(pos < m.size());
    }
    subsets.push_back(d);
  }
  BOOST_TEST((subsets.back() == m));
  for (std::size_t k = 0; k + 1 < subsets.size(); ++k)
    for (const auto& e : subsets[k])
      BOOST_TEST((std::find(subsets[k + 1].begin(), subsets[k + 1].end(), e) != subsets[k + 1].end()),
                 "subset " << k << " is not inside subset " << k + 1);
  BOOST_TEST((mixed_downsampled(s, 0.7, seed) == mixed_downsampled(s, 0.7, seed)));
  BOOST_TEST((mixed_downsampled(s, 0.7, seed) != mixed_downsampled(s, 0.7, seed + 1)));
  test::expect_error<config_error>([&] { (void)mixed_downsampled(s, 0.0, seed); }, "mixed_downsampled: ratio 0 is not in (0, 1]");
  test::expect_error<config_error>([&] { (void)mixed_downsampled(s, 1.5, seed); }, "mixed_downsampled: ratio 1.5 is not in (0, 1]");
}

BOOST_AUTO_TEST_CASE(domain_plan_sets_follow_the_split) {
  const auto items = mini_mias_items();
  if (items.empty()) return;
  for (auto v : {train_variant::augmented, train_variant::mixed, train_variant::mixed_downsampled}) {
    const auto p = make_domain_plan(items, {.variant = v, .ratio = 0.7, .seed = 2024});
    const auto n_train = p.split.train.size();
    const std::size_t expected = v == train_variant::augmented ? 2 * n_train : v == train_variant::mixed ? n_train : 0;
    if (expected) BOOST_TEST(p.train.size() == expected);
    else BOOST_TEST((p.train.size() < n_train && p.train.size() > n_train / 2));
    const auto train_ids = as_set(p.split.train);
    for (const auto& e : p.train) BOOST_TEST(train_ids.count(e.item) == 1u);
    BOOST_TEST(p.validation.size() == 2 * p.split.validation.size());
    BOOST_TEST(p.test.size() == 2 * p.split.test.size());
  }
  test::expect_error<config_error>([&] { (void)make_domain_plan(items, {.ratio = 0.0}); },
                                   "make_domain_plan: ratio 0 is not in (0, 1]");
}

BOOST_AUTO_TEST_CASE(manifest_round_trip) {
  const auto items = mini_mias_items();
  if (items.empty()) return;
  test::temp_dir dir("domains");
  for (auto v : {train_variant::augmented, train_variant::mixed, train_variant::mixed_downsampled}) {
    const auto p = make_domain_plan(items, {.split = {.train = 0.65, .validation = 0.15, .test = 0.2},
                                            .variant = v, .ratio = 0.8, .seed = 0xFFFFFFFFFFFFFFF1ULL});
    write_manifest(dir / "m.json", p);
    const auto q = read_manifest(dir / "m.json");
    BOOST_TEST((q == p));
    BOOST_TEST(q.options.seed == 0xFFFFFFFFFFFFFFF1ULL);
    BOOST_TEST(q.options.split.train == 0.65);  // exact: JSON doubles are written round-trip
  }
  // Atomic write: only the manifest is left, no temporary; an unwritable path names the file.
  BOOST_TEST((dir.listing() == std::vector<std::string>{"m.json"}));
  const auto p = make_domain_plan(items, {});
  test::expect_error<io_error>([&] { write_manifest(dir / "no-such-dir" / "m.json", p); },
                               "cannot write domain manifest '" + (dir / "no-such-dir" / "m.json").string() + "'");
}

BOOST_AUTO_TEST_CASE(manifest_errors_name_file_and_field) {
  test::temp_dir dir("domains-bad");
  const std::vector<source_item> items{{1, 0, "a"}, {2, 4, "a"}, {3, 2, "b"}, {4, 0, "c"}, {5, 3, "d"}};
  const auto p = make_domain_plan(items, {.split = {.train = 0.5, .validation = 0.0, .test = 0.5}, .seed = 3});
  const auto good = manifest_json(p);
  const auto path = dir / "bad.json";
  const std::string file = "domain manifest '" + path.string() + "': ";
  auto check = [&](const auto& edit, const std::string& fragment) {
    auto j = good;
    edit(j);
    std::ofstream(path) << j.dump();
    // The message names the file, then the field and what was wrong.
    test::expect_error<io_error>([&] { (void)read_manifest(path); }, file + "field '");
    test::expect_error<io_error>([&] { (void)read_manifest(path); }, fragment);
  };
  check([](auto& j) { j["sets"]["test"][1]["domain"] = "C"; },
        "field 'sets.test[1].domain': expected \"A\" or \"B\", found \"C\"");
  check([](auto& j) { j["options"].erase("ratio"); }, "field 'options.ratio': missing");
  check([](auto& j) { j["options"]["ratio"] = 0; }, "field 'options.ratio': expected a value in (0, 1], found 0");
  check([](auto& j) { j["options"]["variant"] = "half"; },
        "field 'options.variant': expected \"augmented\", \"mixed\" or \"mixed_downsampled\", found \"half\"");
  check([](auto& j) { j["options"]["test_fraction"] = 0.7; },
        "field 'options': fractions: train + validation + test fractions = 1.2, expected 1");
  check([](auto& j) { j["format"] = "other"; }, "field 'format': expected \"mammocl.domain_manifest\", found \"other\"");
  check([](auto& j) { j["version"] = 2; }, "field 'version': expected 1, found 2");
  check([](auto& j) { j["seed"] = -1; }, "field 'seed': expected an unsigned integer, found -1");
  check([](auto& j) { j["items"][0]["label"] = "x"; }, "field 'items[0].label': expected an integer, found \"x\"");
  check([](auto& j) { j["items"][1]["index"] = 1; }, "field 'items[1].index': item 1 appears twice");
  check([](auto& j) { j["split"]["test"] = nlohmann::json::object(); }, "field 'split.test': expected an array, found object");
  check([](auto& j) { j["split"]["test"].push_back(42); },
        "field 'split.test[" + std::to_string(p.split.test.size()) + "]': item 42 is not in 'items'");
  // Patient "a" owns items 1 and 2: moving item 2 alone to the other split breaks patient separation.
  check([&](auto& j) {
          auto& tr = j["split"]["train"];
          auto& te = j["split"]["test"];
          const bool a_in_train = std::find(p.split.train.begin(), p.split.train.end(), 1) != p.split.train.end();
          auto& from = a_in_train ? tr : te;
          auto& to = a_in_train ? te : tr;
          from.erase(std::find(from.begin(), from.end(), 2));
          to.push_back(2);
        },
        "': patient 'a' is in both train and test");
  const auto& t0 = p.train.front();
  check([&](auto& j) { j["sets"]["train"][0]["label"] = t0.label + 1; },
        "field 'sets.train[0].label': label " + std::to_string(t0.label + 1) + " differs from item " +
            std::to_string(t0.item) + "'s label " + std::to_string(t0.label));
  check([](auto& j) { j["sets"]["validation"].push_back({{"item", 1}, {"label", 0}, {"domain", "A"}, {"pair", 0}}); },
        "field 'sets.validation[0].item': item 1 is not in split.validation");

  std::ofstream(path) << "{\"format\": ";
  test::expect_error<io_error>([&] { (void)read_manifest(path); }, file + "not valid JSON");
  test::expect_error<io_error>([&] { (void)read_manifest(dir / "none.json"); },
                               "cannot open domain manifest '" + (dir / "none.json").string() + "'");
}

BOOST_AUTO_TEST_SUITE_END()
