// patch_classifier: the command-line tool for MammoCL's 5-class patch classifier (issue 6 item 3).
//
//   patch_classifier train    --data phantom|DIR --out DIR [training options]
//   patch_classifier evaluate --checkpoint FILE --out DIR [--data phantom|DIR]
//   patch_classifier predict  --checkpoint FILE --out FILE.csv (--data phantom|DIR [--split test|all] | IMAGE...)
//   patch_classifier probe    --checkpoint FILE --data phantom|DIR --out DIR
//   patch_classifier --smoke --out DIR
//   patch_classifier --help | <command> --help
//
// Data: every patch of a dataset in both domains (A: the normalised image, B: the same image through its
// per-image sigmoid VOI LUT), cut at the same centres (data/paired_patches.hpp), split by patient, with the
// training set built as one of METHOD.md §2.3's variants (augmented, mixed, mixed down-sampled). Model: the
// small DenseNet or DenseNet-121, chosen at run time. `train` writes, beside the trainer's checkpoints, the
// run's settings (patch_classifier.json) and its domain manifest (domains.json), so that `evaluate` and
// `predict` rebuild the same model and the same test split from --checkpoint alone. `probe` measures how
// the frozen encoder generalises to another dataset: a linear layer trained on its features (METHOD.md §5.5).
//
// Errors: `patch_classifier: message` on stderr; exit 2 for bad input found before any long work (flags,
// paths, datasets, checkpoints), 1 for failures while working. docs/patch_classifier_cli.md has the details.
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
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "cli_common.hpp"
#include "mammocl/data/domains.hpp"
#include "mammocl/data/image_io.hpp"
#include "mammocl/data/open_dataset.hpp"
#include "mammocl/data/paired_patches.hpp"
#include "mammocl/data/resize.hpp"
#include "mammocl/data/voi_lut.hpp"
#include "mammocl/eval/auc.hpp"
#include "mammocl/eval/bootstrap.hpp"
#include "mammocl/eval/report.hpp"
#include "mammocl/eval/svg.hpp"
#include "mammocl/io/checkpoint.hpp"
#include "mammocl/io/safetensors.hpp"
#include "mammocl/mammocl.hpp"
#include "mammocl/models/densenet.hpp"
#include "mammocl/train/linear_probe.hpp"
#include "mammocl/train/strategies.hpp"
#include "mammocl/train/trainer.hpp"
// The backend of this translation unit: cpu_backend here; patch_classifier_cuda.cpp compiles this file again
// with cuda_backend (MAMMOCL_EXAMPLE_BACKEND, its header and MAMMOCL_EXAMPLE_ENTRY defined first).
#ifdef MAMMOCL_EXAMPLE_BACKEND_HEADER
#include MAMMOCL_EXAMPLE_BACKEND_HEADER
#endif
#ifndef MAMMOCL_EXAMPLE_BACKEND
#define MAMMOCL_EXAMPLE_BACKEND mammocl::cpu_backend
#endif

using namespace mammocl;
using B = MAMMOCL_EXAMPLE_BACKEND;
namespace fs = std::filesystem;
using json = nlohmann::json;
using examples::cli_message;
using examples::csv_field;
using examples::exact;
using examples::fmt;
using examples::seconds_since;

