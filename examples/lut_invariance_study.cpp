// lut_invariance_study: the study of issue 6 (METHOD.md §2.3, §5, §6) on the built-in phantom. It generates
// phantom mammograms, makes domain B of every image with the per-image sigmoid VOI LUT, cuts paired A/B
// patches (same centres in both versions), splits by patient (= phantom image), builds the training-set
// variants (augmented; mixed with several seeds; mixed down-sampled, nested), trains the small DenseNet with
// each strategy on each variant, evaluates on the two-domain test set and writes the poster's tables:
// AUC ± bootstrap s.e. (paired-bootstrap p vs CE), AUC per domain and gap, invariance measures (paired
// consistency, class-wise MMD² with permutation p, proxy A-distance), class counts, and an HTML report.
//
//   lut_invariance_study [--datasets LIST] [--strategies LIST] [--images N] [--epochs N] [--epochs2 N]
//                        [--window N] [--size N] [--per-roi N] [--per-image N] [--batch N] [--replicates N]
//                        [--permutations N] [--seed N] [--threads N] [--out DIR] [--quiet] [--smoke]
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "mammocl/data/domains.hpp"
#include "mammocl/data/patches.hpp"
#include "mammocl/data/phantom.hpp"
#include "mammocl/data/voi_lut.hpp"
#include "mammocl/eval/bootstrap.hpp"
#include "mammocl/eval/invariance.hpp"
#include "mammocl/eval/report.hpp"
#include "mammocl/mammocl.hpp"
#include "mammocl/train/trainer.hpp"

using namespace mammocl;
using B = cpu_backend;
using model_t = models::densenet<B, models::densenet_small>;
namespace fs = std::filesystem;

