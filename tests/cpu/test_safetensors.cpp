// safetensors reading and writing (io/safetensors.hpp) and model checkpoints (io/checkpoint.hpp):
// bit-exact DenseNet round trips, the exact byte layout of written files, a hand-written file, every
// malformed-file case with its exception type and message, atomic writes, strict / non-strict /
// legacy / excluded loading, and plain tensor maps.
#include <boost/test/unit_test.hpp>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <initializer_list>
#include <map>
#include <string>
#include <typeinfo>
#include <vector>

#include <unistd.h>

#include "mammocl/backend/cpu/cpu_backend.hpp"
#include "mammocl/io/checkpoint.hpp"
#include "mammocl/io/safetensors.hpp"
#include "mammocl/layers/batch_norm.hpp"
#include "mammocl/models/densenet.hpp"

#include "temp_dir.hpp"

namespace {

namespace fs = std::filesystem;
namespace st = mammocl::io::safetensors;
namespace io = mammocl::io;
using mammocl::cpu_backend;
using mammocl::cpu_backend_f64;
using small_net = mammocl::models::densenet<cpu_backend, mammocl::models::densenet_small>;
using small_net64 = mammocl::models::densenet<cpu_backend_f64, mammocl::models::densenet_small>;

struct temp_dir : mammocl::test::temp_dir {
  temp_dir() : mammocl::test::temp_dir("safetensors") {}
};

std::vector<std::byte> bytes_of(std::string_view s) {
  const auto* p = reinterpret_cast<const std::byte*>(s.data());
  return {p, p + s.size()};
}

/// A file image: 8-byte little-endian size of `header`, `header`, `data`.
std::vector<std::byte> image(const std::string& header, const std::vector<std::byte>& data) {
  std::vector<std::byte> out(8);
  const std::uint64_t n = header.size();
  std::memcpy(out.data(), &n, 8);
  const auto h = bytes_of(header);
  out.insert(out.end(), h.begin(), h.end());
  out.insert(out.end(), data.begin(), data.end());
  return out;
}

void write_bytes(const fs::path& p, const std::vector<std::byte>& b) {
  std::ofstream out(p, std::ios::binary);
  out.write(reinterpret_cast<const char*>(b.data()), static_cast<std::streamsize>(b.size()));
}

std::vector<std::byte> read_bytes(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::vector<char> c((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::vector<std::byte> out(c.size());
  if (!c.empty()) std::memcpy(out.data(), c.data(), c.size());
  return out;
}

/// A predicate for BOOST_CHECK_EXCEPTION: the exception is exactly E and its message contains every part.
template <class E>
std::function<bool(const E&)> error_with(std::initializer_list<std::string> parts) {
  std::vector<std::string> want(parts);
  return [want](const E& e) {
    bool ok = typeid(e) == typeid(E);
    if (!ok) BOOST_TEST_MESSAGE("wrong exception type " << typeid(e).name() << ": " << e.what());
    for (const auto& w : want) {
      if (std::string(e.what()).find(w) == std::string::npos) {
        BOOST_TEST_MESSAGE("message lacks \"" << w << "\": " << e.what());
        ok = false;
      }
    }
    return ok;
  };
}

/// Every parameter and buffer of a module as (name → raw bytes) or (name → counter).
template <class M>
struct state_snapshot {
  std::map<std::string, std::vector<std::byte>> tensors;
  std::map<std::string, std::int64_t> counters;
  explicit state_snapshot(M& m) {
    using B = typename M::backend_type;
    io::for_each_state(m, [&]<class V>(const std::string& name, V& v) {
      if constexpr (std::is_same_v<V, mammocl::tensor<B>>) {
        const auto* p = reinterpret_cast<const std::byte*>(v.data());
        tensors[name].assign(p, p + v.numel() * sizeof(typename B::scalar_type));
      } else {
        counters[name] = v;
      }
    });
  }
  friend bool operator==(const state_snapshot&, const state_snapshot&) = default;
};

template <class B>
mammocl::tensor<B> random_input(mammocl::shape s, std::uint64_t seed) {
  mammocl::rng r(seed);
  mammocl::tensor<B> x(s);
  for (mammocl::index_t i = 0; i < x.numel(); ++i) x.data()[i] = static_cast<typename B::scalar_type>(r.normal());
  return x;
}

/// A small DenseNet whose running statistics and counters moved away from their initial values.
template <class Net>
Net trained_small_net(std::uint64_t seed, mammocl::index_t in_channels = 3, mammocl::index_t classes = 5) {
  using B = typename Net::backend_type;
  Net net({.in_channels = in_channels, .num_classes = classes});
  net.init(seed);
  typename B::context ctx(2);
  typename Net::cache c;
  (void)net.forward(ctx, random_input<B>(mammocl::shape{4, in_channels, 32, 32}, seed + 1), c);
  return net;
}

template <class T>
bool same_bits(const mammocl::tensor<T>& a, const mammocl::tensor<T>& b) {
  return a.dims() == b.dims() &&
         std::memcmp(a.data(), b.data(), a.numel() * sizeof(typename T::scalar_type)) == 0;
}

}  // namespace

BOOST_AUTO_TEST_SUITE(safetensors_io)

// ------------------------------------------------------------------------------------------ round trips

BOOST_AUTO_TEST_CASE(densenet_round_trip_is_bit_exact) {
  temp_dir dir;
  small_net a = trained_small_net<small_net>(11);
  const state_snapshot<small_net> before(a);
  BOOST_TEST(before.counters.at("features.norm0.num_batches_tracked") == 1);

  const fs::path p = dir / "small.safetensors";
  io::save_state(a, p, {{"epoch", "3"}, {"strategy", "ce"}});
  BOOST_TEST(dir.listing() == std::vector<std::string>{"small.safetensors"});

  // The file itself: torch conventions for dtypes and shapes.
  const st::file f = st::file::read(p);
  BOOST_TEST(f.size() == before.tensors.size() + before.counters.size());
  BOOST_TEST(f.metadata().at("epoch") == "3");
  BOOST_TEST(f.metadata().at("format") == "pt");
  BOOST_TEST((f.at("features.conv0.weight").type == st::dtype::f32));
  BOOST_TEST((f.at("features.conv0.weight").shape == st::extents{16, 3, 7, 7}));
  BOOST_TEST((f.at("features.norm0.num_batches_tracked").type == st::dtype::i64));
  BOOST_TEST(f.at("features.norm0.num_batches_tracked").shape.empty());
  BOOST_TEST(f.values<std::int64_t>("features.norm0.num_batches_tracked")[0] == 1);

  small_net b({.in_channels = 3, .num_classes = 5});
  b.init(999);
  BOOST_TEST(!(state_snapshot<small_net>(b) == before));
  const io::load_report r = io::load_state(b, p);
  BOOST_TEST(r.loaded.size() == f.size());
  BOOST_TEST(r.missing.empty());
  BOOST_TEST(r.unexpected.empty());
  BOOST_TEST(r.metadata.at("strategy") == "ce");
  const state_snapshot<small_net> after(b);
  BOOST_TEST(after.tensors.size() == before.tensors.size());
  for (const auto& [name, bytes] : before.tensors) BOOST_TEST((after.tensors.at(name) == bytes), name);
  BOOST_TEST((after.counters == before.counters));

  cpu_backend::context ctx(2);
  const auto x = random_input<cpu_backend>(mammocl::shape{3, 3, 40, 36}, 5);
  BOOST_TEST(same_bits(a.infer(ctx, x), b.infer(ctx, x)));
}

BOOST_AUTO_TEST_CASE(double_model_saves_f64_and_converts_on_load) {
  temp_dir dir;
  small_net64 a = trained_small_net<small_net64>(21);
  const fs::path p64 = dir / "small64.safetensors";
  io::save_state(a, p64);
  const st::file f = st::file::read(p64);
  BOOST_TEST((f.at("classifier.weight").type == st::dtype::f64));
  BOOST_TEST((f.at("features.transition2.norm.running_var").type == st::dtype::f64));

  // F64 file → float model: every value rounded to nearest float.
  small_net b({.in_channels = 3, .num_classes = 5});
  io::load_state(b, p64);
  std::map<std::string, mammocl::tensor<cpu_backend_f64>> ref;
  io::for_each_state(a, [&]<class V>(const std::string& n, V& v) {
    if constexpr (!std::is_same_v<V, std::int64_t>) ref.emplace(n, v);
  });
  std::size_t compared = 0;
  io::for_each_state(b, [&]<class V>(const std::string& n, V& v) {
    if constexpr (!std::is_same_v<V, std::int64_t>) {
      const auto& d = ref.at(n);
      bool ok = v.dims() == d.dims();
      for (mammocl::index_t i = 0; ok && i < v.numel(); ++i) ok = v.data()[i] == static_cast<float>(d.data()[i]);
      BOOST_TEST(ok, n);
      ++compared;
    }
  });
  BOOST_TEST(compared == ref.size());

  // F32 file → double model: exact.
  const fs::path p32 = dir / "small32.safetensors";
  io::save_state(b, p32);
  small_net64 c({.in_channels = 3, .num_classes = 5});
  io::load_state(c, p32);
  const state_snapshot<small_net> sb(b);
  io::for_each_state(c, [&]<class V>(const std::string& n, V& v) {
    if constexpr (!std::is_same_v<V, std::int64_t>) {
      const auto& bytes = sb.tensors.at(n);
      bool ok = true;
      for (mammocl::index_t i = 0; ok && i < v.numel(); ++i) {
        float x;
        std::memcpy(&x, bytes.data() + i * 4, 4);
        ok = v.data()[i] == static_cast<double>(x);
      }
      BOOST_TEST(ok, n);
    }
  });
}

BOOST_AUTO_TEST_CASE(layer_state_uses_prefix_form) {
  temp_dir dir;
  using bn = mammocl::layers::batch_norm<cpu_backend>;
  bn a({.channels = 3});
  a.gamma().value.at(1) = 2.5f;
  cpu_backend::context ctx(1);
  bn::cache c;
  (void)a.forward(ctx, random_input<cpu_backend>(mammocl::shape{2, 3, 4, 4}, 3), c);
  io::save_state(a, dir / "bn.safetensors");
  const st::file f = st::file::read(dir / "bn.safetensors");
  std::vector<std::string> keys;
  for (const auto& [k, e] : f.tensors()) keys.push_back(k);
  BOOST_TEST((keys == std::vector<std::string>{"bias", "num_batches_tracked", "running_mean", "running_var", "weight"}));
  bn b({.channels = 3});
  io::load_state(b, dir / "bn.safetensors");
  BOOST_TEST((state_snapshot<bn>(b) == state_snapshot<bn>(a)));
  BOOST_TEST(b.gamma().value.at(1) == 2.5f);

  // Half-precision files load too (converted exactly to float).
  st::file h;
  for (const char* k : {"weight", "bias", "running_mean", "running_var"}) {
    st::entry e;
    e.type = std::string(k) == "bias" ? st::dtype::bf16 : st::dtype::f16;
    e.shape = {3};
    const std::uint16_t v[3] = {0x3C00, 0xC000, 0x3800};   // F16: 1, -2, 0.5
    const std::uint16_t vb[3] = {0x3F80, 0xC040, 0x3F00};  // BF16: 1, -3, 0.5
    const auto* p = reinterpret_cast<const std::byte*>(e.type == st::dtype::bf16 ? vb : v);
    e.data.assign(p, p + 6);
    h.set(k, std::move(e));
  }
  h.set_values<std::int64_t>("num_batches_tracked", {}, std::vector<std::int64_t>{9});
  io::load_state(b, h);
  BOOST_TEST(b.gamma().value.at(0) == 1.0f);
  BOOST_TEST(b.gamma().value.at(1) == -2.0f);
  BOOST_TEST(b.gamma().value.at(2) == 0.5f);
  BOOST_TEST(b.beta().value.at(1) == -3.0f);
  BOOST_TEST(b.num_batches_tracked() == 9);
}

// ------------------------------------------------------------------------------------------ byte layout

BOOST_AUTO_TEST_CASE(writer_produces_the_exact_bytes) {
  st::file f;
  f.set_values<float>("b", {2}, std::vector<float>{1.0f, -2.0f});
  f.set_values<std::int64_t>("a", {}, std::vector<std::int64_t>{7});
  f.set_values<double>("c", {1, 1}, std::vector<double>{0.5});
  f.set_values<std::uint8_t>("d", {3}, std::vector<std::uint8_t>{1, 2, 3});
  f.metadata()["k"] = "v";
  // Keys sorted; data ordered by element size (I64, F64, F32, U8) then name; header padded to 8 bytes.
  std::string header =
      R"({"__metadata__":{"k":"v"},"a":{"data_offsets":[0,8],"dtype":"I64","shape":[]},)"
      R"("b":{"data_offsets":[16,24],"dtype":"F32","shape":[2]},)"
      R"("c":{"data_offsets":[8,16],"dtype":"F64","shape":[1,1]},)"
      R"("d":{"data_offsets":[24,27],"dtype":"U8","shape":[3]}})";
  header.append((8 - header.size() % 8) % 8, ' ');
  BOOST_TEST(header.size() % 8 == 0u);
  std::vector<std::byte> data(27);
  const std::int64_t a = 7;
  const double c = 0.5;
  const float b[2] = {1.0f, -2.0f};
  std::memcpy(data.data(), &a, 8);
  std::memcpy(data.data() + 8, &c, 8);
  std::memcpy(data.data() + 16, b, 8);
  data[24] = std::byte{1};
  data[25] = std::byte{2};
  data[26] = std::byte{3};
  const auto expected = image(header, data);
  const auto got = f.serialize();
  BOOST_TEST((got == expected));
  // The size field is little-endian.
  BOOST_TEST(static_cast<unsigned>(got[0]) == header.size() % 256);
  BOOST_TEST(static_cast<unsigned>(got[1]) == header.size() / 256);

  // And it reads back to the same tensors.
  const st::file g = st::file::parse(got, "memory");
  BOOST_TEST(g.values<float>("b") == std::vector<float>({1.0f, -2.0f}));
  BOOST_TEST(g.values<double>("c") == std::vector<double>({0.5}));
  BOOST_TEST(g.values<std::int64_t>("d") == std::vector<std::int64_t>({1, 2, 3}));
  BOOST_TEST(g.metadata().at("k") == "v");
}

BOOST_AUTO_TEST_CASE(hand_written_file_parses) {
  // Header as torch writes it (insertion order, not sorted), with trailing padding spaces, unaligned I64.
  const std::string header =
      R"({"__metadata__":{"who":"hand","format":"pt"},"x":{"dtype":"F16","shape":[2,2],"data_offsets":[0,8]},)"
      R"("y":{"dtype":"BF16","shape":[2],"data_offsets":[8,12]},"n":{"dtype":"I64","shape":[],"data_offsets":[12,20]},)"
      R"("z":{"dtype":"BOOL","shape":[3],"data_offsets":[20,23]},"e":{"dtype":"F32","shape":[0,4],"data_offsets":[23,23]},)"
      R"("w":{"dtype":"I32","shape":[1],"data_offsets":[23,27]}}   )";
  const std::vector<std::uint8_t> raw = {
      0x00, 0x3C, 0x00, 0xC0, 0x01, 0x00, 0x00, 0x7C,  // F16 1, -2, 2^-24 (subnormal), +inf
      0x80, 0x3F, 0x40, 0xC0,                          // BF16 1, -3
      0x08, 0x07, 0x06, 0x05, 0x04, 0x03, 0x02, 0x01,  // I64 0x0102030405060708
      0x00, 0x01, 0x02,                                // BOOL false, true, true
      0xFE, 0xFF, 0xFF, 0xFF};                         // I32 -2
  std::vector<std::byte> data(raw.size());
  std::memcpy(data.data(), raw.data(), raw.size());
  temp_dir dir;
  write_bytes(dir / "hand.safetensors", image(header, data));
  const st::file f = st::file::read(dir / "hand.safetensors");
  BOOST_TEST(f.source() == (dir / "hand.safetensors").string());
  BOOST_TEST(f.size() == 6u);
  BOOST_TEST(f.metadata().at("who") == "hand");
  BOOST_TEST((f.at("x").shape == st::extents{2, 2}));
  const auto x = f.values<float>("x");
  BOOST_TEST(x[0] == 1.0f);
  BOOST_TEST(x[1] == -2.0f);
  BOOST_TEST(x[2] == std::ldexp(1.0f, -24));
  BOOST_TEST(std::isinf(x[3]));
  BOOST_TEST(f.values<double>("y") == std::vector<double>({1.0, -3.0}));
  BOOST_TEST(f.values<std::int64_t>("n")[0] == 0x0102030405060708LL);
  BOOST_TEST(f.values<std::int64_t>("z") == std::vector<std::int64_t>({0, 1, 1}));
  BOOST_TEST(f.values<std::int64_t>("w")[0] == -2);
  BOOST_TEST(f.at("e").data.empty());
  BOOST_TEST((f.at("e").shape == st::extents{0, 4}));

  // Every half-precision pattern converts like a hardware conversion would: spot-check the edges.
  BOOST_TEST(st::detail::half_to_float(0x7BFF) == 65504.0f);
  BOOST_TEST(st::detail::half_to_float(0x0400) == std::ldexp(1.0f, -14));
  BOOST_TEST(st::detail::half_to_float(0x03FF) == std::ldexp(1023.0f, -24));
  BOOST_TEST(std::signbit(st::detail::half_to_float(0x8000)));
  BOOST_TEST(std::isnan(st::detail::half_to_float(0x7E00)));
  BOOST_TEST(st::detail::half_to_float(0x3555) == 0.333251953125f);

  // Conversions that make no sense are refused with the tensor's and the file's name.
  BOOST_CHECK_EXCEPTION((void)f.values<float>("n"), mammocl::io_error, error_with<mammocl::io_error>({"'n'", "hand.safetensors", "I64"}));
  BOOST_CHECK_EXCEPTION((void)f.values<std::int64_t>("x"), mammocl::io_error, error_with<mammocl::io_error>({"'x'", "F16"}));
  BOOST_CHECK_EXCEPTION((void)f.at("nope"), mammocl::io_error, error_with<mammocl::io_error>({"'nope'", "hand.safetensors"}));
  st::file big;
  big.set_values<std::uint64_t>("u", {1}, std::vector<std::uint64_t>{~0ULL});
  BOOST_CHECK_EXCEPTION((void)big.values<std::int64_t>("u"), mammocl::io_error, error_with<mammocl::io_error>({"'u'", "too large"}));
}

// ------------------------------------------------------------------------------------------ malformed files

namespace {
/// Writes `bytes` as `dir/name`, reads it, and expects io_error naming the file and every part.
void expect_bad_file(const temp_dir& dir, const std::string& name, const std::vector<std::byte>& bytes,
                     std::initializer_list<std::string> parts) {
  const fs::path p = dir / (name + ".safetensors");
  write_bytes(p, bytes);
  std::vector<std::string> want(parts);
  want.push_back(p.string());
  BOOST_TEST_CONTEXT("case " << name) {
    bool thrown = false;
    try {
      (void)st::file::read(p);
    } catch (const mammocl::io_error& e) {
      thrown = true;
      BOOST_TEST((typeid(e) == typeid(mammocl::io_error)));
      for (const auto& w : want) BOOST_TEST(std::string(e.what()).find(w) != std::string::npos, "\"" << w << "\" in: " << e.what());
    } catch (const std::exception& e) {
      BOOST_ERROR("case " << name << " threw another exception: " << e.what());
      thrown = true;
    }
    BOOST_TEST(thrown, "case " << name << " was accepted");
  }
}

std::vector<std::byte> zeros(std::size_t n) { return std::vector<std::byte>(n); }
}  // namespace

BOOST_AUTO_TEST_CASE(malformed_files_are_rejected_with_a_precise_message) {
  temp_dir dir;
  // Sizes.
  expect_bad_file(dir, "short", zeros(5), {"5 bytes long", "8-byte header size"});
  expect_bad_file(dir, "empty", {}, {"0 bytes long"});
  {
    auto b = image("{}", {});
    const std::uint64_t n = 100;
    std::memcpy(b.data(), &n, 8);
    expect_bad_file(dir, "header_past_end", b, {"100-byte JSON header", "only 2 bytes"});
    const std::uint64_t huge = 1ULL << 40;
    std::memcpy(b.data(), &huge, 8);
    expect_bad_file(dir, "header_absurd", b, {"1099511627776-byte JSON header", "limit"});
  }
  // JSON.
  expect_bad_file(dir, "not_an_object", image("[1,2,3] ", {}), {"must start with '{'", "'['"});
  expect_bad_file(dir, "empty_header", image("", {}), {"must start with '{'"});
  expect_bad_file(dir, "invalid_json", image(R"({"t": {"dtype": "F32",)", {}), {"not valid JSON"});
  expect_bad_file(dir, "trailing_garbage", image(R"({}x)", {}), {"not valid JSON"});
  expect_bad_file(dir, "duplicate_key",
                  image(R"({"t":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},"t":{"dtype":"U8","shape":[1],"data_offsets":[1,2]}})", zeros(2)),
                  {"'t'", "twice"});
  // Entries.
  expect_bad_file(dir, "entry_not_object", image(R"({"t":5})", {}), {"tensor 't'", "JSON object", "number"});
  expect_bad_file(dir, "missing_dtype", image(R"({"t":{"shape":[1],"data_offsets":[0,4]}})", zeros(4)), {"tensor 't'", "no 'dtype'"});
  expect_bad_file(dir, "missing_shape", image(R"({"t":{"dtype":"F32","data_offsets":[0,4]}})", zeros(4)), {"tensor 't'", "no 'shape'"});
  expect_bad_file(dir, "missing_offsets", image(R"({"t":{"dtype":"F32","shape":[1]}})", zeros(4)), {"tensor 't'", "no 'data_offsets'"});
  expect_bad_file(dir, "unknown_dtype", image(R"({"t":{"dtype":"Q7","shape":[1],"data_offsets":[0,4]}})", zeros(4)),
                  {"tensor 't'", "unknown dtype \"Q7\"", "F32"});
  expect_bad_file(dir, "dtype_not_string", image(R"({"t":{"dtype":4,"shape":[1],"data_offsets":[0,4]}})", zeros(4)), {"'dtype'", "'t'"});
  expect_bad_file(dir, "negative_extent", image(R"({"t":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}})", zeros(4)),
                  {"'shape'", "'t'", "[-1]"});
  expect_bad_file(dir, "fractional_extent", image(R"({"t":{"dtype":"F32","shape":[1.5],"data_offsets":[0,4]}})", zeros(4)),
                  {"'shape'", "'t'", "non-negative integers"});
  expect_bad_file(dir, "shape_not_array", image(R"({"t":{"dtype":"F32","shape":"1","data_offsets":[0,4]}})", zeros(4)), {"'shape'", "'t'"});
  expect_bad_file(dir, "overflowing_shape",
                  image(R"({"t":{"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,4]}})", zeros(4)),
                  {"'t'", "too many elements"});
  expect_bad_file(dir, "one_offset", image(R"({"t":{"dtype":"F32","shape":[1],"data_offsets":[0]}})", zeros(4)), {"'data_offsets'", "'t'", "[0]"});
  expect_bad_file(dir, "negative_offset", image(R"({"t":{"dtype":"F32","shape":[1],"data_offsets":[-4,0]}})", zeros(4)), {"'data_offsets'", "'t'"});
  expect_bad_file(dir, "end_before_begin", image(R"({"t":{"dtype":"F32","shape":[1],"data_offsets":[4,0]}})", zeros(4)),
                  {"tensor 't'", "[4, 0]", "end before begin"});
  expect_bad_file(dir, "past_data_end", image(R"({"t":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}})", zeros(8)),
                  {"tensor 't'", "[0, 16]", "8-byte data region"});
  expect_bad_file(dir, "size_mismatch", image(R"({"t":{"dtype":"F32","shape":[2,3],"data_offsets":[0,16]}})", zeros(16)),
                  {"tensor 't'", "16 bytes", "(2,3)", "F32", "need 24 bytes"});
  // Layout of the data region.
  expect_bad_file(dir, "overlap",
                  image(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})", zeros(12)),
                  {"tensor 'b'", "overlapping tensor 'a'", "[4, 12)", "[0, 8)"});
  expect_bad_file(dir, "gap",
                  image(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"b":{"dtype":"F32","shape":[1],"data_offsets":[8,12]}})", zeros(12)),
                  {"bytes [4, 8)", "belong to no tensor", "'b'"});
  expect_bad_file(dir, "trailing_data", image(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})", zeros(8)),
                  {"8 bytes", "cover only the first 4"});
  // Metadata.
  expect_bad_file(dir, "metadata_not_object", image(R"({"__metadata__":[1]})", {}), {"'__metadata__'", "object of strings"});
  expect_bad_file(dir, "metadata_not_string", image(R"({"__metadata__":{"epoch":3}})", {}), {"'epoch'", "must be a string"});

  // A file that is not there.
  BOOST_CHECK_EXCEPTION((void)st::file::read(dir / "absent.safetensors"), mammocl::io_error,
                        error_with<mammocl::io_error>({"cannot open", "absent.safetensors"}));
}

