// lut_invariance_study: the study of issue 6 (METHOD.md §2.3, §5, §6). It cuts paired A/B patches from
// mammograms — the built-in phantom by default, or a mini-MIAS, CBIS-DDSM or INbreast folder (--data) —
// where domain B of every image is the same image through its own sigmoid VOI LUT and both versions of a
// patch share its centre. It splits by patient, builds the training-set variants (augmented; mixed with
// several seeds; mixed down-sampled, nested), trains a DenseNet (the small one by default, DenseNet-121 with
// --model densenet121) with each strategy on each variant, evaluates on the two-domain test set and writes
// the poster's tables: AUC ± bootstrap s.e. clustered on patients (paired-bootstrap p vs CE), AUC per domain
// and gap, invariance measures (paired consistency, class-wise MMD² with permutation p, proxy A-distance),
// class counts, the optional linear probe on another dataset, and an HTML report with ROC curves, training
// curves and t-SNE maps. Rerunning the same command continues an interrupted study where it stopped.
//
//   lut_invariance_study [--data phantom|DIR] [--model small|densenet121] [--patch N] [--init FILE]
//                        [--datasets LIST] [--strategies LIST] [--probe-data DIR] [--out DIR] [--fresh] ...
//   lut_invariance_study --help
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "cli_common.hpp"
#include "mammocl/data/domains.hpp"
#include "mammocl/data/open_dataset.hpp"
#include "mammocl/data/paired_patches.hpp"
#include "mammocl/data/phantom.hpp"
#include "mammocl/data/voi_lut.hpp"
#include "mammocl/eval/auc.hpp"
#include "mammocl/eval/bootstrap.hpp"
#include "mammocl/eval/invariance.hpp"
#include "mammocl/eval/report.hpp"
#include "mammocl/eval/tsne.hpp"
#include "mammocl/io/checkpoint.hpp"
#include "mammocl/mammocl.hpp"
#include "mammocl/train/linear_probe.hpp"
#include "mammocl/train/trainer.hpp"
// The backend of this translation unit: cpu_backend here; lut_invariance_study_cuda.cpp compiles this file
// again with cuda_backend (MAMMOCL_EXAMPLE_BACKEND, its header and MAMMOCL_EXAMPLE_ENTRY defined first).
#ifdef MAMMOCL_EXAMPLE_BACKEND_HEADER
#include MAMMOCL_EXAMPLE_BACKEND_HEADER
#endif
#ifndef MAMMOCL_EXAMPLE_BACKEND
#define MAMMOCL_EXAMPLE_BACKEND mammocl::cpu_backend
#endif

using namespace mammocl;
using B = MAMMOCL_EXAMPLE_BACKEND;
namespace fs = std::filesystem;
using examples::fmt;

namespace {

constexpr int classes = 5;  // the fixed patch_class order of data/annotation.hpp
constexpr const char* prog = "lut_invariance_study";

/// Bad input found before any long work: one line, exit status 2.
[[noreturn]] void fail(const std::string& msg) { examples::usage_error(prog, msg); }

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
  std::string data = "phantom";      // "phantom" or a dataset folder
  std::string model = "small";       // "small" or "densenet121"
  std::optional<fs::path> init;      // torchvision densenet121 or MammoCL checkpoint (safetensors)
  std::optional<std::string> probe_data;  // linear probe on another dataset ("phantom" or a folder)
  int images = 160, window = 128, size = 32, per_roi = 4, per_image = 3, batch = 32, threads = 2;
  examples::device_kind device = examples::device_kind::cpu;
  int target_height = 0, tsne_points = 400, probe_epochs = 30;
  std::optional<int> epochs, epochs2;
  std::size_t replicates = 500, permutations = 200;
  std::uint64_t seed = 1;
  bool quiet = false, smoke = false, fresh = false;
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
               "Data and model\n"
               "  --data phantom|DIR the built-in phantom (default) or a dataset folder: mini-MIAS (Info.txt and the\n"
               "                     PGM images), INbreast (INbreast.csv, AllXML, AllDICOMs) or CBIS-DDSM (the\n"
               "                     description CSVs and the DICOM tree); DICOM needs a build with DCMTK\n"
               "  --model NAME       small (default; the CPU-sized DenseNet) or densenet121\n"
               "  --patch N          patch side fed to the model, >= the model's minimum (default 32; the poster: 512)\n"
               "  --window N         patch window cut from the image, in its pixels, >= --patch (default 128)\n"
               "  --target-height N  rescale each image to this height before cutting patches (default: as stored)\n"
               "  --init FILE        initial weights (safetensors): torchvision's densenet121 converted by\n"
               "                     scripts/convert_torchvision_weights.py --in-channels 1, or a MammoCL checkpoint of\n"
               "                     the same model; the classifier is always new (default: random)\n"
               "Experiment\n"
               "  --datasets LIST    comma-separated from augmented, mixed-K (mixing seed K >= 1), down-R (mixed-1\n"
               "                     down-sampled to 0 < R < 1, nested), or 'all' (default: augmented,mixed-1..4,\n"
               "                     down-0.6,down-0.7,down-0.8,down-0.9)\n"
               "  --strategies LIST  comma-separated from ce, supcon_linear, supcon_finetune, dann, mmd\n"
               "                     (default ce,supcon_linear,supcon_finetune; p-values need ce)\n"
               "  --images N         phantom only: phantom mammograms = patients (default 160)\n"
               "  --epochs N         stage-1 epochs (default: ce/dann/mmd 5, SupCon pre-training 8)\n"
               "  --epochs2 N        stage-2 epochs of the SupCon strategies (default 3)\n"
               "  --per-roi N        patches per lesion (default 4)\n"
               "  --per-image N      background patches per image (default 3)\n"
               "  --batch N          batch size (default 32)\n"
               "  --seed N           phantom, split and initialisation seed (default 1)\n"
               "  --probe-data D     after training, a linear probe on frozen features on another dataset D\n"
               "                     (phantom or a folder as --data): its test AUC per run\n"
               "  --probe-epochs N   epochs of the linear probe (default 30)\n"
               "Evaluation and output\n"
               "  --replicates N     bootstrap replicates (default 500)\n"
               "  --permutations N   MMD permutations (default 200)\n"
               "  --tsne-points N    test patches per t-SNE map (both versions of each; 0: no maps) (default 400)\n"
               "  --threads N        CPU threads (default 2)\n"
               "  --device D         cpu (default) or cuda (a build with MAMMOCL_WITH_CUDA)\n"
               "  --out DIR          output folder (default lut_invariance_out); rerunning the same command there\n"
               "                     continues the study (finished runs are not trained again)\n"
               "  --fresh            discard the runs already in --out and start over\n"
               "  --quiet            no progress bars\n"
               "  --smoke            a tiny end-to-end run (ctest); cannot be combined with the size flags\n");
}

