#pragma once
/// `tensor<B>`: an NCHW (or (N,F)) array of `B::scalar_type` in the memory of backend `B`.
///
/// A tensor is a handle with reference semantics, like `std::shared_ptr`: copying a tensor shares the
/// buffer; `clone()` copies the data. A tensor either owns its buffer (shared ownership) or is a view on
/// memory somebody else owns (`tensor::view`). The images of a batch may be spaced further apart than one
/// image (`batch_stride() > C*H*W`): that is how a dense block hands each layer the first C channels of
/// its shared concatenation buffer without copying. Inside one image the data are contiguous.
#include <cstddef>
#include <memory>
#include <utility>

#include "mammocl/core/error.hpp"
#include "mammocl/core/shape.hpp"

namespace mammocl {

template <class B>
class tensor {
 public:
  using backend_type = B;
  using value_type = typename B::scalar_type;

  tensor() = default;
  /// Allocates an uninitialised, contiguous tensor.
  explicit tensor(const shape& s) : shape_(s), batch_stride_(per_item(s)) {
    if (s.numel() > 0) {
      buf_ = B::allocate(static_cast<std::size_t>(s.numel()));
      data_ = buf_.get();
    }
  }
  /// A tensor of zeros.
  [[nodiscard]] static tensor zeros(const shape& s) {
    tensor t(s);
    B::fill(t, value_type(0));
    return t;
  }
  /// A tensor filled with `v`.
  [[nodiscard]] static tensor full(const shape& s, value_type v) {
    tensor t(s);
    B::fill(t, v);
    return t;
  }
  /// A non-owning view on `count = s.numel()` elements at `p`, which must outlive the view.
  [[nodiscard]] static tensor view(value_type* p, const shape& s) {
    tensor t;
    t.data_ = p;
    t.shape_ = s;
    t.batch_stride_ = per_item(s);
    return t;
  }

  /// A non-owning view whose items lie `batch_stride` elements apart (>= one item), e.g. another backend's
  /// view of the same memory. The memory must outlive the view.
  [[nodiscard]] static tensor strided_view(value_type* p, const shape& s, index_t batch_stride) {
    MAMMOCL_EXPECTS(batch_stride >= per_item(s), "tensor::strided_view: batch stride ", batch_stride,
                    " is smaller than one item of shape ", s, " (", per_item(s), " elements)");
    tensor t = view(p, s);
    t.batch_stride_ = batch_stride;
    return t;
  }

  [[nodiscard]] const shape& dims() const noexcept { return shape_; }
  [[nodiscard]] int rank() const noexcept { return shape_.rank(); }
  [[nodiscard]] index_t dim(int i) const { return shape_[i]; }
  [[nodiscard]] index_t numel() const noexcept { return shape_.numel(); }
  [[nodiscard]] bool empty() const noexcept { return numel() == 0; }
  /// Batch size: the first extent (1 for a rank-0 tensor).
  [[nodiscard]] index_t n() const { return shape_.rank() ? shape_[0] : 1; }
  /// Channels (rank 4) or features (rank 2).
  [[nodiscard]] index_t c() const { return shape_[1]; }
  [[nodiscard]] index_t h() const { return shape_[2]; }
  [[nodiscard]] index_t w() const { return shape_[3]; }
  /// Elements of one item of the batch: C*H*W, or F.
  [[nodiscard]] index_t item_size() const noexcept { return per_item(shape_); }
  /// Elements between two consecutive items of the batch (>= item_size()).
  [[nodiscard]] index_t batch_stride() const noexcept { return batch_stride_; }
  [[nodiscard]] bool contiguous() const noexcept { return n() <= 1 || batch_stride_ == item_size(); }
  /// The data; a tensor is a handle, so a const tensor still gives write access to its elements.
  [[nodiscard]] value_type* data() const noexcept { return data_; }
  [[nodiscard]] value_type* item(index_t i) const noexcept { return data_ + i * batch_stride_; }
  [[nodiscard]] bool owns() const noexcept { return buf_ != nullptr; }
  [[nodiscard]] bool defined() const noexcept { return data_ != nullptr || (numel() == 0 && shape_.rank() > 0); }

  /// Channels [c0, c0+count) of an NCHW tensor, as a view that shares the buffer (strided over the batch).
  [[nodiscard]] tensor channels(index_t c0, index_t count) const {
    MAMMOCL_EXPECTS(rank() == 4, "tensor::channels: needs a rank-4 NCHW tensor, got shape ", shape_);
    MAMMOCL_EXPECTS(c0 >= 0 && count >= 0 && c0 + count <= c(), "tensor::channels: channels [", c0, ",",
                    c0 + count, ") out of range for shape ", shape_);
    tensor t = *this;
    t.data_ = data_ + c0 * h() * w();
    t.shape_ = shape{n(), count, h(), w()};
    return t;
  }
  /// The same elements with another shape of equal size; needs a contiguous tensor.
  [[nodiscard]] tensor reshape(const shape& s) const {
    MAMMOCL_EXPECTS(s.numel() == numel(), "tensor::reshape: cannot view shape ", shape_, " (", numel(),
                    " elements) as ", s, " (", s.numel(), " elements)");
    MAMMOCL_EXPECTS(contiguous(), "tensor::reshape: shape ", shape_, " is strided over the batch (stride ",
                    batch_stride_, "); copy it first");
    tensor t = *this;
    t.shape_ = s;
    t.batch_stride_ = per_item(s);
    return t;
  }
  /// A contiguous view of the first s.numel() elements with shape s (scratch space reuse).
  [[nodiscard]] tensor prefix(const shape& s) const {
    MAMMOCL_EXPECTS(contiguous() && s.numel() <= numel(), "tensor::prefix: cannot view ", s, " inside ", shape_);
    tensor t = *this;
    t.shape_ = s;
    t.batch_stride_ = per_item(s);
    return t;
  }
  /// A deep, contiguous copy.
  [[nodiscard]] tensor clone() const {
    tensor t(shape_);
    B::copy(*this, t);
    return t;
  }

  /// Element access for host backends (tests, I/O, small utilities). Not for hot loops.
  template <class... I>
  [[nodiscard]] value_type& at(I... idx) const
    requires(B::is_host)
  {
    static_assert(sizeof...(I) >= 1 && sizeof...(I) <= 4, "tensor::at takes 1 to 4 indices");
    const index_t ix[] = {static_cast<index_t>(idx)...};
    MAMMOCL_EXPECTS(static_cast<int>(sizeof...(I)) == rank(), "tensor::at: ", sizeof...(I),
                    " indices for a tensor of shape ", shape_);
    index_t off = 0;
    for (int i = 0; i < rank(); ++i) {
      MAMMOCL_EXPECTS(ix[i] >= 0 && ix[i] < shape_[i], "tensor::at: index ", ix[i], " out of range on axis ",
                      i, " of shape ", shape_);
      if (i > 0) off = off * shape_[i] + ix[i];
    }
    return data_[ix[0] * batch_stride_ + off];
  }

 private:
  static index_t per_item(const shape& s) noexcept {
    index_t k = 1;
    for (int i = 1; i < s.rank(); ++i) k *= s[i];
    return k;
  }
  std::shared_ptr<value_type> buf_;
  value_type* data_ = nullptr;
  shape shape_;
  index_t batch_stride_ = 0;
};

/// Throws a shape_error naming `what` unless `t` has exactly shape `s`.
template <class B>
void expect_shape(const tensor<B>& t, const shape& s, const char* what) {
  MAMMOCL_EXPECTS(t.dims() == s, what, ": expected shape ", s, ", got ", t.dims());
}

}  // namespace mammocl