BOOST_AUTO_TEST_CASE(invalid_entries_are_refused_in_memory) {
  st::file f;
  st::entry e;
  e.type = st::dtype::f32;
  e.shape = {3};
  e.data.resize(8);
  BOOST_CHECK_EXCEPTION(f.set("t", e), mammocl::shape_error, error_with<mammocl::shape_error>({"'t'", "(3)", "12 bytes", "got 8"}));
  e.data.resize(12);
  BOOST_CHECK_EXCEPTION(f.set("__metadata__", e), mammocl::config_error, error_with<mammocl::config_error>({"'__metadata__'", "reserved"}));
  BOOST_CHECK_EXCEPTION(f.set("", e), mammocl::config_error, error_with<mammocl::config_error>({"empty string"}));
  f.set("t", e);
  BOOST_TEST(f.contains("t"));
  BOOST_TEST(f.erase("t"));
  BOOST_TEST(!f.contains("t"));
}

// ------------------------------------------------------------------------------------------ atomic writes

BOOST_AUTO_TEST_CASE(writes_are_atomic) {
  temp_dir dir;
  const fs::path p = dir / "ckpt.safetensors";
  const std::string tmp_name = "ckpt.safetensors.tmp-" + std::to_string(::getpid());
  st::file one;
  one.set_values<float>("x", {1}, std::vector<float>{1.0f});
  one.write(p);
  BOOST_TEST(dir.listing() == std::vector<std::string>{"ckpt.safetensors"});
  const auto first = read_bytes(p);

  // Overwriting replaces the content, and nothing else is left behind.
  st::file two;
  two.set_values<float>("x", {2}, std::vector<float>{2.0f, 3.0f});
  two.write(p);
  BOOST_TEST(dir.listing() == std::vector<std::string>{"ckpt.safetensors"});
  BOOST_TEST(st::file::read(p).values<float>("x") == std::vector<float>({2.0f, 3.0f}));
  const auto second = read_bytes(p);

  // Failure while encoding (invalid UTF-8 name): the destination keeps its content, no temporary file.
  st::file bad;
  bad.set_values<float>(std::string("x\xff"), {1}, std::vector<float>{0.0f});
  BOOST_CHECK_EXCEPTION(bad.write(p), mammocl::io_error, error_with<mammocl::io_error>({"UTF-8"}));
  BOOST_TEST((read_bytes(p) == second));
  BOOST_TEST(dir.listing() == std::vector<std::string>{"ckpt.safetensors"});

  // Failure after the temporary file was written (the destination is a directory, so the rename fails):
  // the directory and its content are untouched and the temporary file is removed.
  const fs::path d = dir / "occupied";
  fs::create_directories(d / "inside");
  BOOST_CHECK_EXCEPTION(one.write(d), mammocl::io_error,
                        error_with<mammocl::io_error>({"cannot rename", "occupied", "not modified"}));
  BOOST_TEST(fs::is_directory(d / "inside"));
  BOOST_TEST((dir.listing() == std::vector<std::string>{"ckpt.safetensors", "occupied"}));

  // Failure to create the temporary file (no such directory): nothing is created.
  BOOST_CHECK_EXCEPTION(one.write(dir / "missing" / "x.safetensors"), mammocl::io_error,
                        error_with<mammocl::io_error>({"cannot create the temporary file", "x.safetensors"}));
  BOOST_TEST(!fs::exists(dir / "missing"));

  // save_state goes through the same path: a failed save leaves the previous checkpoint intact.
  small_net net({.in_channels = 3, .num_classes = 5});
  net.init(1);
  BOOST_CHECK_THROW(io::save_state(net, d), mammocl::io_error);
  BOOST_TEST((read_bytes(p) == second));
  BOOST_TEST(first != second);
  BOOST_TEST(!fs::exists(dir / tmp_name));
}