/// The smallest square input side the DenseNet configuration maps to at least one feature pixel: conv0
/// (7x7, stride 2, pad 3), max pool (3x3, stride 2, pad 1), then one 2x2 average pool per transition.
args parse(int argc, char** argv) {
  args a;
  bool sized = false, datasets_given = false, strategies_given = false, images_given = false, probe_epochs_given = false;
  // An integer beyond long long is reported by the bound it passes (this program's wording).
  const examples::arg_reader arg(prog, argc, argv, false);
  for (int i = 1; i < argc; ++i) {
    const std::string k = argv[i];
    if (k == "--help" || k == "-h") { usage(stdout); std::exit(0); }
    else if (k == "--datasets") {
      datasets_given = true;
      a.datasets.clear();
      for (const std::string& s : arg.list(i, k)) {
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
      a.strategies = arg.list(i, k);
      strategies_given = true;
      for (const auto& s : a.strategies)
        if (std::find(train::strategy_names.begin(), train::strategy_names.end(), s) == train::strategy_names.end())
          fail("--strategies: unknown strategy '" + s + "'; expected ce, supcon_linear, supcon_finetune, dann or mmd");
    }
    else if (k == "--data") a.data = arg.value(i, k);
    else if (k == "--model") {
      a.model = arg.value(i, k);
      if (a.model != "small" && a.model != "densenet121")
        fail("--model: unknown model '" + a.model + "'; expected small or densenet121");
    }
    else if (k == "--init") a.init = fs::path(arg.value(i, k));
    else if (k == "--probe-data") a.probe_data = arg.value(i, k);
    else if (k == "--probe-epochs") { a.probe_epochs = static_cast<int>(arg.integer(i, k, 1)); sized = probe_epochs_given = true; }
    else if (k == "--images") { a.images = static_cast<int>(arg.integer(i, k, 10)); sized = images_given = true; }
    else if (k == "--epochs") { a.epochs = static_cast<int>(arg.integer(i, k, 1)); sized = true; }
    else if (k == "--epochs2") { a.epochs2 = static_cast<int>(arg.integer(i, k, 1)); sized = true; }
    else if (k == "--window") { a.window = static_cast<int>(arg.integer(i, k, 2)); sized = true; }
    else if (k == "--size" || k == "--patch") { a.size = static_cast<int>(arg.integer(i, k, 1)); sized = true; }
    else if (k == "--target-height") { a.target_height = static_cast<int>(arg.integer(i, k, 16)); sized = true; }
    else if (k == "--per-roi") { a.per_roi = static_cast<int>(arg.integer(i, k, 1)); sized = true; }
    else if (k == "--per-image") { a.per_image = static_cast<int>(arg.integer(i, k, 1)); sized = true; }
    else if (k == "--batch") { a.batch = static_cast<int>(arg.integer(i, k, 2)); sized = true; }
    else if (k == "--replicates") { a.replicates = static_cast<std::size_t>(arg.integer(i, k, 10)); sized = true; }
    else if (k == "--permutations") { a.permutations = static_cast<std::size_t>(arg.integer(i, k, 1)); sized = true; }
    else if (k == "--tsne-points") { a.tsne_points = static_cast<int>(arg.integer(i, k, 0)); sized = true; }
    else if (k == "--seed") a.seed = static_cast<std::uint64_t>(arg.integer(i, k, 0));
    else if (k == "--threads") a.threads = static_cast<int>(arg.integer(i, k, 1));
    else if (k == "--device") a.device = examples::parse_device(prog, arg.value(i, k));
    else if (k == "--out") a.out = arg.value(i, k);
    else if (k == "--quiet") a.quiet = true;
    else if (k == "--fresh") a.fresh = true;
    else if (k == "--smoke") a.smoke = true;
    else { usage(stderr); fail("unknown option '" + k + "'"); }
  }
  if (a.smoke && (sized || datasets_given))
    fail("--smoke fixes the sizes, the datasets and the epochs; leave out --datasets, --images, --epochs, --epochs2, "
         "--window, --patch, --target-height, --per-roi, --per-image, --batch, --replicates, --permutations, "
         "--tsne-points and --probe-epochs, or leave out --smoke");
  if (a.smoke) {
    a.datasets = {*parse_dataset("augmented"), *parse_dataset("mixed-1"), *parse_dataset("down-0.6")};
    if (!strategies_given) a.strategies = {"ce", "supcon_finetune"};
    a.images = 40;
    a.epochs = 1;
    a.epochs2 = 1;
    a.replicates = 50;
    a.permutations = 20;
    a.tsne_points = 60;
    a.probe_epochs = 3;
    a.quiet = true;
    a.fresh = true;
  }
  if (a.datasets.empty()) a.datasets = all_datasets();
  if (a.data != "phantom" && images_given)
    fail("--images sets the number of phantom mammograms; with --data " + a.data +
         " every image of the dataset is used: leave out --images");
  if (a.data != "phantom" && !fs::exists(a.data))
    fail("--data: '" + a.data + "' does not exist; expected 'phantom' or a mini-MIAS, CBIS-DDSM or INbreast folder");
  if (a.probe_data && *a.probe_data != "phantom" && !fs::exists(*a.probe_data))
    fail("--probe-data: '" + *a.probe_data + "' does not exist; expected 'phantom' or a dataset folder");
  if (a.probe_data && *a.probe_data == a.data)
    fail("--probe-data is the training data (" + a.data + "); the linear probe measures generalisation to another dataset");
  const int minimum = a.model == "small" ? examples::min_input_side<models::densenet_small>()
                                          : examples::min_input_side<models::densenet121>();
  if (a.size < minimum)
    fail("--patch " + std::to_string(a.size) + " is too small for --model " + a.model + ": its feature map needs at least " +
         std::to_string(minimum) + "x" + std::to_string(minimum) + " pixels");
  if (a.size > a.window)
    fail("--patch (" + std::to_string(a.size) + ") must not exceed --window (" + std::to_string(a.window) +
         "): patches are cut at the window size and then resized down to the patch size");
  if (a.init && !fs::is_regular_file(*a.init)) fail("--init: '" + a.init->string() + "' is not a file");
  if (!a.probe_data && probe_epochs_given) fail("--probe-epochs needs --probe-data");
  // Create the output folder now: a path that cannot be used must fail before any long work.
  examples::create_output_folder(prog, a.out);
  return a;
}

// ---------------------------------------------------------------------------------------------------
// Data

/// A dataset folder, opened (annotations read and checked) before any long work.
struct opened_data {
  std::string spec;                          // "phantom" or the folder as given
  std::optional<data::opened_dataset> set;   // empty for the phantom
  [[nodiscard]] std::string describe() const {
    if (!set) return "the phantom";
    return std::string(data::dataset_kind_name(set->kind)) + " at " + spec;
  }
};

opened_data open_data(const std::string& spec, const char* flag) {
  opened_data d;
  d.spec = spec;
  if (spec == "phantom") return d;
  try {
    d.set = examples::open_dataset_folder(spec);
    if (!examples::with_dicom && d.set->needs_dicom)
      fail(std::string(flag) + ": " + std::string(data::dataset_kind_name(d.set->kind)) + " at " + spec +
           " stores its images as DICOM, and this program was built without DICOM support; rebuild with "
           "-DMAMMOCL_WITH_DICOM=ON (needs libdcmtk-dev)");
  } catch (const mammocl::error& e) {
    fail(std::string(flag) + ": " + examples::cli_message(e));
  }
  if (d.set->records.empty())
    fail(std::string(flag) + ": " + d.describe() + " has no usable image (" +
         std::to_string(d.set->report.skipped.size()) + " left out)");
  return d;
}

/// Paired A/B patches of the opened data, with the sampler settings of the command line.
data::paired_patches make_store(const args& a, const opened_data& d, std::uint64_t phantom_seed) {
  data::patch_options so;
  so.patch_size = a.window;
  so.output_size = a.size;
  so.per_roi = a.per_roi;
  so.per_image = a.per_image;
  so.seed = a.seed;
  so.target_height = a.target_height;
  const std::string what = d.describe();
  data::progress_fn progress;
  if (!a.quiet)
    progress = [what](std::size_t done, std::size_t total) {
      std::fprintf(stderr, "\rcutting patches from %s: %zu/%zu images", what.c_str(), done, total);
      if (done == total) std::fprintf(stderr, "\n");
      std::fflush(stderr);
    };
  if (!d.set) {
    data::phantom_options po;
    po.seed = phantom_seed;
    return data::make_phantom_paired_patches(po, a.images, so, progress);
  }
  data::paired_patch_options po;
  po.sampler = so;
  return data::make_paired_patches(d.set->records, po, examples::image_reader(), progress);
}

/// Classes with at least one item in `set`.
std::vector<int> classes_in(const std::vector<data::domain_item>& set) {
  std::set<int> s;
  for (const auto& e : set) s.insert(e.label);
  return {s.begin(), s.end()};
}

std::string class_list(const std::vector<int>& cs) {
  std::string out;
  for (int c : cs) out += (out.empty() ? "" : ", ") + std::string(data::class_name(static_cast<data::patch_class>(c)));
  return out;
}

std::vector<int> missing_classes(const std::vector<int>& present) {
  std::vector<int> m;
  for (int c = 0; c < classes; ++c)
    if (std::find(present.begin(), present.end(), c) == present.end()) m.push_back(c);
  return m;
}

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

/// Softmax probabilities and pooled features of a source, in the source's order.
struct predictions {
  std::vector<double> prob, features;
  std::size_t dim = 0;
};

/// The study's batches: a paired_patch_source with the input normalisation the initial weights expect,
/// (x - mean) / std on every pixel (mean 0, std 1 — exactly the stored values — unless --init is torchvision's).
class study_source {
 public:
  study_source(const data::paired_patches& s, std::vector<data::domain_item> set, int batch, bool training,
               std::uint64_t seed, double mean, double stdv)
      : src_(s, std::move(set), batch, training, seed), mean_(static_cast<float>(mean)), stdv_(static_cast<float>(stdv)) {}
  [[nodiscard]] std::int64_t size() const { return src_.size(); }
  [[nodiscard]] std::int64_t batches_per_epoch() const { return src_.batches_per_epoch(); }
  [[nodiscard]] data::batch get_batch(const data::batch_request& r) const {
    data::batch b = src_.get_batch(r);
    if (mean_ != 0.0f || stdv_ != 1.0f)
      for (float& v : b.images) v = (v - mean_) / stdv_;
    return b;
  }

 private:
  data::paired_patch_source src_;
  float mean_, stdv_;
};
static_assert(data::BatchSource<study_source>);

template <class M>
predictions predict(B::context& ctx, const M& m, const study_source& src) {
  predictions p;
  for (std::int64_t i = 0; i < src.batches_per_epoch(); ++i) {
    const data::batch b = src.get_batch({0, 0, i, 1});
    const tensor<B> fd = m.infer_features(ctx, train::detail::to_tensor<B>(b));
    // Features and logits on the host (copies on a device backend).
    const auto f = host_bridge::on_host(fd);
    const auto l = host_bridge::on_host(m.classifier().infer(ctx, fd));
    p.dim = static_cast<std::size_t>(f.c());
    p.features.insert(p.features.end(), f.data(), f.data() + f.numel());
    for (index_t r = 0; r < l.n(); ++r) {
      double q[classes];
      MAMMOCL_CHECK(examples::softmax_row(l.data() + r * classes, classes, q), numeric_error,
                    "the logits of test patch ", p.prob.size() / classes, " are not finite");
      p.prob.insert(p.prob.end(), q, q + classes);
    }
  }
  return p;
}

/// A run: one strategy trained on one dataset, with its test predictions.
struct run_result {
  std::string dataset, strategy;
  predictions pred;
  std::vector<nlohmann::json> log;
  double seconds = 0, best_val_auc = 0;
  std::optional<eval::bootstrap_result> probe;  // linear probe test AUC on --probe-data
};

/// OvO macro AUC over the classes `present` (those of the whole test set) of the rows `idx` (optionally only
/// one domain), or nullopt when one of them is missing from the rows.
std::optional<double> auc_of(const predictions& p, const std::vector<int>& labels, const std::vector<int>& domains,
                             std::span<const std::size_t> idx, int only_domain, const std::vector<int>& present) {
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
  for (int c : present)
    if (!seen[c]) return std::nullopt;
  return eval::ovo_auc_present(s, y, classes);
}

/// A file this program wrote or reads back, whole.
std::string read_text(const fs::path& p) {
  std::optional<std::string> t = examples::file_text(p);
  MAMMOCL_CHECK(t.has_value(), io_error, "cannot read back ", p);
  return std::move(*t);
}

/// Initial weights from --init: every feature tensor must match (torchvision's legacy key names are
/// accepted); the classifier is left out, so a 1000-class ImageNet head or another checkpoint's head is fine.
template <class M>
io::load_report load_init(M& m, const fs::path& f) {
  return io::load_state(m, f, {.torchvision_legacy = true, .exclude_prefixes = {"classifier."}});
}

/// The settings that decide a run's result: a study folder holds runs of one setting only.
nlohmann::json study_settings(const args& a) {
  auto opt = [](const auto& v) { return v ? nlohmann::json(*v) : nlohmann::json(nullptr); };
  return {{"data", a.data == "phantom" ? a.data : fs::absolute(a.data).lexically_normal().string()},
          {"images", a.data == "phantom" ? nlohmann::json(a.images) : nlohmann::json(nullptr)},
          {"model", a.model},
          {"init", a.init ? nlohmann::json(fs::absolute(*a.init).lexically_normal().string()) : nlohmann::json(nullptr)},
          {"window", a.window},
          {"patch", a.size},
          {"target_height", a.target_height},
          {"per_roi", a.per_roi},
          {"per_image", a.per_image},
          {"batch", a.batch},
          {"epochs", opt(a.epochs)},
          {"epochs2", opt(a.epochs2)},
          {"seed", a.seed}};
}

/// --fresh clears the runs; otherwise a folder with other settings is refused before any work.
void check_or_start_study(const args& a) {
  const fs::path file = a.out / "study_settings.json";
  const nlohmann::json now = study_settings(a);
  if (a.fresh) {
    std::error_code ec;
    fs::remove_all(a.out / "runs", ec);
    if (ec) fail("--fresh: cannot remove " + (a.out / "runs").string() + ": " + ec.message());
  } else if (fs::exists(file)) {
    nlohmann::json before;
    try {
      before = nlohmann::json::parse(read_text(file));
    } catch (const std::exception& e) {
      fail(file.string() + " is not readable JSON (" + e.what() + "); use another --out or add --fresh");
    }
    for (const auto& [key, value] : now.items())
      if (!before.contains(key) || before[key] != value)
        fail("--out " + a.out.string() + " holds a study with other settings: " + key + " was " +
             (before.contains(key) ? before[key].dump() : std::string("absent")) + ", now " + value.dump() +
             "; use another --out, or add --fresh to discard its runs");
  }
  eval::write_file_atomic(file, now.dump(2) + "\n");
}

/// The linear probe of one trained model on the probe data: features of the frozen model (inference
/// mode) for the probe's training and test patches (both domains, no augmentation), a new linear layer
/// trained on them (METHOD.md §5.3 defaults, --probe-epochs epochs), its test AUC with a bootstrap over
/// the A/B pairs. Classes that do not occur in both parts of the probe data are left out of the probe.
template <class M>
eval::bootstrap_result run_probe(B::context& ctx, const M& model, const study_source& train_src,
                                 const study_source& test_src, const args& a) {
  const train::feature_set tr = train::extract_features(ctx, model, train_src, "probe training");
  const train::feature_set te = train::extract_features(ctx, model, test_src, "probe test");
  std::vector<int> remap(classes, -1);
  int k = 0;
  for (int c = 0; c < classes; ++c)
    if (std::count(tr.labels.begin(), tr.labels.end(), c) && std::count(te.labels.begin(), te.labels.end(), c)) remap[c] = k++;
  auto keep = [&](const train::feature_set& s) {
    train::feature_set o;
    o.dim = s.dim;
    for (std::size_t i = 0; i < s.size(); ++i) {
      if (remap[static_cast<std::size_t>(s.labels[i])] < 0) continue;
      o.features.insert(o.features.end(), s.features.begin() + static_cast<std::ptrdiff_t>(i * s.dim),
                        s.features.begin() + static_cast<std::ptrdiff_t>((i + 1) * s.dim));
      o.labels.push_back(remap[static_cast<std::size_t>(s.labels[i])]);
      if (!s.domains.empty()) o.domains.push_back(s.domains[i]);
      if (!s.ids.empty()) o.ids.push_back(s.ids[i]);
    }
    return o;
  };
  train::linear_probe_options o;
  o.stage = train::linear_probe_defaults(a.probe_epochs);
  o.classes = k;
  o.seed = a.seed;
  o.bootstrap_replicates = a.replicates;
  o.threads = a.threads;
  return train::fit_linear_probe(keep(tr), keep(te), o).test_auc_bootstrap;
}

template <class Config>
int run_study(const args& a, const opened_data& source, const std::optional<opened_data>& probe_source) {
  using model_t = models::densenet<B, Config>;
  const auto t_start = std::chrono::steady_clock::now();
  auto elapsed = [&] { return examples::seconds_since(t_start); };
  auto ctx = examples::make_context<B>(a.threads);
  const std::string model_name = a.model == "small" ? "small DenseNet" : "DenseNet-121";
  auto new_model = [&] {
    model_t m({.in_channels = 1, .num_classes = classes, .memory_efficient = a.model != "small"});
    m.init(a.seed);
    if (a.init) load_init(m, *a.init);
    return m;
  };
  // --init is checked before any long work: the file must be a DenseNet of this configuration, 1 channel.
  // A MammoCL checkpoint (trainer metadata "strategy") was trained on the stored [0, 1] values; any other
  // file is taken as torchvision's ImageNet weights converted to one channel, which expect the grey input
  // normalised with the averages of ImageNet's channel statistics (METHOD.md §3.1 option (b)).
  double input_mean = 0.0, input_std = 1.0;
  if (a.init) {
    try {
      model_t m({.in_channels = 1, .num_classes = classes});
      const io::load_report r = load_init(m, *a.init);
      if (!r.metadata.count("strategy")) {
        input_mean = 0.449;
        input_std = 0.226;
      }
      std::printf("--init %s: %zu tensors loaded (%zu renamed from torchvision's legacy names), classifier new; "
                  "input %s\n",
                  a.init->c_str(), r.loaded.size(), r.renamed.size(),
                  input_std == 1.0 ? "as stored (a MammoCL checkpoint)"
                                   : "normalised (x - 0.449) / 0.226 (torchvision ImageNet weights)");
    } catch (const mammocl::error& e) {
      fail("--init: " + examples::cli_message(e) + " (--init needs a " + model_name +
           " state dict with a 1-channel first convolution; convert torchvision's weights with "
           "scripts/convert_torchvision_weights.py --rename-legacy --in-channels 1 --drop-classifier)");
    }
  }
  check_or_start_study(a);

  // 1. Paired patches and the per-image windows.
  const data::paired_patches store = make_store(a, source, a.seed);
  if (store.size() == 0) fail(source.describe() + " gave no patch with --window " + std::to_string(a.window));
  data::write_lut_params(a.out / "lut_params.tsv", store.lut);
  const double gen_s = elapsed();

  // 2. Patient split, one for every dataset so that all share the test set.
  const std::vector<data::source_item> items = store.source_items();
  const data::split_options split_opt{.train = 0.6, .validation = 0.15, .test = 0.25};
  const data::patient_split split = data::split_by_patient(items, split_opt, a.seed);
  const auto train_items = data::select_items(items, split.train);
  const auto val_items = data::select_items(items, split.validation);
  const auto test_items = data::select_items(items, split.test);
  const auto test_set = data::test_set(test_items);
  const auto val_set = data::test_set(val_items);
  const std::vector<int> test_present = classes_in(test_set), val_present = classes_in(val_set);
  if (test_present.size() < 2 || val_present.size() < 2)
    fail(std::string(test_present.size() < 2 ? "the test" : "the validation") + " split of " + source.describe() +
         " holds patches of " + class_list(test_present.size() < 2 ? test_present : val_present) +
         " only; an AUC needs two classes: use more images or another --seed");
  std::string class_note;
  if (const auto miss = missing_classes(test_present); !miss.empty())
    class_note = "The test split has no patch of " + class_list(miss) + ": every AUC is over the " +
                 std::to_string(test_present.size()) + " classes present (" + class_list(test_present) + ").";

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
           std::to_string(a.batch) + "); use more images or a smaller --batch");
    plans.push_back(std::move(p));
  }
  fs::create_directories(a.out / "datasets");
  nlohmann::json manifest;
  manifest["format"] = "mammocl.lut_invariance_study";
  manifest["version"] = 2;
  manifest["settings"] = study_settings(a);
  manifest["data"] = {{"source", source.describe()}, {"images", store.images.size()},
                      {"patients", std::set<std::string>(store.patients.begin(), store.patients.end()).size()},
                      {"images_left_out", store.report.skipped.size()}, {"patches", store.size()},
                      {"lut_params", "lut_params.tsv"}};
  manifest["split"] = {{"train", split_opt.train}, {"validation", split_opt.validation}, {"test", split_opt.test},
                       {"seed", a.seed}, {"unit", "patient"}};
  manifest["strategies"] = a.strategies;
  manifest["datasets"] = nlohmann::json::array();
  for (std::size_t i = 0; i < plans.size(); ++i) {
    const fs::path file = fs::path("datasets") / (a.datasets[i].name + ".json");
    data::write_manifest(a.out / file, plans[i]);
    manifest["datasets"].push_back({{"name", a.datasets[i].name}, {"label", a.datasets[i].label},
                                    {"train_size", plans[i].train.size()}, {"manifest", file.string()}});
  }
  const std::size_t patients = std::set<std::string>(store.patients.begin(), store.patients.end()).size();
  std::printf("MammoCL LUT invariance study on %s: %zu images of %zu patients (%zu left out), %zu paired A/B patches "
              "of %dx%d (%dx%d windows), split by patient %.0f/%.0f/%.0f %% (seed %llu); %s; %.1f s to prepare\n",
              source.describe().c_str(), store.images.size(), patients, store.report.skipped.size(), store.size(),
              a.size, a.size, a.window, a.window, 100 * split_opt.train, 100 * split_opt.validation,
              100 * split_opt.test, static_cast<unsigned long long>(a.seed), model_name.c_str(), gen_s);
  for (const auto& s : store.report.skipped) std::printf("  left out %s: %s\n", s.item.c_str(), s.reason.c_str());
  if (!class_note.empty()) std::printf("%s\n", class_note.c_str());
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

  // The probe data, cut now so that a problem with it shows before the long training.
  std::optional<data::paired_patches> probe_store;
  std::vector<data::domain_item> probe_train, probe_test;
  if (probe_source) {
    probe_store = make_store(a, *probe_source, a.seed + 1);
    const auto pitems = probe_store->source_items();
    const data::patient_split ps =
        data::split_by_patient(pitems, {.train = 0.8, .validation = 0.0, .test = 0.2}, a.seed);
    probe_train = data::augmented(data::select_items(pitems, ps.train));
    probe_test = data::test_set(data::select_items(pitems, ps.test));
    if (classes_in(probe_test).size() < 2 || classes_in(probe_train).size() < 2)
      fail("--probe-data: the 80/20 patient split of " + probe_source->describe() +
           " leaves fewer than two classes in its training or test part");
    std::printf("linear probe data: %s, %zu patches (train %zu, test %zu, both domains)\n",
                probe_source->describe().c_str(), probe_store->size(), probe_train.size(), probe_test.size());
  }

  // 3. Train every strategy on every dataset; finished runs in --out are reloaded, interrupted ones resumed.
  const study_source test_src(store, test_set, 64, false, 0, input_mean, input_std);
  const study_source val_src(store, val_set, 64, false, 0, input_mean, input_std);
  std::vector<run_result> runs;
  for (std::size_t i = 0; i < plans.size(); ++i) {
    const study_source train_src(store, plans[i].train, a.batch, true, a.seed * 7919 + i, input_mean, input_std);
    for (const std::string& name : a.strategies) {
      model_t model = new_model();
      const train::strategy_options so = options_for(name, a);
      const fs::path dir = a.out / "runs" / a.datasets[i].name / name;
      const train::fit_result fit = train::with_strategy<model_t>(name, [&]<class S>() {
        S strategy(model, so);
        train::trainer_options opt{.out_dir = dir, .resume = true, .progress = !a.quiet, .progress_stream = stdout};
        return train::fit(ctx, strategy, train_src, &val_src, opt, classes);
      });
      run_result r;
      r.dataset = a.datasets[i].label;
      r.strategy = name;
      r.pred = predict(ctx, model, test_src);
      r.best_val_auc = fit.best_metric;
      r.log = fit.log;
      for (const auto& line : fit.log) r.seconds += line.value("seconds", 0.0);
      if (probe_store) {
        // Features of every probe patch as stored (no shuffling, no flips): training = false for both parts.
        const study_source ptr(*probe_store, probe_train, 64, false, 0, input_mean, input_std);
        const study_source pte(*probe_store, probe_test, 64, false, 0, input_mean, input_std);
        r.probe = run_probe(ctx, model, ptr, pte, a);
      }
      std::printf("%-26s %-16s best validation AUC %.4f, %.0f s of training%s%s\n", r.dataset.c_str(), name.c_str(),
                  r.best_val_auc, r.seconds, fit.resumed ? " (continued from an earlier run)" : "",
                  r.probe ? (", linear probe AUC " + fmt("%.4f", r.probe->estimate)).c_str() : "");
      std::fflush(stdout);
      runs.push_back(std::move(r));
    }
  }

  // 4. Evaluation on the test set: bootstrap over patients (all patches of a patient, both versions of each,
  //    move together), stratified by the set of classes a patient has.
  std::vector<int> labels, domains;
  std::vector<std::int64_t> clusters;
  std::map<std::string, std::int64_t> patient_index;
  for (const auto& e : test_set) {
    labels.push_back(e.label);
    domains.push_back(static_cast<int>(e.dom));
    const auto [it, fresh] =
        patient_index.emplace(store.patient_of(e.item), static_cast<std::int64_t>(patient_index.size()));
    clusters.push_back(it->second);
  }
  const eval::resampling_plan plan =
      eval::make_clustered_plan(labels, clusters, {.replicates = a.replicates, .seed = a.seed});
  auto stat = [&](const run_result& r, int dom) {
    return [&r, &labels, &domains, &test_present, dom](std::span<const std::size_t> idx) {
      return auc_of(r.pred, labels, domains, idx, dom, test_present);
    };
  };
  std::vector<std::string> dataset_labels, columns;
  for (const auto& d : a.datasets) dataset_labels.push_back(d.label);
  for (const auto& s : a.strategies) columns.push_back(display_name(s));
  const bool have_ce = std::find(a.strategies.begin(), a.strategies.end(), "ce") != a.strategies.end();
  eval::poster_table poster = eval::poster_table::make(
      "Test AUC (one-vs-one macro, both domains) ± bootstrap s.e. over patients (p: paired bootstrap vs CE)",
      dataset_labels, columns, have_ce ? "CE" : "");
  eval::poster_table probe_table;
  if (probe_source)
    probe_table = eval::poster_table::make("Linear probe on " + probe_source->describe() +
                                               ": test AUC (one-vs-one macro, both domains) ± bootstrap s.e.",
                                           dataset_labels, columns, "");
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
    if (r.probe)
      probe_table.set(r.dataset, display_name(r.strategy), {r.probe->estimate, r.probe->standard_error, std::nullopt, std::nullopt});
    const auto ba = eval::bootstrap(plan, stat(r, 0)), bb = eval::bootstrap(plan, stat(r, 1));
    const auto gap = eval::bootstrap(plan, [&](std::span<const std::size_t> idx) -> std::optional<double> {
      const auto x = auc_of(r.pred, labels, domains, idx, 0, test_present);
      const auto y = auc_of(r.pred, labels, domains, idx, 1, test_present);
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
    for (const auto& t : mmd.classes) ir.classwise_mmd[static_cast<std::size_t>(t.label)] = {t.mmd2, t.p_value};
    const std::vector<int> one(labels.size(), 0);
    const auto overall = eval::mmd_permutation_test(r.pred.features, r.pred.dim, one, domains, mo);
    ir.overall_mmd = eval::mmd_result{overall.mmd2, overall.p_value};
    // PAD holds out whole images, so that the two versions of a patch never straddle the halves.
    ir.pad = eval::proxy_a_distance(r.pred.features, r.pred.dim, domains, image_ids, {.seed = a.seed}).pad;
    inv.rows.push_back(ir);

    nlohmann::json res = {{"dataset", r.dataset}, {"strategy", r.strategy}, {"auc", e.value}, {"auc_se", *e.se},
                          {"p_vs_ce", p ? nlohmann::json(*p) : nlohmann::json(nullptr)}, {"auc_a", ba.estimate},
                          {"auc_b", bb.estimate}, {"gap", gap.estimate}, {"classwise_mmd2", mmd.mmd2},
                          {"classwise_mmd_p", mmd.p_value}, {"overall_mmd2", overall.mmd2}, {"pad", ir.pad},
                          {"mean_abs_prob_diff", ir.mean_abs_prob_diff}, {"argmax_agreement", ir.argmax_agreement},
                          {"cosine", ir.cosine_similarity}, {"best_val_auc", r.best_val_auc},
                          {"seconds", r.seconds}};
    if (r.probe) {
      res["probe_auc"] = r.probe->estimate;
      res["probe_auc_se"] = r.probe->standard_error;
    }
    results.push_back(res);
  }

  // 5. Figures: per dataset the ROC of "malignant (calcification or mass) vs the rest" and the validation
  //    curves of every strategy; t-SNE maps of the test features of the first dataset's runs.
  std::vector<eval::roc_plot> rocs;
  std::vector<eval::training_plot> curves;
  std::vector<eval::tsne_plot> maps;
  std::vector<int> malignant(labels.size());
  for (std::size_t i = 0; i < labels.size(); ++i) malignant[i] = labels[i] == 2 || labels[i] == 4;
  const bool roc_ok = std::count(malignant.begin(), malignant.end(), 1) > 0 &&
                      std::count(malignant.begin(), malignant.end(), 0) > 0;
  for (const dataset_spec& d : a.datasets) {
    eval::roc_plot roc;
    roc.title = "ROC, malignant vs the rest, " + d.label + " (test, both domains)";
    eval::training_plot tp;
    tp.title = "Validation AUC per epoch, " + d.label;
    tp.y_label = "validation AUC";
    for (const run_result& r : runs) {
      if (r.dataset != d.label) continue;
      if (roc_ok && roc.curves.size() < 10) {
        std::vector<double> score(labels.size());
        for (std::size_t i = 0; i < labels.size(); ++i) score[i] = r.pred.prob[i * classes + 2] + r.pred.prob[i * classes + 4];
        const eval::roc_points pts = eval::roc_curve(score, malignant);
        roc.curves.push_back({display_name(r.strategy), pts.fpr, pts.tpr, eval::binary_auc(score, malignant)});
      }
      eval::line_series ls;
      ls.label = display_name(r.strategy);
      for (std::size_t k = 0; k < r.log.size(); ++k) {
        const auto& v = r.log[k].contains("val_auc") ? r.log[k]["val_auc"] : nlohmann::json(nullptr);
        ls.x.push_back(static_cast<double>(k + 1));
        ls.y.push_back(v.is_number() ? v.get<double>() : NAN);
      }
      if (std::any_of(ls.y.begin(), ls.y.end(), [](double y) { return std::isfinite(y); }) && tp.runs.size() < 10)
        tp.runs.push_back(std::move(ls));
    }
    if (!roc.curves.empty()) rocs.push_back(std::move(roc));
    if (!tp.runs.empty()) curves.push_back(std::move(tp));
  }
  if (a.tsne_points > 0) {
    // The same patches for every map: up to tsne_points/2 pairs drawn once, both versions of each.
    const std::size_t pairs_total = test_set.size() / 2;
    std::vector<std::size_t> chosen(pairs_total);
    for (std::size_t i = 0; i < pairs_total; ++i) chosen[i] = i;
    rng g(a.seed ^ 0x74736e65ULL);
    for (std::size_t i = pairs_total; i > 1; --i) std::swap(chosen[i - 1], chosen[g.below(i)]);
    chosen.resize(std::min(pairs_total, static_cast<std::size_t>(a.tsne_points / 2)));
    std::sort(chosen.begin(), chosen.end());
    if (chosen.size() * 2 > 31)  // perplexity 30 needs more points than that
      for (const run_result& r : runs) {
        if (r.dataset != a.datasets.front().label) continue;
        std::vector<double> x;
        eval::tsne_plot tp;
        tp.title = "t-SNE of the test features, " + r.dataset + " / " + display_name(r.strategy);
        for (int c = 0; c < classes; ++c) tp.class_names.emplace_back(data::class_name(static_cast<data::patch_class>(c)));
        tp.domain_names = {"A (no LUT)", "B (sigmoid LUT)"};
        std::vector<std::size_t> rows;
        for (std::size_t pr : chosen) rows.insert(rows.end(), {2 * pr, 2 * pr + 1});
        for (std::size_t row : rows)
          x.insert(x.end(), r.pred.features.begin() + static_cast<std::ptrdiff_t>(row * r.pred.dim),
                   r.pred.features.begin() + static_cast<std::ptrdiff_t>((row + 1) * r.pred.dim));
        const eval::tsne_result t = eval::tsne(x, r.pred.dim, {.seed = a.seed});
        for (std::size_t k = 0; k < rows.size(); ++k)
          tp.points.push_back({t.embedding[2 * k], t.embedding[2 * k + 1], labels[rows[k]], domains[rows[k]]});
        maps.push_back(std::move(tp));
      }
  }

  // 6. Output.
  const std::string data_words =
      source.set ? source.describe() + ": " + std::to_string(store.images.size()) + " images of " +
                       std::to_string(patients) + " patients (" + std::to_string(store.report.skipped.size()) +
                       " left out, listed in manifest.json)"
                 : std::to_string(a.images) + " phantom mammograms (one patient each)";
  const std::string settings =
      "Data: " + data_words + ", " + std::to_string(store.size()) + " paired patches (" + std::to_string(a.window) +
      " px windows resized to " + std::to_string(a.size) + "), split by patient 60/15/25 % (seed " +
      std::to_string(a.seed) + "); test set: " + std::to_string(test_set.size() / 2) +
      " patches, each in domain A (no LUT) and B (per-image sigmoid VOI LUT). Model: " + model_name +
      (a.init ? ", initialised from " + a.init->filename().string() +
                    (input_std != 1.0 ? " (input normalised (x - 0.449) / 0.226)" : "")
              : std::string(", random initialisation")) +
      ". Epochs: stage 1 " + (a.epochs ? std::to_string(*a.epochs) : std::string("5 (CE/DANN/MMD), 8 (SupCon)")) +
      ", stage 2 " + (a.epochs2 ? std::to_string(*a.epochs2) : std::string("3")) + ". Bootstrap: " +
      std::to_string(a.replicates) + " replicates over test patients, stratified by their classes. MMD: " +
      std::to_string(a.permutations) + " permutations." + (class_note.empty() ? "" : " " + class_note);
  std::string md = "# LUT invariance study (" + source.describe() + ")\n\n" + settings + "\n\n";
  if (a.smoke) md += "**Smoke run** (tiny, 1 epoch per stage): the numbers mean nothing.\n\n";
  md += eval::to_markdown(poster) + "\n" + eval::to_markdown(dom_table) + "\n" + eval::to_markdown(inv) + "\n";
  if (probe_source) md += eval::to_markdown(probe_table) + "\n";
  md += eval::to_markdown(counts);
  const double total_s = elapsed();
  md += "\nTotal time " + fmt("%.0f", total_s) + " s with " + std::to_string(a.threads) + " threads.\n";
  std::printf("\n%s\n%s\n%s", eval::to_markdown(poster).c_str(), eval::to_markdown(dom_table).c_str(),
              eval::to_markdown(inv).c_str());
  if (probe_source) std::printf("\n%s", eval::to_markdown(probe_table).c_str());
  std::printf("\ntotal %.0f s; wrote %s, %s, %s, %s\n", total_s, (a.out / "results.md").c_str(),
              (a.out / "report.html").c_str(), (a.out / "manifest.json").c_str(), (a.out / "lut_params.tsv").c_str());
  eval::write_file_atomic(a.out / "results.md", md);
  eval::html_page page("MammoCL LUT invariance study");
  page.heading("LUT invariance study on " + source.describe()).paragraph(settings);
  if (a.smoke) page.paragraph("Smoke run (tiny, 1 epoch per stage): the numbers mean nothing.");
  page.table(poster).table(dom_table).table(inv);
  if (probe_source) page.table(probe_table);
  page.table(counts);
  for (const auto& p : rocs) page.plot(p);
  for (const auto& p : curves) page.plot(p);
  for (const auto& p : maps) page.plot(p);
  page.paragraph("Total time " + fmt("%.0f", total_s) + " s with " + std::to_string(a.threads) + " threads.");
  page.write(a.out / "report.html");
  manifest["results"] = results;
  manifest["left_out"] = nlohmann::json::array();
  for (const auto& s : store.report.skipped) manifest["left_out"].push_back({{"image", s.item}, {"reason", s.reason}});
  manifest["seconds"] = total_s;
  eval::write_file_atomic(a.out / "manifest.json", manifest.dump(2) + "\n");

  // 7. Self-check (what the smoke test relies on): every file reads back to what was written.
  MAMMOCL_CHECK(data::read_lut_params(a.out / "lut_params.tsv") == store.lut, io_error, a.out / "lut_params.tsv",
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
}

/// The study on this translation unit's backend.
int run(const args& a) {
  // Datasets are opened (annotations read and checked) before any long work.
  const opened_data source = open_data(a.data, "--data");
  std::optional<opened_data> probe;
  if (a.probe_data) probe = open_data(*a.probe_data, "--probe-data");
  try {
    return a.model == "small" ? run_study<models::densenet_small>(a, source, probe)
                              : run_study<models::densenet121>(a, source, probe);
  } catch (const mammocl::error& e) {
    std::fprintf(stderr, "%s: %s\n", prog, e.what());
    return 1;
  }
}

}  // namespace

#ifdef MAMMOCL_EXAMPLE_ENTRY
/// The program on another backend, called by the CPU build's main() for --device cuda.
int MAMMOCL_EXAMPLE_ENTRY(int argc, char** argv) { return run(parse(argc, argv)); }
#else
#if MAMMOCL_EXAMPLES_WITH_CUDA
int lut_invariance_study_cuda_main(int argc, char** argv);  // lut_invariance_study_cuda.cpp
#endif

int main(int argc, char** argv) {
  const args a = parse(argc, argv);
  if (a.device == examples::device_kind::cuda) {
#if MAMMOCL_EXAMPLES_WITH_CUDA
    return lut_invariance_study_cuda_main(argc, argv);
#else
    examples::no_cuda_build(prog);
#endif
  }
  return run(a);
}
#endif
