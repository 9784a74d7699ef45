// whole_image_classifier: the command-line tool for the whole-image classifier (METHOD.md §3.2, issue 6).
// Whole mammograms (the built-in phantom, or a dataset folder) are normalised to [0, 1], cropped to the
// breast's bounding box, resized to H x W and shown in domain A (as is), B (the per-image sigmoid VOI LUT)
// or both; a DenseNet encoder (optionally from a patch checkpoint) with a residual bottleneck unit, global
// pooling and a 2-way head is trained with Shen's two-stage schedule, evaluated (AUC ± bootstrap s.e.,
// per domain, accuracy, confusion, ROC) and used to predict p(cancer) for images.
//
//   whole_image_classifier train    --data phantom|DIR --out DIR [options]
//   whole_image_classifier evaluate --data phantom|DIR --checkpoint FILE --out DIR [options]
//   whole_image_classifier predict  --checkpoint FILE --out FILE.csv (--data phantom|DIR | IMAGE...) [options]
//   whole_image_classifier --smoke --out DIR
//   whole_image_classifier --help | <command> --help
//
// docs/whole_image_classifier_cli.md has every flag, the outputs, the errors and measured numbers.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "cli_common.hpp"
#include "mammocl/data/batch.hpp"
#include "mammocl/data/domains.hpp"
#include "mammocl/data/image_io.hpp"
#include "mammocl/data/phantom.hpp"
#include "mammocl/data/resize.hpp"
#include "mammocl/data/segmentation.hpp"
#include "mammocl/data/voi_lut.hpp"
#include "mammocl/eval/auc.hpp"
#include "mammocl/eval/bootstrap.hpp"
#include "mammocl/eval/report.hpp"
#include "mammocl/mammocl.hpp"
#include "mammocl/models/whole_image_classifier.hpp"
#include "mammocl/train/trainer.hpp"
// The backend of this translation unit: cpu_backend here; whole_image_classifier_cuda.cpp compiles this
// file again with cuda_backend (MAMMOCL_EXAMPLE_BACKEND, its header and MAMMOCL_EXAMPLE_ENTRY defined first).
#ifdef MAMMOCL_EXAMPLE_BACKEND_HEADER
#include MAMMOCL_EXAMPLE_BACKEND_HEADER
#endif
#ifndef MAMMOCL_EXAMPLE_BACKEND
#define MAMMOCL_EXAMPLE_BACKEND mammocl::cpu_backend
#endif

using namespace mammocl;
using B = MAMMOCL_EXAMPLE_BACKEND;
namespace fs = std::filesystem;
using examples::csv_field;
using examples::exact;
using examples::fmt;
using examples::seconds_since;