// ------------------------------------------------------------------------------------------ checkpoint matching

BOOST_AUTO_TEST_CASE(missing_and_unexpected_keys) {
  temp_dir dir;
  small_net a = trained_small_net<small_net>(31);
  st::file f = io::to_safetensors(a);
  f.erase("features.conv0.weight");
  f.erase("features.norm0.num_batches_tracked");
  f.set_values<float>("features.extra.weight", {2}, std::vector<float>{1, 2});
  const fs::path p = dir / "partial.safetensors";
  f.write(p);

  small_net b({.in_channels = 3, .num_classes = 5});
  b.init(77);
  const state_snapshot<small_net> before(b);
  BOOST_CHECK_EXCEPTION(io::load_state(b, p), mammocl::io_error,
                        error_with<mammocl::io_error>({p.string(), "'features.conv0.weight'", "'features.norm0.num_batches_tracked'",
                                                       "2 model key(s) missing", "'features.extra.weight'", "1 file key(s)"}));
  BOOST_TEST((state_snapshot<small_net>(b) == before));  // all or nothing

  const io::load_report r = io::load_state(b, p, {.strict = false});
  BOOST_TEST((r.missing == std::vector<std::string>{"features.conv0.weight", "features.norm0.num_batches_tracked"}));
  BOOST_TEST((r.unexpected == std::vector<std::string>{"features.extra.weight"}));
  BOOST_TEST(r.loaded.size() == f.size() - 1);
  const state_snapshot<small_net> after(b), ref(a);
  BOOST_TEST((after.tensors.at("features.conv0.weight") == before.tensors.at("features.conv0.weight")));
  BOOST_TEST(after.counters.at("features.norm0.num_batches_tracked") == 0);
  BOOST_TEST((after.tensors.at("classifier.weight") == ref.tensors.at("classifier.weight")));
  BOOST_TEST(after.counters.at("features.transition1.norm.num_batches_tracked") == 1);
}

