#pragma once
/// The safetensors file format (Hugging Face): an 8-byte little-endian header size N, N bytes of JSON
/// header, then one little-endian data region. The header maps each tensor name to
/// {"dtype": "F32", "shape": [...], "data_offsets": [begin, end]} (offsets relative to the data region)
/// and may hold "__metadata__": {string: string}.
///
/// `safetensors::file` is the low-level view: a sorted map from tensor name to {dtype, shape, raw bytes}
/// plus the metadata. `read` validates everything the format promises (sizes, JSON, every field, offsets
/// that tile the data region exactly) and throws `io_error` with a sentence naming the file, the tensor,
/// what was expected and what was found. `write` is atomic: it writes a temporary file next to the
/// destination, flushes it to disk and renames it over the destination (POSIX: open/write/fsync/rename).
///
/// Files written here: compact JSON with sorted keys, padded with spaces like the reference (Rust)
/// implementation so that the data region starts 8-byte aligned, and data ordered by element size
/// (largest first, as the reference implementation does) then name, so that every tensor is aligned to
/// its element size. Any reader, including `safetensors.torch.load_file`, accepts them.
#include <algorithm>
#include <array>
#include <bit>
#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <map>
#include <optional>
#include <set>
#include <span>
#include <string>
#include <string_view>
#include <system_error>
#include <type_traits>
#include <utility>
#include <vector>

#include <fcntl.h>
#include <unistd.h>

#include <nlohmann/json.hpp>

#include "mammocl/core/error.hpp"