namespace {

constexpr const char* prog = "whole_image_classifier";
constexpr int classes = 2;  // 0 no cancer, 1 cancer (case_record::cancer)

/// A usage error: one line on stderr, exit 2, before any long work.
[[noreturn]] void fail(const std::string& msg) { examples::usage_error(prog, msg); }

/// Thrown by the --max-steps hook to end training like a kill (not a mammocl::error, so the trainer lets it pass).
struct stop_request {
  std::int64_t steps = 0;
};

// ---------------------------------------------------------------------------------------------------
// Command line

enum class command { none, train, evaluate, predict, smoke };
enum class model_kind { small, densenet121 };
enum class domain_choice { A, B, both };

const char* model_name(model_kind m) { return m == model_kind::small ? "small" : "densenet121"; }
const char* domain_choice_name(domain_choice d) { return d == domain_choice::A ? "A" : d == domain_choice::B ? "B" : "both"; }
const char* command_name(command c) {
  switch (c) {
    case command::train: return "train";
    case command::evaluate: return "evaluate";
    case command::predict: return "predict";
    case command::smoke: return "--smoke";
    case command::none: break;
  }
  return "";
}

struct args {
  command cmd = command::none;
  std::string data;                  // "phantom" or a dataset path; empty: not given
  fs::path out, checkpoint, encoder;
  std::vector<std::string> inputs;   // predict: image files
  model_kind model = model_kind::small;
  int height = 1152, width = 896;    // METHOD.md §2.2 / §3.2: Shen's 1152 x 896
  std::optional<int> images;         // phantom: how many; DIR: a stratified subset of patients
  int epochs1 = 1, epochs2 = 2;      // Shen's train_image_clf_im1152.sh: nb_epoch 1, all_layer_epochs 2
  double lr = 1e-3;                  // Shen: Adam, init_lr 1e-3 (stage 2: x 0.1)
  int batch = 8;
  domain_choice domain = domain_choice::both;
  std::string split;                 // evaluate: test (default); predict: all (default)
  std::size_t replicates = 2000;     // pROC's boot.n
  std::uint64_t seed = 1;
  int threads = 2;
  examples::device_kind device = examples::device_kind::cpu;
  std::int64_t max_steps = 0, checkpoint_every = 10;
  std::int64_t cache_mb = 4096;
  bool resume = true, quiet = false;
  std::set<std::string> given;       // the flags on the command line
};

void usage(std::FILE* f, command c) {
  if (c == command::none || c == command::smoke) {
    std::fprintf(f,
                 "usage: whole_image_classifier <command> [options]\n"
                 "  train     train the whole-image classifier (two stages: new layers, then everything)\n"
                 "  evaluate  AUC ± bootstrap s.e. (pooled and per domain), accuracy, confusion, ROC -> metrics.json,\n"
                 "            report.html, predictions.csv\n"
                 "  predict   p(cancer) per image -> CSV (path,domain,p_cancer)\n"
                 "  --smoke --out DIR   tiny end-to-end run (train, evaluate, predict, reload, compare bit for bit)\n"
                 "  <command> --help    the command's options\n");
    return;
  }
  std::fprintf(f, "usage: whole_image_classifier %s %s\n", command_name(c),
               c == command::train      ? "--data phantom|DIR --out DIR [options]"
               : c == command::evaluate ? "--data phantom|DIR --checkpoint FILE --out DIR [options]"
                                        : "--checkpoint FILE --out FILE.csv (--data phantom|DIR | IMAGE...) [options]");
  std::fprintf(f,
               "  --data phantom|DIR  the built-in phantom, or a dataset folder (mini-MIAS Info.txt, INbreast, CBIS-DDSM)\n");
  if (c == command::train) std::fprintf(f, "  --out DIR           checkpoints (last/best.safetensors), log.jsonl, run.json\n");
  if (c == command::evaluate) std::fprintf(f, "  --out DIR           metrics.json, report.html, predictions.csv\n");
  if (c == command::predict) std::fprintf(f, "  --out FILE.csv      one row per image and domain: path,domain,p_cancer\n");
  if (c != command::train)
    std::fprintf(f, "  --checkpoint FILE   a whole-image checkpoint (best.safetensors or last.safetensors of train)\n");
  if (c == command::train)
    std::fprintf(f,
                 "  --encoder FILE      start the encoder from a patch classifier checkpoint of the same --model\n"
                 "  --epochs1 N         stage-1 epochs, new layers only (default 1)\n"
                 "  --epochs2 N         stage-2 epochs, all layers (default 2)\n"
                 "  --lr X              stage-1 learning rate, Adam (default 0.001; stage 2 uses 0.1 x X)\n"
                 "  --domain A|B|both   training images: as is, with the sigmoid LUT, or both (default both)\n"
                 "  --no-resume         start afresh even where DIR/last.safetensors exists\n"
                 "  --checkpoint-every N  also write last.safetensors every N steps (default 10; 0: epoch ends only)\n"
                 "  --max-steps N       stop (exit 3) after N training steps of this run, as if killed; rerun to resume\n");
  if (c == command::predict)
    std::fprintf(f, "  --domain A|B|both   the version(s) of each image to classify (default A)\n");
  if (c != command::train)
    std::fprintf(f, "  --split S           with --data: test, validation, train or all (default: %s)\n",
                 c == command::evaluate ? "test" : "all");
  if (c == command::evaluate) std::fprintf(f, "  --replicates N      bootstrap replicates (default 2000)\n");
  std::fprintf(f,
               "  --model small|densenet121  the encoder (default small; densenet121 runs memory-efficient)\n"
               "  --height H --width W  network input in pixels (default 1152 x 896)\n"
               "  --images N          phantom: number of images (default 80); DIR: a patient subset of about N images\n"
               "  --batch N           batch size (default 8)\n"
               "  --seed N            phantom, split and initialisation seed (default 1)\n"
               "  --threads N         CPU threads (default 2)\n"
               "  --device D          cpu (default) or cuda (a build with MAMMOCL_WITH_CUDA)\n"
               "  --cache-mb N        keep prepared images in memory up to N MiB, else prepare on demand (default 4096)\n"
               "  --quiet             no progress bars\n");
  if (c != command::train)
    std::fprintf(f, "  --model, --height, --width, --images and --seed default to the run.json beside the checkpoint\n");
}

/// Which options each command accepts (anything else is "not an option of <command>").
bool accepts(command c, const std::string& flag) {
  static const std::set<std::string> common{"--data", "--out", "--model", "--height", "--width", "--images",
                                            "--batch", "--seed", "--threads", "--device", "--cache-mb", "--quiet"};
  if (c == command::smoke) return flag == "--out" || flag == "--threads" || flag == "--device" || flag == "--quiet";
  if (common.count(flag)) return true;
  if (c == command::train)
    return flag == "--encoder" || flag == "--epochs1" || flag == "--epochs2" || flag == "--lr" || flag == "--domain" ||
           flag == "--no-resume" || flag == "--checkpoint-every" || flag == "--max-steps";
  if (c == command::evaluate) return flag == "--checkpoint" || flag == "--split" || flag == "--replicates";
  return flag == "--checkpoint" || flag == "--split" || flag == "--domain";
}

const std::set<std::string>& all_flags() {
  static const std::set<std::string> f{"--data", "--out", "--model", "--height", "--width", "--images", "--batch",
                                       "--seed", "--threads", "--device", "--cache-mb", "--quiet", "--encoder", "--epochs1",
                                       "--epochs2", "--lr", "--domain", "--no-resume", "--checkpoint-every",
                                       "--max-steps", "--checkpoint", "--split", "--replicates"};
  return f;
}

args parse(int argc, char** argv) {
  args a;
  int i = 1;
  // The command: the first argument, or --smoke anywhere.
  bool smoke = false;
  for (int k = 1; k < argc; ++k)
    if (std::strcmp(argv[k], "--smoke") == 0) smoke = true;
  if (argc > 1 && argv[1][0] != '-') {
    const std::string c = argv[1];
    if (c == "train") a.cmd = command::train;
    else if (c == "evaluate") a.cmd = command::evaluate;
    else if (c == "predict") a.cmd = command::predict;
    else fail("unknown command '" + c + "'; expected train, evaluate or predict (or --smoke, --help)");
    i = 2;
  }
  if (smoke) {
    if (a.cmd != command::none)
      fail(std::string("--smoke cannot be combined with the command '") + command_name(a.cmd) +
           "'; run 'whole_image_classifier --smoke --out DIR' alone");
    a.cmd = command::smoke;
  }
  for (int k = i; k < argc; ++k)
    if (std::strcmp(argv[k], "--help") == 0 || std::strcmp(argv[k], "-h") == 0) {
      usage(stdout, a.cmd);
      std::exit(0);
    }
  if (a.cmd == command::none) {
    if (argc > 1) fail("unknown option '" + std::string(argv[1]) + "' before the command; expected train, evaluate, predict or --smoke first");
    fail("missing command; expected train, evaluate, predict or --smoke (see --help)");
  }
  const std::string where = a.cmd == command::smoke ? "--smoke" : command_name(a.cmd);

  const examples::arg_reader arg(prog, argc, argv);
  for (; i < argc; ++i) {
    const std::string k = argv[i];
    if (k == "--smoke") continue;
    if (k.size() < 2 || k[0] != '-' || k == "-") {
      if (a.cmd == command::predict) {
        a.inputs.push_back(k);
        continue;
      }
      fail(where + ": unexpected argument '" + k + "'" +
           (a.cmd == command::smoke ? "" : std::string("; only predict takes image files")));
    }
    if (!all_flags().count(k)) fail(where + ": unknown option '" + k + "' (see " + where + " --help)");
    if (!accepts(a.cmd, k)) fail(where + ": " + k + " is not an option of " + where + " (see " + where + " --help)");
    if (a.given.count(k)) fail(k + " is given twice");
    a.given.insert(k);
    if (k == "--data") a.data = arg.value(i, k);
    else if (k == "--out") a.out = arg.value(i, k);
    else if (k == "--checkpoint") a.checkpoint = arg.value(i, k);
    else if (k == "--encoder") a.encoder = arg.value(i, k);
    else if (k == "--model") {
      const std::string v = arg.value(i, k);
      if (v == "small") a.model = model_kind::small;
      else if (v == "densenet121") a.model = model_kind::densenet121;
      else fail("--model must be small or densenet121, got '" + v + "'");
    } else if (k == "--height") a.height = static_cast<int>(arg.integer(i, k, 1));
    else if (k == "--width") a.width = static_cast<int>(arg.integer(i, k, 1));
    else if (k == "--images") a.images = static_cast<int>(arg.integer(i, k, 1));
    else if (k == "--epochs1") a.epochs1 = static_cast<int>(arg.integer(i, k, 0));
    else if (k == "--epochs2") a.epochs2 = static_cast<int>(arg.integer(i, k, 0));
    else if (k == "--lr") {
      const std::string v = arg.value(i, k);
      char* end = nullptr;
      const double x = std::strtod(v.c_str(), &end);
      if (v.empty() || *end || !std::isfinite(x) || !(x > 0)) fail("--lr expects a positive number, got '" + v + "'");
      a.lr = x;
    } else if (k == "--batch") a.batch = static_cast<int>(arg.integer(i, k, 2));
    else if (k == "--domain") {
      const std::string v = arg.value(i, k);
      if (v == "A") a.domain = domain_choice::A;
      else if (v == "B") a.domain = domain_choice::B;
      else if (v == "both") a.domain = domain_choice::both;
      else fail("--domain must be A, B or both, got '" + v + "'");
    } else if (k == "--split") {
      a.split = arg.value(i, k);
      if (a.split != "test" && a.split != "validation" && a.split != "train" && a.split != "all")
        fail("--split must be test, validation, train or all, got '" + a.split + "'");
    } else if (k == "--replicates") a.replicates = static_cast<std::size_t>(arg.integer(i, k, 10));
    else if (k == "--seed") a.seed = static_cast<std::uint64_t>(arg.integer(i, k, 0));
    else if (k == "--threads") a.threads = static_cast<int>(arg.integer(i, k, 1));
    else if (k == "--device") a.device = examples::parse_device(prog, arg.value(i, k));
    else if (k == "--max-steps") a.max_steps = arg.integer(i, k, 1);
    else if (k == "--checkpoint-every") a.checkpoint_every = arg.integer(i, k, 0);
    else if (k == "--cache-mb") a.cache_mb = arg.integer(i, k, 0);
    else if (k == "--no-resume") a.resume = false;
    else if (k == "--quiet") a.quiet = true;
  }
  if (a.split.empty()) a.split = a.cmd == command::predict ? "all" : "test";
  if (a.cmd == command::predict && !a.given.count("--domain")) a.domain = domain_choice::A;

  // Required options and contradictions.
  if (a.out.empty()) fail(where + " needs --out " + (a.cmd == command::predict ? "FILE.csv" : "DIR"));
  if (a.cmd == command::train && a.data.empty()) fail("train needs --data phantom|DIR");
  if (a.cmd == command::evaluate && a.data.empty()) fail("evaluate needs --data phantom|DIR");
  if ((a.cmd == command::evaluate || a.cmd == command::predict) && a.checkpoint.empty())
    fail(where + " needs --checkpoint FILE");
  if (a.cmd == command::predict) {
    if (!a.data.empty() && !a.inputs.empty())
      fail("predict takes either --data or image files, not both (got --data " + a.data + " and " +
           std::to_string(a.inputs.size()) + " image file(s))");
    if (a.data.empty() && a.inputs.empty()) fail("predict needs --data phantom|DIR or image files");
    if (!a.inputs.empty() && a.given.count("--split")) fail("--split applies to --data, not to image files");
    if (!a.inputs.empty() && a.given.count("--images")) fail("--images applies to --data, not to image files");
  }
  if (a.cmd == command::train && a.epochs1 + a.epochs2 < 1) fail("--epochs1 and --epochs2 are both 0: nothing to train");
  if (a.cmd == command::train && a.max_steps > 0 && !a.resume)
    fail("--max-steps with --no-resume would throw the stopped run away on the next start; leave out one of them");
  // Files that must exist.
  if (!a.checkpoint.empty() && !fs::is_regular_file(a.checkpoint))
    fail("--checkpoint '" + a.checkpoint.string() + "' does not exist or is not a file");
  if (!a.encoder.empty() && !fs::is_regular_file(a.encoder))
    fail("--encoder '" + a.encoder.string() + "' does not exist or is not a file");
  for (const auto& f : a.inputs)
    if (!fs::is_regular_file(f)) fail("image '" + f + "' does not exist or is not a file");
  if (!a.data.empty() && a.data != "phantom" && !fs::exists(a.data))
    fail("--data '" + a.data + "' does not exist (expected 'phantom' or a dataset folder)");
  return a;
}

// ---------------------------------------------------------------------------------------------------
// Settings recorded beside the checkpoints (run.json), so evaluate and predict can reuse them.

nlohmann::json run_settings(const args& a) {
  return {{"format", "mammocl.whole_image_run"}, {"version", 1},        {"data", a.data},
          {"model", model_name(a.model)},         {"height", a.height}, {"width", a.width},
          {"images", a.images ? nlohmann::json(*a.images) : nlohmann::json(nullptr)},
          {"seed", a.seed},                       {"domain", domain_choice_name(a.domain)},
          {"batch", a.batch}};
}

/// A file this program wrote or reads back, whole.
std::string read_text(const fs::path& p) {
  std::optional<std::string> t = examples::file_text(p);
  MAMMOCL_CHECK(t.has_value(), io_error, "cannot read ", p.string());
  return std::move(*t);
}

/// evaluate / predict: the model, size, image count and seed of the training run, from run.json beside the
/// checkpoint, for each of these flags not given.
void adopt_run_settings(args& a) {
  const fs::path rj = a.checkpoint.parent_path() / "run.json";
  if (!fs::is_regular_file(rj)) return;
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(read_text(rj));
  } catch (const std::exception& e) {
    fail("'" + rj.string() + "' (the settings of the training run beside --checkpoint) is not valid JSON: " + e.what());
  }
  std::string took;
  try {
    if (!a.given.count("--model")) {
      const std::string m = j.at("model");
      if (m == "small") a.model = model_kind::small;
      else if (m == "densenet121") a.model = model_kind::densenet121;
      else fail("'" + rj.string() + "': unknown model '" + m + "'");
      took += " --model " + m;
    }
    if (!a.given.count("--height")) { a.height = j.at("height"); took += " --height " + std::to_string(a.height); }
    if (!a.given.count("--width")) { a.width = j.at("width"); took += " --width " + std::to_string(a.width); }
    if (!a.data.empty() && j.at("data") == a.data) {
      if (!a.given.count("--images") && !j.at("images").is_null()) {
        a.images = j.at("images").get<int>();
        took += " --images " + std::to_string(*a.images);
      }
      if (!a.given.count("--seed")) { a.seed = j.at("seed"); took += " --seed " + std::to_string(a.seed); }
    }
  } catch (const nlohmann::json::exception& e) {
    fail("'" + rj.string() + "' lacks a setting or has one of the wrong type: " + e.what());
  }
  if (!took.empty() && !a.quiet) std::printf("settings from %s:%s\n", rj.c_str(), took.c_str());
  std::fflush(stdout);
}