BOOST_AUTO_TEST_CASE(shape_and_dtype_mismatches_name_everything) {
  temp_dir dir;
  small_net a = trained_small_net<small_net>(41);
  const fs::path p = dir / "rgb.safetensors";
  io::save_state(a, p);

  // Wrong input channels: conv0 differs; an error even when not strict.
  small_net gray({.in_channels = 1, .num_classes = 5});
  gray.init(3);
  const state_snapshot<small_net> before(gray);
  for (bool strict : {true, false}) {
    BOOST_CHECK_EXCEPTION(io::load_state(gray, p, {.strict = strict}), mammocl::io_error,
                          error_with<mammocl::io_error>({"'features.conv0.weight'", "(16,3,7,7)", "(16,1,7,7)", p.string()}));
  }
  // Wrong classes: the failure comes last in model order, and still nothing was changed.
  small_net seven({.in_channels = 3, .num_classes = 7});
  seven.init(3);
  const state_snapshot<small_net> seven_before(seven);
  BOOST_CHECK_EXCEPTION(io::load_state(seven, p), mammocl::io_error,
                        error_with<mammocl::io_error>({"'classifier.weight'", "(5,52)", "(7,52)", p.string()}));
  BOOST_TEST((state_snapshot<small_net>(seven) == seven_before));
  BOOST_TEST((state_snapshot<small_net>(gray) == before));

  // dtypes: an integer tensor for a parameter, a float for a counter, a non-scalar counter.
  st::file f = io::to_safetensors(a);
  f.set_values<std::int64_t>("features.norm0.weight", {16}, std::vector<std::int64_t>(16, 1));
  small_net b({.in_channels = 3, .num_classes = 5});
  BOOST_CHECK_EXCEPTION(io::load_state(b, f), mammocl::io_error,
                        error_with<mammocl::io_error>({"'features.norm0.weight'", "I64", "F32"}));
  f = io::to_safetensors(a);
  f.set_values<float>("features.norm0.num_batches_tracked", {}, std::vector<float>{1});
  BOOST_CHECK_EXCEPTION(io::load_state(b, f), mammocl::io_error,
                        error_with<mammocl::io_error>({"'features.norm0.num_batches_tracked'", "F32", "I64"}));
  f = io::to_safetensors(a);
  f.set_values<std::int64_t>("features.norm0.num_batches_tracked", {1}, std::vector<std::int64_t>{1});
  BOOST_CHECK_EXCEPTION(io::load_state(b, f), mammocl::io_error,
                        error_with<mammocl::io_error>({"'features.norm0.num_batches_tracked'", "(1)", "()"}));
  // A file with the right names but a scalar where a vector belongs.
  f = io::to_safetensors(a);
  f.set_values<float>("features.transition2.norm.bias", {}, std::vector<float>{1});
  BOOST_CHECK_EXCEPTION(io::load_state(b, f), mammocl::io_error,
                        error_with<mammocl::io_error>({"'features.transition2.norm.bias'", "shape ()", "(40)"}));
}