namespace mammocl::io::safetensors {

static_assert(std::endian::native == std::endian::little,
              "mammocl: safetensors I/O copies element bytes as they are, so it needs a little-endian host like "
              "the format itself.");

/// Element types of the format. F16/BF16 are read (converted to float); every listed type can be stored
/// and copied as raw bytes.
enum class dtype : std::uint8_t { boolean, u8, i8, i16, u16, i32, u32, i64, u64, f16, bf16, f32, f64 };

namespace detail {
template <class T>
inline constexpr bool always_false = false;

struct dtype_info {
  dtype type;
  std::string_view name;
  std::size_t size;
};
inline constexpr std::array<dtype_info, 13> dtype_table{{{dtype::boolean, "BOOL", 1},
                                                          {dtype::u8, "U8", 1},
                                                          {dtype::i8, "I8", 1},
                                                          {dtype::i16, "I16", 2},
                                                          {dtype::u16, "U16", 2},
                                                          {dtype::i32, "I32", 4},
                                                          {dtype::u32, "U32", 4},
                                                          {dtype::i64, "I64", 8},
                                                          {dtype::u64, "U64", 8},
                                                          {dtype::f16, "F16", 2},
                                                          {dtype::bf16, "BF16", 2},
                                                          {dtype::f32, "F32", 4},
                                                          {dtype::f64, "F64", 8}}};
}  // namespace detail

/// Bytes per element.
[[nodiscard]] constexpr std::size_t size_of(dtype t) noexcept { return detail::dtype_table[static_cast<int>(t)].size; }
/// The header spelling ("F32", "I64", ...).
[[nodiscard]] constexpr std::string_view to_string(dtype t) noexcept {
  return detail::dtype_table[static_cast<int>(t)].name;
}
/// The dtype spelled `s` in a header, or nothing for a spelling this implementation does not know.
[[nodiscard]] constexpr std::optional<dtype> parse_dtype(std::string_view s) noexcept {
  for (const auto& d : detail::dtype_table)
    if (d.name == s) return d.type;
  return std::nullopt;
}
/// F16, BF16, F32 or F64.
[[nodiscard]] constexpr bool is_floating(dtype t) noexcept {
  return t == dtype::f16 || t == dtype::bf16 || t == dtype::f32 || t == dtype::f64;
}
/// BOOL and the signed and unsigned integer types.
[[nodiscard]] constexpr bool is_integral(dtype t) noexcept { return !is_floating(t); }

/// The dtype that stores C++ type T exactly (float → F32, double → F64, std::int64_t → I64, ...).
template <class T>
[[nodiscard]] consteval dtype dtype_of() {
  if constexpr (std::is_same_v<T, float>) return dtype::f32;
  else if constexpr (std::is_same_v<T, double>) return dtype::f64;
  else if constexpr (std::is_same_v<T, std::int64_t>) return dtype::i64;
  else if constexpr (std::is_same_v<T, std::uint64_t>) return dtype::u64;
  else if constexpr (std::is_same_v<T, std::int32_t>) return dtype::i32;
  else if constexpr (std::is_same_v<T, std::uint32_t>) return dtype::u32;
  else if constexpr (std::is_same_v<T, std::int16_t>) return dtype::i16;
  else if constexpr (std::is_same_v<T, std::uint16_t>) return dtype::u16;
  else if constexpr (std::is_same_v<T, std::int8_t>) return dtype::i8;
  else if constexpr (std::is_same_v<T, std::uint8_t>) return dtype::u8;
  else static_assert(detail::always_false<T>, "mammocl: safetensors stores float, double and fixed-width integers only.");
}

/// The largest JSON header `read` accepts (the reference implementation's limit).
inline constexpr std::uint64_t max_header_size = 100'000'000;

/// Extents of a stored tensor; empty for a scalar.
using extents = std::vector<std::int64_t>;

/// "(a,b,c)", "()" for a scalar: the way mammocl::shape prints.
[[nodiscard]] inline std::string to_string(const extents& e) {
  std::string s = "(";
  for (std::size_t i = 0; i < e.size(); ++i) {
    if (i) s += ',';
    s += std::to_string(e[i]);
  }
  return s + ")";
}

/// One stored tensor: its element type, extents and row-major little-endian element bytes.
struct entry {
  dtype type = dtype::f32;
  extents shape;
  std::vector<std::byte> data;
  /// Number of elements (1 for a scalar).
  [[nodiscard]] std::int64_t numel() const noexcept {
    std::int64_t n = 1;
    for (auto d : shape) n *= d;
    return n;
  }
};

/// An entry holding `values` (row-major, numel(shape) of them) as the dtype of T (float → F32,
/// double → F64, std::int64_t → I64, ...).
template <class T>
[[nodiscard]] entry make_entry(extents shape, std::span<const T> values) {
  entry e;
  e.type = dtype_of<T>();
  e.shape = std::move(shape);
  const auto* p = reinterpret_cast<const std::byte*>(values.data());
  e.data.assign(p, p + values.size_bytes());
  return e;
}

namespace detail {

/// IEEE binary16 → binary32 (exact: every half is a float).
[[nodiscard]] inline float half_to_float(std::uint16_t h) noexcept {
  const std::uint32_t sign = static_cast<std::uint32_t>(h & 0x8000u) << 16;
  const std::uint32_t exp = (h >> 10) & 0x1fu;
  std::uint32_t mant = h & 0x3ffu;
  std::uint32_t bits;
  if (exp == 0x1f) {
    bits = sign | 0x7f800000u | (mant << 13);  // inf / nan
  } else if (exp != 0) {
    bits = sign | ((exp + 112u) << 23) | (mant << 13);
  } else if (mant == 0) {
    bits = sign;  // ±0
  } else {        // subnormal half: normalise
    std::uint32_t e = 113;
    while ((mant & 0x400u) == 0) {
      mant <<= 1;
      --e;
    }
    bits = sign | (e << 23) | ((mant & 0x3ffu) << 13);
  }
  return std::bit_cast<float>(bits);
}
/// bfloat16 → binary32 (exact: the top half of a float).
[[nodiscard]] inline float bf16_to_float(std::uint16_t h) noexcept {
  return std::bit_cast<float>(static_cast<std::uint32_t>(h) << 16);
}

template <class S>
[[nodiscard]] inline S load(const std::byte* p) noexcept {
  S v;
  std::memcpy(&v, p, sizeof(S));
  return v;
}

/// out[i] = f(element i of `p`, stored as S), for every element of `out`.
template <class S, class T, class F>
inline void convert_elements(const std::byte* p, std::vector<T>& out, F&& f) {
  for (std::size_t i = 0; i < out.size(); ++i) out[i] = f(load<S>(p + i * sizeof(S)));
}

/// Element count of `shape`, or nothing when it overflows 63 bits.
[[nodiscard]] inline std::optional<std::uint64_t> checked_numel(const extents& shape) noexcept {
  std::uint64_t n = 1;
  for (auto d : shape) {
    const auto u = static_cast<std::uint64_t>(d);
    if (u != 0 && n > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max()) / u) return std::nullopt;
    n *= u;
  }
  return n;
}

[[nodiscard]] inline std::string quoted(const std::string& s) { return "'" + s + "'"; }

/// Writes `bytes` to `path` atomically: `path.tmp-<pid>` in the same directory, fsync, rename over `path`,
/// fsync of the directory. On failure the temporary file is removed and `path` is left as it was.
inline void write_atomically(const std::filesystem::path& path, std::span<const std::byte> bytes) {
  const std::filesystem::path tmp = path.string() + ".tmp-" + std::to_string(::getpid());
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0)
    MAMMOCL_THROW(io_error, "safetensors: cannot create the temporary file ", quoted(tmp.string()), " to write ",
                  quoted(path.string()), ": ", std::strerror(errno));
  auto fail = [&](const char* step, int err, bool close_fd) {
    if (close_fd) ::close(fd);
    std::error_code ec;
    std::filesystem::remove(tmp, ec);
    MAMMOCL_THROW(io_error, "safetensors: writing ", quoted(path.string()), " failed while ", step, " the temporary file ",
                  quoted(tmp.string()), ": ", std::strerror(err), "; the destination was not modified");
  };
  std::size_t done = 0;
  while (done < bytes.size()) {
    const ::ssize_t k = ::write(fd, bytes.data() + done, bytes.size() - done);
    if (k < 0) {
      if (errno == EINTR) continue;
      fail("writing", errno, true);
    }
    done += static_cast<std::size_t>(k);
  }
  if (::fsync(fd) != 0) fail("flushing", errno, true);
  if (::close(fd) != 0) fail("closing", errno, false);
  std::error_code ec;
  std::filesystem::rename(tmp, path, ec);
  if (ec) {
    std::error_code ignored;
    std::filesystem::remove(tmp, ignored);
    MAMMOCL_THROW(io_error, "safetensors: cannot rename the temporary file ", quoted(tmp.string()), " to ",
                  quoted(path.string()), ": ", ec.message(), "; the destination was not modified");
  }
  // Make the rename itself durable; directories that cannot be opened or synced are left as they are.
  const std::filesystem::path dir = path.has_parent_path() ? path.parent_path() : std::filesystem::path(".");
  const int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd >= 0) {
    (void)::fsync(dfd);
    ::close(dfd);
  }
}

}  // namespace detail