// ---------------------------------------------------------------------------------------------------
// Images: normalised, cropped to the breast, resized, in both domains

/// One image of the data: its name (file path or phantom id), patient and cancer label.
struct entry {
  std::string name, patient;
  int label = 0;
};

/// An image ready for the network, in both domains (h*w floats each), with its domain-B window.
struct prepared_image {
  std::vector<float> a, b;
  data::lut_domain_params lut;
};

/// Domain B is the sigmoid LUT with the window estimated on the breast of the full-resolution normalised
/// image (as for the patches); both versions are then cropped to the breast's bounding box and resized.
prepared_image prepare(const data::image& normalized, const data::mask& breast, std::int64_t top, std::int64_t left,
                       std::int64_t bottom, std::int64_t right, int h, int w) {
  prepared_image p;
  p.lut = data::estimate_lut_params(normalized, breast);
  const data::image dom_b = data::apply_lut_domain(normalized, p.lut);
  p.a = data::resize(data::crop(normalized, top, left, bottom, right), h, w).pixels;
  p.b = data::resize(data::crop(dom_b, top, left, bottom, right), h, w).pixels;
  return p;
}

/// An image read from a file: normalised by its source range, breast segmented (data/segmentation.hpp).
prepared_image prepare_read(const data::image& raw, int h, int w) {
  const data::image n = raw.normalized();
  const data::breast_region r = data::segment_breast(n);
  return prepare(n, r.region, r.top, r.left, r.bottom, r.right, h, w);
}

/// A phantom case: its own breast mask gives the bounding box and the LUT window.
prepared_image prepare_phantom(const data::phantom_case& pc, int h, int w) {
  const data::mask& m = pc.breast;
  std::int64_t top = m.rows, left = m.cols, bottom = 0, right = 0;
  for (std::int64_t r = 0; r < m.rows; ++r)
    for (std::int64_t c = 0; c < m.cols; ++c)
      if (m(r, c)) {
        top = std::min(top, r);
        bottom = std::max(bottom, r + 1);
        left = std::min(left, c);
        right = std::max(right, c + 1);
      }
  MAMMOCL_CHECK(bottom > top && right > left, numeric_error, "phantom ", pc.record.image_path, " has an empty breast mask");
  return prepare(pc.img, pc.breast, top, left, bottom, right, h, w);
}

/// Every image of the run: kept in memory when they fit the cache budget, otherwise prepared again from
/// the source each time a batch needs them (memory bounded by one batch).
class image_store {
 public:
  using maker = std::function<prepared_image(std::size_t)>;

  image_store(std::vector<entry> entries, int h, int w, maker make, bool keep)
      : entries_(std::move(entries)), h_(h), w_(w), make_(std::move(make)), keep_(keep) {}
  /// A store whose images were prepared already (a, b: entries.size() * h * w floats each).
  image_store(std::vector<entry> entries, int h, int w, maker make, std::vector<float> a, std::vector<float> b)
      : entries_(std::move(entries)), h_(h), w_(w), make_(std::move(make)), keep_(true), a_(std::move(a)),
        b_(std::move(b)) {
    MAMMOCL_EXPECTS(a_.size() == entries_.size() * pixels() && b_.size() == a_.size(),
                    "image_store: preloaded pixels do not match ", entries_.size(), " images of ", h, "x", w);
  }

