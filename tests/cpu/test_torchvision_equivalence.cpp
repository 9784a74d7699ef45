// MammoCL's DenseNet-121 against torchvision's, through a safetensors file laid out exactly as torch wrote it.
//
// tests/tools/make_torchvision_golden.py filled every state-dict entry of torchvision's densenet121 from a
// counter-based hash, exported it with safetensors, and recorded the file's JSON header, size and
// checksum and PyTorch's logits (tests/cpu/golden/torchvision_densenet121.hpp). Here the same hash
// regenerates the weights, the file is assembled byte for byte from the recorded header (and checked
// against torch's checksum), loaded with io::load_state, and the eval-mode and train-mode outputs are
// compared with PyTorch's: float32 against float32 within 1e-4 relative, float64 against float64 far
// tighter (1e-12). The 1-channel variant (conv0 with one input channel) is checked the same way.
#include <boost/test/unit_test.hpp>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <span>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>
#include <unistd.h>

#include "golden/torchvision_densenet121.hpp"
#include "mammocl/backend/cpu/cpu_backend.hpp"
#include "mammocl/io/checkpoint.hpp"
#include "mammocl/io/safetensors.hpp"
#include "mammocl/models/densenet.hpp"

#include "temp_dir.hpp"

namespace {

namespace fs = std::filesystem;
namespace golden = mammocl::golden::torchvision_densenet121;
namespace io = mammocl::io;
using mammocl::index_t;

struct temp_dir : mammocl::test::temp_dir {
  temp_dir() : mammocl::test::temp_dir("torchvision") {}
};

// ---------------------------------------------------------------- the script's hash, in C++

std::uint64_t splitmix64(std::uint64_t x) {
  std::uint64_t z = x + 0x9E3779B97F4A7C15ULL;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  return z ^ (z >> 31);
}
/// u in [-1, 1), exact: (splitmix64((stream << 32) ^ i) >> 11) * 2^-52 - 1.
double uniform(std::uint64_t stream, std::uint64_t i) {
  return static_cast<double>(splitmix64((stream << 32) ^ i) >> 11) * 0x1p-52 - 1.0;
}

/// values_for() of the script: element i of state-dict entry `name` (float entries only).
float weight_value(const std::string& name, const std::vector<std::int64_t>& shape, std::uint64_t stream, std::uint64_t i) {
  const double u = uniform(stream, i);
  double v;
  if (name.ends_with("running_mean")) v = u * 0.1;
  else if (name.ends_with("running_var")) v = (std::abs(u) + 2.0) * 0.5;
  else if (shape.size() == 4) v = u * std::sqrt(6.0 / static_cast<double>(shape[1] * shape[2] * shape[3]));
  else if (shape.size() == 2) v = u * (1.0 / std::sqrt(static_cast<double>(shape[1])));
  else if (name.ends_with(".bias")) v = u * 0.1;
  else if (name.ends_with(".weight") && shape.size() == 1) v = (u + 5.0) * 0.2;
  else throw std::runtime_error("no fill rule for " + name);
  return static_cast<float>(v);
}

/// The script's checksum(): sum of little-endian u64 words times (2i+1), modulo 2^64, zero-padded.
std::uint64_t checksum(const std::byte* p, std::size_t n) {
  std::uint64_t s = 0;
  for (std::size_t w = 0; w * 8 < n; ++w) {
    std::uint64_t word = 0;
    std::memcpy(&word, p + w * 8, std::min<std::size_t>(8, n - w * 8));
    s += word * (2 * w + 1);
  }
  return s;
}

/// The safetensors file torch wrote for `v`, rebuilt from its recorded header and the hash.
std::vector<std::byte> torch_file_image(const golden::variant& v) {
  const auto header = nlohmann::json::parse(v.header);
  std::vector<std::byte> image(v.file_size);
  const std::uint64_t n = v.header.size();
  BOOST_REQUIRE(8 + n <= image.size());
  std::memcpy(image.data(), &n, 8);
  std::memcpy(image.data() + 8, v.header.data(), n);
  std::byte* data = image.data() + 8 + n;
  std::uint64_t stream = 0;  // index in sorted-key order; nlohmann's objects iterate sorted like Python's sorted()
  for (auto it = header.begin(); it != header.end(); ++it) {
    if (it.key() == "__metadata__") continue;
    const auto shape = it.value()["shape"].get<std::vector<std::int64_t>>();
    const auto begin = it.value()["data_offsets"][0].get<std::uint64_t>();
    const std::string dtype = it.value()["dtype"].get<std::string>();
    if (dtype == "I64") {
      const std::int64_t count = 1000 + static_cast<std::int64_t>(stream);
      std::memcpy(data + begin, &count, 8);
    } else {
      BOOST_REQUIRE(dtype == "F32");
      std::int64_t numel = 1;
      for (auto d : shape) numel *= d;
      for (std::int64_t i = 0; i < numel; ++i) {
        const float x = weight_value(it.key(), shape, stream, static_cast<std::uint64_t>(i));
        std::memcpy(data + begin + 4 * i, &x, 4);
      }
    }
    ++stream;
  }
  return image;
}

/// max_i |got_i - want_i| / max_i |want_i|.
template <class T>
double relative_error(const T* got, std::span<const double> want) {
  double err = 0, scale = 0;
  for (std::size_t i = 0; i < want.size(); ++i) {
    err = std::max(err, std::abs(static_cast<double>(got[i]) - want[i]));
    scale = std::max(scale, std::abs(want[i]));
  }
  return err / scale;
}

/// Assembles torch's file for `v`, checks it byte for byte, writes it under `dir`.
fs::path write_torch_file(const golden::variant& v, const fs::path& dir, const std::string& name) {
  const auto image = torch_file_image(v);
  const std::uint64_t sum = checksum(image.data(), image.size());
  BOOST_TEST(image.size() == v.file_size);
  BOOST_TEST(sum == v.file_checksum, "the regenerated file differs from the one torch wrote");
  if (sum != v.file_checksum && !v.tensor_checksums.empty()) {
    const auto header = nlohmann::json::parse(v.header);
    const std::byte* data = image.data() + 8 + v.header.size();
    for (const auto& t : v.tensor_checksums) {
      const auto off = header[std::string(t.name)]["data_offsets"];
      const auto b = off[0].get<std::uint64_t>(), e = off[1].get<std::uint64_t>();
      BOOST_TEST(checksum(data + b, e - b) == t.checksum, "bytes of tensor " << t.name);
    }
  }
  const fs::path p = dir / name;
  std::ofstream out(p, std::ios::binary);
  out.write(reinterpret_cast<const char*>(image.data()), static_cast<std::streamsize>(image.size()));
  out.close();
  BOOST_REQUIRE(out.good());
  return p;
}

/// Loads torch's file into a DenseNet-121 on backend B and compares eval and train logits (and, where
/// recorded, running statistics after the train step) with PyTorch's, in B's precision.
template <class B>
void check_against_pytorch(const golden::variant& v, const char* label, double tolerance) {
  using T = typename B::scalar_type;
  using net_t = mammocl::models::densenet<B, mammocl::models::densenet121>;
  constexpr bool f64 = std::is_same_v<T, double>;
  temp_dir dir;
  const fs::path p = write_torch_file(v, dir.path, "densenet121.safetensors");

  net_t net({.in_channels = v.in_channels, .num_classes = golden::num_classes});
  const io::load_report r = io::load_state(net, p);
  BOOST_TEST(r.loaded.size() == 727u);
  BOOST_TEST(r.missing.empty());
  BOOST_TEST(r.unexpected.empty());
  BOOST_TEST(r.metadata.at("format") == "pt");

  mammocl::tensor<B> x(mammocl::shape{golden::batch, v.in_channels, golden::height, golden::width});
  for (index_t i = 0; i < x.numel(); ++i)
    x.data()[i] = static_cast<T>(static_cast<float>(uniform(golden::input_stream, static_cast<std::uint64_t>(i))));

  typename B::context ctx;
  const auto eval = net.infer(ctx, x);
  BOOST_REQUIRE(eval.numel() == golden::batch * golden::num_classes);
  const auto eval_ref = f64 ? v.eval_logits_f64 : v.eval_logits_f32;
  const double e_eval = relative_error(eval.data(), eval_ref);
  const double e_eval_vs_f64 = relative_error(eval.data(), v.eval_logits_f64);

  typename net_t::cache c;
  const auto train = net.forward(ctx, x, c);
  const auto train_ref = f64 ? v.train_logits_f64 : v.train_logits_f32;
  const double e_train = relative_error(train.data(), train_ref);
  const double e_train_vs_f64 = relative_error(train.data(), v.train_logits_f64);

  if constexpr (f64)
    BOOST_TEST_MESSAGE(label << ": max relative error vs PyTorch float64: eval " << e_eval << ", train " << e_train);
  else
    BOOST_TEST_MESSAGE(label << ": max relative error vs PyTorch float32: eval " << e_eval << ", train " << e_train
                             << " (vs PyTorch float64: eval " << e_eval_vs_f64 << ", train " << e_train_vs_f64 << ")");
  BOOST_TEST(e_eval <= tolerance, label << " eval logits: relative error " << e_eval);
  BOOST_TEST(e_train <= tolerance, label << " train logits: relative error " << e_train);

  // After one train step: running statistics (unbiased variance, momentum 0.1) and counters.
  std::map<std::string, mammocl::tensor<B>> buffers;
  std::map<std::string, std::int64_t> counters;
  io::for_each_state(net, [&]<class V>(const std::string& name, V& b) {
    if constexpr (std::is_same_v<V, std::int64_t>) counters[name] = b;
    else buffers.emplace(name, b);
  });
  const auto header = nlohmann::json::parse(v.header);
  std::int64_t stream = 0;
  for (auto it = header.begin(); it != header.end(); ++it) {
    if (it.key() == "__metadata__") continue;
    if (it.key().ends_with("num_batches_tracked")) BOOST_TEST(counters.at(it.key()) == 1000 + stream + 1, it.key());
    ++stream;
  }
  if (!v.norm5_running_var_f64.empty()) {
    const std::pair<const char*, std::span<const double>> stats[] = {
        {"features.norm0.running_mean", v.norm0_running_mean_f64},
        {"features.norm0.running_var", v.norm0_running_var_f64},
        {"features.norm5.running_mean", v.norm5_running_mean_f64},
        {"features.norm5.running_var", v.norm5_running_var_f64}};
    for (const auto& [name, ref] : stats) {
      const auto& t = buffers.at(name);
      BOOST_REQUIRE(static_cast<std::size_t>(t.numel()) == ref.size());
      const double e = relative_error(t.data(), ref);
      BOOST_TEST_MESSAGE(label << ": " << name << " after the train step, max relative error vs PyTorch float64: " << e);
      BOOST_TEST(e <= tolerance, label << " " << name << ": relative error " << e);
    }
  }
}

}  // namespace