namespace {

constexpr int classes = 5;  // the fixed patch_class order of data/annotation.hpp
constexpr const char* prog = "lut_invariance_study";

[[noreturn]] void fail(const std::string& msg) {
  std::fprintf(stderr, "%s: %s\n", prog, msg.c_str());
  std::exit(2);
}

// ---------------------------------------------------------------------------------------------------
// Command line

/// One training-set variant of the study.
struct dataset_spec {
  std::string name;                  // "augmented", "mixed-1", "down-0.6"
  std::string label;                 // the poster's row label
  data::train_variant variant = data::train_variant::mixed;
  std::uint64_t seed = 1;            // mixing seed (mixed, down-sampled)
  double ratio = 1.0;                // down-sampling ratio
};

struct args {
  std::vector<dataset_spec> datasets;
  std::vector<std::string> strategies{"ce", "supcon_linear", "supcon_finetune"};
  int images = 160, window = 128, size = 32, per_roi = 4, per_image = 3, batch = 32, threads = 2;
  std::optional<int> epochs, epochs2;
  std::size_t replicates = 500, permutations = 200;
  std::uint64_t seed = 1;
  bool quiet = false, smoke = false;
  fs::path out = "lut_invariance_out";
};

std::optional<dataset_spec> parse_dataset(const std::string& s) {
  auto number = [](const std::string& t) -> std::optional<double> {
    char* end = nullptr;
    const double v = std::strtod(t.c_str(), &end);
    if (t.empty() || end != t.c_str() + t.size() || !std::isfinite(v)) return std::nullopt;
    return v;
  };
  if (s == "augmented") return dataset_spec{"augmented", "augmented", data::train_variant::augmented, 1, 1.0};
  if (s.rfind("mixed-", 0) == 0) {
    const auto v = number(s.substr(6));
    if (!v || *v < 1 || *v != std::floor(*v) || *v > 1e9) return std::nullopt;
    const auto k = static_cast<std::uint64_t>(*v);
    return dataset_spec{s, "mixed " + std::to_string(k), data::train_variant::mixed, k, 1.0};
  }
  if (s.rfind("down-", 0) == 0) {
    const auto v = number(s.substr(5));
    if (!v || !(*v > 0 && *v < 1)) return std::nullopt;
    return dataset_spec{s, "mixed down-sampled " + s.substr(5), data::train_variant::mixed_downsampled, 1, *v};
  }
  return std::nullopt;
}

std::vector<dataset_spec> all_datasets() {
  std::vector<dataset_spec> d;
  for (const char* n : {"augmented", "mixed-1", "mixed-2", "mixed-3", "mixed-4", "down-0.6", "down-0.7", "down-0.8",
                        "down-0.9"})
    d.push_back(*parse_dataset(n));
  return d;
}

void usage(std::FILE* f) {
  std::fprintf(f,
               "usage: lut_invariance_study [options]\n"
               "  --datasets LIST    comma-separated from augmented, mixed-K (mixing seed K >= 1), down-R (mixed-1\n"
               "                     down-sampled to 0 < R < 1, nested), or 'all' (default: augmented,mixed-1..4,\n"
               "                     down-0.6,down-0.7,down-0.8,down-0.9)\n"
               "  --strategies LIST  comma-separated from ce, supcon_linear, supcon_finetune, dann, mmd\n"
               "                     (default ce,supcon_linear,supcon_finetune; p-values need ce)\n"
               "  --images N         phantom mammograms = patients (default 160)\n"
               "  --epochs N         stage-1 epochs (default: ce/dann/mmd 5, SupCon pre-training 8)\n"
               "  --epochs2 N        stage-2 epochs of the SupCon strategies (default 3)\n"
               "  --window N         patch window in phantom pixels (0.2 mm) (default 128)\n"
               "  --size N           patch side after resizing, >= 16 (default 32)\n"
               "  --per-roi N        patches per lesion (default 4)\n"
               "  --per-image N      background patches per image (default 3)\n"
               "  --batch N          batch size (default 32)\n"
               "  --replicates N     bootstrap replicates (default 500)\n"
               "  --permutations N   MMD permutations (default 200)\n"
               "  --seed N           phantom, split and initialisation seed (default 1)\n"
               "  --threads N        CPU threads (default 2)\n"
               "  --out DIR          output folder (default lut_invariance_out)\n"
               "  --quiet            no progress bars\n"
               "  --smoke            a tiny end-to-end run (ctest); cannot be combined with the size flags\n");
}

args parse(int argc, char** argv) {
  args a;
  bool sized = false, datasets_given = false, strategies_given = false;
  auto value = [&](int& i, const std::string& name) -> std::string {
    if (i + 1 >= argc) fail(name + " needs a value");
    return argv[++i];
  };
  auto integer = [&](int& i, const std::string& name, long long lo) -> long long {
    const std::string v = value(i, name);
    char* end = nullptr;
    const long long x = std::strtoll(v.c_str(), &end, 10);
    if (v.empty() || *end) fail(name + " expects an integer, got '" + v + "'");
    if (x < lo) fail(name + " must be at least " + std::to_string(lo) + ", got " + v);
    return x;
  };
  auto list = [&](int& i, const std::string& name) {
    std::vector<std::string> out;
    std::stringstream ss(value(i, name));
    for (std::string s; std::getline(ss, s, ',');) {
      if (s.empty()) fail(name + ": empty name in the list");
      if (std::find(out.begin(), out.end(), s) != out.end()) fail(name + ": '" + s + "' is listed twice");
      out.push_back(s);
    }
    if (out.empty()) fail(name + " needs at least one name");
    return out;
  };
  for (int i = 1; i < argc; ++i) {
    const std::string k = argv[i];
    if (k == "--help" || k == "-h") { usage(stdout); std::exit(0); }
    else if (k == "--datasets") {
      datasets_given = true;
      a.datasets.clear();
      for (const std::string& s : list(i, k)) {
        if (s == "all") {
          for (const auto& d : all_datasets()) a.datasets.push_back(d);
          continue;
        }
        const auto d = parse_dataset(s);
        if (!d) fail("--datasets: unknown dataset '" + s + "'; expected augmented, mixed-K (K >= 1), down-R (0 < R < 1) or all");
        a.datasets.push_back(*d);
      }
      for (std::size_t x = 0; x < a.datasets.size(); ++x)
        for (std::size_t y = x + 1; y < a.datasets.size(); ++y)
          if (a.datasets[x].label == a.datasets[y].label) fail("--datasets: '" + a.datasets[x].name + "' is listed twice");
    } else if (k == "--strategies") {
      a.strategies = list(i, k);
      strategies_given = true;
      for (const auto& s : a.strategies)
        if (std::find(train::strategy_names.begin(), train::strategy_names.end(), s) == train::strategy_names.end())
          fail("--strategies: unknown strategy '" + s + "'; expected ce, supcon_linear, supcon_finetune, dann or mmd");
    }
    else if (k == "--images") { a.images = static_cast<int>(integer(i, k, 10)); sized = true; }
    else if (k == "--epochs") { a.epochs = static_cast<int>(integer(i, k, 1)); sized = true; }
    else if (k == "--epochs2") { a.epochs2 = static_cast<int>(integer(i, k, 1)); sized = true; }
    else if (k == "--window") { a.window = static_cast<int>(integer(i, k, 16)); sized = true; }
    else if (k == "--size") { a.size = static_cast<int>(integer(i, k, 16)); sized = true; }
    else if (k == "--per-roi") { a.per_roi = static_cast<int>(integer(i, k, 1)); sized = true; }
    else if (k == "--per-image") { a.per_image = static_cast<int>(integer(i, k, 1)); sized = true; }
    else if (k == "--batch") { a.batch = static_cast<int>(integer(i, k, 2)); sized = true; }
    else if (k == "--replicates") { a.replicates = static_cast<std::size_t>(integer(i, k, 10)); sized = true; }
    else if (k == "--permutations") { a.permutations = static_cast<std::size_t>(integer(i, k, 1)); sized = true; }
    else if (k == "--seed") a.seed = static_cast<std::uint64_t>(integer(i, k, 0));
    else if (k == "--threads") a.threads = static_cast<int>(integer(i, k, 1));
    else if (k == "--out") a.out = value(i, k);
    else if (k == "--quiet") a.quiet = true;
    else if (k == "--smoke") a.smoke = true;
    else { usage(stderr); fail("unknown option '" + k + "'"); }
  }
  if (a.smoke && (sized || datasets_given))
    fail("--smoke fixes the sizes, the datasets and the epochs; leave out --datasets, --images, --epochs, --epochs2, "
         "--window, --size, --per-roi, --per-image, --batch, --replicates and --permutations, or leave out --smoke");
  if (a.smoke) {
    a.datasets = {*parse_dataset("augmented"), *parse_dataset("mixed-1"), *parse_dataset("down-0.6")};
    if (!strategies_given) a.strategies = {"ce", "supcon_finetune"};
    a.images = 40;
    a.epochs = 1;
    a.epochs2 = 1;
    a.replicates = 50;
    a.permutations = 20;
    a.quiet = true;
  }
  if (a.datasets.empty()) a.datasets = all_datasets();
  if (a.size > a.window) fail("--size (" + std::to_string(a.size) + ") must not exceed --window (" + std::to_string(a.window) + ")");
  // Create the output folder now: a path that cannot be used must fail before any long work.
  std::error_code ec;
  fs::create_directories(a.out, ec);
  if (ec || !fs::is_directory(a.out))
    fail("cannot create the output folder '" + a.out.string() + "'" + (ec ? ": " + ec.message() : ": not a directory"));
  return a;
}

// ---------------------------------------------------------------------------------------------------
// Data: paired A/B patches of the phantom

/// Every patch in both domains, side x side each; patch k came from phantom image image[k].
struct patch_store {
  int side = 0;
  std::vector<float> a, b;
  std::vector<int> label;
  std::vector<std::int64_t> image;
  [[nodiscard]] std::size_t pixels() const { return static_cast<std::size_t>(side) * static_cast<std::size_t>(side); }
  [[nodiscard]] const float* get(std::int64_t k, data::domain d) const {
    return (d == data::domain::A ? a : b).data() + pixels() * static_cast<std::size_t>(k);
  }
};

patch_store make_patches(const args& a, std::map<std::string, data::lut_domain_params>& lut) {
  data::phantom_options po;
  po.seed = a.seed;
  data::patch_options so;
  so.patch_size = a.window;
  so.output_size = a.size;
  so.per_roi = a.per_roi;
  so.per_image = a.per_image;
  so.seed = a.seed;
  patch_store s;
  s.side = a.size;
  for (int i = 0; i < a.images; ++i) {
    data::phantom_case pc = data::generate_phantom(po, static_cast<std::uint64_t>(i));
    pc.img.meta.min_value = 0.0;
    pc.img.meta.max_value = 1.0;
    const data::lut_domain_params p = data::estimate_lut_params(pc.img, pc.breast);
    lut[pc.record.image_path] = p;
    const data::image img_b = data::apply_lut_domain(pc.img, p);
    // Acceptance depends only on the masks, so one stream gives the same centres on both versions.
    const auto pa = data::sample_patches(pc.img, pc.record, pc.lesion_masks, pc.breast, so, static_cast<std::uint64_t>(i));
    const auto pb = data::sample_patches(img_b, pc.record, pc.lesion_masks, pc.breast, so, static_cast<std::uint64_t>(i));
    MAMMOCL_CHECK(pa.size() == pb.size(), numeric_error, "phantom ", pc.record.image_path, ": ", pa.size(),
                  " patches in domain A but ", pb.size(), " in domain B (the sampler must not look at pixels)");
    for (std::size_t j = 0; j < pa.size(); ++j) {
      MAMMOCL_CHECK(pa[j].center_row == pb[j].center_row && pa[j].center_col == pb[j].center_col &&
                        pa[j].label == pb[j].label,
                    numeric_error, "phantom ", pc.record.image_path, ": patch ", j, " has different centres in A and B");
      s.a.insert(s.a.end(), pa[j].pixels.pixels.begin(), pa[j].pixels.pixels.end());
      s.b.insert(s.b.end(), pb[j].pixels.pixels.begin(), pb[j].pixels.pixels.end());
      s.label.push_back(pa[j].label);
      s.image.push_back(i);
    }
  }
  return s;
}

/// A BatchSource over one set of domain items of the store. Training: shuffled per (stage, epoch), full
/// batches only, each view independently flipped and rotated by k·90° (the class does not depend on the
/// orientation). Evaluation: fixed order, no augmentation, every sample. Sample ids are the pair ids, so
/// both versions of one patch share an id.
class patch_source {
 public:
  patch_source(const patch_store& s, std::vector<data::domain_item> set, int batch, bool training, std::uint64_t seed)
      : s_(&s), set_(std::move(set)), batch_(batch), training_(training), seed_(seed) {}