  /// Prepares (and keeps) every image now; with `keep` false, nothing is done until a batch asks.
  void load(bool quiet) {
    if (!keep_ || (!entries_.empty() && a_.size() == entries_.size() * pixels())) return;
    a_.resize(entries_.size() * pixels());
    b_.resize(a_.size());
    const auto t0 = std::chrono::steady_clock::now();
    for (std::size_t i = 0; i < entries_.size(); ++i) {
      const prepared_image p = make_(i);
      std::copy(p.a.begin(), p.a.end(), a_.begin() + static_cast<std::ptrdiff_t>(i * pixels()));
      std::copy(p.b.begin(), p.b.end(), b_.begin() + static_cast<std::ptrdiff_t>(i * pixels()));
      if (!quiet && (i + 1 == entries_.size() || (i + 1) % 20 == 0)) {
        std::fprintf(stderr, "\rpreparing images %zu/%zu (%.0f s)", i + 1, entries_.size(), seconds_since(t0));
        if (i + 1 == entries_.size()) std::fprintf(stderr, "\n");
      }
    }
  }

  [[nodiscard]] std::size_t size() const noexcept { return entries_.size(); }
  [[nodiscard]] std::size_t pixels() const noexcept { return static_cast<std::size_t>(h_) * static_cast<std::size_t>(w_); }
  [[nodiscard]] int height() const noexcept { return h_; }
  [[nodiscard]] int width() const noexcept { return w_; }
  [[nodiscard]] bool kept() const noexcept { return keep_; }
  [[nodiscard]] const entry& at(std::size_t i) const { return entries_.at(i); }
  [[nodiscard]] const std::vector<entry>& entries() const noexcept { return entries_; }

  /// Copies image i in domain d (h*w floats) to dst.
  void fill(std::size_t i, data::domain d, float* dst) const {
    if (keep_) {
      const float* src = (d == data::domain::A ? a_ : b_).data() + i * pixels();
      std::copy(src, src + pixels(), dst);
      return;
    }
    const prepared_image p = make_(i);
    const auto& v = d == data::domain::A ? p.a : p.b;
    std::copy(v.begin(), v.end(), dst);
  }

 private:
  std::vector<entry> entries_;
  int h_, w_;
  maker make_;
  bool keep_;
  std::vector<float> a_, b_;
};

/// A BatchSource over domain items of the store. Training: shuffled per (stage, epoch), full batches only,
/// each image independently flipped left-right and top-bottom (Shen's whole-image generator flips both
/// ways). Evaluation: fixed order, no augmentation, last batch partial. Ids are the items' pair ids.
class image_source {
 public:
  image_source(const image_store& s, std::vector<data::domain_item> set, int batch, bool training, std::uint64_t seed)
      : s_(&s), set_(std::move(set)), batch_(batch), training_(training), seed_(seed) {}

  [[nodiscard]] std::int64_t size() const { return static_cast<std::int64_t>(set_.size()); }
  [[nodiscard]] std::int64_t batches_per_epoch() const {
    return training_ ? size() / batch_ : (size() + batch_ - 1) / batch_;
  }
  [[nodiscard]] const std::vector<data::domain_item>& items() const { return set_; }

  [[nodiscard]] data::batch get_batch(const data::batch_request& r) const {
    MAMMOCL_EXPECTS(r.index >= 0 && r.index < batches_per_epoch(), "image_source: batch ", r.index, " outside [0, ",
                    batches_per_epoch(), ")");
    std::vector<std::int64_t> order(set_.size());
    for (std::size_t i = 0; i < order.size(); ++i) order[i] = static_cast<std::int64_t>(i);
    if (training_) {
      rng sh(seed_ * 0x9E3779B97F4A7C15ULL + static_cast<std::uint64_t>(r.stage) * 1000003ULL +
             static_cast<std::uint64_t>(r.epoch));
      for (std::size_t i = order.size(); i > 1; --i) std::swap(order[i - 1], order[sh.below(i)]);
    }
    const std::int64_t from = r.index * batch_, n = std::min<std::int64_t>(batch_, size() - from);
    const int h = s_->height(), w = s_->width();
    const std::size_t px = s_->pixels();
    data::batch b;
    b.samples = n;
    b.views = r.views;
    b.height = h;
    b.width = w;
    b.images.resize(px * static_cast<std::size_t>(n * r.views));
    std::vector<float> src(px);
    for (std::int64_t j = 0; j < n; ++j) {
      const std::int64_t sample = order[static_cast<std::size_t>(from + j)];
      const data::domain_item& it = set_[static_cast<std::size_t>(sample)];
      s_->fill(static_cast<std::size_t>(it.item), it.dom, src.data());
      b.labels.push_back(it.label);
      b.domains.push_back(static_cast<int>(it.dom));
      b.ids.push_back(it.pair);
      for (int v = 0; v < r.views; ++v) {
        float* dst = b.images.data() + px * static_cast<std::size_t>(v * n + j);
        if (!training_) {
          std::copy(src.begin(), src.end(), dst);
          continue;
        }
        rng g(seed_ ^ (static_cast<std::uint64_t>(r.stage) << 56) ^ (static_cast<std::uint64_t>(r.epoch) << 40) ^
              (static_cast<std::uint64_t>(sample) << 8) ^ static_cast<std::uint64_t>(v));
        const bool fh = g.below(2) == 1, fv = g.below(2) == 1;
        for (int y = 0; y < h; ++y)
          for (int x = 0; x < w; ++x)
            dst[y * w + x] = src[static_cast<std::size_t>((fv ? h - 1 - y : y) * w + (fh ? w - 1 - x : x))];
      }
    }
    return b;
  }

 private:
  const image_store* s_;
  std::vector<data::domain_item> set_;
  int batch_;
  bool training_;
  std::uint64_t seed_;
};
static_assert(data::BatchSource<image_source>);

/// The data of a run: the store, and its patient-level split.
struct dataset {
  std::string description;
  std::unique_ptr<image_store> store;
  std::vector<data::source_item> items;
  data::patient_split split;
};

bool keep_in_memory(const args& a, std::size_t n) {
  const double mib = 2.0 * static_cast<double>(n) * a.height * a.width * sizeof(float) / (1024.0 * 1024.0);
  return mib <= static_cast<double>(a.cache_mb);
}

/// The phantom's geometry for a network input height: drawn at twice that height (so that the crop and
/// resize still average pixels), between 256 and 1024 rows (the phantom's own 1024 x 768 at 0.2 mm), 4:3, with
/// the pixel spacing scaled so that the anatomy keeps its size in mm.
data::phantom_options phantom_geometry(const args& a) {
  data::phantom_options po;
  po.seed = a.seed;
  std::int64_t rows = std::clamp<std::int64_t>((2 * static_cast<std::int64_t>(a.height) + 63) / 64 * 64, 256, 1024);
  po.rows = rows;
  po.cols = rows * 3 / 4;
  po.pixel_spacing_mm = 0.2 * 1024.0 / static_cast<double>(rows);
  return po;
}

/// `count` phantom mammograms (indices 0..count-1 of the generator seeded with --seed), one patient each,
/// prepared while they are generated when they are kept in memory.
std::unique_ptr<image_store> phantom_store(const args& a, int count, bool keep, bool quiet) {
  const data::phantom_options po = phantom_geometry(a);
  const int h = a.height, w = a.width;
  image_store::maker make = [po, h, w](std::size_t i) { return prepare_phantom(data::generate_phantom(po, i), h, w); };
  std::vector<entry> e;
  std::vector<float> pa, pb;
  const auto t0 = std::chrono::steady_clock::now();
  for (int i = 0; i < count; ++i) {
    const data::phantom_case pc = data::generate_phantom(po, static_cast<std::uint64_t>(i));
    e.push_back({pc.record.image_path, pc.record.patient_id, pc.record.cancer()});
    if (keep) {
      const prepared_image p = prepare_phantom(pc, h, w);
      pa.insert(pa.end(), p.a.begin(), p.a.end());
      pb.insert(pb.end(), p.b.begin(), p.b.end());
    }
    if (!quiet && (i + 1 == count || (i + 1) % 20 == 0))
      std::fprintf(stderr, "\rgenerating phantoms %d/%d (%.0f s)%s", i + 1, count, seconds_since(t0),
                   i + 1 == count ? "\n" : "");
  }
  if (keep) return std::make_unique<image_store>(std::move(e), h, w, std::move(make), std::move(pa), std::move(pb));
  return std::make_unique<image_store>(std::move(e), h, w, std::move(make), false);
}