namespace {

constexpr const char* prog = "patch_classifier";
constexpr int classes = 5;  // data/annotation.hpp's fixed patch_class order
constexpr const char* settings_file = "patch_classifier.json";
constexpr const char* manifest_file = "domains.json";
constexpr const char* settings_format = "mammocl.patch_classifier";

/// Bad input found before any long work: one line, exit status 2.
[[noreturn]] void fail(const std::string& msg) { examples::usage_error(prog, msg); }

// ---------------------------------------------------------------------------------------------------
// Command line

enum command_bits : unsigned { cmd_train = 1, cmd_evaluate = 2, cmd_predict = 4, cmd_smoke = 8, cmd_probe = 16 };

/// What the command line said; unset optionals were not given.
struct args {
  std::string command;  // train, evaluate, predict, probe, smoke
  std::optional<std::string> data, strategy, model, init, variant, split;
  std::optional<int> patch, window, images, epochs, epochs2, batch, per_roi, per_image;
  std::optional<std::int64_t> target_height;
  std::optional<double> lr, lr2;
  std::optional<std::uint64_t> seed;
  std::optional<fs::path> out, checkpoint;
  int threads = 2;
  examples::device_kind device = examples::device_kind::cpu;
  std::size_t replicates = 1000;
  bool resume = true, quiet = false;
  std::vector<std::string> inputs;  // predict: IMAGE...
};

/// Which commands accept a flag.
const std::map<std::string, unsigned>& flag_commands() {
  constexpr unsigned data_cmds = cmd_train | cmd_evaluate | cmd_predict | cmd_probe;
  static const std::map<std::string, unsigned> m{
      {"--data", data_cmds},
      {"--out", data_cmds | cmd_smoke},
      {"--checkpoint", cmd_evaluate | cmd_predict | cmd_probe},
      {"--strategy", cmd_train},
      {"--model", data_cmds},
      {"--patch", data_cmds},
      {"--window", data_cmds},
      {"--init", cmd_train},
      {"--variant", cmd_train},
      {"--images", data_cmds},
      {"--epochs", cmd_train | cmd_probe},
      {"--epochs2", cmd_train},
      {"--lr", cmd_train | cmd_probe},
      {"--lr2", cmd_train},
      {"--batch", cmd_train | cmd_probe},
      {"--per-roi", data_cmds},
      {"--per-image", data_cmds},
      {"--target-height", data_cmds},
      {"--seed", data_cmds},
      {"--split", cmd_predict},
      {"--replicates", cmd_evaluate | cmd_probe},
      {"--threads", data_cmds | cmd_smoke},
      {"--device", data_cmds | cmd_smoke},
      {"--no-resume", cmd_train},
      {"--quiet", data_cmds | cmd_smoke},
  };
  return m;
}

void usage(std::FILE* f, const std::string& command) {
  if (command.empty() || command == "smoke")
    std::fprintf(f,
                 "usage: patch_classifier <command> [options]   (patch_classifier <command> --help for its options)\n"
                 "  train      train the 5-class patch classifier on paired A/B patches of a dataset\n"
                 "  evaluate   test-set AUC (one-vs-one, macro) +- bootstrap s.e., per domain, accuracy, confusion\n"
                 "             matrix, class counts; metrics.json and report.html\n"
                 "  predict    class probabilities of patches (a dataset's split) or of patch images, as CSV\n"
                 "  probe      linear probe: a linear layer on the frozen encoder's features of another dataset's\n"
                 "             training split, test AUC +- bootstrap s.e.\n"
                 "  --smoke --out DIR   tiny end-to-end run (train, evaluate, predict, reload); non-zero exit on any\n"
                 "                      mismatch\n");
  if (command == "train")
    std::fprintf(f,
                 "usage: patch_classifier train --data phantom|DIR --out DIR [options]\n"
                 "  --data phantom|DIR  the built-in phantom, or a dataset folder (mini-MIAS Info.txt, INbreast,\n"
                 "                      CBIS-DDSM) or its Info.txt / INbreast.csv\n"
                 "  --out DIR           checkpoints, log.jsonl, patch_classifier.json, domains.json, lut_params.tsv\n"
                 "  --strategy S        ce (default), supcon_linear, supcon_finetune, dann or mmd\n"
                 "  --model M           small (default; about 26 k parameters) or densenet121\n"
                 "  --patch N           patch side fed to the model (default 32)\n"
                 "  --window N          side of the window cut from the image, in its pixels (default 128)\n"
                 "  --init I            random (default), or FILE.safetensors: torchvision DenseNet-121 weights\n"
                 "                      converted by scripts/convert_torchvision_weights.py, or a MammoCL checkpoint\n"
                 "                      (its classifier is left out)\n"
                 "  --variant V         training set: mixed (default), augmented, or down-R (mixed, down-sampled\n"
                 "                      to 0 < R < 1)\n"
                 "  --images N          phantom: mammograms = patients (default 60); DIR: the first N images (default\n"
                 "                      all)\n"
                 "  --epochs N          stage-1 epochs (default: ce/dann/mmd 5, SupCon pre-training 8)\n"
                 "  --epochs2 N         stage-2 epochs of the SupCon strategies (default 3)\n"
                 "  --lr X              stage-1 learning rate (default: ce/mmd 0.1, dann and SupCon 0.03)\n"
                 "  --lr2 X             stage-2 learning rate (default: linear probe 0.1, fine-tuning Adam 0.001)\n"
                 "  --batch N           batch size, >= 2 (default 32)\n"
                 "  --per-roi N         patches per lesion (default 4)\n"
                 "  --per-image N       background patches per image (default 3)\n"
                 "  --target-height N   resize each image to this height before cutting (default 0: as it is)\n"
                 "  --seed N            phantom, split, mixing, shuffling and initialisation seed (default 1)\n"
                 "  --threads N         CPU threads (default 2)\n"
                 "  --device D          cpu (default) or cuda (a build with MAMMOCL_WITH_CUDA)\n"
                 "  --no-resume         start afresh even where DIR/last.safetensors exists\n"
                 "  --quiet             no progress output\n");
  if (command == "evaluate")
    std::fprintf(f,
                 "usage: patch_classifier evaluate --checkpoint FILE --out DIR [options]\n"
                 "  --checkpoint FILE   a best.safetensors written by train; its folder holds\n"
                 "                      patch_classifier.json\n"
                 "  --out DIR           metrics.json and report.html\n"
                 "  --data phantom|DIR  the run's data (default: as recorded; a DIR may have moved)\n"
                 "  --replicates N      bootstrap replicates, clustered on patient (default 1000)\n"
                 "  --device cpu|cuda, --threads N, --quiet\n"
                 "  data and model flags (--model --patch --window --images --per-roi --per-image --target-height\n"
                 "  --seed) may be repeated; a value other than the recorded one is an error\n");
  if (command == "probe")
    std::fprintf(f,
                 "usage: patch_classifier probe --checkpoint FILE --data phantom|DIR --out DIR [options]\n"
                 "  the encoder of FILE (frozen, inference mode) gives features of every patch of --data in both\n"
                 "  domains; a new linear layer is trained on the patients of an 80 %% split and tested on the other\n"
                 "  20 %%. Model, patch, window and input come from the checkpoint's run; the data flags describe\n"
                 "  the new dataset (defaults as train's: --images 60 for the phantom, all images of a DIR,\n"
                 "  --per-roi 4 --per-image 3 --target-height 0 --seed 1)\n"
                 "  --epochs N          probe epochs (default 100; SGD 0.1, momentum 0.9, x0.2 at 60/75/90 %%)\n"
                 "  --lr X              probe learning rate (default 0.1)\n"
                 "  --batch N           probe batch size (default 256)\n"
                 "  --replicates N      bootstrap replicates of the test AUC (default 1000)\n"
                 "  --device cpu|cuda, --threads N, --quiet\n"
                 "  writes DIR/probe.json\n");
  if (command == "predict")
    std::fprintf(f,
                 "usage: patch_classifier predict --checkpoint FILE --out FILE.csv [--data phantom|DIR] [--split test|all]\n"
                 "       patch_classifier predict --checkpoint FILE --out FILE.csv IMAGE...\n"
                 "  --split S           which patches of the data: test (default) or all, each in domains A and B\n"
                 "  IMAGE...            patch images (PGM, PNG%s), each normalised to [0, 1] and resized to the\n"
                 "                      model's patch side\n"
                 "  CSV columns: source,patch,domain,label,p_normal,p_benign_calcification,\n"
                 "               p_malignant_calcification,p_benign_mass,p_malignant_mass\n",
#if MAMMOCL_EXAMPLES_WITH_DICOM
                 ", DICOM"
#else
                 ""
#endif
    );
}

args parse(int argc, char** argv) {
  args a;
  if (argc < 2) fail("expected a command: train, evaluate, predict, probe, --smoke or --help");
  int first = 2;
  const std::string c = argv[1];
  if (c == "--help" || c == "-h") {
    usage(stdout, "");
    std::exit(0);
  }
  if (c == "train" || c == "evaluate" || c == "predict" || c == "probe") a.command = c;
  else if (c == "--smoke") a.command = "smoke";
  else if (c.rfind("--", 0) == 0 && flag_commands().count(c))
    fail("expected a command before '" + c + "': train, evaluate, predict, probe, --smoke or --help");
  else fail("unknown command '" + c + "'; expected train, evaluate, predict, probe, --smoke or --help");
  const unsigned bit = a.command == "train" ? cmd_train : a.command == "evaluate" ? cmd_evaluate
                       : a.command == "predict" ? cmd_predict : a.command == "probe" ? cmd_probe : cmd_smoke;

  const examples::arg_reader arg(prog, argc, argv);
  std::set<std::string> seen;
  for (int i = first; i < argc; ++i) {
    const std::string k = argv[i];
    if (k == "--help" || k == "-h") {
      usage(stdout, a.command);
      std::exit(0);
    }
    if (k.rfind("--", 0) != 0) {
      if (a.command != "predict") fail("unexpected argument '" + k + "' (" + a.command + " takes no file arguments)");
      a.inputs.push_back(k);
      continue;
    }
    if (k == "--smoke") fail("--smoke is a command of its own: patch_classifier --smoke --out DIR");
    const auto fc = flag_commands().find(k);
    if (fc == flag_commands().end())
      fail("unknown option '" + k + "' (patch_classifier " + (a.command == "smoke" ? std::string("--help") : a.command + " --help") +
           " lists the options)");
    if (!(fc->second & bit))
      fail(k + " is not an option of " + (a.command == "smoke" ? std::string("--smoke") : a.command));
    if (!seen.insert(k).second) fail(k + " is given twice");
    if (k == "--data") a.data = arg.value(i, k);
    else if (k == "--out") a.out = arg.value(i, k);
    else if (k == "--checkpoint") a.checkpoint = arg.value(i, k);
    else if (k == "--strategy") {
      a.strategy = arg.value(i, k);
      if (std::find(train::strategy_names.begin(), train::strategy_names.end(), *a.strategy) == train::strategy_names.end())
        fail("unknown strategy '" + *a.strategy + "'; expected ce, supcon_linear, supcon_finetune, dann or mmd");
    } else if (k == "--model") {
      a.model = arg.value(i, k);
      if (*a.model != "small" && *a.model != "densenet121")
        fail("--model must be small or densenet121, got '" + *a.model + "'");
    } else if (k == "--patch") a.patch = static_cast<int>(arg.integer(i, k, 1, 4096));
    else if (k == "--window") a.window = static_cast<int>(arg.integer(i, k, 2, 65536));
    else if (k == "--init") a.init = arg.value(i, k);
    else if (k == "--variant") {
      a.variant = arg.value(i, k);
      const std::string& v = *a.variant;
      bool ok = v == "augmented" || v == "mixed";
      if (v.rfind("down-", 0) == 0) {
        char* end = nullptr;
        const double r = std::strtod(v.c_str() + 5, &end);
        ok = v.size() > 5 && *end == 0 && r > 0 && r < 1;
      }
      if (!ok) fail("--variant must be augmented, mixed or down-R with 0 < R < 1, got '" + v + "'");
    } else if (k == "--images") a.images = static_cast<int>(arg.integer(i, k, 1, 1'000'000));
    else if (k == "--epochs") a.epochs = static_cast<int>(arg.integer(i, k, 1, 100000));
    else if (k == "--epochs2") a.epochs2 = static_cast<int>(arg.integer(i, k, 1, 100000));
    else if (k == "--lr") a.lr = arg.positive(i, k);
    else if (k == "--lr2") a.lr2 = arg.positive(i, k);
    else if (k == "--batch") a.batch = static_cast<int>(arg.integer(i, k, 2, 65536));
    else if (k == "--per-roi") a.per_roi = static_cast<int>(arg.integer(i, k, 1, 100000));
    else if (k == "--per-image") a.per_image = static_cast<int>(arg.integer(i, k, 0, 100000));
    else if (k == "--target-height") a.target_height = arg.integer(i, k, 0, 1'000'000);
    else if (k == "--seed") a.seed = static_cast<std::uint64_t>(arg.integer(i, k, 0, 9'000'000'000'000'000'000LL));
    else if (k == "--split") {
      a.split = arg.value(i, k);
      if (*a.split != "test" && *a.split != "all") fail("--split must be test or all, got '" + *a.split + "'");
    } else if (k == "--replicates") a.replicates = static_cast<std::size_t>(arg.integer(i, k, 10, 1'000'000));
    else if (k == "--threads") a.threads = static_cast<int>(arg.integer(i, k, 1, 1024));
    else if (k == "--device") a.device = examples::parse_device(prog, arg.value(i, k));
    else if (k == "--no-resume") a.resume = false;
    else if (k == "--quiet") a.quiet = true;
  }
  if (!a.out) fail(a.command == "smoke" ? "--smoke needs --out DIR" : a.command + " needs --out");
  if (a.command == "train" && !a.data) fail("train needs --data phantom|DIR");
  if ((a.command == "evaluate" || a.command == "predict" || a.command == "probe") && !a.checkpoint)
    fail(a.command + " needs --checkpoint FILE");
  if (a.command == "probe" && !a.data) fail("probe needs --data phantom|DIR");
  if (a.command == "predict" && !a.inputs.empty() && a.data)
    fail("predict takes either --data or IMAGE files, not both");
  if (a.command == "predict" && !a.inputs.empty() && a.split)
    fail("--split selects patches of --data; it does not apply to IMAGE files");
  if (a.command == "predict" && !a.inputs.empty())
    for (const char* f : {"--images", "--per-roi", "--per-image", "--target-height", "--seed"})
      if (seen.count(f)) fail(std::string(f) + " describes --data; it does not apply to IMAGE files");
  if (a.patch && a.window && *a.patch > *a.window)
    fail("--patch (" + std::to_string(*a.patch) + ") must not exceed --window (" + std::to_string(*a.window) + ")");
  if (a.data && *a.data != "phantom" && !fs::exists(*a.data))
    fail("--data: '" + *a.data + "' does not exist");
  return a;
}

// ---------------------------------------------------------------------------------------------------
// Run settings: what train records beside its checkpoints, so that a checkpoint alone rebuilds everything

struct settings {
  std::string model = "small";
  int in_channels = 1;                   // 3 for torchvision RGB weights (the grey patch repeated)
  std::vector<double> mean{0.0}, stdv{1.0};  // per-channel input normalisation (x - mean) / std
  int patch = 32, window = 128;
  std::string data = "phantom";          // "phantom" or the dataset path
  std::string kind = "phantom";          // "phantom" or dataset_kind_name
  int images = 60;                       // phantom: count; DIR: first N records (0: all)
  int per_roi = 4, per_image = 3;
  std::int64_t target_height = 0;
  std::uint64_t seed = 1;
  std::string variant = "mixed";         // augmented, mixed, down-R
  std::string strategy = "ce";
  int epochs = 5, epochs2 = 3;
  double lr = 0.1, lr2 = 0.1;
  int batch = 32;
  std::string init = "random";
  data::split_options split{};           // 70/10/20 by patient (data/domains.hpp's defaults)