/// A safetensors file in memory: named tensors (sorted by name) and string metadata.
class file {
 public:
  file() = default;

  /// Reads and validates `path`. Throws io_error when the file cannot be read or breaks the format; the
  /// message names the file, the tensor or field, what was expected and what was found.
  [[nodiscard]] static file read(const std::filesystem::path& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in)
      MAMMOCL_THROW(io_error, "safetensors: cannot open ", detail::quoted(path.string()), " for reading: ",
                    std::strerror(errno));
    in.seekg(0, std::ios::end);
    const std::streamoff size = in.tellg();
    in.seekg(0, std::ios::beg);
    if (size < 0) MAMMOCL_THROW(io_error, "safetensors: cannot determine the size of ", detail::quoted(path.string()));
    std::vector<std::byte> bytes(static_cast<std::size_t>(size));
    if (size > 0 && !in.read(reinterpret_cast<char*>(bytes.data()), size))
      MAMMOCL_THROW(io_error, "safetensors: reading ", detail::quoted(path.string()), " stopped after ", in.gcount(),
                    " of ", size, " bytes");
    return parse(bytes, path.string());
  }

  /// Parses the image of a whole file; `source` names it in error messages (and becomes `source()`).
  [[nodiscard]] static file parse(std::span<const std::byte> bytes, const std::string& source) {
    const std::string src = detail::quoted(source);
    if (bytes.size() < 8)
      MAMMOCL_THROW(io_error, "safetensors: file ", src, " is ", bytes.size(),
                    " bytes long, shorter than the 8-byte header size that starts every safetensors file");
    const auto n = detail::load<std::uint64_t>(bytes.data());
    if (n > max_header_size)
      MAMMOCL_THROW(io_error, "safetensors: file ", src, " declares a ", n, "-byte JSON header, more than the ",
                    max_header_size, "-byte limit; it is not a safetensors file or it is corrupt");
    if (n > bytes.size() - 8)
      MAMMOCL_THROW(io_error, "safetensors: file ", src, " declares a ", n, "-byte JSON header but only ",
                    bytes.size() - 8, " bytes follow the header size; the file is truncated or not safetensors");
    const std::string_view header(reinterpret_cast<const char*>(bytes.data() + 8), static_cast<std::size_t>(n));
    if (header.empty() || header.front() != '{')
      MAMMOCL_THROW(io_error, "safetensors: the JSON header of file ", src, " must start with '{', found ",
                    header.empty() ? std::string("an empty header") : "'" + std::string(1, header.front()) + "'");
    nlohmann::json root;
    std::set<std::string> seen;
    std::string duplicate;
    try {
      root = nlohmann::json::parse(header, [&](int depth, nlohmann::json::parse_event_t ev, nlohmann::json& parsed) {
        if (depth == 1 && ev == nlohmann::json::parse_event_t::key && duplicate.empty()) {
          const auto& k = parsed.get_ref<const std::string&>();
          if (!seen.insert(k).second) duplicate = k;
        }
        return true;
      });
    } catch (const nlohmann::json::exception& e) {
      MAMMOCL_THROW(io_error, "safetensors: the header of file ", src, " is not valid JSON: ", e.what());
    }
    if (!duplicate.empty())
      MAMMOCL_THROW(io_error, "safetensors: the header of file ", src, " names tensor ", detail::quoted(duplicate),
                    " twice");
    if (!root.is_object())
      MAMMOCL_THROW(io_error, "safetensors: the header of file ", src, " must be a JSON object, found a JSON ",
                    root.type_name());

    const std::uint64_t data_size = bytes.size() - 8 - n;
    const std::byte* data = bytes.data() + 8 + n;
    file f;
    f.source_ = source;
    struct span_of {
      std::uint64_t begin, end;
      std::string name;
    };
    std::vector<span_of> spans;
    for (auto it = root.begin(); it != root.end(); ++it) {
      const std::string& name = it.key();
      const nlohmann::json& v = it.value();
      if (name == "__metadata__") {
        if (!v.is_object())
          MAMMOCL_THROW(io_error, "safetensors: '__metadata__' in file ", src, " must be an object of strings, found a JSON ",
                        v.type_name());
        for (auto m = v.begin(); m != v.end(); ++m) {
          if (!m->is_string())
            MAMMOCL_THROW(io_error, "safetensors: metadata entry ", detail::quoted(m.key()), " in file ", src,
                          " must be a string, found a JSON ", m->type_name());
          f.metadata_[m.key()] = m->get<std::string>();
        }
        continue;
      }
      const std::string what = "tensor " + detail::quoted(name) + " in file " + src;
      if (!v.is_object())
        MAMMOCL_THROW(io_error, "safetensors: ", what, " must be described by a JSON object, found a JSON ", v.type_name());
      for (const char* field : {"dtype", "shape", "data_offsets"})
        if (!v.contains(field))
          MAMMOCL_THROW(io_error, "safetensors: ", what, " has no '", field,
                        "' field (expected 'dtype', 'shape' and 'data_offsets')");
      const auto& jd = v["dtype"];
      if (!jd.is_string())
        MAMMOCL_THROW(io_error, "safetensors: the 'dtype' of ", what, " must be a string, found ", jd.dump());
      const auto type = parse_dtype(jd.get_ref<const std::string&>());
      if (!type)
        MAMMOCL_THROW(io_error, "safetensors: ", what, " has unknown dtype ", jd.dump(),
                      "; expected one of BOOL, U8, I8, I16, U16, I32, U32, I64, U64, F16, BF16, F32, F64");
      const auto& js = v["shape"];
      if (!js.is_array())
        MAMMOCL_THROW(io_error, "safetensors: the 'shape' of ", what, " must be an array of non-negative integers, found ",
                      js.dump());
      entry e;
      e.type = *type;
      for (const auto& d : js) {
        if (!d.is_number_integer() || (d.is_number_unsigned() ? d.get<std::uint64_t>() >
                                                                    static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max())
                                                              : d.get<std::int64_t>() < 0))
          MAMMOCL_THROW(io_error, "safetensors: the 'shape' of ", what, " must be an array of non-negative integers, found ",
                        js.dump());
        e.shape.push_back(d.get<std::int64_t>());
      }
      const auto& jo = v["data_offsets"];
      if (!jo.is_array() || jo.size() != 2 || !jo[0].is_number_unsigned() || !jo[1].is_number_unsigned())
        MAMMOCL_THROW(io_error, "safetensors: the 'data_offsets' of ", what,
                      " must be two non-negative integers [begin, end], found ", jo.dump());
      const auto begin = jo[0].get<std::uint64_t>(), end = jo[1].get<std::uint64_t>();
      const auto count = detail::checked_numel(e.shape);
      if (!count || *count > std::numeric_limits<std::uint64_t>::max() / size_of(e.type))
        MAMMOCL_THROW(io_error, "safetensors: the shape ", js.dump(), " of ", what, " has too many elements");
      const std::uint64_t expected = *count * size_of(e.type);
      if (end < begin)
        MAMMOCL_THROW(io_error, "safetensors: ", what, " has data_offsets [", begin, ", ", end,
                      "] with end before begin");
      if (end > data_size)
        MAMMOCL_THROW(io_error, "safetensors: ", what, " has data_offsets [", begin, ", ", end,
                      "] beyond the end of the ", data_size, "-byte data region");
      if (end - begin != expected)
        MAMMOCL_THROW(io_error, "safetensors: ", what, " has data_offsets [", begin, ", ", end, "] spanning ", end - begin,
                      " bytes, but its shape ", to_string(e.shape), " and dtype ", to_string(e.type), " need ", expected,
                      " bytes");
      e.data.assign(data + begin, data + end);
      spans.push_back({begin, end, name});
      f.tensors_.emplace(name, std::move(e));
    }
    // The tensors must tile the data region: no overlap, no gap, nothing left over.
    std::sort(spans.begin(), spans.end(), [](const span_of& a, const span_of& b) {
      return a.begin != b.begin ? a.begin < b.begin : a.end < b.end;
    });
    std::uint64_t cursor = 0;
    const span_of* previous = nullptr;
    for (const auto& s : spans) {
      if (s.begin < cursor)
        MAMMOCL_THROW(io_error, "safetensors: tensor ", detail::quoted(s.name), " in file ", src, " has data [", s.begin,
                      ", ", s.end, ") overlapping tensor ", detail::quoted(previous->name), " at [", previous->begin, ", ",
                      previous->end, ")");
      if (s.begin > cursor)
        MAMMOCL_THROW(io_error, "safetensors: bytes [", cursor, ", ", s.begin, ") of the data region of file ", src,
                      " belong to no tensor (the next tensor, ", detail::quoted(s.name), ", starts at ", s.begin, ")");
      cursor = s.end;
      previous = &s;
    }
    if (cursor != data_size)
      MAMMOCL_THROW(io_error, "safetensors: the data region of file ", src, " has ", data_size,
                    " bytes but its tensors cover only the first ", cursor, "; the file has trailing bytes");
    return f;
  }

  /// The whole file image: 8-byte header size, compact JSON header with sorted keys padded with spaces to
  /// a multiple of 8 bytes, then the data ordered by element size (largest first) and name.
  [[nodiscard]] std::vector<std::byte> serialize() const {
    std::vector<const std::pair<const std::string, entry>*> order;
    for (const auto& kv : tensors_) order.push_back(&kv);
    std::stable_sort(order.begin(), order.end(),
                     [](const auto* a, const auto* b) { return size_of(a->second.type) > size_of(b->second.type); });
    nlohmann::json root = nlohmann::json::object();
    if (!metadata_.empty()) root["__metadata__"] = metadata_;
    std::uint64_t offset = 0;
    for (const auto* kv : order) {
      const entry& e = kv->second;
      root[kv->first] = {{"dtype", std::string(to_string(e.type))},
                         {"shape", e.shape},
                         {"data_offsets", {offset, offset + e.data.size()}}};
      offset += e.data.size();
    }
    std::string header;
    try {
      header = root.dump();
    } catch (const nlohmann::json::exception& e) {
      MAMMOCL_THROW(io_error, "safetensors: cannot encode the header", source_.empty() ? "" : " of " + detail::quoted(source_),
                    ": ", e.what(), " (tensor names and metadata must be valid UTF-8)");
    }
    header.append((8 - header.size() % 8) % 8, ' ');
    std::vector<std::byte> out(8 + header.size() + offset);
    const std::uint64_t n = header.size();
    std::memcpy(out.data(), &n, 8);
    std::memcpy(out.data() + 8, header.data(), header.size());
    std::byte* p = out.data() + 8 + header.size();
    for (const auto* kv : order) {
      if (!kv->second.data.empty()) std::memcpy(p, kv->second.data.data(), kv->second.data.size());
      p += kv->second.data.size();
    }
    return out;
  }

  /// Writes `serialize()` to `path` atomically (temporary file `path.tmp-<pid>`, fsync, rename). On failure
  /// throws io_error and leaves `path` as it was, with no temporary file behind.
  void write(const std::filesystem::path& path) const {
    const std::vector<std::byte> image = serialize();
    detail::write_atomically(path, image);
  }

  /// Whether a tensor named `name` is stored.
  [[nodiscard]] bool contains(const std::string& name) const { return tensors_.count(name) != 0; }
  /// The tensor named `name`; throws io_error naming the file when there is none.
  [[nodiscard]] const entry& at(const std::string& name) const {
    auto it = tensors_.find(name);
    if (it == tensors_.end())
      MAMMOCL_THROW(io_error, "safetensors: no tensor named ", detail::quoted(name), " in ",
                    source_.empty() ? std::string("this file") : "file " + detail::quoted(source_));
    return it->second;
  }
  /// Every tensor, sorted by name.
  [[nodiscard]] const std::map<std::string, entry>& tensors() const noexcept { return tensors_; }
  /// Number of tensors.
  [[nodiscard]] std::size_t size() const noexcept { return tensors_.size(); }

  /// Stores (or replaces) `name`. Throws config_error for an empty or reserved name and shape_error when
  /// the byte count is not numel × element size.
  void set(const std::string& name, entry e) {
    MAMMOCL_CHECK(!name.empty() && name != "__metadata__", config_error, "safetensors: ",
                  name.empty() ? std::string("an empty string") : detail::quoted(name),
                  " cannot name a tensor ('__metadata__' is reserved for the metadata)");
    for (auto d : e.shape) MAMMOCL_EXPECTS(d >= 0, "safetensors: tensor ", detail::quoted(name), " has negative extent in shape ", to_string(e.shape));
    const auto count = detail::checked_numel(e.shape);
    MAMMOCL_EXPECTS(count && *count * size_of(e.type) == e.data.size(), "safetensors: tensor ", detail::quoted(name),
                    " of shape ", to_string(e.shape), " and dtype ", to_string(e.type), " needs ",
                    count ? *count * size_of(e.type) : 0, " bytes, got ", e.data.size());
    tensors_[name] = std::move(e);
  }
  /// Stores `values` (row-major, numel(shape) of them) as the dtype of T (float → F32, double → F64,
  /// std::int64_t → I64, ...).
  template <class T>
  void set_values(const std::string& name, extents shape, std::span<const T> values) {
    set(name, make_entry(std::move(shape), values));
  }
  template <class T>
  void set_values(const std::string& name, extents shape, const std::vector<T>& values) {
    set_values(name, std::move(shape), std::span<const T>(values));
  }
  /// Removes `name`; returns whether it was there.
  bool erase(const std::string& name) { return tensors_.erase(name) != 0; }

  /// The elements of `name` converted to T. A floating T accepts F16, BF16, F32 and F64 (narrowing F64 to
  /// float rounds to nearest); std::int64_t accepts BOOL and every integer dtype that fits. Throws io_error
  /// naming the tensor, the file and the dtype otherwise.
  template <class T>
  [[nodiscard]] std::vector<T> values(const std::string& name) const {
    static_assert(std::is_floating_point_v<T> || std::is_same_v<T, std::int64_t>,
                  "mammocl: safetensors::file::values converts to float, double or std::int64_t.");
    const entry& e = at(name);
    const auto n = static_cast<std::size_t>(e.numel());
    std::vector<T> out(n);
    const std::byte* p = e.data.data();
    auto cast = [](auto v) { return static_cast<T>(v); };
    if constexpr (std::is_floating_point_v<T>) {
      switch (e.type) {
        case dtype::f32: detail::convert_elements<float>(p, out, cast); return out;
        case dtype::f64: detail::convert_elements<double>(p, out, cast); return out;
        case dtype::f16:
          detail::convert_elements<std::uint16_t>(p, out, [](std::uint16_t h) { return static_cast<T>(detail::half_to_float(h)); });
          return out;
        case dtype::bf16:
          detail::convert_elements<std::uint16_t>(p, out, [](std::uint16_t h) { return static_cast<T>(detail::bf16_to_float(h)); });
          return out;
        default:
          MAMMOCL_THROW(io_error, "safetensors: tensor ", detail::quoted(name), " in ", where(), " has dtype ",
                        to_string(e.type), "; floating-point values need F16, BF16, F32 or F64");
      }
    } else {
      switch (e.type) {
        case dtype::i64: detail::convert_elements<std::int64_t>(p, out, cast); return out;
        case dtype::i32: detail::convert_elements<std::int32_t>(p, out, cast); return out;
        case dtype::u32: detail::convert_elements<std::uint32_t>(p, out, cast); return out;
        case dtype::i16: detail::convert_elements<std::int16_t>(p, out, cast); return out;
        case dtype::u16: detail::convert_elements<std::uint16_t>(p, out, cast); return out;
        case dtype::i8: detail::convert_elements<std::int8_t>(p, out, cast); return out;
        case dtype::u8: detail::convert_elements<std::uint8_t>(p, out, cast); return out;
        case dtype::boolean:
          detail::convert_elements<std::uint8_t>(p, out, [](std::uint8_t b) { return static_cast<T>(b != 0); });
          return out;
        case dtype::u64:
          for (std::size_t i = 0; i < n; ++i) {
            const auto v = detail::load<std::uint64_t>(p + i * 8);
            if (v > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max()))
              MAMMOCL_THROW(io_error, "safetensors: element ", i, " of U64 tensor ", detail::quoted(name), " in ", where(),
                            " is ", v, ", too large for a signed 64-bit integer");
            out[i] = static_cast<T>(v);
          }
          return out;
        default:
          MAMMOCL_THROW(io_error, "safetensors: tensor ", detail::quoted(name), " in ", where(), " has dtype ",
                        to_string(e.type), "; integer values need BOOL or an integer dtype");
      }
    }
  }

  /// String metadata ("__metadata__"); written only when not empty.
  [[nodiscard]] std::map<std::string, std::string>& metadata() noexcept { return metadata_; }
  [[nodiscard]] const std::map<std::string, std::string>& metadata() const noexcept { return metadata_; }
  /// The path (or name) this file was read from; empty for a file built in memory.
  [[nodiscard]] const std::string& source() const noexcept { return source_; }

 private:
  [[nodiscard]] std::string where() const {
    return source_.empty() ? std::string("this file") : "file " + detail::quoted(source_);
  }
  std::map<std::string, entry> tensors_;
  std::map<std::string, std::string> metadata_;
  std::string source_;
};

}  // namespace mammocl::io::safetensors