BOOST_AUTO_TEST_CASE(excluded_prefixes_keep_a_fresh_head) {
  temp_dir dir;
  // Like loading ImageNet weights (1000 classes) into a 5-class model.
  small_net src = trained_small_net<small_net>(51, 3, 9);
  const fs::path p = dir / "nine.safetensors";
  io::save_state(src, p);
  small_net dst({.in_channels = 3, .num_classes = 5});
  dst.init(8);
  const state_snapshot<small_net> before(dst);
  const io::load_report r = io::load_state(dst, p, {.exclude_prefixes = {"classifier."}});
  BOOST_TEST((r.excluded == std::vector<std::string>{"classifier.weight", "classifier.bias"}));
  BOOST_TEST(r.missing.empty());
  BOOST_TEST(r.unexpected.empty());
  const state_snapshot<small_net> after(dst), ref(src);
  BOOST_TEST((after.tensors.at("classifier.weight") == before.tensors.at("classifier.weight")));
  BOOST_TEST((after.tensors.at("features.transition2.norm.running_var") ==
              ref.tensors.at("features.transition2.norm.running_var")));
  BOOST_TEST((after.tensors.at("features.denseblock3.denselayer4.conv2.weight") ==
              ref.tensors.at("features.denseblock3.denselayer4.conv2.weight")));
}