BOOST_AUTO_TEST_SUITE(torchvision_equivalence)

BOOST_AUTO_TEST_CASE(torch_file_layout_is_reproduced_and_parsed) {
  // The recorded header is what torch's safetensors writes: I64 counters first, then F32 by name.
  const auto h = nlohmann::json::parse(golden::rgb.header);
  BOOST_TEST(h.size() == 728u);  // 727 tensors + __metadata__
  BOOST_TEST(h["features.conv0.weight"]["dtype"] == "F32");
  BOOST_TEST((h["features.conv0.weight"]["shape"] == nlohmann::json{64, 3, 7, 7}));
  BOOST_TEST((nlohmann::json::parse(golden::gray.header)["features.conv0.weight"]["shape"] == nlohmann::json{64, 1, 7, 7}));
  BOOST_TEST((h["features.norm0.num_batches_tracked"]["shape"] == nlohmann::json::array()));
  BOOST_TEST(golden::rgb.header.size() % 8 == 0u);

  const auto image = torch_file_image(golden::rgb);
  BOOST_TEST(checksum(image.data(), image.size()) == golden::rgb.file_checksum);
  const auto f = io::safetensors::file::parse(image, "torch densenet121");
  BOOST_TEST(f.size() == 727u);
  BOOST_TEST(f.metadata().at("format") == "pt");
  // Parameter count of torchvision's densenet121(num_classes=5) (METHOD.md §3.1): 6,958,981.
  std::int64_t params = 0;
  for (const auto& [k, e] : f.tensors())
    if (!k.ends_with("running_mean") && !k.ends_with("running_var") && !k.ends_with("num_batches_tracked")) params += e.numel();
  BOOST_TEST(params == 6958981);

  // Re-saving through MammoCL gives a different layout (sorted keys) but the same tensors, bit for bit.
  mammocl::models::densenet<mammocl::cpu_backend, mammocl::models::densenet121> net({.in_channels = 3, .num_classes = 5});
  io::load_state(net, f);
  const auto g = io::safetensors::file::parse(io::to_safetensors(net).serialize(), "re-saved");
  BOOST_TEST(g.size() == f.size());
  for (const auto& [k, e] : f.tensors()) {
    const auto& e2 = g.at(k);
    BOOST_TEST((e2.type == e.type && e2.shape == e.shape && e2.data == e.data), k);
  }
}

BOOST_AUTO_TEST_CASE(rgb_float32_matches_pytorch) {
  check_against_pytorch<mammocl::cpu_backend>(golden::rgb, "densenet121 3-channel float32", 1e-4);
}

BOOST_AUTO_TEST_CASE(rgb_float64_matches_pytorch) {
  check_against_pytorch<mammocl::cpu_backend_f64>(golden::rgb, "densenet121 3-channel float64", 1e-12);
}

BOOST_AUTO_TEST_CASE(gray_float32_matches_pytorch) {
  check_against_pytorch<mammocl::cpu_backend>(golden::gray, "densenet121 1-channel float32", 1e-4);
}

BOOST_AUTO_TEST_CASE(gray_float64_matches_pytorch) {
  check_against_pytorch<mammocl::cpu_backend_f64>(golden::gray, "densenet121 1-channel float64", 1e-12);
}

BOOST_AUTO_TEST_SUITE_END()
