// cli_common.hpp: what the issue-6 command-line programs (lut_invariance_study, patch_classifier,
// whole_image_classifier) share: the usage-error exit, argument reading, number formatting, timing,
// reading a file, the softmax of a row of logits, the dataset folder and image reader of the build (DICOM
// with DCMTK), the smallest input side of a DenseNet configuration, and `--device cpu|cuda` (the value, the
// error of a build without CUDA, the backend's context). Each program keeps its own messages;
// what is here takes the program's name where it prints.
#pragma once

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "mammocl/core/error.hpp"
#include "mammocl/data/open_dataset.hpp"
#include "mammocl/data/paired_patches.hpp"
#if MAMMOCL_EXAMPLES_WITH_DICOM
#include "mammocl/data/open_dataset_dicom.hpp"
#endif

namespace mammocl::examples {

/// Bad input found before any long work: `prog: msg` on stderr, exit status 2.
[[noreturn]] inline void usage_error(const char* prog, const std::string& msg) {
  std::fprintf(stderr, "%s: %s\n", prog, msg.c_str());
  std::exit(2);
}

/// One number through a printf format (`fmt("%.4f", x)`), for messages and reports.
inline std::string fmt(const char* f, double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, f, v);
  return buf;
}

/// The shortest text that reads back to the same double (%.17g), for CSV files compared bit for bit.
inline std::string exact(double v) { return fmt("%.17g", v); }

/// One CSV field, quoted (RFC 4180) when it holds a comma, a quote or a line break.
inline std::string csv_field(const std::string& s) {
  if (s.find_first_of(",\"\r\n") == std::string::npos) return s;
  std::string q = "\"";
  for (char c : s) q += c == '"' ? std::string("\"\"") : std::string(1, c);
  return q + "\"";
}

/// Seconds from t0 to now on the steady clock.
inline double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

/// A library message without the C++ API hint that load_state appends for programmers.
inline std::string cli_message(const mammocl::error& e) {
  std::string m = e.message();
  if (const auto p = m.find(". Use load_options"); p != std::string::npos) m.erase(p);
  return m;
}