/// The dataset at --data (data/open_dataset.hpp); its errors are usage errors (exit 2).
data::opened_dataset open_folder(const args& a) {
  try {
    data::opened_dataset ds = examples::open_dataset_folder(a.data);
    if (!examples::with_dicom && ds.needs_dicom)
      fail("--data '" + a.data + "': the " + std::string(data::dataset_kind_name(ds.kind)) +
           " images are DICOM files, and this program was built without DICOM (configure with "
           "-DMAMMOCL_WITH_DICOM=ON and DCMTK installed)");
    return ds;
  } catch (const io_error& e) {
    fail("--data: " + e.message());
  }
}

/// About n images of whole patients, drawn with `seed` from each stratum ("patient has a cancer" or not) in
/// proportion to its images, so that a small subset still holds both classes; records keep their order.
std::vector<data::case_record> patient_subset(const std::vector<data::case_record>& records, int n, std::uint64_t seed) {
  if (static_cast<std::size_t>(n) >= records.size()) return records;
  std::map<std::string, std::pair<int, int>> patients;  // id -> (stratum, images)
  for (const auto& r : records) {
    auto& p = patients[r.patient_id];
    p.first = std::max(p.first, r.cancer());
    ++p.second;
  }
  std::set<std::string> chosen;
  for (int s = 0; s < classes; ++s) {
    std::vector<std::string> ids;
    long long images = 0;
    for (const auto& [id, p] : patients)
      if (p.first == s) {
        ids.push_back(id);
        images += p.second;
      }
    rng r(seed * 0x9E3779B97F4A7C15ULL + 0x5EB5E7ULL + static_cast<std::uint64_t>(s));
    for (std::size_t i = ids.size(); i > 1; --i) std::swap(ids[i - 1], ids[r.below(i)]);
    const long long target = std::llround(static_cast<double>(n) * static_cast<double>(images) /
                                          static_cast<double>(records.size()));
    long long taken = 0;
    for (const auto& id : ids) {
      if (taken >= std::max(target, 1LL)) break;
      chosen.insert(id);
      taken += patients[id].second;
    }
  }
  std::vector<data::case_record> out;
  for (const auto& r : records)
    if (chosen.count(r.patient_id)) out.push_back(r);
  return out;
}

/// The data named by --data, split by patient (60/15/25 %, stratified on "patient has a cancer", --seed).
dataset open_data(const args& a) {
  dataset d;
  std::vector<entry> entries;
  image_store::maker make;
  if (a.data == "phantom") {
    const int n = a.images.value_or(80);
    d.store = phantom_store(a, n, keep_in_memory(a, static_cast<std::size_t>(n)), a.quiet);
    entries = d.store->entries();
    const data::phantom_options po = phantom_geometry(a);
    d.description = std::to_string(n) + " phantom mammograms (seed " + std::to_string(a.seed) + ", drawn at " +
                    std::to_string(po.rows) + "x" + std::to_string(po.cols) + ", " + fmt("%.3g", po.pixel_spacing_mm) +
                    " mm pixels)";
  } else {
    data::opened_dataset ds = open_folder(a);
    const std::size_t listed = ds.records.size();
    std::vector<data::case_record> records = a.images ? patient_subset(ds.records, *a.images, a.seed) : ds.records;
    for (const auto& r : records) entries.push_back({r.image_path, r.patient_id, r.cancer()});
    const int h = a.height, w = a.width;
    const data::image_reader read = examples::image_reader();
    make = [records, read, h, w](std::size_t i) { return prepare_read(read(records[i].image_path), h, w); };
    d.description = std::string(data::dataset_kind_name(ds.kind)) + " at " + ds.root.string() + ": " +
                    std::to_string(records.size()) + " images" +
                    (records.size() < listed ? " (a patient subset of " + std::to_string(listed) + ")" : std::string()) +
                    (ds.report.skipped.empty() ? std::string()
                                               : ", " + std::to_string(ds.report.skipped.size()) + " left out by the reader");
  }
  for (std::size_t i = 0; i < entries.size(); ++i)
    d.items.push_back({static_cast<std::int64_t>(i), entries[i].label, entries[i].patient});
  d.split = data::split_by_patient(d.items, {.train = 0.6, .validation = 0.15, .test = 0.25,
                                             .stratum = data::patient_stratum::max_label},
                                   a.seed);
  if (!d.store) {
    const bool keep = keep_in_memory(a, entries.size());
    d.store = std::make_unique<image_store>(std::move(entries), a.height, a.width, std::move(make), keep);
  }
  return d;
}

/// The items of one split ("train", "validation", "test" or "all").
std::vector<data::source_item> split_items(const dataset& d, const std::string& split) {
  if (split == "all") return d.items;
  const auto& ids = split == "train" ? d.split.train : split == "validation" ? d.split.validation : d.split.test;
  return data::select_items(d.items, ids);
}

/// Usage error (exit 2) when a split lacks one of the two classes: its AUC would not exist.
void require_both_classes(const std::vector<data::source_item>& s, const std::string& split, const args& a) {
  int seen[classes] = {};
  for (const auto& it : s) seen[it.label] = 1;
  if (!seen[0] || !seen[1])
    fail("the " + split + " split of --data " + a.data + " has " + (s.empty() ? "no image" : seen[1] ? "no image without cancer" : "no cancer image") +
         " (" + std::to_string(s.size()) + " images, --seed " + std::to_string(a.seed) + "); use more --images");
}

/// The items of `s` in the chosen domains: A or B alone (pair id = position), or both (data::test_set order).
std::vector<data::domain_item> in_domains(const std::vector<data::source_item>& s, domain_choice d) {
  if (d == domain_choice::both) return data::test_set(s);
  std::vector<data::domain_item> out;
  for (std::size_t k = 0; k < s.size(); ++k)
    out.push_back({s[k].index, s[k].label, d == domain_choice::A ? data::domain::A : data::domain::B,
                   static_cast<std::int64_t>(k)});
  return out;
}

// ---------------------------------------------------------------------------------------------------
// Model

template <class Config>
using model_of = models::whole_image_classifier<B, Config>;

/// The model options of --model: densenet121 is METHOD.md §3.2's default unit (d 512, e 2) with
/// memory-efficient dense blocks; small is the same construction scaled to densenet_small's 52 features
/// (d 32, e 2: the unit halves the width, then restores it a little wider).
template <class Config>
typename model_of<Config>::options model_options() {
  typename model_of<Config>::options o;
  o.in_channels = 1;
  o.num_classes = classes;
  if constexpr (std::is_same_v<Config, models::densenet121>) {
    o.memory_efficient = true;
  } else {
    o.top_depth = 32;
    o.top_expansion = 2;
  }
  return o;
}

template <class Config>
void check_size(const args& a) {
  const int m = examples::min_input_side<Config>();
  if (a.height < m || a.width < m)
    fail("--height " + std::to_string(a.height) + " --width " + std::to_string(a.width) + " does not fit the " +
         model_name(a.model) + " model: the minimum is " + std::to_string(m) + " pixels on each side");
}