BOOST_AUTO_TEST_CASE(torchvision_legacy_keys) {
  BOOST_TEST(io::torchvision_legacy_key("features.denseblock1.denselayer1.norm.1.weight") ==
             "features.denseblock1.denselayer1.norm1.weight");
  BOOST_TEST(io::torchvision_legacy_key("features.denseblock4.denselayer16.conv.2.weight") ==
             "features.denseblock4.denselayer16.conv2.weight");
  BOOST_TEST(io::torchvision_legacy_key("features.denseblock2.denselayer3.norm.2.running_var") ==
             "features.denseblock2.denselayer3.norm2.running_var");
  for (const char* unchanged : {"features.norm0.weight", "features.transition1.norm.weight", "features.conv0.weight",
                                "classifier.bias", "features.denseblock1.denselayer1.norm.3.weight",
                                "features.denseblock1.denselayer1.norm.1.num_batches_tracked"})
    BOOST_TEST(io::torchvision_legacy_key(unchanged) == unchanged);

  // A legacy file: renamed dense-layer keys, no num_batches_tracked at all (pre-1.0 torch).
  small_net a = trained_small_net<small_net>(61);
  const st::file modern = io::to_safetensors(a);
  st::file legacy;
  std::size_t renamed = 0, counters = 0;
  for (const auto& [key, e] : modern.tensors()) {
    if (key.ends_with("num_batches_tracked")) {
      ++counters;
      continue;
    }
    std::string k = key;
    for (const char* part : {".norm1.", ".norm2.", ".conv1.", ".conv2."}) {
      const auto pos = k.find(part);
      if (pos != std::string::npos && k.find("denselayer") != std::string::npos) {
        k.replace(pos, 7, std::string(".") + std::string(part).substr(1, 4) + "." + part[5] + ".");
        ++renamed;
      }
    }
    legacy.set(k, e);
  }
  BOOST_TEST(legacy.contains("features.denseblock1.denselayer1.norm.1.running_mean"));
  BOOST_TEST(legacy.contains("features.denseblock2.denselayer3.conv.2.weight"));
  temp_dir dir;
  const fs::path p = dir / "legacy.safetensors";
  legacy.write(p);

  small_net b({.in_channels = 3, .num_classes = 5});
  b.init(5);
  BOOST_CHECK_EXCEPTION(io::load_state(b, p), mammocl::io_error,
                        error_with<mammocl::io_error>({"missing", "torchvision_legacy", p.string()}));
  const io::load_report r = io::load_state(b, p, {.torchvision_legacy = true});
  BOOST_TEST(r.renamed.size() == renamed);
  BOOST_TEST(r.defaulted.size() == counters);
  BOOST_TEST(r.missing.empty());
  BOOST_TEST(r.unexpected.empty());
  const state_snapshot<small_net> after(b), ref(a);
  BOOST_TEST((after.tensors == ref.tensors));
  for (const auto& [name, n] : after.counters) BOOST_TEST(n == 0, name);

  // Two file keys that become one after renaming are an error.
  legacy.set("features.denseblock1.denselayer1.norm1.weight", legacy.at("features.denseblock1.denselayer1.norm.1.weight"));
  BOOST_CHECK_EXCEPTION(io::load_state(b, legacy, {.torchvision_legacy = true}), mammocl::io_error,
                        error_with<mammocl::io_error>({"'features.denseblock1.denselayer1.norm.1.weight'",
                                                       "'features.denseblock1.denselayer1.norm1.weight'"}));
}