/// The whole content of a file, or nothing when it cannot be opened (the caller words the error).
inline std::optional<std::string> file_text(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  if (!in.good()) return std::nullopt;
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

/// Creates an output folder with its parents, or exits 2 (usage_error) when it cannot.
inline void create_output_folder(const char* prog, const std::filesystem::path& out) {
  std::error_code ec;
  std::filesystem::create_directories(out, ec);
  if (ec || !std::filesystem::is_directory(out))
    usage_error(prog, "cannot create the output folder '" + out.string() + "'" +
                          (ec ? ": " + ec.message() : ": not a directory"));
}

/// Reads flag values from argv; every bad value is a usage error of `prog` naming the flag.
class arg_reader {
 public:
  /// `overflow_is_not_an_integer`: an integer beyond long long reads as "expects an integer" (true) or is
  /// reported by the bound it passes (false; lut_invariance_study's wording).
  arg_reader(const char* prog, int argc, char** argv, bool overflow_is_not_an_integer = true)
      : prog_(prog), argc_(argc), argv_(argv), overflow_(overflow_is_not_an_integer) {}

  /// The usage error of this program.
  [[noreturn]] void fail(const std::string& msg) const { usage_error(prog_, msg); }

  /// The argument after argv[i] (i moves on to it); `name` is the flag, for the message.
  std::string value(int& i, const std::string& name) const {
    if (i + 1 >= argc_) fail(name + " needs a value");
    return argv_[++i];
  }

  /// A decimal integer in [lo, hi] after argv[i].
  long long integer(int& i, const std::string& name, long long lo, long long hi = 1'000'000'000) const {
    const std::string v = value(i, name);
    char* end = nullptr;
    errno = 0;
    const long long x = std::strtoll(v.c_str(), &end, 10);
    if (v.empty() || *end || (overflow_ && errno == ERANGE)) fail(name + " expects an integer, got '" + v + "'");
    if (x < lo) fail(name + " must be at least " + std::to_string(lo) + ", got " + v);
    if (x > hi) fail(name + " must be at most " + std::to_string(hi) + ", got " + v);
    return x;
  }

  /// A finite number > 0 after argv[i].
  double positive(int& i, const std::string& name) const {
    const std::string v = value(i, name);
    char* end = nullptr;
    const double x = std::strtod(v.c_str(), &end);
    if (v.empty() || *end || !std::isfinite(x)) fail(name + " expects a number, got '" + v + "'");
    if (!(x > 0)) fail(name + " must be positive, got " + v);
    return x;
  }

  /// A comma-separated list of distinct, non-empty names after argv[i].
  std::vector<std::string> list(int& i, const std::string& name) const {
    std::vector<std::string> out;
    std::stringstream ss(value(i, name));
    for (std::string s; std::getline(ss, s, ',');) {
      if (s.empty()) fail(name + ": empty name in the list");
      if (std::find(out.begin(), out.end(), s) != out.end()) fail(name + ": '" + s + "' is listed twice");
      out.push_back(s);
    }
    if (out.empty()) fail(name + " needs at least one name");
    return out;
  }

 private:
  const char* prog_;
  int argc_;
  char** argv_;
  bool overflow_;
};

/// Softmax of one row of `n` logits into out[0..n), in double, shifted by the row's largest logit.
/// Returns whether the sum of exponentials is finite (false: the row held an infinite or NaN logit).
inline bool softmax_row(const float* z, int n, double* out) {
  const double mx = *std::max_element(z, z + n);
  double sum = 0;
  for (int c = 0; c < n; ++c) sum += out[c] = std::exp(static_cast<double>(z[c]) - mx);
  for (int c = 0; c < n; ++c) out[c] /= sum;
  return std::isfinite(sum);
}

/// Whether this build reads DICOM images (the programs link DCMTK and define MAMMOCL_EXAMPLES_WITH_DICOM).
#if MAMMOCL_EXAMPLES_WITH_DICOM
inline constexpr bool with_dicom = true;
#else
inline constexpr bool with_dicom = false;
#endif

/// A dataset folder's annotations (data/open_dataset.hpp): with DICOM, open_dataset_dicom (CBIS-DDSM's
/// records joined with its DICOM tree); without, open_dataset, whose needs_dicom the caller must refuse.
inline data::opened_dataset open_dataset_folder(const std::filesystem::path& folder) {
#if MAMMOCL_EXAMPLES_WITH_DICOM
  return data::open_dataset_dicom(folder);
#else
  return data::open_dataset(folder);
#endif
}

/// The image reader of this build: PGM/PNG, and DICOM with DCMTK.
inline data::image_reader image_reader() {
#if MAMMOCL_EXAMPLES_WITH_DICOM
  return data::dicom_image_reader();
#else
  return data::default_image_reader();
#endif
}

/// The smallest square input side a DenseNet configuration accepts: conv0 (7x7, stride 2, pad 3) and pool0
/// (3x3, stride 2, pad 1) give ⌊(n−1)/2⌋+1 each, then each transition halves the side (floor); the final
/// map must keep at least one pixel (models/densenet.hpp's size arithmetic).
template <class Config>
int min_input_side() {
  for (int n = 1;; ++n) {
    int e = (n + 6 - 7) / 2 + 1;
    e = (e + 2 - 3) / 2 + 1;
    for (std::size_t t = 0; t + 1 < Config::blocks.size(); ++t) e /= 2;
    if (e >= 1) return n;
  }
}

/// `--device cpu|cuda`: which backend a program runs on. Each program is compiled once per backend (the
/// CUDA one in <prog>_cuda.cpp, only with MAMMOCL_WITH_CUDA) and its main() hands `--device cuda` to the
/// CUDA build of itself (docs/device_generic.md).
enum class device_kind { cpu, cuda };

/// The value of `--device`; anything but cpu or cuda is a usage error of `prog`.
inline device_kind parse_device(const char* prog, const std::string& v) {
  if (v == "cpu") return device_kind::cpu;
  if (v == "cuda") return device_kind::cuda;
  usage_error(prog, "--device must be cpu or cuda, got '" + v + "'");
}

/// `--device cuda` in a build without the CUDA backend: a usage error (exit 2) before any work.
[[noreturn]] inline void no_cuda_build(const char* prog) {
  usage_error(prog, "--device cuda: this build has no CUDA backend; configure with -DMAMMOCL_WITH_CUDA=ON "
                    "(docs/gpu_backend.md)");
}

/// A context of backend B: `threads` CPU threads on a host backend; device 0 otherwise (its constructor
/// throws mammocl::device_error when there is no usable device).
template <class B>
typename B::context make_context(int threads) {
  if constexpr (B::is_host) {
    return typename B::context(threads);
  } else {
    (void)threads;
    return typename B::context(0);
  }
}

}  // namespace mammocl::examples