/// evaluate / predict: checks that --height and --width fit --model, then loads --checkpoint into a fresh
/// model, or exits 2 naming the file and what did not match.
template <class Config>
void load_checkpoint(model_of<Config>& m, const args& a) {
  check_size<Config>(a);
  try {
    io::load_state(m, a.checkpoint);
  } catch (const io_error& e) {
    fail("--checkpoint '" + a.checkpoint.string() + "' is not a whole-image checkpoint of --model " +
         model_name(a.model) + ": " + e.message());
  }
}

/// p(cancer) of each entry of `src`, in its order (softmax of the two logits in double).
template <class Config>
std::vector<double> predict_probabilities(B::context& ctx, const model_of<Config>& m, const image_source& src) {
  std::vector<double> p;
  for (std::int64_t i = 0; i < src.batches_per_epoch(); ++i) {
    const data::batch b = src.get_batch({0, 0, i, 1});
    const auto l = host_bridge::on_host(m.infer(ctx, train::detail::to_tensor<B>(b)));  // a copy on a device
    for (index_t r = 0; r < l.n(); ++r) {
      double q[classes];
      MAMMOCL_CHECK(examples::softmax_row(l.data() + r * classes, classes, q), numeric_error, "the logits of image ",
                    p.size(), " are not finite");
      p.push_back(q[1]);
    }
  }
  return p;
}

// ---------------------------------------------------------------------------------------------------
// Metrics

struct auc_estimate {
  double value = 0, se = 0, ci_low = 0, ci_high = 0;
};

/// Binary AUC of the rows `idx` in domain `dom` (-1: all), nullopt when a class is missing.
std::optional<double> auc_of(const std::vector<double>& p, const std::vector<int>& y, const std::vector<int>& dom,
                             std::span<const std::size_t> idx, int only) {
  std::vector<double> s;
  std::vector<int> l;
  int seen[classes] = {};
  for (std::size_t i : idx) {
    if (only >= 0 && dom[i] != only) continue;
    s.push_back(p[i]);
    l.push_back(y[i]);
    seen[y[i]] = 1;
  }
  if (!seen[0] || !seen[1]) return std::nullopt;
  return eval::binary_auc(s, l);
}

struct confusion {
  long long tn = 0, fp = 0, fn = 0, tp = 0;
  [[nodiscard]] double accuracy() const {
    const long long n = tn + fp + fn + tp;
    return n ? static_cast<double>(tn + tp) / static_cast<double>(n) : 0.0;
  }
  [[nodiscard]] nlohmann::json json() const {
    return {{"tn", tn}, {"fp", fp}, {"fn", fn}, {"tp", tp}, {"accuracy", accuracy()}};
  }
};

/// Predicted cancer when p > 0.5 (the argmax of the two classes; a tie goes to "no cancer", as argmax does).
confusion confusion_of(const std::vector<double>& p, const std::vector<int>& y, const std::vector<int>& dom, int only) {
  confusion c;
  for (std::size_t i = 0; i < p.size(); ++i) {
    if (only >= 0 && dom[i] != only) continue;
    const bool pred = p[i] > 0.5;
    if (y[i] == 1) (pred ? c.tp : c.fn) += 1;
    else (pred ? c.fp : c.tn) += 1;
  }
  return c;
}


// ---------------------------------------------------------------------------------------------------
// Commands

/// What a command computed, for the smoke run's cross-checks.
struct outcome {
  int exit_code = 0;
  std::vector<double> probabilities;   // test split (train) or the evaluated split (evaluate), data order
  fs::path best;
};

template <class Config>
outcome run_train(const args& a) {
  using model_t = model_of<Config>;
  outcome res;
  check_size<Config>(a);
  // The encoder must load before any work.
  model_t model(model_options<Config>());
  model.init(a.seed);
  if (!a.encoder.empty()) {
    try {
      const auto rep = model.load_encoder(a.encoder);
      if (!a.quiet) std::printf("encoder: %zu tensors from %s\n", rep.loaded.size(), a.encoder.c_str());
    } catch (const io_error& e) {
      fail("--encoder '" + a.encoder.string() + "': " + e.message());
    }
  }
  // A resumed run must be the same run.
  examples::create_output_folder(prog, a.out);
  const fs::path last = a.out / "last.safetensors", run_json = a.out / "run.json";
  const nlohmann::json settings = run_settings(a);
  const bool resuming = a.resume && fs::exists(last);
  if (resuming && fs::is_regular_file(run_json)) {
    nlohmann::json old;
    try {
      old = nlohmann::json::parse(read_text(run_json));
    } catch (const std::exception&) {
      fail("'" + run_json.string() + "' is not valid JSON; use --no-resume or another --out");
    }
    for (const char* k : {"data", "model", "height", "width", "images", "seed", "domain", "batch"})
      if (!old.contains(k) || old[k] != settings[k])
        fail("--out " + a.out.string() + " holds a run with other settings (" + k + ": " +
             (old.contains(k) ? old[k].dump() : std::string("missing")) + ", now " + settings[k].dump() +
             "); use the same settings to resume, --no-resume to start afresh, or another --out");
  }

  const auto t0 = std::chrono::steady_clock::now();
  dataset d = open_data(a);
  const auto train_items = split_items(d, "train"), val_items = split_items(d, "validation"),
             test_items = split_items(d, "test");
  require_both_classes(train_items, "train", a);
  require_both_classes(val_items, "validation", a);
  require_both_classes(test_items, "test", a);
  const auto train_set = in_domains(train_items, a.domain);
  if (static_cast<int>(train_set.size()) < a.batch)
    fail("the train split has " + std::to_string(train_set.size()) + " training images (domain " +
         domain_choice_name(a.domain) + "), fewer than one batch (--batch " + std::to_string(a.batch) +
         "); use more --images or a smaller --batch");
  if (!a.quiet)
    std::printf("MammoCL whole-image classifier: %s; split by patient: %zu train, %zu validation, %zu test images; "
                "%dx%d, --model %s, domain %s for training, both for validation and test; %s\n",
                d.description.c_str(), train_items.size(), val_items.size(), test_items.size(), a.height, a.width,
                model_name(a.model), domain_choice_name(a.domain),
                d.store->kept() ? "images kept in memory" : "images prepared on demand (over --cache-mb)");
  d.store->load(a.quiet);
  eval::write_file_atomic(run_json, settings.dump(2) + "\n");

  const image_source train_src(*d.store, train_set, a.batch, true, a.seed * 7919 + 17);
  const image_source val_src(*d.store, data::test_set(val_items), a.batch, false, 0);
  const image_source test_src(*d.store, data::test_set(test_items), a.batch, false, 0);

  train::strategy_options so;
  so.num_classes = classes;
  so.seed = a.seed;
  // Shen's train_image_clf_im1152.sh: Adam, weight decay 1e-4, a constant rate (no plateau schedule here).
  so.stage1 = {.epochs = a.epochs1, .optimizer = train::optimizer_kind::adam, .lr = a.lr, .weight_decay = 1e-4,
               .schedule = train::schedule_kind::constant};
  so.stage2 = {.epochs = a.epochs2, .optimizer = train::optimizer_kind::adam, .weight_decay = 1e-4,
               .schedule = train::schedule_kind::constant};
  train::strategies::whole_image_two_stage<model_t> strategy(model, so, 0.1);
  auto ctx = examples::make_context<B>(a.threads);
  train::trainer_options opt{.out_dir = a.out, .resume = a.resume, .checkpoint_every = a.checkpoint_every,
                             .progress = !a.quiet, .progress_stream = stderr};
  std::int64_t steps_here = 0;
  if (a.max_steps > 0)
    opt.on_step = [&](const train::step_event&) {
      if (++steps_here >= a.max_steps) throw stop_request{steps_here};
    };
  if (resuming) std::printf("resuming from %s (use --no-resume to start afresh)\n", last.c_str());
  train::fit_result fit;
  try {
    fit = train::fit(ctx, strategy, train_src, &val_src, opt, classes);
  } catch (const stop_request& s) {
    std::printf("stopped after %lld training steps (--max-steps); %s holds the last checkpoint; run the same "
                "command again to resume\n",
                static_cast<long long>(s.steps), last.c_str());
    res.exit_code = 3;
    return res;
  }
  MAMMOCL_CHECK(fit.best_stage >= 0, numeric_error, "no epoch had a defined validation AUC; no best.safetensors");
  res.best = fit.best_checkpoint;
  res.probabilities = predict_probabilities<Config>(ctx, model, test_src);
  std::vector<int> y, dom;
  for (const auto& it : test_src.items()) {
    y.push_back(it.label);
    dom.push_back(static_cast<int>(it.dom));
  }
  std::vector<std::size_t> all(y.size());
  for (std::size_t i = 0; i < all.size(); ++i) all[i] = i;
  const double auc = *auc_of(res.probabilities, y, dom, all, -1);
  const auto auc_a = auc_of(res.probabilities, y, dom, all, 0), auc_b = auc_of(res.probabilities, y, dom, all, 1);
  const double secs = seconds_since(t0);
  std::printf("%s%zu optimizer steps, %.0f s; checkpoints in %s\n", fit.resumed ? "resumed; " : "",
              static_cast<std::size_t>(fit.steps), secs, a.out.c_str());
  std::printf("best validation AUC %.4f (stage %d '%s', epoch %d): %s\n", fit.best_metric, fit.best_stage + 1,
              strategy.stage(fit.best_stage).name.data(), fit.best_epoch + 1, fit.best_checkpoint.c_str());
  std::printf("test AUC %.4f (%zu images x 2 domains; A %.4f, B %.4f)\n", auc, test_items.size(), *auc_a, *auc_b);
  return res;
}