// ------------------------------------------------------------------------------------------ tensor maps

BOOST_AUTO_TEST_CASE(tensor_maps_round_trip) {
  temp_dir dir;
  std::map<std::string, mammocl::tensor<cpu_backend>> m;
  m.emplace("momentum.conv", random_input<cpu_backend>(mammocl::shape{4, 3, 3, 3}, 1));
  m.emplace("momentum.bias", random_input<cpu_backend>(mammocl::shape{4}, 2));
  m.emplace("scale", random_input<cpu_backend>(mammocl::shape{}, 3));
  const fs::path p = dir / "opt.safetensors";
  io::save_tensors(m, p, {{"step", "12"}});
  const auto back = io::load_tensors<cpu_backend>(p);
  BOOST_TEST(back.metadata.at("step") == "12");
  BOOST_TEST(back.tensors.size() == 3u);
  for (const auto& [k, t] : m) BOOST_TEST(same_bits(back.tensors.at(k), t), k);
  const auto back64 = io::load_tensors<cpu_backend_f64>(p);
  BOOST_TEST(back64.tensors.at("scale").data()[0] == static_cast<double>(m.at("scale").data()[0]));

  st::file f;
  f.set_values<float>("deep", {1, 1, 1, 1, 2}, std::vector<float>{1, 2});
  f.write(dir / "deep.safetensors");
  BOOST_CHECK_EXCEPTION((void)io::load_tensors<cpu_backend>(dir / "deep.safetensors"), mammocl::shape_error,
                        error_with<mammocl::shape_error>({"'deep'", "(1,1,1,1,2)", "rank 4"}));
  st::file g;
  g.set_values<std::int64_t>("step", {}, std::vector<std::int64_t>{3});
  g.write(dir / "int.safetensors");
  BOOST_CHECK_EXCEPTION((void)io::load_tensors<cpu_backend>(dir / "int.safetensors"), mammocl::io_error,
                        error_with<mammocl::io_error>({"'step'", "I64", "int.safetensors"}));
}

BOOST_AUTO_TEST_SUITE_END()