  [[nodiscard]] data::train_variant train_variant() const {
    if (variant == "augmented") return data::train_variant::augmented;
    if (variant == "mixed") return data::train_variant::mixed;
    return data::train_variant::mixed_downsampled;
  }
  [[nodiscard]] double ratio() const { return variant.rfind("down-", 0) == 0 ? std::strtod(variant.c_str() + 5, nullptr) : 1.0; }
  [[nodiscard]] bool two_stage() const { return strategy == "supcon_linear" || strategy == "supcon_finetune"; }
};

json to_json(const settings& s) {
  json classes_j = json::array();
  for (int c = 0; c < classes; ++c) classes_j.push_back(std::string(data::class_name(static_cast<data::patch_class>(c))));
  return {{"format", settings_format},
          {"version", 1},
          {"model", s.model},
          {"input", {{"channels", s.in_channels}, {"mean", s.mean}, {"std", s.stdv}}},
          {"patch", s.patch},
          {"window", s.window},
          {"data",
           {{"source", s.data},
            {"kind", s.kind},
            {"images", s.images},
            {"per_roi", s.per_roi},
            {"per_image", s.per_image},
            {"target_height", s.target_height}}},
          {"split", {{"train", s.split.train}, {"validation", s.split.validation}, {"test", s.split.test}}},
          {"seed", s.seed},
          {"variant", s.variant},
          {"strategy", s.strategy},
          {"epochs", s.epochs},
          {"epochs2", s.epochs2},
          {"lr", s.lr},
          {"lr2", s.lr2},
          {"batch", s.batch},
          {"init", s.init},
          {"classes", classes_j}};
}

/// Reads patch_classifier.json; every error names the file and the field (io_error).
settings read_settings(const fs::path& file) {
  std::ifstream in(file, std::ios::binary);
  MAMMOCL_CHECK(in.good(), io_error, "cannot open '", file.string(), "'");
  json j;
  try {
    j = json::parse(in);
  } catch (const json::exception& e) {
    MAMMOCL_THROW(io_error, "'", file.string(), "' is not valid JSON: ", e.what());
  }
  auto field = [&](const json& obj, const std::string& path) -> const json& {
    const json* cur = &obj;
    std::stringstream ss(path);
    for (std::string part; std::getline(ss, part, '.');) {
      MAMMOCL_CHECK(cur->is_object() && cur->contains(part), io_error, "'", file.string(), "': field '", path,
                    "' is missing");
      cur = &(*cur)[part];
    }
    return *cur;
  };
  auto get = [&]<class T>(const std::string& path, T& out) {
    try {
      out = field(j, path).get<T>();
    } catch (const json::exception& e) {
      MAMMOCL_THROW(io_error, "'", file.string(), "': field '", path, "' has the wrong type (", e.what(), ")");
    }
  };
  std::string format;
  get("format", format);
  MAMMOCL_CHECK(format == settings_format, io_error, "'", file.string(), "': field 'format' is '", format,
                "', expected '", settings_format, "'");
  int version = 0;
  get("version", version);
  MAMMOCL_CHECK(version == 1, io_error, "'", file.string(), "': field 'version' is ", version, ", expected 1");
  settings s;
  get("model", s.model);
  get("input.channels", s.in_channels);
  get("input.mean", s.mean);
  get("input.std", s.stdv);
  get("patch", s.patch);
  get("window", s.window);
  get("data.source", s.data);
  get("data.kind", s.kind);
  get("data.images", s.images);
  get("data.per_roi", s.per_roi);
  get("data.per_image", s.per_image);
  get("data.target_height", s.target_height);
  get("split.train", s.split.train);
  get("split.validation", s.split.validation);
  get("split.test", s.split.test);
  get("seed", s.seed);
  get("variant", s.variant);
  get("strategy", s.strategy);
  get("epochs", s.epochs);
  get("epochs2", s.epochs2);
  get("lr", s.lr);
  get("lr2", s.lr2);
  get("batch", s.batch);
  get("init", s.init);
  MAMMOCL_CHECK(s.model == "small" || s.model == "densenet121", io_error, "'", file.string(), "': field 'model' is '",
                s.model, "', expected small or densenet121");
  MAMMOCL_CHECK((s.in_channels == 1 || s.in_channels == 3) && s.mean.size() == static_cast<std::size_t>(s.in_channels) &&
                    s.stdv.size() == s.mean.size(),
                io_error, "'", file.string(), "': field 'input' needs channels 1 or 3 and one mean and std per channel");
  for (double v : s.stdv)
    MAMMOCL_CHECK(v > 0, io_error, "'", file.string(), "': field 'input.std' holds ", v, "; expected positive values");
  MAMMOCL_CHECK(s.patch >= 1 && s.window >= s.patch, io_error, "'", file.string(), "': fields 'patch' (", s.patch,
                ") and 'window' (", s.window, ") need 1 <= patch <= window");
  return s;
}

/// The strategy's default epochs and learning rates (as train_patch_classifier's).
void strategy_defaults(settings& s) {
  const bool supcon = s.two_stage();
  s.epochs = supcon ? 8 : 5;
  s.epochs2 = 3;
  s.lr = supcon || s.strategy == "dann" ? 0.03 : 0.1;
  s.lr2 = s.strategy == "supcon_finetune" ? 1e-3 : 0.1;
}

train::strategy_options strategy_options_of(const settings& s) {
  train::strategy_options so;
  so.seed = s.seed;
  so.stage1 = {.epochs = s.epochs, .lr = s.lr};
  if (s.strategy == "supcon_finetune")
    so.stage2 = {.epochs = s.epochs2, .optimizer = train::optimizer_kind::adam, .lr = s.lr2};
  else
    so.stage2 = {.epochs = s.epochs2, .lr = s.lr2, .weight_decay = 0.0};
  so.mmd_weight = 0.1;
  return so;
}

/// Applies the data and model flags to `s`. With `recorded`, `s` holds a run's recorded settings and a
/// flag that says otherwise is a contradiction (exit 2), except --data DIR, which may name the same kind
/// of dataset at another place (checked once the dataset is opened).
void apply_data_flags(settings& s, const args& a, bool recorded, const std::string& where) {
  auto check = [&](const std::string& flag, const auto& given, const auto& have, const std::string& shown_have,
                   const std::string& shown_given) {
    if (recorded && !(given == have))
      fail(flag + " " + shown_given + " contradicts " + where + " (" + flag.substr(2) + " " + shown_have + ")");
  };
  if (a.data) {
    const bool phantom = *a.data == "phantom";
    if (recorded && phantom != (s.data == "phantom"))
      fail("--data " + *a.data + " contradicts " + where + " (data " + s.data + ")");
    if (!recorded || !phantom) s.data = phantom ? std::string("phantom") : fs::absolute(*a.data).lexically_normal().string();
    if (!recorded) s.kind = phantom ? "phantom" : "";
  }
  if (a.model) {
    check("--model", *a.model, s.model, s.model, *a.model);
    s.model = *a.model;
  }
  auto num = [&](const char* flag, const auto& given, auto& field) {
    if (!given) return;
    check(flag, *given, field, std::to_string(field), std::to_string(*given));
    field = *given;
  };
  num("--patch", a.patch, s.patch);
  num("--window", a.window, s.window);
  num("--images", a.images, s.images);
  num("--per-roi", a.per_roi, s.per_roi);
  num("--per-image", a.per_image, s.per_image);
  num("--target-height", a.target_height, s.target_height);
  num("--seed", a.seed, s.seed);
}

// ---------------------------------------------------------------------------------------------------
// Model configurations

/// Calls f.template operator()<Config>() with the DenseNet configuration named by `model`.
template <class F>
decltype(auto) with_model(const std::string& model, F&& f) {
  if (model == "densenet121") return f.template operator()<models::densenet121>();
  return f.template operator()<models::densenet_small>();
}

void check_patch_fits(const settings& s) {
  const int lo = with_model(s.model, []<class C>() { return examples::min_input_side<C>(); });
  if (s.patch < lo)
    fail("--patch " + std::to_string(s.patch) + " is smaller than the " + s.model + " model's minimum input side " +
         std::to_string(lo));
  if (s.patch > s.window)
    fail("--patch (" + std::to_string(s.patch) + ") must not exceed --window (" + std::to_string(s.window) + ")");
}

/// Whether a safetensors file uses torchvision's legacy dense-layer key names (norm.1, conv.2, ...).
bool has_legacy_keys(const io::safetensors::file& f) {
  static const std::regex legacy(R"(denselayer\d+\.(norm|conv)\.[12]\.)");
  for (const auto& [name, e] : f.tensors())
    if (std::regex_search(name, legacy)) return true;
  return false;
}

/// What --init FILE says about the input: a MammoCL checkpoint (trainer metadata "strategy") keeps the
/// input of the run it came from; other files are taken as torchvision ImageNet weights (METHOD.md §3.1):
/// RGB conv0 → the grey patch repeated three times with ImageNet's per-channel mean and std (option (a)),
/// grey conv0 (converted with --in-channels 1) → one channel with their averages 0.449 / 0.226 (option (b)).
void input_of_init(settings& s, const io::safetensors::file& f, const fs::path& file) {
  const auto conv0 = f.tensors().find("features.conv0.weight");
  if (conv0 == f.tensors().end() || conv0->second.shape.size() != 4)
    fail("--init " + file.string() + ": no 4-d tensor 'features.conv0.weight' (is it a DenseNet checkpoint?)");
  const auto ch = static_cast<int>(conv0->second.shape[1]);
  if (ch != 1 && ch != 3)
    fail("--init " + file.string() + ": key 'features.conv0.weight' has " + std::to_string(ch) +
         " input channels; expected 1 (grey) or 3 (RGB)");
  s.in_channels = ch;
  if (f.metadata().count("strategy")) {
    const fs::path js = file.parent_path() / settings_file;
    if (fs::exists(js)) {
      try {
        const settings from = read_settings(js);
        s.mean = from.mean;
        s.stdv = from.stdv;
        if (static_cast<int>(s.mean.size()) != ch) fail("--init " + file.string() + ": " + js.string() +
                                                        " records another input channel count than the checkpoint");
        return;
      } catch (const mammocl::error& e) {
        fail("--init " + file.string() + ": " + e.message());
      }
    }
    s.mean.assign(static_cast<std::size_t>(ch), 0.0);
    s.stdv.assign(static_cast<std::size_t>(ch), 1.0);
  } else if (ch == 3) {
    s.mean = {0.485, 0.456, 0.406};
    s.stdv = {0.229, 0.224, 0.225};
  } else {
    s.mean = {0.449};
    s.stdv = {0.226};
  }
}

/// Loads --init into `model` (classifier left out): strict, with torchvision's legacy names when the file
/// uses them. A file of another architecture is a usage error naming the key.
template <class Model>
void load_init(Model& model, const io::safetensors::file& f, const fs::path& file, bool quiet) {
  const bool legacy = has_legacy_keys(f);
  try {
    const io::load_report r =
        io::load_state(model, f, {.strict = true, .torchvision_legacy = legacy, .exclude_prefixes = {"classifier."}});
    if (!quiet)
      std::printf("--init %s: %zu tensors loaded%s, classifier left out (%zu keys)%s\n", file.c_str(), r.loaded.size(),
                  legacy ? " (torchvision legacy names)" : "", r.excluded.size(),
                  r.defaulted.empty() ? "" : (", " + std::to_string(r.defaulted.size()) + " counters set to 0").c_str());
  } catch (const mammocl::error& e) {
    fail("--init " + file.string() + ": " + cli_message(e));
  }
}

// ---------------------------------------------------------------------------------------------------
// Data

/// A dataset opened for the run, before any pixel is read.
struct opened {
  std::optional<data::opened_dataset> ds;  // empty for the phantom
};

opened open_data(settings& s, bool recorded) {
  opened o;
  if (s.data == "phantom") {
    s.kind = "phantom";
    return o;
  }
  try {
    o.ds = examples::open_dataset_folder(s.data);
    if (!examples::with_dicom && o.ds->needs_dicom)
      fail("--data " + s.data + ": a " + std::string(data::dataset_kind_name(o.ds->kind)) +
           " dataset has DICOM images, and this patch_classifier was built without DICOM (configure with "
           "-DMAMMOCL_WITH_DICOM=ON)");
  } catch (const mammocl::error& e) {
    fail("--data: " + e.message());
  }
  const std::string kind(data::dataset_kind_name(o.ds->kind));
  if (recorded && !s.kind.empty() && kind != s.kind)
    fail("--data " + s.data + " holds a " + kind + " dataset, but the run used " + s.kind);
  s.kind = kind;
  if (o.ds->records.empty()) fail("--data " + s.data + ": the " + kind + " dataset has no usable image");
  return o;
}

void progress_line(bool quiet, const char* what, std::size_t done, std::size_t total) {
  if (quiet) return;
  std::printf("\r%s %zu/%zu", what, done, total);
  if (done == total) std::printf("\n");
  std::fflush(stdout);
}

/// Every paired A/B patch of the run's data.
data::paired_patches make_patches(const settings& s, const opened& o, bool quiet) {
  data::patch_options so;
  so.patch_size = s.window;
  so.output_size = s.patch;
  so.per_roi = s.per_roi;
  so.per_image = s.per_image;
  so.target_height = s.target_height;
  so.seed = s.seed;
  const auto progress = [quiet](std::size_t d, std::size_t t) { progress_line(quiet, "images", d, t); };
  if (!o.ds) {
    data::phantom_options po;
    po.seed = s.seed;
    return data::make_phantom_paired_patches(po, s.images, so, progress);
  }
  std::vector<data::case_record> records = o.ds->records;
  if (s.images > 0 && static_cast<std::size_t>(s.images) < records.size()) records.resize(static_cast<std::size_t>(s.images));
  data::paired_patch_options po;
  po.sampler = so;
  return data::make_paired_patches(records, po, examples::image_reader(), progress);
}

/// The patient split and the three sets (data/domains.hpp).
data::domain_plan make_plan(const settings& s, const data::paired_patches& p) {
  const std::vector<data::source_item> items = p.source_items();
  return data::make_domain_plan(items, {.split = s.split, .variant = s.train_variant(), .ratio = s.ratio(), .seed = s.seed});
}

eval::class_counts_table counts_table(const data::domain_plan& plan) {
  eval::class_counts_table t;
  t.caption = "Patches per class";
  for (int c = 0; c < classes; ++c) t.class_names.emplace_back(data::class_name(static_cast<data::patch_class>(c)));
  auto row = [&](const std::string& label, const std::vector<data::domain_item>& set, int dom) {
    eval::count_row r{label, std::vector<long long>(classes, 0)};
    for (const auto& e : set)
      if (dom < 0 || static_cast<int>(e.dom) == dom) ++r.counts[static_cast<std::size_t>(e.label)];
    t.rows.push_back(r);
  };
  row("train A", plan.train, 0);
  row("train B", plan.train, 1);
  row("validation (A and B)", plan.validation, -1);
  row("test (A and B)", plan.test, -1);
  return t;
}

/// A BatchSource in front of paired_patch_source that normalises the input ((x - mean) / std per channel)
/// and repeats the grey channel when the model takes 3 channels. The identity for 1 channel, mean 0, std 1.
class input_source {
 public:
  input_source(const data::paired_patches& p, std::vector<data::domain_item> set, int batch, bool training,
               std::uint64_t seed, const settings& s)
      : src_(p, std::move(set), batch, training, seed), channels_(s.in_channels), mean_(s.mean), std_(s.stdv) {}