template <class Config>
outcome run_evaluate(const args& a) {
  outcome res;
  model_of<Config> model(model_options<Config>());
  load_checkpoint<Config>(model, a);
  examples::create_output_folder(prog, a.out);
  const auto t0 = std::chrono::steady_clock::now();
  dataset d = open_data(a);
  const auto items = split_items(d, a.split);
  require_both_classes(items, a.split, a);
  d.store->load(a.quiet);
  const image_source src(*d.store, data::test_set(items), a.batch, false, 0);
  auto ctx = examples::make_context<B>(a.threads);
  const std::vector<double> p = predict_probabilities<Config>(ctx, model, src);
  res.probabilities = p;

  std::vector<int> y, dom;
  std::vector<std::int64_t> pairs;
  for (const auto& it : src.items()) {
    y.push_back(it.label);
    dom.push_back(static_cast<int>(it.dom));
    pairs.push_back(it.pair);
  }
  // Both versions of an image move together in the bootstrap (METHOD.md §2.3, §6.3).
  const eval::resampling_plan plan = eval::make_clustered_plan(y, pairs, {.replicates = a.replicates, .seed = a.seed});
  auto stat = [&](int only) {
    return [&, only](std::span<const std::size_t> idx) { return auc_of(p, y, dom, idx, only); };
  };
  auto est = [](const eval::bootstrap_result& b) { return auc_estimate{b.estimate, b.standard_error, b.ci_low, b.ci_high}; };
  const auc_estimate pooled = est(eval::bootstrap(plan, stat(-1)));
  const auc_estimate on_a = est(eval::bootstrap(plan, stat(0)));
  const auc_estimate on_b = est(eval::bootstrap(plan, stat(1)));
  const auc_estimate gap = est(eval::bootstrap(plan, [&](std::span<const std::size_t> idx) -> std::optional<double> {
    const auto x = auc_of(p, y, dom, idx, 0), z = auc_of(p, y, dom, idx, 1);
    if (!x || !z) return std::nullopt;
    return std::abs(*x - *z);
  }));
  const confusion c_all = confusion_of(p, y, dom, -1), c_a = confusion_of(p, y, dom, 0), c_b = confusion_of(p, y, dom, 1);

  auto j_est = [](const auc_estimate& e) {
    return nlohmann::json{{"estimate", e.value}, {"se", e.se}, {"ci_low", e.ci_low}, {"ci_high", e.ci_high}};
  };
  nlohmann::json m;
  m["format"] = "mammocl.whole_image_evaluation";
  m["version"] = 1;
  m["checkpoint"] = a.checkpoint.string();
  m["data"] = a.data;
  m["split"] = a.split;
  m["images"] = items.size();
  m["samples"] = p.size();
  m["model"] = model_name(a.model);
  m["height"] = a.height;
  m["width"] = a.width;
  m["seed"] = a.seed;
  m["auc"] = j_est(pooled);
  m["auc_a"] = j_est(on_a);
  m["auc_b"] = j_est(on_b);
  m["auc_gap"] = j_est(gap);
  m["threshold"] = 0.5;
  m["confusion"] = {{"pooled", c_all.json()}, {"A", c_a.json()}, {"B", c_b.json()}};
  m["accuracy"] = c_all.accuracy();
  m["bootstrap"] = {{"replicates", a.replicates}, {"seed", a.seed}, {"cluster", "image (its A and B versions)"},
                    {"stratified", true}, {"level", 0.95}};

  // predictions.csv: one row per image and domain.
  std::string csv = "path,domain,label,p_cancer\n";
  for (std::size_t i = 0; i < p.size(); ++i)
    csv += csv_field(d.store->at(static_cast<std::size_t>(src.items()[i].item)).name) + "," +
           (dom[i] == 0 ? "A" : "B") + "," + std::to_string(y[i]) + "," + exact(p[i]) + "\n";
  eval::write_file_atomic(a.out / "predictions.csv", csv);
  eval::write_file_atomic(a.out / "metrics.json", m.dump(2) + "\n");

  // report.html: the tables and the ROC curves.
  auto cell = [](const auc_estimate& e) {
    return eval::format_estimate({e.value, e.se, std::make_pair(e.ci_low, e.ci_high), std::nullopt}, 3);
  };
  eval::text_table t;
  t.caption = "AUC ± bootstrap s.e. [95 % percentile interval]";
  t.header = {"images", "AUC", "accuracy (p > 0.5)"};
  t.rows = {{"A and B pooled", cell(pooled), fmt("%.3f", c_all.accuracy())},
            {"domain A (no LUT)", cell(on_a), fmt("%.3f", c_a.accuracy())},
            {"domain B (sigmoid LUT)", cell(on_b), fmt("%.3f", c_b.accuracy())},
            {"gap |A − B|", cell(gap), "–"}};
  t.note = std::to_string(a.replicates) + " bootstrap replicates, clustered on the image (both versions together), "
           "stratified by class, seed " + std::to_string(a.seed) + ".";
  eval::text_table ct;
  ct.caption = "Confusion at p(cancer) > 0.5";
  ct.header = {"images", "true negatives", "false positives", "false negatives", "true positives"};
  for (const auto& [label, c] : {std::pair<std::string, confusion>{"A and B pooled", c_all}, {"domain A", c_a}, {"domain B", c_b}})
    ct.rows.push_back({label, std::to_string(c.tn), std::to_string(c.fp), std::to_string(c.fn), std::to_string(c.tp)});
  eval::roc_plot roc;
  roc.title = "ROC, " + a.split + " split";
  for (int only : {-1, 0, 1}) {
    std::vector<double> s;
    std::vector<int> l;
    for (std::size_t i = 0; i < p.size(); ++i)
      if (only < 0 || dom[i] == only) {
        s.push_back(p[i]);
        l.push_back(y[i]);
      }
    const eval::roc_points r = eval::roc_curve(s, l);
    roc.curves.push_back({only < 0 ? "A and B" : only == 0 ? "A" : "B", r.fpr, r.tpr, eval::binary_auc(s, l)});
  }
  const std::string settings = "Checkpoint " + a.checkpoint.string() + " (--model " + model_name(a.model) + ", " +
                               std::to_string(a.height) + "x" + std::to_string(a.width) + "); data: " + d.description +
                               "; " + a.split + " split (by patient, seed " + std::to_string(a.seed) + "): " +
                               std::to_string(items.size()) + " images, each in domain A and B.";
  eval::html_page page("MammoCL whole-image evaluation");
  page.heading("Whole-image classifier: evaluation").paragraph(settings).table(t).table(ct).plot(roc);
  page.write(a.out / "report.html");

  const double secs = seconds_since(t0);
  std::printf("%s\n", settings.c_str());
  std::printf("AUC %.4f ± %.4f (A+B pooled), A %.4f ± %.4f, B %.4f ± %.4f, gap %.4f; accuracy %.3f "
              "(TN %lld FP %lld FN %lld TP %lld)\n",
              pooled.value, pooled.se, on_a.value, on_a.se, on_b.value, on_b.se, gap.value, c_all.accuracy(), c_all.tn,
              c_all.fp, c_all.fn, c_all.tp);
  std::printf("%.0f s; wrote %s, %s, %s\n", secs, (a.out / "metrics.json").c_str(), (a.out / "report.html").c_str(),
              (a.out / "predictions.csv").c_str());
  return res;
}