  [[nodiscard]] std::int64_t size() const { return static_cast<std::int64_t>(set_.size()); }
  [[nodiscard]] std::int64_t batches_per_epoch() const {
    return training_ ? size() / batch_ : (size() + batch_ - 1) / batch_;
  }
  [[nodiscard]] const std::vector<data::domain_item>& items() const { return set_; }

  [[nodiscard]] data::batch get_batch(const data::batch_request& r) const {
    MAMMOCL_EXPECTS(r.index >= 0 && r.index < batches_per_epoch(), "patch_source: batch ", r.index, " outside [0, ",
                    batches_per_epoch(), ")");
    std::vector<std::int64_t> order(set_.size());
    for (std::size_t i = 0; i < order.size(); ++i) order[i] = static_cast<std::int64_t>(i);
    if (training_) {
      rng sh(seed_ * 0x9E3779B97F4A7C15ULL + static_cast<std::uint64_t>(r.stage) * 1000003ULL + static_cast<std::uint64_t>(r.epoch));
      for (std::size_t i = order.size(); i > 1; --i) std::swap(order[i - 1], order[sh.below(i)]);
    }
    const std::int64_t from = r.index * batch_, n = std::min<std::int64_t>(batch_, size() - from);
    const int side = s_->side;
    const std::size_t px = s_->pixels();
    data::batch b;
    b.samples = n;
    b.views = r.views;
    b.height = b.width = side;
    b.images.resize(px * static_cast<std::size_t>(n * r.views));
    for (std::int64_t j = 0; j < n; ++j) {
      const std::int64_t sample = order[static_cast<std::size_t>(from + j)];
      const data::domain_item& it = set_[static_cast<std::size_t>(sample)];
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
  const patch_store* s_;
  std::vector<data::domain_item> set_;
  int batch_;
  bool training_;
  std::uint64_t seed_;
};
static_assert(data::BatchSource<patch_source>);

// ---------------------------------------------------------------------------------------------------
// Training and evaluation

std::string display_name(const std::string& s) {
  if (s == "ce") return "CE";
  if (s == "supcon_linear") return "SupContr";
  if (s == "supcon_finetune") return "SupContr+CE";
  if (s == "dann") return "DANN";
  return "MMD";
}

/// docs/training.md "Results": the settings that learn on small patches.
train::strategy_options options_for(const std::string& name, const args& a) {
  train::strategy_options so;
  so.seed = a.seed;
  const bool supcon = name.rfind("supcon", 0) == 0;
  so.stage1 = {.epochs = supcon ? 8 : 5, .lr = supcon || name == "dann" ? 0.03 : 0.1};
  if (name == "supcon_finetune")
    so.stage2 = {.epochs = 3, .optimizer = train::optimizer_kind::adam, .lr = 1e-3};
  else
    so.stage2 = {.epochs = 3, .lr = 0.1, .weight_decay = 0.0};
  so.mmd_weight = 0.1;
  if (a.epochs) so.stage1.epochs = *a.epochs;
  if (a.epochs2) so.stage2.epochs = *a.epochs2;
  return so;
}

/// Softmax probabilities and pooled features of the test set, in the source's order.
struct predictions {
  std::vector<double> prob, features;
  std::size_t dim = 0;
};

predictions predict(B::context& ctx, const model_t& m, const patch_source& test) {
  predictions p;
  for (std::int64_t i = 0; i < test.batches_per_epoch(); ++i) {
    const data::batch b = test.get_batch({0, 0, i, 1});
    const tensor<B> f = m.infer_features(ctx, train::detail::to_tensor<B>(b));
    const tensor<B> l = m.classifier().infer(ctx, f);
    p.dim = static_cast<std::size_t>(f.c());
    p.features.insert(p.features.end(), f.data(), f.data() + f.numel());
    for (index_t r = 0; r < l.n(); ++r) {
      double mx = -INFINITY, sum = 0;
      for (int c = 0; c < classes; ++c) mx = std::max(mx, static_cast<double>(l.at(r, c)));
      double e[classes];
      for (int c = 0; c < classes; ++c) sum += e[c] = std::exp(static_cast<double>(l.at(r, c)) - mx);
      for (int c = 0; c < classes; ++c) p.prob.push_back(e[c] / sum);
    }
  }
  return p;
}

/// A run: one strategy trained on one dataset, with its test predictions.
struct run_result {
  std::string dataset, strategy;
  predictions pred;
  double seconds = 0, best_val_auc = 0;
};

/// OvO macro AUC of the rows `idx` (optionally only one domain), or nullopt when a class is missing.
std::optional<double> auc_of(const predictions& p, const std::vector<int>& labels, const std::vector<int>& domains,
                             std::span<const std::size_t> idx, int only_domain) {
  std::vector<double> s;
  std::vector<int> y;
  int seen[classes] = {};
  for (std::size_t i : idx) {
    if (only_domain >= 0 && domains[i] != only_domain) continue;
    s.insert(s.end(), p.prob.begin() + static_cast<std::ptrdiff_t>(i * classes),
             p.prob.begin() + static_cast<std::ptrdiff_t>((i + 1) * classes));
    y.push_back(labels[i]);
    seen[labels[i]] = 1;
  }
  for (int c = 0; c < classes; ++c)
    if (!seen[c]) return std::nullopt;
  return eval::ovo_auc(s, y, classes).macro;
}

std::string read_text(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  MAMMOCL_CHECK(in.good(), io_error, "cannot read back ", p);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::string fmt(const char* f, double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, f, v);
  return buf;
}

}  // namespace

int main(int argc, char** argv) {
  const args a = parse(argc, argv);
  try {
    const auto t_start = std::chrono::steady_clock::now();
    auto elapsed = [&] { return std::chrono::duration<double>(std::chrono::steady_clock::now() - t_start).count(); };
    B::context ctx(a.threads);

    // 1. Paired patches and the per-image windows.
    std::map<std::string, data::lut_domain_params> lut;
    const patch_store store = make_patches(a, lut);
    data::write_lut_params(a.out / "lut_params.tsv", lut);
    const double gen_s = elapsed();

    // 2. Patient split (phantom image = patient), one for every dataset so that all share the test set.
    std::vector<data::source_item> items;
    for (std::size_t k = 0; k < store.label.size(); ++k)
      items.push_back({static_cast<std::int64_t>(k), store.label[k], "phantom-" + std::to_string(store.image[k])});
    const data::split_options split_opt{.train = 0.6, .validation = 0.15, .test = 0.25};
    const data::patient_split split = data::split_by_patient(items, split_opt, a.seed);
    const auto train_items = data::select_items(items, split.train);
    const auto val_items = data::select_items(items, split.validation);
    const auto test_items = data::select_items(items, split.test);
    const auto test_set = data::test_set(test_items);
    const auto val_set = data::test_set(val_items);
    for (const auto* s : {&val_set, &test_set}) {
      int seen[classes] = {};
      for (const auto& e : *s) seen[e.label] = 1;
      for (int c = 0; c < classes; ++c)
        if (!seen[c])
          fail(std::string(s == &val_set ? "the validation" : "the test") + " set has no patch of class '" +
               std::string(data::class_name(static_cast<data::patch_class>(c))) + "' with --images " +
               std::to_string(a.images) + " and --seed " + std::to_string(a.seed) + "; use more images");
    }

    std::vector<data::domain_plan> plans;
    for (const dataset_spec& d : a.datasets) {
      data::domain_plan p;
      p.options = {.split = split_opt, .variant = d.variant, .ratio = d.ratio, .seed = d.seed};
      p.items = items;
      p.split = split;
      if (d.variant == data::train_variant::augmented) p.train = data::augmented(train_items);
      else if (d.variant == data::train_variant::mixed) p.train = data::mixed(train_items, d.seed);
      else p.train = data::mixed_downsampled(train_items, d.ratio, d.seed);
      p.validation = val_set;
      p.test = test_set;
      if (static_cast<int>(p.train.size()) < a.batch)
        fail("dataset '" + d.name + "' has " + std::to_string(p.train.size()) + " training patches, fewer than one batch (" +
             std::to_string(a.batch) + "); use more --images or a smaller --batch");
      plans.push_back(std::move(p));
    }
    fs::create_directories(a.out / "datasets");
    nlohmann::json manifest;
    manifest["format"] = "mammocl.lut_invariance_study";
    manifest["version"] = 1;
    manifest["data"] = {{"source", "phantom"}, {"images", a.images}, {"seed", a.seed}, {"window", a.window},
                        {"size", a.size}, {"per_roi", a.per_roi}, {"per_image", a.per_image},
                        {"patches", store.label.size()}, {"lut_params", "lut_params.tsv"}};
    manifest["split"] = {{"train", split_opt.train}, {"validation", split_opt.validation}, {"test", split_opt.test},
                         {"seed", a.seed}};
    manifest["strategies"] = a.strategies;
    manifest["datasets"] = nlohmann::json::array();
    for (std::size_t i = 0; i < plans.size(); ++i) {
      const fs::path file = fs::path("datasets") / (a.datasets[i].name + ".json");
      data::write_manifest(a.out / file, plans[i]);
      manifest["datasets"].push_back({{"name", a.datasets[i].name}, {"label", a.datasets[i].label},
                                      {"train_size", plans[i].train.size()}, {"manifest", file.string()}});
    }

    std::printf("MammoCL LUT invariance study on the phantom: %d images (patients), %zu paired A/B patches of %dx%d "
                "(%dx%d windows), split by patient %.0f/%.0f/%.0f %% (seed %llu); %.1f s to generate\n",
                a.images, store.label.size(), a.size, a.size, a.window, a.window, 100 * split_opt.train,
                100 * split_opt.validation, 100 * split_opt.test, static_cast<unsigned long long>(a.seed), gen_s);
    if (a.smoke) std::printf("--smoke: a tiny run (40 images, 1 epoch per stage); its numbers mean nothing\n");

    // Class counts.
    eval::class_counts_table counts;
    counts.caption = "Patches per class";
    for (int c = 0; c < classes; ++c) counts.class_names.emplace_back(data::class_name(static_cast<data::patch_class>(c)));
    auto count_row = [&](const std::string& label, const std::vector<data::domain_item>& set, int dom) {
      eval::count_row r{label, std::vector<long long>(classes, 0)};
      for (const auto& e : set)
        if (dom < 0 || static_cast<int>(e.dom) == dom) ++r.counts[static_cast<std::size_t>(e.label)];
      counts.rows.push_back(r);
    };
    for (std::size_t i = 0; i < plans.size(); ++i) {
      count_row("train " + a.datasets[i].label + " A", plans[i].train, 0);
      count_row("train " + a.datasets[i].label + " B", plans[i].train, 1);
    }
    count_row("validation (A and B)", val_set, -1);
    count_row("test (A and B)", test_set, -1);
    std::printf("\n%s\n", eval::to_markdown(counts).c_str());

    // 3. Train every strategy on every dataset.
    const patch_source test_src(store, test_set, 64, false, 0);
    const patch_source val_src(store, val_set, 64, false, 0);
    std::vector<run_result> runs;
    for (std::size_t i = 0; i < plans.size(); ++i) {
      const patch_source train_src(store, plans[i].train, a.batch, true, a.seed * 7919 + i);
      for (const std::string& name : a.strategies) {
        const auto t0 = std::chrono::steady_clock::now();
        model_t model({.in_channels = 1, .num_classes = classes});
        model.init(a.seed);
        const train::strategy_options so = options_for(name, a);
        const fs::path dir = a.out / "runs" / a.datasets[i].name / name;
        const train::fit_result fit = train::with_strategy<model_t>(name, [&]<class S>() {
          S strategy(model, so);
          train::trainer_options opt{.out_dir = dir, .resume = false, .progress = !a.quiet, .progress_stream = stdout};
          return train::fit(ctx, strategy, train_src, &val_src, opt, classes);
        });
        run_result r;
        r.dataset = a.datasets[i].label;
        r.strategy = name;
        r.pred = predict(ctx, model, test_src);
        r.best_val_auc = fit.best_metric;
        r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        std::printf("%-26s %-16s best validation AUC %.4f, %.0f s\n", r.dataset.c_str(), name.c_str(), r.best_val_auc,
                    r.seconds);
        std::fflush(stdout);
        runs.push_back(std::move(r));
      }
    }

    // 4. Evaluation on the test set: bootstrap over pairs (both versions of a patch move together).
    std::vector<int> labels, domains;
    std::vector<std::int64_t> pairs;
    for (const auto& e : test_set) {
      labels.push_back(e.label);
      domains.push_back(static_cast<int>(e.dom));
      pairs.push_back(e.pair);
    }
    const eval::resampling_plan plan =
        eval::make_clustered_plan(labels, pairs, {.replicates = a.replicates, .seed = a.seed});
    auto stat = [&](const run_result& r, int dom) {
      return [&r, &labels, &domains, dom](std::span<const std::size_t> idx) {
        return auc_of(r.pred, labels, domains, idx, dom);
      };
    };
    std::vector<std::string> dataset_labels, columns;
    for (const auto& d : a.datasets) dataset_labels.push_back(d.label);
    for (const auto& s : a.strategies) columns.push_back(display_name(s));
    const bool have_ce = std::find(a.strategies.begin(), a.strategies.end(), "ce") != a.strategies.end();
    eval::poster_table poster = eval::poster_table::make(
        "Test AUC (one-vs-one macro, both domains) ± bootstrap s.e. (p: paired bootstrap vs CE)", dataset_labels,
        columns, have_ce ? "CE" : "");
    eval::domain_table dom_table;
    dom_table.caption = "AUC per domain (A: no LUT, B: sigmoid VOI LUT) ± bootstrap s.e.";
    dom_table.row_header = "Dataset / strategy";
    eval::invariance_table inv;
    inv.caption = "Domain invariance on the test set";
    inv.row_header = "Dataset / strategy";
    for (int c = 0; c < classes; ++c) inv.class_names.emplace_back(data::class_name(static_cast<data::patch_class>(c)));
    nlohmann::json results = nlohmann::json::array();
    for (const run_result& r : runs) {
      const run_result* ce = nullptr;
      for (const run_result& o : runs)
        if (o.dataset == r.dataset && o.strategy == "ce") ce = &o;
      eval::estimate e;
      std::optional<double> p;
      if (ce && ce != &r) {
        const auto pb = eval::paired_bootstrap(plan, stat(r, -1), stat(*ce, -1));
        p = pb.p_two_sided;
        e = {pb.first.estimate, pb.first.standard_error, std::nullopt, p};
      } else {
        const auto bs = eval::bootstrap(plan, stat(r, -1));
        e = {bs.estimate, bs.standard_error, std::nullopt, std::nullopt};
      }
      poster.set(r.dataset, display_name(r.strategy), e);
      const auto ba = eval::bootstrap(plan, stat(r, 0)), bb = eval::bootstrap(plan, stat(r, 1));
      const auto gap = eval::bootstrap(plan, [&](std::span<const std::size_t> idx) -> std::optional<double> {
        const auto x = auc_of(r.pred, labels, domains, idx, 0), y = auc_of(r.pred, labels, domains, idx, 1);
        if (!x || !y) return std::nullopt;
        return std::abs(*x - *y);
      });
      const std::string row_label = r.dataset + " / " + display_name(r.strategy);
      auto with_se = [](const eval::bootstrap_result& x) {
        return eval::estimate{x.estimate, x.standard_error, std::nullopt, std::nullopt};
      };
      dom_table.rows.push_back({row_label, with_se(ba), with_se(bb), with_se(gap)});

      // Invariance: rows 2k (A) and 2k+1 (B) are the two versions of one patch (data::test_set's order).
      std::vector<double> pa, pbv, fa, fb;
      std::vector<int> image_ids;
      for (std::size_t i = 0; i + 1 < test_set.size(); i += 2) {
        MAMMOCL_CHECK(test_set[i].pair == test_set[i + 1].pair && test_set[i].dom == data::domain::A &&
                          test_set[i + 1].dom == data::domain::B,
                      numeric_error, "test set entries ", i, " and ", i + 1, " are not the A/B versions of one patch");
        auto row = [&](const std::vector<double>& v, std::size_t k, std::size_t w) {
          return std::span<const double>(v.data() + k * w, w);
        };
        const auto ra = row(r.pred.prob, i, classes), rb = row(r.pred.prob, i + 1, classes);
        pa.insert(pa.end(), ra.begin(), ra.end());
        pbv.insert(pbv.end(), rb.begin(), rb.end());
        const auto xa = row(r.pred.features, i, r.pred.dim), xb = row(r.pred.features, i + 1, r.pred.dim);
        fa.insert(fa.end(), xa.begin(), xa.end());
        fb.insert(fb.end(), xb.begin(), xb.end());
      }
      for (const auto& e2 : test_set) image_ids.push_back(static_cast<int>(store.image[static_cast<std::size_t>(e2.item)]));
      const auto cons = eval::paired_prediction_consistency(pa, pbv, classes);
      eval::invariance_row ir;
      ir.label = row_label;
      ir.mean_abs_prob_diff = cons.mean_abs_difference;
      ir.argmax_agreement = cons.argmax_agreement;
      ir.cosine_similarity = eval::mean_paired_cosine(fa, fb, r.pred.dim);
      eval::mmd_options mo;
      mo.permutations = a.permutations;
      mo.seed = a.seed;
      const auto mmd = eval::mmd_permutation_test(r.pred.features, r.pred.dim, labels, domains, mo);
      ir.classwise_mmd.assign(classes, {});
      std::vector<bool> have(classes, false);
      for (const auto& t : mmd.classes) {
        ir.classwise_mmd[static_cast<std::size_t>(t.label)] = {t.mmd2, t.p_value};
        have[static_cast<std::size_t>(t.label)] = true;
      }
      for (int c = 0; c < classes; ++c)
        MAMMOCL_CHECK(have[static_cast<std::size_t>(c)], numeric_error, "class-wise MMD: class ", c,
                      " has fewer than 2 test patches per domain");
      const std::vector<int> one(labels.size(), 0);
      const auto overall = eval::mmd_permutation_test(r.pred.features, r.pred.dim, one, domains, mo);
      ir.overall_mmd = eval::mmd_result{overall.mmd2, overall.p_value};
      // PAD holds out whole phantom images, so that the two versions of a patch never straddle the halves.
      ir.pad = eval::proxy_a_distance(r.pred.features, r.pred.dim, domains, image_ids, {.seed = a.seed}).pad;
      inv.rows.push_back(ir);

      results.push_back({{"dataset", r.dataset}, {"strategy", r.strategy}, {"auc", e.value}, {"auc_se", *e.se},
                         {"p_vs_ce", p ? nlohmann::json(*p) : nlohmann::json(nullptr)}, {"auc_a", ba.estimate},
                         {"auc_b", bb.estimate}, {"gap", gap.estimate}, {"classwise_mmd2", mmd.mmd2},
                         {"classwise_mmd_p", mmd.p_value}, {"overall_mmd2", overall.mmd2}, {"pad", ir.pad},
                         {"mean_abs_prob_diff", ir.mean_abs_prob_diff}, {"argmax_agreement", ir.argmax_agreement},
                         {"cosine", ir.cosine_similarity}, {"best_val_auc", r.best_val_auc},
                         {"seconds", r.seconds}});
    }

    // 5. Output.
    const std::string settings =
        "Data: " + std::to_string(a.images) + " phantom mammograms (patients), " + std::to_string(store.label.size()) +
        " paired patches, split by patient 60/15/25 %; test set: " + std::to_string(test_set.size() / 2) +
        " patches, each in domain A (no LUT) and B (per-image sigmoid VOI LUT). Model: small DenseNet. Epochs: stage 1 " +
        (a.epochs ? std::to_string(*a.epochs) : std::string("5 (CE/DANN/MMD), 8 (SupCon)")) + ", stage 2 " +
        (a.epochs2 ? std::to_string(*a.epochs2) : std::string("3")) + ". Bootstrap: " + std::to_string(a.replicates) +
        " replicates, clustered on the A/B pair, stratified by class. MMD: " + std::to_string(a.permutations) +
        " permutations.";
    std::string md = "# LUT invariance study (phantom)\n\n" + settings + "\n\n";
    if (a.smoke) md += "**Smoke run** (tiny, 1 epoch per stage): the numbers mean nothing.\n\n";
    md += eval::to_markdown(poster) + "\n" + eval::to_markdown(dom_table) + "\n" + eval::to_markdown(inv) + "\n" +
          eval::to_markdown(counts);
    const double total_s = elapsed();
    md += "\nTotal time " + fmt("%.0f", total_s) + " s with " + std::to_string(a.threads) + " threads.\n";
    std::printf("\n%s\n%s\n%s", eval::to_markdown(poster).c_str(), eval::to_markdown(dom_table).c_str(),
                eval::to_markdown(inv).c_str());
    std::printf("\ntotal %.0f s; wrote %s, %s, %s, %s\n", total_s, (a.out / "results.md").c_str(),
                (a.out / "report.html").c_str(), (a.out / "manifest.json").c_str(), (a.out / "lut_params.tsv").c_str());
    eval::write_file_atomic(a.out / "results.md", md);
    eval::html_page page("MammoCL LUT invariance study");
    page.heading("LUT invariance study on the phantom").paragraph(settings);
    if (a.smoke) page.paragraph("Smoke run (tiny, 1 epoch per stage): the numbers mean nothing.");
    page.table(poster).table(dom_table).table(inv).table(counts);
    page.paragraph("Total time " + fmt("%.0f", total_s) + " s with " + std::to_string(a.threads) + " threads.");
    page.write(a.out / "report.html");
    manifest["results"] = results;
    manifest["seconds"] = total_s;
    eval::write_file_atomic(a.out / "manifest.json", manifest.dump(2) + "\n");

    // 6. Self-check (what the smoke test relies on): every file reads back to what was written.
    MAMMOCL_CHECK(data::read_lut_params(a.out / "lut_params.tsv") == lut, io_error, a.out / "lut_params.tsv",
                  " does not read back to the windows that were written");
    for (std::size_t i = 0; i < plans.size(); ++i) {
      const fs::path f = a.out / "datasets" / (a.datasets[i].name + ".json");
      MAMMOCL_CHECK(data::read_manifest(f) == plans[i], io_error, f, " does not read back to the dataset that was written");
    }
    MAMMOCL_CHECK(nlohmann::json::parse(read_text(a.out / "manifest.json")) == manifest, io_error, a.out / "manifest.json",
                  " does not read back to what was written");
    MAMMOCL_CHECK(read_text(a.out / "results.md") == md, io_error, a.out / "results.md", " does not read back");
    MAMMOCL_CHECK(read_text(a.out / "report.html") == page.str(), io_error, a.out / "report.html", " does not read back");
    std::printf("every output file reads back to what was written\n");
    return 0;
  } catch (const mammocl::error& e) {
    std::fprintf(stderr, "%s: %s\n", prog, e.what());
    return 1;
  }
}