  [[nodiscard]] std::int64_t batches_per_epoch() const { return src_.batches_per_epoch(); }
  [[nodiscard]] const std::vector<data::domain_item>& items() const { return src_.items(); }

  [[nodiscard]] data::batch get_batch(const data::batch_request& r) const {
    data::batch b = src_.get_batch(r);
    if (channels_ == 1 && mean_[0] == 0.0 && std_[0] == 1.0) return b;
    const std::size_t plane = static_cast<std::size_t>(b.height * b.width);
    const std::size_t n = static_cast<std::size_t>(b.samples * b.views);
    std::vector<float> out(n * static_cast<std::size_t>(channels_) * plane);
    for (std::size_t i = 0; i < n; ++i)
      for (int c = 0; c < channels_; ++c) {
        const float m = static_cast<float>(mean_[static_cast<std::size_t>(c)]);
        const float inv = static_cast<float>(1.0 / std_[static_cast<std::size_t>(c)]);
        const float* src = b.images.data() + i * plane;
        float* dst = out.data() + (i * static_cast<std::size_t>(channels_) + static_cast<std::size_t>(c)) * plane;
        for (std::size_t k = 0; k < plane; ++k) dst[k] = (src[k] - m) * inv;
      }
    b.images = std::move(out);
    b.channels = channels_;
    return b;
  }