template <class Config>
outcome run_predict(const args& a) {
  outcome res;
  model_of<Config> model(model_options<Config>());
  load_checkpoint<Config>(model, a);
  if (a.out.has_parent_path() && !fs::is_directory(a.out.parent_path()))
    fail("--out '" + a.out.string() + "': the folder '" + a.out.parent_path().string() + "' does not exist");
  std::unique_ptr<image_store> store;
  std::vector<data::source_item> items;
  if (!a.data.empty()) {
    dataset d = open_data(a);
    items = split_items(d, a.split);
    store = std::move(d.store);
  } else {
    std::vector<entry> e;
    for (std::size_t i = 0; i < a.inputs.size(); ++i) {
      e.push_back({a.inputs[i], a.inputs[i], 0});
      items.push_back({static_cast<std::int64_t>(i), 0, a.inputs[i]});
    }
    const int h = a.height, w = a.width;
    const std::vector<std::string> files = a.inputs;
    store = std::make_unique<image_store>(
        std::move(e), h, w, [files, h, w](std::size_t i) { return prepare_read(data::read_image(fs::path(files[i])), h, w); },
        keep_in_memory(a, files.size()));
  }
  store->load(a.quiet);
  const image_source src(*store, in_domains(items, a.domain), a.batch, false, 0);
  auto ctx = examples::make_context<B>(a.threads);
  const std::vector<double> p = predict_probabilities<Config>(ctx, model, src);
  std::string csv = "path,domain,p_cancer\n";
  for (std::size_t i = 0; i < p.size(); ++i) {
    const auto& it = src.items()[i];
    csv += csv_field(store->at(static_cast<std::size_t>(it.item)).name) + "," + std::string(data::domain_name(it.dom)) +
           "," + exact(p[i]) + "\n";
  }
  eval::write_file_atomic(a.out, csv);
  res.probabilities = p;
  std::printf("%zu predictions (%zu images, domain %s) written to %s\n", p.size(), items.size(),
              domain_choice_name(a.domain), a.out.c_str());
  return res;
}

template <class Config>
outcome run(const args& a) {
  switch (a.cmd) {
    case command::train: return run_train<Config>(a);
    case command::evaluate: return run_evaluate<Config>(a);
    case command::predict: return run_predict<Config>(a);
    default: break;
  }
  return {};
}

outcome dispatch(const args& a) {
  return a.model == model_kind::small ? run<models::densenet_small>(a) : run<models::densenet121>(a);
}

/// Parses a predictions CSV written by predict (no quoted fields in the smoke run) into its p_cancer column.
std::vector<double> read_csv_probabilities(const fs::path& f) {
  std::istringstream in(read_text(f));
  std::string line;
  std::getline(in, line);
  MAMMOCL_CHECK(line == "path,domain,p_cancer", io_error, f.string(), ": unexpected header '", line, "'");
  std::vector<double> p;
  while (std::getline(in, line)) {
    const auto c = line.rfind(',');
    MAMMOCL_CHECK(c != std::string::npos, io_error, f.string(), ": malformed row '", line, "'");
    p.push_back(std::strtod(line.c_str() + c + 1, nullptr));
  }
  return p;
}

bool same_bits(const std::vector<double>& x, const std::vector<double>& y) {
  return x.size() == y.size() && (x.empty() || std::memcmp(x.data(), y.data(), x.size() * sizeof(double)) == 0);
}

/// --smoke: train 1+1 epochs on 40 small phantoms at 64x48, evaluate and predict from the best checkpoint,
/// and check that the three agree bit for bit (and that a fresh model reloaded from it does too).
int smoke(const args& s) {
  const auto t0 = std::chrono::steady_clock::now();
  args a = s;
  a.data = "phantom";
  a.images = 40;
  a.height = 64;
  a.width = 48;
  a.batch = 4;
  a.epochs1 = 1;
  a.epochs2 = 1;
  a.replicates = 200;
  a.resume = false;
  a.quiet = true;
  args tr = a;
  tr.cmd = command::train;
  tr.out = s.out / "train";
  const outcome t = run<models::densenet_small>(tr);
  MAMMOCL_CHECK(t.exit_code == 0, numeric_error, "smoke: training did not finish");
  args ev = a;
  ev.cmd = command::evaluate;
  ev.checkpoint = t.best;
  ev.out = s.out / "evaluate";
  ev.split = "test";
  const outcome e = run<models::densenet_small>(ev);
  args pr = a;
  pr.cmd = command::predict;
  pr.checkpoint = t.best;
  pr.out = s.out / "predictions.csv";
  pr.split = "test";
  pr.domain = domain_choice::both;
  run<models::densenet_small>(pr);
  const std::vector<double> csv = read_csv_probabilities(pr.out);
  const nlohmann::json metrics = nlohmann::json::parse(read_text(ev.out / "metrics.json"));
  bool ok = true;
  auto check = [&](bool c, const std::string& what) {
    std::printf("smoke: %s: %s\n", what.c_str(), c ? "yes" : "NO");
    ok = ok && c;
  };
  check(!t.probabilities.empty(), "the trained model predicts the test split");
  check(same_bits(t.probabilities, e.probabilities),
        "evaluate (a fresh model loaded from best.safetensors) reproduces the trained model's test predictions bit for bit");
  check(same_bits(t.probabilities, csv), "predict's CSV holds the same probabilities bit for bit");
  check(metrics.at("samples").get<std::size_t>() == t.probabilities.size() && fs::is_regular_file(ev.out / "report.html"),
        "metrics.json and report.html written");
  std::printf("smoke: %.1f s, %s\n", seconds_since(t0),
              ok ? "passed" : "FAILED");
  return ok ? 0 : 1;
}

/// The command on this translation unit's backend.
int run(args a) {
  try {
    // On a device, its absence is the first error (before data preparation or any allocation); the commands
    // make their own contexts.
    if constexpr (!B::is_host) (void)examples::make_context<B>(a.threads);
    if (a.cmd == command::smoke) return smoke(a);
    if (a.cmd != command::train) adopt_run_settings(a);
    return dispatch(a).exit_code;
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
int whole_image_classifier_cuda_main(int argc, char** argv);  // whole_image_classifier_cuda.cpp
#endif

int main(int argc, char** argv) {
  args a = parse(argc, argv);
  if (a.device == examples::device_kind::cuda) {
#if MAMMOCL_EXAMPLES_WITH_CUDA
    return whole_image_classifier_cuda_main(argc, argv);
#else
    examples::no_cuda_build(prog);
#endif
  }
  return run(std::move(a));
}
#endif