 private:
  data::paired_patch_source src_;
  int channels_;
  std::vector<double> mean_, std_;
};

// ---------------------------------------------------------------------------------------------------
// Predictions

/// Softmax probabilities (N×5, row-major) and the raw logits of a model over a source, in source order.
struct predictions {
  std::vector<float> logits;
  std::vector<double> prob;
};

template <class Model, class Src>
predictions predict_source(B::context& ctx, const Model& model, const Src& src) {
  predictions p;
  for (std::int64_t i = 0; i < src.batches_per_epoch(); ++i) {
    const data::batch b = src.get_batch({0, 0, i, 1});
    const auto l = host_bridge::on_host(model.infer(ctx, train::detail::to_tensor<B>(b)));  // a copy on a device
    p.logits.insert(p.logits.end(), l.data(), l.data() + l.numel());
  }
  const std::size_t n = p.logits.size() / classes;
  p.prob.resize(n * classes);
  for (std::size_t i = 0; i < n; ++i)
    MAMMOCL_CHECK(examples::softmax_row(p.logits.data() + classes * i, classes, p.prob.data() + classes * i),
                  numeric_error, "the logits of row ", i, " are not finite");
  return p;
}


std::string csv_header() {
  std::string h = "source,patch,domain,label";
  for (int c = 0; c < classes; ++c) {
    std::string n(data::class_name(static_cast<data::patch_class>(c)));
    std::replace(n.begin(), n.end(), ' ', '_');
    h += ",p_" + n;
  }
  return h + "\n";
}

struct csv_row {
  std::string source, patch, domain, label;
};

std::string csv_text(const std::vector<csv_row>& rows, const std::vector<double>& prob) {
  std::string t = csv_header();
  for (std::size_t i = 0; i < rows.size(); ++i) {
    t += csv_field(rows[i].source) + "," + rows[i].patch + "," + rows[i].domain + "," + rows[i].label;
    for (int c = 0; c < classes; ++c) t += "," + exact(prob[classes * i + c]);
    t += "\n";
  }
  return t;
}

// ---------------------------------------------------------------------------------------------------
// Checkpoint folders

/// The settings recorded beside a checkpoint (exit 2 when absent or unreadable).
settings settings_beside(const fs::path& checkpoint) {
  if (!fs::exists(checkpoint)) fail("--checkpoint: '" + checkpoint.string() + "' does not exist");
  const fs::path js = checkpoint.parent_path() / settings_file;
  if (!fs::exists(js))
    fail("--checkpoint " + checkpoint.string() + ": no " + settings_file +
         " beside it; evaluate and predict need the folder written by 'patch_classifier train'");
  try {
    return read_settings(js);
  } catch (const mammocl::error& e) {
    fail("--checkpoint " + checkpoint.string() + ": " + e.message());
  }
}

/// A model of the recorded architecture with the checkpoint's weights (strict: every key, every shape).
template <class Model>
void load_checkpoint(Model& model, const fs::path& checkpoint) {
  try {
    io::load_state(model, checkpoint);
  } catch (const mammocl::error& e) {
    fail("--checkpoint " + checkpoint.string() + ": " + cli_message(e));
  }
}

/// The rebuilt plan must be the one the run recorded (same data, same split): otherwise the "test set"
/// would silently hold training patients.
void check_plan(const data::domain_plan& plan, const fs::path& dir) {
  const fs::path m = dir / manifest_file;
  if (!fs::exists(m)) return;
  const data::domain_plan recorded = data::read_manifest(m);
  MAMMOCL_CHECK(recorded == plan, io_error, "the data now give another split than the run recorded in '", m.string(),
                "' (", recorded.items.size(), " patches then, ", plan.items.size(),
                " now); the dataset or the sampling changed");
}

// ---------------------------------------------------------------------------------------------------
// train

struct train_outcome {
  fs::path best;
  bool resumed = false;
  std::size_t epochs_logged = 0;
  std::vector<double> test_prob;  // the trained model (in memory) on the test set, for --smoke
};

/// Resume bookkeeping: the trainer resumes from last.safetensors; when the run asks for more epochs than the
/// recorded stage had, the trainer continues that stage (trainer_options::extend_finished_stage; the cosine
/// schedule then runs over the new total). Checks the request against the checkpoint and returns the line
/// to print.
std::string prepare_resume(const fs::path& last, const settings& s, const settings& recorded) {
  const io::safetensors::file f = [&] {
    try {
      return io::safetensors::file::read(last);
    } catch (const mammocl::error& e) {
      fail("cannot resume: " + e.message());
    }
  }();
  const auto it = f.metadata().find("mammocl.trainer");
  if (it == f.metadata().end())
    fail("cannot resume: '" + last.string() + "' has no trainer state; use --no-resume or another --out");
  json j;
  try {
    j = json::parse(it->second);
  } catch (const json::exception& e) {
    fail("cannot resume: '" + last.string() + "' has unreadable trainer state (" + e.what() + ")");
  }
  const int stage = j.value("stage", 0), done = j.value("epoch", 0);
  const bool stage_done = j.value("stage_done", false);
  const int want = stage == 0 ? s.epochs : s.epochs2;
  const char* flag = stage == 0 ? "--epochs" : "--epochs2";
  if (stage > 0 && s.epochs != recorded.epochs)
    fail("--epochs " + std::to_string(s.epochs) + " contradicts the run in " + last.parent_path().string() +
         ": its stage 1 is finished after " + std::to_string(recorded.epochs) + " epochs; use --no-resume");
  if (want < done)
    fail(std::string(flag) + " " + std::to_string(want) + " is fewer than the " + std::to_string(done) +
         " epochs the run in " + last.parent_path().string() + " has done; use --no-resume");
  std::string line = "resuming from " + last.string() + " (stage " + std::to_string(stage + 1) + ", " +
                     std::to_string(done) + " epoch" + (done == 1 ? "" : "s") + " done)";
  if (stage_done && done < want) line += "; continuing to " + std::to_string(want) + " epochs";
  return line;
}

template <class Config>
train_outcome train_run(B::context& ctx, const args& a, settings s, const std::optional<settings>& recorded,
                        const opened& od) {
  using model_t = models::densenet<B, Config>;
  const fs::path out = *a.out;
  const auto t0 = std::chrono::steady_clock::now();

  // Everything that can be refused is checked before the data are made.
  std::optional<io::safetensors::file> init_file;
  if (s.init != "random" && !recorded) {  // a resumed run takes its weights from last.safetensors
    try {
      init_file = io::safetensors::file::read(s.init);
    } catch (const mammocl::error& e) {
      fail("--init: " + e.message());
    }
    if (!recorded) input_of_init(s, *init_file, s.init);
  }
  model_t model({.in_channels = s.in_channels, .num_classes = classes});
  model.init(s.seed);
  if (init_file) load_init(model, *init_file, s.init, a.quiet);
  const fs::path last = out / "last.safetensors";
  const bool resuming = a.resume && fs::exists(last);
  std::string resume_line;
  if (resuming) resume_line = prepare_resume(last, s, *recorded);

  examples::create_output_folder(prog, out);
  eval::write_file_atomic(out / settings_file, to_json(s).dump(2) + "\n");

  // Data.
  const data::paired_patches p = make_patches(s, od, a.quiet);
  const data::domain_plan plan = make_plan(s, p);
  if (resuming) check_plan(plan, out);
  data::write_manifest(out / manifest_file, plan);
  data::write_lut_params(out / "lut_params.tsv", p.lut);
  std::printf("%s: %zu images (%zu left out), %zu paired A/B patches of %dx%d (%dx%d windows); split by patient "
              "%zu/%zu/%zu images; %.1f s\n",
              s.kind.c_str(), p.images.size(), p.report.skipped.size(), p.size(), s.patch, s.patch, s.window, s.window,
              [&] { std::set<std::int64_t> im; for (auto k : plan.split.train) im.insert(p.image[static_cast<std::size_t>(k)]); return im.size(); }(),
              [&] { std::set<std::int64_t> im; for (auto k : plan.split.validation) im.insert(p.image[static_cast<std::size_t>(k)]); return im.size(); }(),
              [&] { std::set<std::int64_t> im; for (auto k : plan.split.test) im.insert(p.image[static_cast<std::size_t>(k)]); return im.size(); }(),
              seconds_since(t0));
  if (od.ds && !od.ds->report.skipped.empty()) {
    std::printf("  the %s reader left out %zu entries of %zu rows read%s\n", s.kind.c_str(), od.ds->report.skipped.size(),
                od.ds->report.rows_read, a.quiet ? "" : ":");
    if (!a.quiet)
      for (const auto& sk : od.ds->report.skipped) std::printf("    %s: %s\n", sk.item.c_str(), sk.reason.c_str());
  }
  for (const auto& sk : p.report.skipped) std::printf("  left out %s: %s\n", sk.item.c_str(), sk.reason.c_str());
  std::printf("%s\n", eval::to_markdown(counts_table(plan)).c_str());
  MAMMOCL_CHECK(static_cast<int>(plan.train.size()) >= s.batch, config_error, "the training set (", s.variant, ") has ",
                plan.train.size(), " patches, fewer than one batch (", s.batch, "); use more images or a smaller --batch");

  const input_source train_src(p, plan.train, s.batch, true, s.seed, s);
  const input_source val_src(p, plan.validation, 64, false, 0, s);
  const input_source* val = plan.validation.empty() ? nullptr : &val_src;
  if (!val) std::printf("warning: the validation split is empty; the final weights become best.safetensors\n");
  if (resuming) std::printf("%s\n", resume_line.c_str());
  std::fflush(stdout);

  const train::strategy_options so = strategy_options_of(s);
  const train::fit_result fit = train::with_strategy<model_t>(s.strategy, [&]<class S>() {
    S strategy(model, so);
    train::trainer_options opt{.out_dir = out, .resume = a.resume, .progress = !a.quiet, .progress_stream = stdout,
                               .extend_finished_stage = true};
    return train::fit(ctx, strategy, train_src, val, opt, classes);
  });
  train_outcome r;
  r.best = out / "best.safetensors";
  r.resumed = fit.resumed;
  r.epochs_logged = fit.log.size();
  if (fit.best_stage < 0) {
    // No epoch had a validation AUC (empty validation split or a single class in it): keep the final weights.
    io::save_state(model, r.best, {{"strategy", s.strategy}, {"note", "final weights; no validation AUC"}});
    std::printf("%s: no validation AUC (the validation split holds fewer than two classes); saved the final weights "
                "as %s\n",
                s.strategy.c_str(), r.best.c_str());
  } else {
    std::printf("%s%s: best validation AUC %.4f (stage %d, epoch %d); %zu epoch(s) logged in %s; checkpoint %s; %.1f s\n",
                s.strategy.c_str(), fit.resumed ? " (resumed)" : "", fit.best_metric, fit.best_stage + 1,
                fit.best_epoch + 1, fit.log.size(), (out / "log.jsonl").c_str(), r.best.c_str(), seconds_since(t0));
  }
  if (!plan.test.empty()) r.test_prob = predict_source(ctx, model, input_source(p, plan.test, 64, false, 0, s)).prob;
  return r;
}

train_outcome cmd_train_run(B::context& ctx, const args& a) {
  const fs::path out = *a.out;
  if (fs::exists(out) && !fs::is_directory(out)) fail("--out '" + out.string() + "' exists and is not a folder");
  settings s;
  std::optional<settings> recorded;
  const bool resuming = a.resume && fs::exists(out / "last.safetensors");
  const std::string where = "the run in " + out.string();
  if (resuming) {
    if (!fs::exists(out / settings_file))
      fail(out.string() + " holds last.safetensors but no " + settings_file + "; use --no-resume or another --out");
    try {
      recorded = read_settings(out / settings_file);
    } catch (const mammocl::error& e) {
      fail("cannot resume: " + e.message());
    }
    s = *recorded;
  }
  apply_data_flags(s, a, resuming, where);
  if (!resuming && s.data != "phantom" && !a.images) s.images = 0;  // a dataset folder: every image by default
  auto same = [&](const char* flag, const auto& given, auto& field, const std::string& shown_given,
                  const std::string& shown_have) {
    if (!given) return;
    if (resuming && !(*given == field))
      fail(std::string(flag) + " " + shown_given + " contradicts " + where + " (" + (flag + 2) + " " + shown_have +
           "); use --no-resume or another --out");
    field = *given;
  };
  same("--strategy", a.strategy, s.strategy, a.strategy.value_or(""), s.strategy);
  if (!resuming) strategy_defaults(s);
  same("--variant", a.variant, s.variant, a.variant.value_or(""), s.variant);
  same("--init", a.init, s.init, a.init.value_or(""), s.init);
  same("--batch", a.batch, s.batch, std::to_string(a.batch.value_or(0)), std::to_string(s.batch));
  same("--lr", a.lr, s.lr, fmt("%g", a.lr.value_or(0)), fmt("%g", s.lr));
  same("--lr2", a.lr2, s.lr2, fmt("%g", a.lr2.value_or(0)), fmt("%g", s.lr2));
  if (a.epochs) s.epochs = *a.epochs;  // may grow on resume (prepare_resume checks)
  if (a.epochs2) s.epochs2 = *a.epochs2;
  if (!s.two_stage() && a.epochs2) fail("--epochs2 applies to supcon_linear and supcon_finetune only, not " + s.strategy);
  if (!s.two_stage() && a.lr2) fail("--lr2 applies to supcon_linear and supcon_finetune only, not " + s.strategy);
  if (s.data == "phantom" && s.images < 2) fail("--images must be at least 2 for the phantom");
  if (s.init != "random" && !resuming && !fs::exists(s.init)) fail("--init: '" + s.init + "' does not exist");
  if (s.init != "random" && !resuming) s.init = fs::absolute(s.init).lexically_normal().string();
  check_patch_fits(s);
  const opened od = open_data(s, resuming);
  return with_model(s.model, [&]<class C>() { return train_run<C>(ctx, a, s, recorded, od); });
}

// ---------------------------------------------------------------------------------------------------
// evaluate

struct eval_outcome {
  json metrics;
  std::vector<double> prob;  // test rows, in the test set's order
};

/// Gathered rows of a resample (or of one domain) and the OvO macro AUC over the classes present.
std::optional<double> auc_of(const std::vector<double>& prob, const std::vector<int>& labels,
                             const std::vector<int>& domains, std::span<const std::size_t> idx, int dom) {
  std::vector<double> p;
  std::vector<int> y;
  p.reserve(idx.size() * classes);
  y.reserve(idx.size());
  for (std::size_t i : idx) {
    if (dom >= 0 && domains[i] != dom) continue;
    p.insert(p.end(), prob.begin() + static_cast<std::ptrdiff_t>(i * classes),
             prob.begin() + static_cast<std::ptrdiff_t>((i + 1) * classes));
    y.push_back(labels[i]);
  }
  std::set<int> present(y.begin(), y.end());
  if (present.size() < 2) return std::nullopt;
  return eval::ovo_auc_present(p, y, classes);
}

json estimate_json(const eval::bootstrap_result& r) {
  return {{"value", r.estimate}, {"se", r.standard_error}, {"ci95", {r.ci_low, r.ci_high}}, {"replicates", r.used},
          {"skipped", r.skipped}};
}

template <class Config>
eval_outcome evaluate_run(B::context& ctx, const args& a, const settings& s, const opened& od) {
  using model_t = models::densenet<B, Config>;
  const auto t0 = std::chrono::steady_clock::now();
  const fs::path checkpoint = *a.checkpoint, out = *a.out;
  model_t model({.in_channels = s.in_channels, .num_classes = classes});
  load_checkpoint(model, checkpoint);
  examples::create_output_folder(prog, out);

  const data::paired_patches p = make_patches(s, od, a.quiet);
  const data::domain_plan plan = make_plan(s, p);
  check_plan(plan, checkpoint.parent_path());
  MAMMOCL_CHECK(!plan.test.empty(), config_error, "the test split is empty (", p.images.size(),
                " images); use more images");
  const input_source test_src(p, plan.test, 64, false, 0, s);
  const predictions pr = predict_source(ctx, model, test_src);

  const std::size_t n = plan.test.size();
  std::vector<int> labels(n), domains(n), pred(n);
  std::vector<std::int64_t> cluster(n);
  std::map<std::string, std::int64_t> patient_ids;
  for (std::size_t i = 0; i < n; ++i) {
    labels[i] = plan.test[i].label;
    domains[i] = static_cast<int>(plan.test[i].dom);
    const std::string pid = p.patient_of(plan.test[i].item);
    cluster[i] = patient_ids.emplace(pid, static_cast<std::int64_t>(patient_ids.size())).first->second;
    const double* row = pr.prob.data() + i * classes;
    pred[i] = static_cast<int>(std::max_element(row, row + classes) - row);
  }
  std::vector<int> present;
  for (int c = 0; c < classes; ++c)
    if (std::count(labels.begin(), labels.end(), c)) present.push_back(c);

  json m;
  m["format"] = "mammocl.patch_classifier.metrics";
  m["version"] = 1;
  m["checkpoint"] = fs::absolute(checkpoint).lexically_normal().string();
  m["settings"] = to_json(s);
  m["test"] = {{"patients", patient_ids.size()}, {"patches", n / 2}, {"rows", n}};
  json present_j = json::array();
  for (int c : present) present_j.push_back(std::string(data::class_name(static_cast<data::patch_class>(c))));
  m["classes_present"] = present_j;

  // AUC ± bootstrap s.e., resampling patients (both domain versions and every patch of a patient move together).
  std::optional<eval::bootstrap_result> auc, auc_a, auc_b, gap;
  if (present.size() >= 2) {
    const eval::resampling_plan rp =
        eval::make_clustered_plan(labels, cluster, {.replicates = a.replicates, .seed = s.seed});
    auto stat = [&](int dom) {
      return [&, dom](std::span<const std::size_t> idx) { return auc_of(pr.prob, labels, domains, idx, dom); };
    };
    auc = eval::bootstrap(rp, stat(-1));
    auc_a = eval::bootstrap(rp, stat(0));
    auc_b = eval::bootstrap(rp, stat(1));
    gap = eval::bootstrap(rp, [&](std::span<const std::size_t> idx) -> std::optional<double> {
      const auto x = auc_of(pr.prob, labels, domains, idx, 0), y = auc_of(pr.prob, labels, domains, idx, 1);
      if (!x || !y) return std::nullopt;
      return *x - *y;
    });
    m["auc"] = estimate_json(*auc);
    m["auc_a"] = estimate_json(*auc_a);
    m["auc_b"] = estimate_json(*auc_b);
    m["gap_a_minus_b"] = estimate_json(*gap);
  } else {
    m["auc"] = m["auc_a"] = m["auc_b"] = m["gap_a_minus_b"] = nullptr;
  }
  auto accuracy = [&](int dom) {
    std::size_t hit = 0, cnt = 0;
    for (std::size_t i = 0; i < n; ++i)
      if (dom < 0 || domains[i] == dom) {
        ++cnt;
        hit += pred[i] == labels[i];
      }
    return cnt ? static_cast<double>(hit) / static_cast<double>(cnt) : 0.0;
  };
  m["accuracy"] = accuracy(-1);
  m["accuracy_a"] = accuracy(0);
  m["accuracy_b"] = accuracy(1);
  std::vector<std::vector<long long>> confusion(classes, std::vector<long long>(classes, 0));
  for (std::size_t i = 0; i < n; ++i) ++confusion[static_cast<std::size_t>(labels[i])][static_cast<std::size_t>(pred[i])];
  m["confusion"] = confusion;
  const eval::class_counts_table counts = counts_table(plan);
  json counts_j = json::object();
  for (const auto& r : counts.rows) counts_j[r.label] = r.counts;
  m["counts"] = counts_j;
  m["replicates"] = a.replicates;
  m["bootstrap"] = "clustered on patient, stratified by the set of classes of a patient; seed = the run's seed";

  // Tables.
  std::vector<std::string> class_names;
  for (int c = 0; c < classes; ++c) class_names.emplace_back(data::class_name(static_cast<data::patch_class>(c)));
  eval::text_table summary;
  summary.caption = "Test set: one-vs-one macro AUC ± bootstrap s.e. [95 % percentile interval]";
  summary.header = {"measure", "value"};
  auto est = [&](const std::optional<eval::bootstrap_result>& r) {
    return r ? eval::format_estimate({r->estimate, r->standard_error, std::pair{r->ci_low, r->ci_high}, std::nullopt}, 4, true, "summary")
             : std::string(eval::missing_cell);
  };
  summary.rows = {{"AUC (A and B)", est(auc)},       {"AUC on A (no LUT)", est(auc_a)},
                  {"AUC on B (sigmoid LUT)", est(auc_b)}, {"gap A − B", est(gap)},
                  {"accuracy (A and B)", fmt("%.4f", accuracy(-1))}, {"accuracy on A", fmt("%.4f", accuracy(0))},
                  {"accuracy on B", fmt("%.4f", accuracy(1))}};
  std::string classes_note = std::to_string(present.size()) + " of 5 classes in the test set";
  if (present.size() < classes) {
    classes_note += " (AUC over these: ";
    for (std::size_t i = 0; i < present.size(); ++i)
      classes_note += (i ? ", " : "") + class_names[static_cast<std::size_t>(present[i])];
    classes_note += ")";
  }
  summary.note = classes_note + "; " + std::to_string(patient_ids.size()) + " patients, " + std::to_string(n / 2) +
                 " patches, each in domain A and B; bootstrap: " + std::to_string(a.replicates) +
                 " replicates clustered on patient";
  eval::text_table conf;
  conf.caption = "Confusion matrix (rows: true class, columns: predicted), A and B pooled";
  conf.header = {"true / predicted"};
  conf.header.insert(conf.header.end(), class_names.begin(), class_names.end());
  for (int c = 0; c < classes; ++c) {
    std::vector<std::string> row{class_names[static_cast<std::size_t>(c)]};
    for (int d = 0; d < classes; ++d) row.push_back(std::to_string(confusion[static_cast<std::size_t>(c)][static_cast<std::size_t>(d)]));
    conf.rows.push_back(row);
  }
  const std::string md = eval::to_markdown(summary) + "\n" + eval::to_markdown(conf) + "\n" + eval::to_markdown(counts);
  std::printf("%s", md.c_str());

  // ROC curves, one-vs-rest per class, pooled and per domain.
  eval::html_page page("MammoCL patch classifier: evaluation");
  page.paragraph("Checkpoint " + m["checkpoint"].get<std::string>() + "; model " + s.model + ", strategy " + s.strategy +
                 ", data " + s.data + " (" + s.kind + "), patch " + std::to_string(s.patch) + " px from " +
                 std::to_string(s.window) + " px windows, seed " + std::to_string(s.seed) + ".");
  page.table(summary).table(conf).table(counts);
  for (int dom = -1; dom <= 1; ++dom) {
    std::vector<double> pp;
    std::vector<int> yy;
    for (std::size_t i = 0; i < n; ++i)
      if (dom < 0 || domains[i] == dom) {
        pp.insert(pp.end(), pr.prob.begin() + static_cast<std::ptrdiff_t>(i * classes),
                  pr.prob.begin() + static_cast<std::ptrdiff_t>((i + 1) * classes));
        yy.push_back(labels[i]);
      }
    eval::roc_plot plot;
    plot.title = dom < 0 ? "ROC, one class vs the rest (A and B)" : dom == 0 ? "ROC on A (no LUT)" : "ROC on B (sigmoid LUT)";
    if (present.size() < 2) break;
    for (int c : present) {
      const eval::roc_points r = eval::roc_curve_one_vs_rest(pp, yy, classes, c);
      std::vector<int> bin(yy.size());
      std::vector<double> col(yy.size());
      for (std::size_t i = 0; i < yy.size(); ++i) {
        bin[i] = yy[i] == c;
        col[i] = pp[i * classes + static_cast<std::size_t>(c)];
      }
      plot.curves.push_back({class_names[static_cast<std::size_t>(c)], r.fpr, r.tpr, eval::binary_auc(col, bin)});
    }
    page.plot(plot);
  }
  const double secs = seconds_since(t0);
  m["seconds"] = secs;
  page.paragraph("Evaluated in " + fmt("%.1f", secs) + " s with " + std::to_string(a.threads) + " threads.");
  eval::write_file_atomic(out / "metrics.json", m.dump(2) + "\n");
  page.write(out / "report.html");
  std::printf("\nwrote %s and %s (%.1f s)\n", (out / "metrics.json").c_str(), (out / "report.html").c_str(), secs);
  return {m, pr.prob};
}

/// Settings of a checkpoint's run with the given data and model flags checked against them, and the data opened.
std::pair<settings, opened> checkpoint_settings(const args& a) {
  settings s = settings_beside(*a.checkpoint);
  apply_data_flags(s, a, true, "the checkpoint's run (" + (a.checkpoint->parent_path() / settings_file).string() + ")");
  check_patch_fits(s);
  opened od;
  const bool images_only = a.command == "predict" && !a.inputs.empty();
  if (!images_only) od = open_data(s, true);
  return {s, od};
}

eval_outcome cmd_evaluate_run(B::context& ctx, const args& a) {
  const auto so = checkpoint_settings(a);  // no structured binding: clang 14 cannot capture one in a lambda
  return with_model(so.first.model, [&]<class C>() { return evaluate_run<C>(ctx, a, so.first, so.second); });
}

// ---------------------------------------------------------------------------------------------------
// predict

struct predict_outcome {
  std::vector<csv_row> rows;
  std::vector<double> prob;
  std::string text;
};

template <class Config>
predict_outcome predict_run(B::context& ctx, const args& a, const settings& s, const opened& od) {
  using model_t = models::densenet<B, Config>;
  model_t model({.in_channels = s.in_channels, .num_classes = classes});
  load_checkpoint(model, *a.checkpoint);
  const fs::path out = *a.out;
  if (out.has_parent_path() && !fs::is_directory(out.parent_path()))
    fail("--out: the folder '" + out.parent_path().string() + "' does not exist");
  predict_outcome r;
  if (!a.inputs.empty()) {
    // Each IMAGE is one patch: normalised to [0, 1] by its format's range, resized to the model's side.
    for (const auto& f : a.inputs)
      if (!fs::exists(f)) fail("'" + f + "' does not exist");
    const data::image_reader reader = examples::image_reader();
    for (const auto& f : a.inputs) {
      data::image img = reader(f).normalized();
      img = data::resize(img, s.patch, s.patch);
      data::batch b;
      b.samples = 1;
      b.channels = s.in_channels;
      b.height = b.width = s.patch;
      b.labels = {0};
      for (int c = 0; c < s.in_channels; ++c)
        for (float v : img.pixels)
          b.images.push_back(static_cast<float>((v - s.mean[static_cast<std::size_t>(c)]) / s.stdv[static_cast<std::size_t>(c)]));
      const auto l = host_bridge::on_host(model.infer(ctx, train::detail::to_tensor<B>(b)));
      double q[classes];
      examples::softmax_row(l.data(), classes, q);  // unchecked: a non-finite row gives NaN probabilities
      r.prob.insert(r.prob.end(), q, q + classes);
      r.rows.push_back({f, "0", "", ""});
    }
  } else {
    const data::paired_patches p = make_patches(s, od, a.quiet);
    const data::domain_plan plan = make_plan(s, p);
    check_plan(plan, a.checkpoint->parent_path());
    const bool all = a.split.value_or("test") == "all";
    std::vector<data::domain_item> set = all ? data::augmented(p.source_items()) : plan.test;
    const input_source src(p, set, 64, false, 0, s);
    r.prob = predict_source(ctx, model, src).prob;
    for (const auto& e : set)
      r.rows.push_back({p.images[static_cast<std::size_t>(p.image[static_cast<std::size_t>(e.item)])], std::to_string(e.item),
                        std::string(data::domain_name(e.dom)), std::to_string(e.label)});
  }
  r.text = csv_text(r.rows, r.prob);
  eval::write_file_atomic(out, r.text);
  std::printf("wrote %s: %zu rows\n", out.c_str(), r.rows.size());
  return r;
}

predict_outcome cmd_predict_run(B::context& ctx, const args& a) {
  const auto so = checkpoint_settings(a);
  return with_model(so.first.model, [&]<class C>() { return predict_run<C>(ctx, a, so.first, so.second); });
}

// ---------------------------------------------------------------------------------------------------
// probe

/// The features of the items of `keep_classes` only, with labels renumbered 0..m-1 in class order.
train::feature_set keep_only(const train::feature_set& f, const std::vector<int>& keep_classes) {
  std::vector<int> remap(classes, -1);
  for (std::size_t i = 0; i < keep_classes.size(); ++i) remap[static_cast<std::size_t>(keep_classes[i])] = static_cast<int>(i);
  train::feature_set out;
  out.dim = f.dim;
  for (std::size_t i = 0; i < f.size(); ++i) {
    const int to = remap[static_cast<std::size_t>(f.labels[i])];
    if (to < 0) continue;
    out.features.insert(out.features.end(), f.features.begin() + static_cast<std::ptrdiff_t>(i * f.dim),
                        f.features.begin() + static_cast<std::ptrdiff_t>((i + 1) * f.dim));
    out.labels.push_back(to);
    if (!f.domains.empty()) out.domains.push_back(f.domains[i]);
    if (!f.ids.empty()) out.ids.push_back(f.ids[i]);
  }
  return out;
}

template <class Config>
json probe_run(B::context& ctx, const args& a, const settings& s, const opened& od) {
  using model_t = models::densenet<B, Config>;
  const auto t0 = std::chrono::steady_clock::now();
  model_t model({.in_channels = s.in_channels, .num_classes = classes});
  load_checkpoint(model, *a.checkpoint);
  train::linear_probe_options opt;
  opt.stage = train::linear_probe_defaults(a.epochs.value_or(100));
  if (a.lr) opt.stage.lr = *a.lr;
  opt.batch_size = a.batch.value_or(256);
  opt.seed = s.seed;
  opt.bootstrap_replicates = a.replicates;
  opt.threads = a.threads;
  const fs::path out = *a.out;
  examples::create_output_folder(prog, out);

  const data::paired_patches p = make_patches(s, od, a.quiet);
  // METHOD.md §5.5: 80 % of the patients train the probe, 20 % test it; no validation (no model selection).
  settings split = s;
  split.split = {.train = 0.8, .validation = 0.0, .test = 0.2};
  split.variant = "augmented";
  const data::domain_plan plan = make_plan(split, p);
  input_source train_src(p, plan.train, 64, false, 0, s), test_src(p, plan.test, 64, false, 0, s);
  const train::feature_set ftr = train::extract_features(ctx, model, train_src, "training");
  const train::feature_set fte = train::extract_features(ctx, model, test_src, "test");
  // The probe learns the classes that both splits hold (a small real set may lack a rare class).
  std::vector<int> keep;
  std::vector<std::string> keep_names;
  for (int c = 0; c < classes; ++c)
    if (std::count(ftr.labels.begin(), ftr.labels.end(), c) && std::count(fte.labels.begin(), fte.labels.end(), c)) {
      keep.push_back(c);
      keep_names.emplace_back(data::class_name(static_cast<data::patch_class>(c)));
    }
  MAMMOCL_CHECK(keep.size() >= 2, config_error, "probe: the training and test splits of ", s.data, " share ",
                keep.size(), " class(es); the probe needs two (use more --images)");
  const train::feature_set tr = keep_only(ftr, keep), te = keep_only(fte, keep);
  opt.classes = static_cast<int>(keep.size());
  const train::linear_probe_result r = train::fit_linear_probe(tr, te, opt);

  json j;
  j["format"] = "mammocl.patch_classifier.probe";
  j["version"] = 1;
  j["checkpoint"] = fs::absolute(*a.checkpoint).lexically_normal().string();
  j["data"] = {{"source", s.data}, {"kind", s.kind}, {"images", p.images.size()}, {"patches", p.size()},
               {"per_roi", s.per_roi}, {"per_image", s.per_image}, {"target_height", s.target_height}, {"seed", s.seed}};
  j["classes"] = keep_names;
  j["train_samples"] = r.train_samples;
  j["test_samples"] = r.test_samples;
  j["left_out"] = {{"train", ftr.size() - tr.size()}, {"test", fte.size() - te.size()}};
  j["epochs"] = opt.stage.epochs;
  j["lr"] = opt.stage.lr;
  j["train_auc"] = r.train_auc;
  j["test_auc"] = r.test_auc;
  if (r.test_auc_bootstrap.requested > 0)
    j["test_auc_bootstrap"] = {{"se", r.test_auc_bootstrap.standard_error},
                               {"ci95", {r.test_auc_bootstrap.ci_low, r.test_auc_bootstrap.ci_high}},
                               {"replicates", r.test_auc_bootstrap.used}};
  j["test_auc_a"] = r.test_auc_domain[0] ? json(*r.test_auc_domain[0]) : json(nullptr);
  j["test_auc_b"] = r.test_auc_domain[1] ? json(*r.test_auc_domain[1]) : json(nullptr);
  j["train_accuracy"] = r.train_accuracy;
  j["test_accuracy"] = r.test_accuracy;
  j["bootstrap"] = "stratified by class, clustered on the A/B pair of a patch";
  j["seconds"] = seconds_since(t0);
  eval::write_file_atomic(out / "probe.json", j.dump(2) + "\n");
  std::string cls;
  for (std::size_t i = 0; i < keep_names.size(); ++i) cls += (i ? ", " : "") + keep_names[i];
  std::printf("linear probe of %s on %s (%s): %zu training and %zu test samples (A and B), classes %s\n"
              "test AUC %.4f",
              a.checkpoint->c_str(), s.data.c_str(), s.kind.c_str(), r.train_samples, r.test_samples, cls.c_str(),
              r.test_auc);
  if (r.test_auc_bootstrap.requested > 0) std::printf(" ± %.4f", r.test_auc_bootstrap.standard_error);
  if (r.test_auc_domain[0] && r.test_auc_domain[1])
    std::printf(" (A %.4f, B %.4f)", *r.test_auc_domain[0], *r.test_auc_domain[1]);
  std::printf(", accuracy %.4f; training AUC %.4f; wrote %s (%.1f s)\n", r.test_accuracy, r.train_auc,
              (out / "probe.json").c_str(), j["seconds"].get<double>());
  return j;
}

json cmd_probe_run(B::context& ctx, const args& a) {
  settings s = settings_beside(*a.checkpoint);
  // Model and input are the checkpoint's; the data are another dataset, described by the flags alone.
  args model_flags;
  model_flags.model = a.model;
  model_flags.patch = a.patch;
  model_flags.window = a.window;
  apply_data_flags(s, model_flags, true, "the checkpoint's run (" + (a.checkpoint->parent_path() / settings_file).string() + ")");
  const settings defaults;
  s.data = *a.data == "phantom" ? std::string("phantom") : fs::absolute(*a.data).lexically_normal().string();
  s.kind = "";
  s.images = a.images.value_or(s.data == "phantom" ? defaults.images : 0);
  s.per_roi = a.per_roi.value_or(defaults.per_roi);
  s.per_image = a.per_image.value_or(defaults.per_image);
  s.target_height = a.target_height.value_or(defaults.target_height);
  s.seed = a.seed.value_or(defaults.seed);
  if (s.data == "phantom" && s.images < 2) fail("--images must be at least 2 for the phantom");
  check_patch_fits(s);
  const opened od = open_data(s, false);
  return with_model(s.model, [&]<class C>() { return probe_run<C>(ctx, a, s, od); });
}

// ---------------------------------------------------------------------------------------------------
// --smoke

/// Parses the CSV written by predict (as this program writes it: no quoted field holds a line break).
std::vector<double> read_csv_probabilities(const fs::path& file) {
  std::ifstream in(file, std::ios::binary);
  MAMMOCL_CHECK(in.good(), io_error, "cannot open '", file.string(), "'");
  std::string line;
  std::getline(in, line);
  MAMMOCL_CHECK(line + "\n" == csv_header(), io_error, "'", file.string(), "': unexpected header '", line, "'");
  std::vector<double> prob;
  for (std::size_t ln = 2; std::getline(in, line); ++ln) {
    std::vector<std::string> f;
    std::string cur;
    bool q = false;
    for (std::size_t i = 0; i < line.size(); ++i) {
      const char c = line[i];
      if (q) {
        if (c == '"' && i + 1 < line.size() && line[i + 1] == '"') cur += '"', ++i;
        else if (c == '"') q = false;
        else cur += c;
      } else if (c == '"') q = true;
      else if (c == ',') f.push_back(cur), cur.clear();
      else cur += c;
    }
    f.push_back(cur);
    MAMMOCL_CHECK(f.size() == 4 + classes, io_error, "'", file.string(), "' line ", ln, ": ", f.size(),
                  " fields, expected ", 4 + classes);
    for (int c = 0; c < classes; ++c) prob.push_back(std::strtod(f[4 + static_cast<std::size_t>(c)].c_str(), nullptr));
  }
  return prob;
}

int smoke(B::context& ctx, const args& a0) {
  const auto t0 = std::chrono::steady_clock::now();
  const fs::path dir = *a0.out;
  args t = a0;
  t.command = "train";
  t.data = "phantom";
  t.out = dir / "train";
  t.images = 12;
  t.window = 64;
  t.patch = 32;
  t.per_roi = 3;
  t.per_image = 3;
  t.epochs = 1;
  t.batch = 16;
  t.resume = false;
  t.quiet = true;
  std::printf("--smoke: train (ce, 1 epoch, 12 phantom images), evaluate, predict, probe (another phantom), reload; "
              "the numbers mean nothing\n");
  const train_outcome tr = cmd_train_run(ctx, t);

  args e = a0;
  e.command = "evaluate";
  e.checkpoint = tr.best;
  e.out = dir / "evaluate";
  e.replicates = 50;
  e.quiet = true;
  const eval_outcome ev = cmd_evaluate_run(ctx, e);

  args p = a0;
  p.command = "predict";
  p.checkpoint = tr.best;
  p.out = dir / "predictions.csv";
  p.quiet = true;
  const predict_outcome pr = cmd_predict_run(ctx, p);

  args q = a0;
  q.command = "probe";
  q.checkpoint = tr.best;
  q.data = "phantom";
  q.images = 10;
  q.per_roi = 3;
  q.per_image = 3;
  q.seed = 2;  // other phantom mammograms than the training run's
  q.epochs = 20;
  q.replicates = 50;
  q.out = dir / "probe";
  q.quiet = true;
  const json probe = cmd_probe_run(ctx, q);

  bool ok = true;
  auto expect = [&](bool cond, const std::string& what) {
    std::printf("  %s: %s\n", what.c_str(), cond ? "ok" : "MISMATCH");
    ok = ok && cond;
  };
  std::printf("checks:\n");
  expect(tr.test_prob.size() == ev.prob.size() &&
             std::memcmp(tr.test_prob.data(), ev.prob.data(), ev.prob.size() * sizeof(double)) == 0,
         "the trained model and best.safetensors reloaded by evaluate give identical test probabilities");
  // A second, fresh model built from the checkpoint folder alone gives the same probabilities, bit for bit.
  expect(ev.prob.size() == pr.prob.size() && std::memcmp(ev.prob.data(), pr.prob.data(), ev.prob.size() * sizeof(double)) == 0,
         "evaluate and predict (two fresh reloads of best.safetensors) give identical probabilities");
  expect(read_csv_probabilities(*p.out) == pr.prob, "predictions.csv reads back to the same doubles");
  std::ifstream mj(*e.out / "metrics.json");
  expect(json::parse(mj) == ev.metrics, "metrics.json reads back to what was written");
  expect(fs::file_size(*e.out / "report.html") > 1000, "report.html written");
  expect(json::parse(std::ifstream(*q.out / "probe.json")) == probe, "probe.json reads back to what was written");
  // The run folder is self-describing: the settings read back, the manifest gives the same split.
  const settings back = read_settings(dir / "train" / settings_file);
  expect(to_json(back) == json::parse(std::ifstream(dir / "train" / settings_file)), "patch_classifier.json reads back");
  std::printf("--smoke %s in %.1f s\n", ok ? "passed" : "FAILED", seconds_since(t0));
  return ok ? 0 : 1;
}

/// The command on this translation unit's backend.
int run(const args& a) {
  try {
    auto ctx = examples::make_context<B>(a.threads);
    if (a.command == "smoke") return smoke(ctx, a);
    if (a.command == "train") cmd_train_run(ctx, a);
    else if (a.command == "evaluate") cmd_evaluate_run(ctx, a);
    else if (a.command == "probe") cmd_probe_run(ctx, a);
    else cmd_predict_run(ctx, a);
    return 0;
  } catch (const mammocl::error& e) {
    std::fprintf(stderr, "%s: %s\n", prog, e.message().c_str());
    return 1;
  }
}

}  // namespace

#ifdef MAMMOCL_EXAMPLE_ENTRY
/// The program on another backend, called by the CPU build's main() for --device cuda.
int MAMMOCL_EXAMPLE_ENTRY(int argc, char** argv) { return run(parse(argc, argv)); }
#else
#if MAMMOCL_EXAMPLES_WITH_CUDA
int patch_classifier_cuda_main(int argc, char** argv);  // patch_classifier_cuda.cpp
#endif

int main(int argc, char** argv) {
  const args a = parse(argc, argv);
  if (a.device == examples::device_kind::cuda) {
#if MAMMOCL_EXAMPLES_WITH_CUDA
    return patch_classifier_cuda_main(argc, argv);
#else
    examples::no_cuda_build(prog);
#endif
  }
  return run(a);
}
#endif
